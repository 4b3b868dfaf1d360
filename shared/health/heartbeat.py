"""The daily heartbeat: what to count after each run and when to send it (pure)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from .model import HeartbeatTally


@dataclass(frozen=True)
class HuntRun:
    """One hunt's part in a run, as the heartbeat counts it."""

    hunt_id: str
    status: str
    new: int = 0
    suppressed: int = 0
    rows: int = 0
    """Rows the query returned, before suppression."""


def tally_run(tally: HeartbeatTally | None, runs: Iterable[HuntRun], now: datetime,
              incidents: int = 0) -> HeartbeatTally:
    """*tally* plus one run: hunts that ran (ok or failed), failures, findings, suppressions,
    and the *incidents* the run opened (counted once for the run: one incident often spans
    several hunts)."""
    tally = tally or HeartbeatTally(since=now)
    hunt_runs = dict(tally.hunt_runs)
    hunt_rows, hunt_suppressed = dict(tally.hunt_rows), dict(tally.hunt_suppressed)
    failures = findings = suppressed = 0
    for run in runs:
        if run.status in ("ok", "failed"):
            hunt_runs[run.hunt_id] = hunt_runs.get(run.hunt_id, 0) + 1
        if run.rows:
            hunt_rows[run.hunt_id] = hunt_rows.get(run.hunt_id, 0) + run.rows
            hunt_suppressed[run.hunt_id] = hunt_suppressed.get(run.hunt_id, 0) + run.suppressed
        failures += run.status == "failed"
        findings += run.new
        suppressed += run.suppressed
    return replace(tally, since=tally.since or now, runs=tally.runs + 1, hunt_runs=hunt_runs,
                   failures=tally.failures + failures, findings=tally.findings + findings,
                   incidents=tally.incidents + incidents,
                   suppressed=tally.suppressed + suppressed, hunt_rows=hunt_rows,
                   hunt_suppressed=hunt_suppressed)


def heartbeat_due(tally: HeartbeatTally | None, now: datetime, hour: int | None) -> bool:
    """Once a UTC day, from the configured hour on (a missed hour is made up by the next run)."""
    if hour is None:
        return False
    sent_today = tally is not None and tally.last_sent_day == now.date().isoformat()
    return now.hour >= hour and not sent_today


def after_heartbeat(tally: HeartbeatTally, now: datetime) -> HeartbeatTally:
    """Counts start again from *now*; the day is recorded so later runs do not repeat it."""
    return HeartbeatTally(since=now, last_sent_day=now.date().isoformat(), etag=tally.etag)
