"""`huntwire eval`: the local engine over JSON-lines events, windowed exactly as in production."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.cli import main

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
