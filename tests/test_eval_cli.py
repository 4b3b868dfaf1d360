"""`huntwire eval`: the local engine over JSON-lines events, windowed exactly as in production."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.cli import main
from shared.sources.local import quote_identifier

SHELL = "powershell -nop -c \"$client = New-Object System.Net.Sockets.TCPClient('10.0.0.1',443)\""
HUNT = """\
id: 22222222-0000-0000-0000-000000000001
name: Seed copy
source: defender
lookback: 4h
query: |
  DeviceProcessEvents
  | where FileName has_any ("cmd.exe", "powershell.exe", "PowerShell_ISE.exe")
  | where ProcessCommandLine contains "$client = New-Object System.Net.Sockets.TCPClient"
"""
SENTINEL_HUNT = """\
id: 22222222-0000-0000-0000-000000000002
name: Sentinel copy
source: sentinel
dedupBy: [DeviceId, ReportId]
query: |
  DeviceProcessEvents
  | where ProcessCommandLine has "TCPClient"
  | project TimeGenerated, DeviceId, ReportId, AdditionalFields
"""


def event(report_id: int, when: str, command: str = SHELL, **extra: Any) -> dict[str, Any]:
    return {"Timestamp": when, "DeviceId": "dev-1", "ReportId": report_id,
            "FileName": "powershell.exe", "ProcessCommandLine": command, **extra}


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path]:
    hunts = tmp_path / "hunts"
    hunts.mkdir()
    (hunts / "seed.yaml").write_text(HUNT)
    (hunts / "sentinel.yaml").write_text(SENTINEL_HUNT)
    events = tmp_path / "process.jsonl"
    rows = [
        event(1, "2026-11-27T10:30:00Z", NotInSchema="ignored", AdditionalFields={"k": [1, 2]}),
        event(2, "2026-11-27T05:59:59Z"),                  # before the 4h window
        event(3, "2026-11-27T12:00:00Z"),                  # at the window end: excluded
        event(4, "2026-11-27T09:00:00+01:00"),             # 08:00 UTC: inside
        event(5, "2026-11-27T11:00:00Z", command="powershell Get-Service"),
    ]
    events.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return hunts, events


def run_eval(hunts: Path, events: Path, capsys: pytest.CaptureFixture[str],
             *extra: str) -> tuple[int, dict[str, Any]]:
    code = main(["eval", "--hunts", str(hunts), "--events", f"DeviceProcessEvents={events}",
                 "--now", "2026-11-27T12:00:00Z", "--format", "json", *extra])
    return code, json.loads(capsys.readouterr().out)


def test_window_ends_at_now_and_spans_lookback(setup: tuple[Path, Path],
                                               capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_eval(*setup, capsys, "--hunt", "22222222-0000-0000-0000-000000000001")
    assert code == 0
    assert report["now"] == "2026-11-27T12:00:00Z"
    (hunt,) = report["hunts"]
    assert hunt["error"] is None
    assert sorted(m["ReportId"] for m in hunt["matches"]) == [1, 4]


def test_matches_keep_every_column_missing_ones_null(setup: tuple[Path, Path],
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    _, report = run_eval(*setup, capsys, "--hunt", "22222222-0000-0000-0000-000000000001")
    first = next(m for m in report["hunts"][0]["matches"] if m["ReportId"] == 1)
    assert first["Timestamp"] == "2026-11-27T10:30:00Z"
    assert first["AccountName"] == ""  # Kusto has no null string: an absent string is ""
    assert first["AdditionalFields"] == {"k": [1, 2]}
    assert "NotInSchema" not in first
    assert len(first) == 68  # every DeviceProcessEvents column


def test_sentinel_hunt_windows_on_time_generated(setup: tuple[Path, Path],
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    _, report = run_eval(*setup, capsys, "--hunt", "22222222-0000-0000-0000-000000000002")
    (hunt,) = report["hunts"]
    # Exported events carry only Timestamp; TimeGenerated falls back to it.
    assert sorted(m["ReportId"] for m in hunt["matches"]) == [1, 4]
    assert set(hunt["matches"][0]) == {"TimeGenerated", "DeviceId", "ReportId",
                                       "AdditionalFields"}


def test_query_error_is_reported_per_hunt(setup: tuple[Path, Path],
                                          capsys: pytest.CaptureFixture[str]) -> None:
    hunts, events = setup
    (hunts / "broken.yaml").write_text(HUNT.replace("0001", "0003").replace(
        "Seed copy", "Broken").replace("| where FileName", "| where NoSuchColumn"))
    code, report = run_eval(hunts, events, capsys)
    by_name = {h["name"]: h for h in report["hunts"]}
    assert code == 1
    assert by_name["Broken"]["error"]
    assert len(by_name["Seed copy"]["matches"]) == 2  # the other hunts still ran


def test_text_output_is_a_readable_table(setup: tuple[Path, Path],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    hunts, events = setup
    main(["eval", "--hunts", str(hunts), "--events", f"DeviceProcessEvents={events}",
          "--now", "2026-11-27T12:00:00Z"])
    out = capsys.readouterr().out
    assert "== Seed copy [22222222-0000-0000-0000-000000000001]: 2 match(es)" in out
    assert "2026-11-27T10:30:00Z" in out


def test_bad_events_argument_is_a_clear_error(setup: tuple[Path, Path]) -> None:
    hunts, _ = setup
    with pytest.raises(SystemExit, match="TABLE=FILE"):
        main(["eval", "--hunts", str(hunts), "--events", "nofile"])


# -- bad input: one line each (issue 22 item 13) -------------------------------------------

def test_a_misspelled_table_is_one_line_with_a_suggestion(setup: tuple[Path, Path]) -> None:
    hunts, events = setup
    with pytest.raises(SystemExit) as raised:
        main(["eval", "--hunts", str(hunts), "--events", f"DeviceProcesEvents={events}"])
    message = str(raised.value.code)
    assert message == ("huntwire eval: --events: no table 'DeviceProcesEvents' (did you mean "
                       "'DeviceProcessEvents'?)")


@pytest.mark.parametrize(("content", "expected"), [
    ('{"Timestamp": "2026-11-27T10:00:00Z"}\n\n{"Timestamp": \n', ":3: not JSON"),
    ('{"a": 1}\n[1, 2]\n', ":2: a list, not a JSON object"),
    (b'{"a": "\xff"}\n', "cannot read events file"),
])
def test_a_bad_events_file_names_file_and_line(setup: tuple[Path, Path], tmp_path: Path,
                                               content: str | bytes, expected: str) -> None:
    hunts, _ = setup
    bad = tmp_path / "bad.jsonl"
    if isinstance(content, bytes):
        bad.write_bytes(content)
    else:
        bad.write_text(content)
    with pytest.raises(SystemExit) as raised:
        main(["eval", "--hunts", str(hunts), "--events", f"DeviceProcessEvents={bad}"])
    message = str(raised.value.code)
    assert f"{bad}{expected}" in message or (expected in message and str(bad) in message)
    assert "\n" not in message


def test_an_unreadable_events_file_is_one_line(setup: tuple[Path, Path], tmp_path: Path) -> None:
    hunts, _ = setup
    with pytest.raises(SystemExit, match=r"^huntwire eval: cannot read events file .*: "):
        main(["eval", "--hunts", str(hunts), "--events", f"DeviceProcessEvents={tmp_path}"])


def test_notes_say_why_a_hunt_saw_nothing(setup: tuple[Path, Path], tmp_path: Path,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    hunts, events = setup
    (hunts / "net.yaml").write_text("id: 22222222-0000-0000-0000-000000000003\nname: Net\n"
                                    "source: defender\nquery: |\n  DeviceNetworkEvents\n"
                                    "  | where RemotePort == 443\n")
    code, report = run_eval(hunts, events, capsys, "--now", "2026-12-24T00:00:00Z")
    assert code == 0
    by_name = {h["name"]: h for h in report["hunts"]}
    assert by_name["Net"]["notes"] == [
        "table(s) DeviceNetworkEvents not supplied (--events DeviceNetworkEvents=FILE)"]
    (seed_note,) = by_name["Seed copy"]["notes"]
    assert seed_note.startswith("no DeviceProcessEvents event in the window "
                                "2026-12-23T20:00:00Z .. 2026-12-24T00:00:00Z")
    assert "(try --now 2026-11-27T12:00:00Z)" in seed_note
    _, inside = run_eval(hunts, events, capsys)
    assert [h["notes"] for h in inside["hunts"] if h["name"] == "Seed copy"] == [[]]


def test_names_from_a_tampered_schema_cache_never_run_as_sql(
        setup: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 24 #8: a pulled column or table name carrying SQL reaches DuckDB as data at most."""
    from shared import schemas

    hunts, events = setup
    target = tmp_path / "pwned.csv"
    payload = f"x' : 'VARCHAR'}}); COPY (SELECT 1) TO '{target}'; --"
    table_payload = f'T" AS SELECT 1; COPY (SELECT 1) TO \'{target}\'; --'
    cache = tmp_path / "schemas.cache.json"
    columns = {"Timestamp": "datetime", "DeviceId": "string", "ReportId": "long",
               "FileName": "string", "ProcessCommandLine": "string", payload: "string",
               f'y" VARCHAR); COPY (SELECT 1) TO \'{target}\'; --': "string"}
    cache.write_text(json.dumps({"format": schemas.CACHE_FORMAT, "tables": {"defender": {
        "DeviceProcessEvents": columns, table_payload: {"Timestamp": "datetime"}}}}))
    previous = schemas.cache_path()
    schemas.use_cache_file(cache)
    schemas.clear_cache()
    try:
        code = main(["eval", "--hunts", str(hunts), "--events", f"DeviceProcessEvents={events}",
                     "--now", "2026-11-27T12:00:00Z", "--format", "json"])
    finally:
        schemas.use_cache_file(previous)
        schemas.clear_cache()
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2  # the cache is refused whole, in one line naming it (schema pull repairs it)
    assert len(err) == 1
    assert "schemas.cache.json" in err[0]
    assert not target.exists()
    # and below that check, every name handed to DuckDB is quoted as an identifier
    assert quote_identifier(table_payload) == '"' + table_payload.replace('"', '""') + '"'
