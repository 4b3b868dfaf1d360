"""Finding identity: which columns make two result rows the same finding."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.hunt import Hunt, load_hunts
from shared.identity import Identity, Summarize, finding_identity, is_aggregate_name, summarize_of
from shared.sources.local import LocalSource
from shared.window import hunt_window

BRUTE_FORCE = """\
DeviceLogonEvents
| where ActionType == "LogonFailed"
| summarize Attempts = count(), FirstSeen = min(Timestamp), LastSeen = max(Timestamp),
    Sources = make_set(RemoteIP) by DeviceName, AccountName
| where Attempts >= 3
"""


def write_hunt(folder: Path, query: str, extra: str = "") -> Hunt:
    folder.mkdir(exist_ok=True)
    (folder / "hunt.yaml").write_text(
        "id: 00000000-0000-0000-0000-000000000001\nname: brute force\n"
        "requiredDataConnectors:\n  - connectorId: MicrosoftThreatProtection\n"
        "query: |\n" + "".join(f"  {line}\n" for line in query.splitlines()) + extra)
    (hunt,) = load_hunts(folder).hunts
    return hunt


def failed_logons(path: Path, start: datetime, minutes: list[int]) -> Path:
    events = [{"Timestamp": (start + timedelta(minutes=m)).isoformat(), "DeviceId": "dev-1",
               "DeviceName": "ws-01", "ActionType": "LogonFailed", "AccountName": "alice",
               "RemoteIP": f"203.0.113.{m % 7}", "ReportId": 1000 + m} for m in minutes]
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


def keys(hunt: Hunt, rows: list[dict[str, Any]], identity: Identity) -> set[tuple[Any, ...]]:
    return {tuple(row[c] for c in identity.columns) for row in rows}


def test_a_summarize_hunt_keeps_its_identity_hour_after_hour(tmp_path: Path) -> None:
    """The counters and LastSeen grow between two hourly runs; the finding stays the same."""
    hunt = write_hunt(tmp_path / "hunts", BRUTE_FORCE)
    start = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    events = failed_logons(tmp_path / "logons.jsonl", start, [0, 5, 10, 15, 70, 95])
    engine = LocalSource({"DeviceLogonEvents": events})
    runs = []
    for now in (start + timedelta(hours=1), start + timedelta(hours=2)):
        result = engine.run(hunt, hunt_window(now, hunt.lookback))
        identity = finding_identity(hunt, [(c.name, c.type) for c in result.columns])
        runs.append((identity, result.rows))
    (first, rows1), (second, rows2) = runs
    assert first == second == Identity(("DeviceName", "AccountName"), "entities+keys")
    assert [r["Attempts"] for r in rows1] == [4]
    assert [r["Attempts"] for r in rows2] == [6]
    assert rows1[0]["LastSeen"] != rows2[0]["LastSeen"]
    assert keys(hunt, rows1, first) == keys(hunt, rows2, second) == {("ws-01", "alice")}


@pytest.mark.skipif(shutil.which("node") is None, reason="Microsoft's KQL parser runs in node")
def test_kusto_language_and_the_fallback_agree_on_the_summarize(tmp_path: Path) -> None:
    from shared.kql_check import validate_hunts

    hunt = write_hunt(tmp_path / "hunts", BRUTE_FORCE)
    checked = validate_hunts([hunt])
    assert checked.errors == []
    parsed = checked.checked[hunt.id].summarize
    assert parsed == Summarize(("DeviceName", "AccountName"),
                               ("Attempts", "FirstSeen", "LastSeen", "Sources"))
    assert summarize_of(hunt.query) == parsed
    assert checked.identities[hunt.id] == Identity(("DeviceName", "AccountName"),
                                                   "entities+keys")


def test_dedup_by_wins(tmp_path: Path) -> None:
    hunt = write_hunt(tmp_path / "hunts", BRUTE_FORCE, "dedupBy: [AccountName]\n")
    assert finding_identity(hunt, ["DeviceName", "AccountName", "Attempts"]) == Identity(
        ("AccountName",), "dedupBy")


def test_defender_event_rows_keep_device_and_report_id(tmp_path: Path) -> None:
    hunt = write_hunt(tmp_path / "hunts", "DeviceProcessEvents\n"
                      "| project Timestamp, DeviceId, ReportId, ProcessCommandLine")
    columns = [("Timestamp", "datetime"), ("DeviceId", "string"), ("ReportId", "long"),
               ("ProcessCommandLine", "string")]
    assert finding_identity(hunt, columns) == Identity(("DeviceId", "ReportId"), "event")


def test_entity_columns_join_the_by_keys_but_never_aggregates(tmp_path: Path) -> None:
    query = ("SecurityEvent\n| where EventID == 4625\n"
             "| summarize StartTime = min(TimeGenerated), EndTime = max(TimeGenerated),"
             " FailedLogons = count(), IPs = make_set(IpAddress) by Account, Computer\n"
             "| extend AccountCustomEntity = Account, HostCustomEntity = Computer")
    mappings = ("entityMappings:\n  - entityType: Account\n    fieldMappings:\n"
                "      - identifier: FullName\n        columnName: AccountCustomEntity\n"
                "  - entityType: IP\n    fieldMappings:\n"
                "      - identifier: Address\n        columnName: IPs\n")
    folder = tmp_path / "hunts"
    folder.mkdir()
    (folder / "h.yaml").write_text(
        "id: 00000000-0000-0000-0000-000000000002\nname: failed\nsource: sentinel\nquery: |\n"
        + "".join(f"  {line}\n" for line in query.splitlines()) + mappings)
    (hunt,) = load_hunts(folder).hunts
    assert hunt.entity_columns == ("AccountCustomEntity", "IPs")
    columns = ["Account", "Computer", "StartTime", "EndTime", "FailedLogons", "IPs",
               "AccountCustomEntity", "HostCustomEntity"]
    assert finding_identity(hunt, columns).columns == ("Account", "Computer",
                                                       "AccountCustomEntity")


def test_rows_without_keys_use_their_non_time_non_counter_columns(tmp_path: Path) -> None:
    hunt = write_hunt(tmp_path / "hunts", "DeviceNetworkEvents\n| project Timestamp, DeviceName,"
                      " RemoteUrl")
    columns = [("Timestamp", "datetime"), ("DeviceName", "string"), ("RemoteUrl", "string"),
               ("count_", "long")]
    assert finding_identity(hunt, columns) == Identity(("DeviceName", "RemoteUrl"), "row")


@pytest.mark.parametrize(("name", "aggregate"), [
    ("count_", True), ("Count", True), ("FirstSeen", True), ("LastSeen", True),
    ("StartTimeUtc", True), ("EndTime", True), ("set_RemoteIP", True), ("dcount_User", True),
    ("AttemptCount", True), ("Account", False), ("AccountName", False), ("Computer", False),
    ("DeviceName", False), ("IPAddress", False)])
def test_aggregate_names(name: str, aggregate: bool) -> None:
    assert is_aggregate_name(name) is aggregate


def test_summarize_fallback_reads_names_without_the_parser() -> None:
    query = ('let x = "a|b";\nT | where A != "x | summarize y"\n'
             "| summarize hint.shufflekey=A count(), dcount(B), make_set(C), Last = max(D)"
             " by A, bin(TimeGenerated, 1h), E = tolower(F)\n| extend G = 1")
    assert summarize_of(query) == Summarize(("A", "TimeGenerated", "E"),
                                            ("count_", "dcount_B", "set_C", "Last"))
    assert summarize_of("T | project A") is None
