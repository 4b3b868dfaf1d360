"""Time as the hunt means it: the query's own range sets the lookback; placeholders are filled."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.cli import main
from shared.hunt import load_hunt
from shared.hunt_time import effective_lookback, query_reach, render_query
from shared.window import Window

HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
DEFAULT = timedelta(hours=4)


@pytest.mark.parametrize(("query", "span"), [
    ("DeviceEvents | where Timestamp > ago(3d)", 3 * DAY),
    ("let lookback = 14d;\nSigninLogs | where TimeGenerated > ago(lookback)", 14 * DAY),
    ("SecurityEvent | where TimeGenerated >= startofday(ago(7d))", 8 * DAY),
    ("T | where TimeGenerated between (ago(10d) .. ago(1d))", 10 * DAY),
    ("T | where Timestamp < ago(3d)", 3 * DAY),  # older history: the window must reach it
    ("T | where x > now(-2h)", 2 * HOUR),
    ("T | where x > now() - 36h", 36 * HOUR),
    ("let s = 1d; let e = s * 7;\nT | where x > ago(e + 1h)", 7 * DAY + HOUR),
    ("let starttime = 2d; let endtime = 1d;\nT | where t between (ago(starttime)..ago(endtime))",
     2 * DAY),
])
def test_the_largest_reach_the_query_names(query: str, span: timedelta) -> None:
    reach = query_reach(query)
    assert reach is not None
    assert reach.span == span


@pytest.mark.parametrize("query", [
    "DeviceProcessEvents | where FileName == 'ago(9d)'",      # inside a string
    "DeviceProcessEvents // where Timestamp > ago(9d)\n| take 1",  # inside a comment
    "T | where x > ago(unknown_name)",                        # not a known timespan
    "T | where x < now()",
])
def test_no_reach_when_the_query_sets_none(query: str) -> None:
    assert query_reach(query) is None


def test_explicit_lookback_wins_then_query_then_default_capped_at_30_days() -> None:
    assert effective_lookback("T | where t > ago(7d)", 2 * HOUR, DEFAULT, HOUR) == (
        2 * HOUR, "lookback in the file")
    assert effective_lookback("T | where t > ago(7d)", None, DEFAULT, HOUR)[0] == 7 * DAY
    assert effective_lookback("T", None, DEFAULT, HOUR)[0] == DEFAULT
    lookback, why = effective_lookback("T | where t > ago(90d)", None, DEFAULT, HOUR)
    assert lookback == 30 * DAY
    assert "capped at 30 days" in why
    lookback, why = effective_lookback("T | where t > ago(10m)", None, DEFAULT, HOUR)
    assert lookback == HOUR
    assert "frequency" in why


def test_placeholders_are_filled_with_the_window() -> None:
    window = Window(datetime(2026, 11, 2, 8, tzinfo=UTC), datetime(2026, 11, 2, 12, tzinfo=UTC))
    query = ("T | where TimeGenerated between (todatetime('{{StartTimeISO}}') .. "
             "todatetime('{{EndTimeISO}}'))")
    assert render_query(query, window) == (
        "T | where TimeGenerated between (todatetime('2026-11-02T08:00:00Z') .. "
        "todatetime('2026-11-02T12:00:00Z'))")


HUNT = """\
id: 33333333-0000-0000-0000-00000000000{n}
name: Old history {n}
source: defender
{extra}query: |
  let lookback = 3d;
  DeviceProcessEvents
  | where Timestamp > ago(lookback)
  | where FileName =~ "certutil.exe"
  | project Timestamp, DeviceId, ReportId, FileName
"""


def _hunts(tmp_path: Path) -> Path:
    hunts = tmp_path / "hunts"
    hunts.mkdir()
    (hunts / "a.yaml").write_text(HUNT.format(n=1, extra=""))
    (hunts / "b.yaml").write_text(HUNT.format(n=2, extra="lookback: 4h\n"))
    return hunts


def test_the_loader_sets_the_effective_lookback(tmp_path: Path) -> None:
    hunts = _hunts(tmp_path)
    derived, _ = load_hunt(hunts / "a.yaml")
    explicit, _ = load_hunt(hunts / "b.yaml")
    assert (derived.lookback, derived.lookback_reason) == (3 * DAY, "query: ago(lookback)")
    assert explicit.lookback == 4 * HOUR


def test_eval_window_follows_the_query(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An event two days old: found by the hunt that asks for 3 days, not by the 4h override."""
    hunts = _hunts(tmp_path)
    (tmp_path / "none").mkdir()
    events = tmp_path / "p.jsonl"
    row: dict[str, Any] = {"Timestamp": "2026-11-25T12:00:00Z", "DeviceId": "d", "ReportId": 1,
                           "FileName": "CertUtil.exe"}
    events.write_text(json.dumps(row) + "\n")
    code = main(["eval", "--hunts", str(hunts), "--events", f"DeviceProcessEvents={events}",
                 "--now", "2026-11-27T12:00:00Z", "--format", "json", "--suppressions",
                 str(tmp_path / "none")])
    report = json.loads(capsys.readouterr().out)
    assert code == 0
    found = {h["name"]: len(h["matches"]) for h in report["hunts"]}
    assert found == {"Old history 1": 1, "Old history 2": 0}


def test_validate_says_which_lookback_and_why(tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    hunts = _hunts(tmp_path)
    (tmp_path / "none").mkdir()
    main(["validate", "--hunts", str(hunts), "--format", "json", "--suppressions",
          str(tmp_path / "none")])
    report = json.loads(capsys.readouterr().out)
    got = {h["name"]: (h["lookback"], h["lookback_reason"]) for h in report["hunts"]}
    assert got == {"Old history 1": ("3d", "query: ago(lookback)"),
                   "Old history 2": ("4h", "lookback in the file")}
