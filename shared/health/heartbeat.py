"""The daily heartbeat: what to count after each run and when to send it (pure)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from .model import DeploymentBeat, HeartbeatTally

CLAIM_TTL = timedelta(minutes=15)
"""How long a claim on the day's deployment heartbeat holds off other instances: far longer than
a post takes (its retries end within a minute), short enough that the next hourly run makes up
for an instance that died while posting."""


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
    return _due_today(tally.last_sent_day if tally else None, now, hour)


def _due_today(last_sent_day: str | None, now: datetime, hour: int | None) -> bool:
    return hour is not None and now.hour >= hour and last_sent_day != now.date().isoformat()


def deployment_due(record: DeploymentBeat | None, now: datetime, hour: int | None) -> bool:
    """:func:`heartbeat_due`'s rule for the deployment's heartbeat, unless another instance
    claimed today's less than :data:`CLAIM_TTL` ago (it is posting it now)."""
    if record is None:
        return _due_today(None, now, hour)
    claimed = (record.claimed_day == now.date().isoformat() and record.claimed_at is not None
               and now - record.claimed_at < CLAIM_TTL)
    return _due_today(record.last_sent_day, now, hour) and not claimed


def after_heartbeat(tally: HeartbeatTally, now: datetime) -> HeartbeatTally:
    """Counts start again from *now*; the day is recorded so later runs do not repeat it."""
    return HeartbeatTally(since=now, last_sent_day=now.date().isoformat(), etag=tally.etag)


def deduct(current: HeartbeatTally | None, sent: HeartbeatTally, now: datetime) -> HeartbeatTally:
    """*current* without what *sent* counted (*sent*: the same tally, read before the heartbeat
    reported it): counts start again from *now*, and a run tallied in between is kept for the
    next heartbeat. Equal to :func:`after_heartbeat` when nothing came in between."""
    if current is None:
        return HeartbeatTally(since=now, last_sent_day=now.date().isoformat())
    return HeartbeatTally(
        since=now, last_sent_day=now.date().isoformat(), runs=max(current.runs - sent.runs, 0),
        hunt_runs=_minus(current.hunt_runs, sent.hunt_runs),
        failures=max(current.failures - sent.failures, 0),
        findings=max(current.findings - sent.findings, 0),
        incidents=max(current.incidents - sent.incidents, 0),
        suppressed=max(current.suppressed - sent.suppressed, 0),
        hunt_rows=_minus(current.hunt_rows, sent.hunt_rows),
        hunt_suppressed=_minus(current.hunt_suppressed, sent.hunt_suppressed),
        etag=current.etag)


def _minus(current: Mapping[str, int], sent: Mapping[str, int]) -> dict[str, int]:
    left = {key: count - sent.get(key, 0) for key, count in current.items()}
    return {key: count for key, count in left.items() if count > 0}
