"""The demo day (samples/) through the incident pipeline: three incidents in three posts (the
cradle the 09:14 shell launched joins the shell's incident by process lineage).

Real parts only: the repository's hunts run by the local engine over samples/, the ledger and the
incident store on Azurite, posts through TeamsWebhook to the local webhook receiver.
``python tests/test_incidents_demo.py`` prints the figures (findings, incidents, posts).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devtools.azurite import Azurite  # noqa: E402
from devtools.webhook import WebhookReceiver  # noqa: E402
from shared.cards import MAX_PAYLOAD_BYTES, payload_size  # noqa: E402
from shared.hunt import Hunt, load_hunts  # noqa: E402
from shared.incidents import IncidentOutcome, IncidentStore, process_run  # noqa: E402
from shared.ledger import Finding, Ledger  # noqa: E402
from shared.notify.teams import TeamsNotifier  # noqa: E402
from shared.sources.local import LocalSource  # noqa: E402
from shared.storage import Storage  # noqa: E402
from shared.window import Window  # noqa: E402
from tests.card_text import texts as card_texts  # noqa: E402
from tests.card_text import title  # noqa: E402

DAY = Window(datetime(2026, 11, 27, tzinfo=UTC), datetime(2026, 11, 28, tzinfo=UTC))
NOW = DAY.end
ATTACKED = {"ws-fin-014.corp.contoso.com": 1, "ws-hr-022.corp.contoso.com": 1,
            "srv-app-02.corp.contoso.com": 1}


def demo_findings(ledger: Ledger, hunts: list[Hunt]) -> dict[str, list[Finding]]:
    source = LocalSource({"DeviceProcessEvents": REPO / "samples" / "DeviceProcessEvents.jsonl",
                          "DeviceNetworkEvents": REPO / "samples" / "DeviceNetworkEvents.jsonl"})
    found = {}
    for hunt in hunts:
        found[hunt.id] = ledger.record(hunt, source.run(hunt, DAY).rows, NOW).new
    return found


def run_demo(connection_string: str, hook: WebhookReceiver, suffix: str
             ) -> tuple[dict[str, list[Finding]], IncidentOutcome]:
    hunts = [h for h in load_hunts(REPO / "hunts").hunts if h.enabled]
    storage = Storage.from_connection_string(connection_string)
    ledger = Ledger(storage, findings_table=f"demoF{suffix}", pending_table=f"demoP{suffix}",
                    checkpoints_table=f"demoC{suffix}")
    store = IncidentStore(storage, table=f"demoI{suffix}")
    findings = demo_findings(ledger, hunts)
    with closing(TeamsNotifier(hook.url, min_interval_seconds=0)) as webhook:
        outcome = process_run(findings, hunts, store, webhook, NOW)
    return findings, outcome


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


def test_demo_day_gives_three_incidents_in_three_posts(storage_connection_string: str,
                                                       hook: WebhookReceiver) -> None:
    findings, outcome = run_demo(storage_connection_string, hook, "a")
    assert sum(len(f) for f in findings.values()) == 12  # the 12 findings of the digest era
    assert len(outcome.opened) == 3
    assert not outcome.updated
    assert len(hook.payloads) == 3
    assert outcome.posted == 3
    cards = [card_text(p) for p in hook.payloads]
    for device, count in ATTACKED.items():
        assert sum(title(p).endswith(f" on {device}") for p in hook.payloads) == count, device
    assert not any("ws-it-007" in card for card in cards)  # the admin's port probe pages nobody
    assert len(outcome.held) == 1  # ... but is kept as evidence on ws-it-007
    shell = next(c for c in cards if "WINWORD.EXE → cmd.exe → powershell.exe" in c)
    assert "powershell.exe [203.0.113.57:443] → powershell.exe → 198.51.100.77:8080" in shell
    assert "DownloadString" in shell  # the cradle the shell launched, ten hours later
    encoded = next(c for c in cards if "ws-hr-022" in c)
    script = next(line for line in encoded.splitlines() if line.startswith("$client"))
    assert len(script) == 502
    assert script.endswith("$client.Close()")
    assert "more characters in advanced hunting" not in encoded
    for card in cards:  # each script once per card, then "same script"
        for needle in ("Sockets.TCPClient(", "DownloadString("):
            assert card.count(needle) <= 1, (needle, card)
        assert "channel runs-input" not in card  # analysts read plain words
    assert "same script as cmd.exe above" in shell
    assert "runs what it receives" in shell
    for name in ("PowerShell socket reverse shell", "outbound connection",
                 "TcpClient"):
        assert name.lower() in shell.lower(), name
    assert all(payload_size(p) <= MAX_PAYLOAD_BYTES for p in hook.payloads)
    delivered = sum(len(keys) for keys in outcome.delivered.values())
    absorbed = sum(len(keys) for keys in outcome.absorbed.values())
    assert delivered + absorbed == 12
    assert absorbed == 1  # the port probe, kept as evidence on the held ws-it-007 incident
    assert not outcome.pending


def main() -> None:
    with Azurite() as azurite, WebhookReceiver() as receiver:
        findings, outcome = run_demo(azurite.connection_string, receiver, "m")
    print(f"findings: {sum(len(f) for f in findings.values())} from "
          f"{sum(1 for f in findings.values() if f)} hunts")
    print(f"incidents opened: {len(outcome.opened)}, held (evidence only): {len(outcome.held)}")
    print(f"posts: {len(receiver.payloads)}")
    for payload in receiver.payloads:
        print(f"  {payload_size(payload):>6} bytes  {title(payload)}")


if __name__ == "__main__":
    main()


def card_text(payload: Any) -> str:
    return "\n".join(card_texts(payload))
