"""One pass of the hourly job, read top to bottom:

hunt -> window -> query -> suppress -> ledger, for each due hunt in isolation (its failure is
logged and reported, and the others still run), most overdue hunt first, on a bounded pool of
workers (``shared/schedule.py``); then, once for the run, incidents -> notify -> mark notified
(``shared/delivery.py``); then health and checkpoint for each hunt.

Only the queries run in parallel: every storage step of a hunt (health, checkpoint, suppression,
ledger) runs under one lock, so the stores need no thread safety of their own.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

from .coverage import Coverage, dropped_gap, query_covering, report_gaps
from .delivery import HuntRun, deliver
from .errors import HuntwireError, StorageError
from .hunt import Hunt
from .incidents import IncidentSettings, IncidentStore
from .incidents.pipeline import Snoozer
from .ledger import Checkpoint, Deadline, Ledger, oldest_first
from .notify.base import Notifier
from .outcome import HuntOutcome, RunSummary, Status
from .schedule import Job, Pool, lanes_of, most_overdue_first
from .sources.base import QueryError, QueryResult, QuerySource, close_sources
from .storage import Storage
from .suppress.apply import Suppressor
from .window import dropped_by_cap, hunt_window, iso

log = logging.getLogger("huntwire")

DUE_TOLERANCE = timedelta(minutes=5)
"""A timer may fire a little early; a hunt last run 58 minutes ago is due on an hourly timer."""

__all__ = ["HealthHooks", "HuntOutcome", "RunSummary", "Runner", "Status", "is_due"]


class HealthHooks(Protocol):
    """``shared.health.runner_hooks.RunnerHealth``: see that module."""

    def before_hunt(self, hunt: Hunt, now: datetime) -> str | None: ...

    def after_hunt(self, hunt: Hunt, outcome: HuntOutcome, now: datetime) -> None: ...

    def after_run(self, summary: RunSummary, now: datetime) -> None: ...


@dataclass
class Runner:
    """Runs every enabled, due hunt once. Built by ``shared.app.build_runner`` from settings."""

    hunts: Sequence[Hunt]
    sources: Mapping[str, QuerySource]
    ledger: Ledger | None
    notifier: Notifier | None
    dry_run: bool = False
    time_budget: timedelta = timedelta(minutes=28)
    min_time_per_hunt: timedelta = timedelta(minutes=7)
    storage_allowance: timedelta = timedelta(minutes=2)
    """Longest a hunt's ledger recording may keep starting new chunks (``shared.app``)."""
    since: datetime | None = None
    """Backfill: where a hunt's first window starts when it has no checkpoint yet."""
    monotonic: Callable[[], float] = time.monotonic
    suppressor: Suppressor | None = None
    """Suppression rules, applied after the query and before the ledger."""
    health: HealthHooks | None = None
    incidents: IncidentStore | None = None
    """Where incidents and their post intents live (the ledger's storage account)."""
    incident_settings: IncidentSettings = field(default_factory=IncidentSettings)
    snooze: Snoozer | None = None
    """Makes the cards' "Snooze similar for 7 days" links (None: no links)."""
    workers: int = 1
    """Hunts queried at once (threads); each source's lanes bound it further per service."""
    storage: Storage | None = None
    """The storage layer every store of the run shares: held to the run's deadline."""
    force: bool = False
    """Run every hunt now, due or not (``huntwire run --force``)."""
    _run_deadline: float = field(default=math.inf, init=False, repr=False)
    _storage: threading.RLock = field(default_factory=threading.RLock, init=False, repr=False)
    _checkpoints: dict[str, Checkpoint | None] = field(default_factory=dict, init=False,
                                                       repr=False)
    _storage_counted: int = field(default=0, init=False, repr=False)
    _unreadable: dict[str, Exception] = field(default_factory=dict, init=False, repr=False)
    """Hunts whose checkpoint could not be read for the order, with why."""

    def run_once(self, now: datetime) -> RunSummary:
        self._start_budget()
        summary = RunSummary(started=iso(now), outcomes=[])
        runs = self._run_hunts([h for h in self.hunts if h.enabled], summary, now)
        summary.incidents = self.deliver_runs(runs, now)
        for run in runs:
            self._finish_hunt(run, now)
        summary.outcomes = [run.outcome for run in runs]
        if self.health is not None:
            self.health.after_run(summary, now)
        if self.storage is not None:  # since the last run (the first: since it was built)
            summary.storage_requests = self.storage.requests - self._storage_counted
            self._storage_counted = self.storage.requests
        for outcome in summary.outcomes:
            _log_outcome(outcome)
        log.info("huntwire.run %s", json.dumps({"started": summary.started, "ok": summary.ok,
                                                "stopped_early": summary.stopped_early,
                                                **summary.totals()}))
        close_sources(self.sources.values())
        return summary

    def _run_hunts(self, hunts: list[Hunt], summary: RunSummary,
                   now: datetime) -> list[HuntRun]:
        """Every hunt, most overdue first, on the pool; the runs come back in *hunts*' order."""
        self._checkpoints = self._read_checkpoints(hunts)
        ordered = most_overdue_first(hunts, self._checkpoints)
        jobs = [Job(hunt, lanes_of(self.sources.get(hunt.source))
                    if hunt.id not in self._checkpoints
                    or is_due(hunt, self._checkpoints[hunt.id], now) else ())
                for hunt in ordered]  # a hunt not due takes no rate slot

        def admit(hunt: Hunt) -> HuntRun | None:
            remaining = self._run_deadline - self.monotonic()
            if remaining >= self.min_time_per_hunt.total_seconds():
                return None
            summary.stopped_early = True
            unreadable = self._unreadable.get(hunt.id)
            if unreadable is not None:  # storage spent the budget: a failure, not a skip
                failed = HuntRun(hunt, HuntOutcome(hunt.id, hunt.name, "failed",
                                                   error=str(unreadable)), tracked=True)
                _note_error(failed.outcome, unreadable)
                return failed
            return HuntRun(hunt, HuntOutcome(
                hunt.id, hunt.name, "skipped",
                error=f"time budget: {remaining:.0f} s left, a hunt may need "
                      f"{self.min_time_per_hunt.total_seconds():.0f} s; runs first next time"))

        done = Pool[Hunt, HuntRun](self.workers).run(
            jobs, lambda hunt: self._start_hunt(hunt, now), admit)
        by_hunt = {id(run.hunt): run for run in done}
        return [by_hunt[id(hunt)] for hunt in hunts]

    def _read_checkpoints(self, hunts: Sequence[Hunt]) -> dict[str, Checkpoint | None]:
        """Each hunt's checkpoint, for the order; one that cannot be read is read again (and
        fails in isolation) when its hunt runs."""
        read: dict[str, Checkpoint | None] = {}
        self._unreadable = {}
        for hunt in hunts:
            try:
                read[hunt.id] = self._checkpoint(hunt)
            except Exception as exc:  # the hunt reports it when it runs
                self._unreadable[hunt.id] = exc
                log.warning("checkpoint of hunt %s unreadable for ordering: %s", hunt.id, exc)
        return read

    # -- public steps, for the queue fan-out (shared/fanout): the same code run_once runs --

    def run_hunt(self, hunt: Hunt, now: datetime) -> HuntRun:
        """One hunt on its own (a queue message): health's go-ahead, query, suppression and
        ledger, then checkpoint and health. Its findings stay pending in the ledger, leased to
        this runner's ledger, for :meth:`deliver_runs` of the same cycle."""
        self._start_budget()
        run = self._start_hunt(hunt, now)
        self._finish_hunt(run, now)
        _log_outcome(run.outcome)
        return run

    def deliver_runs(self, runs: Sequence[HuntRun], now: datetime) -> dict[str, int]:
        """The run's delivery step (incidents, notify, mark notified) over *runs*' held
        findings; the run's incident counts."""
        if self.ledger is None or self.dry_run:
            return {}
        return deliver(runs, self.hunts, self.ledger, self.incidents, self.notifier, now,
                       self.incident_settings, self.snooze)

    def _start_budget(self) -> None:
        """The run's deadline from now; every storage call counts against it."""
        self._run_deadline = self.monotonic() + self.time_budget.total_seconds()
        if self.storage is not None:
            self.storage.limit(Deadline(self._run_deadline, self.monotonic))

    def _start_hunt(self, hunt: Hunt, now: datetime) -> HuntRun:
        """Health's go-ahead, then query and ledger in isolation."""
        if hunt.refused is not None:  # not the validated file: a failure health counts
            return HuntRun(hunt, HuntOutcome(hunt.id, hunt.name, "failed", error=hunt.refused),
                           tracked=True)
        if self.health is not None:
            with self._storage:
                disabled = self.health.before_hunt(hunt, now)
            if disabled is not None:
                return HuntRun(hunt, HuntOutcome(hunt.id, hunt.name, "disabled", error=disabled))
        run = HuntRun(hunt, HuntOutcome(hunt.id, hunt.name, "ok"), tracked=True)
        self._isolated(run, self._run_hunt, now)
        return run

    def _isolated(self, run: HuntRun, step: Callable[[HuntRun, datetime], None],
                  now: datetime) -> None:
        started = self.monotonic()
        outcome = run.outcome
        try:
            step(run, now)
        except QueryError as exc:
            outcome.status, outcome.error = "failed", exc.message
            _note_error(outcome, exc)
        except Exception as exc:  # one hunt's bug or outage must not stop the others
            log.exception("hunt %s failed", run.hunt.id)
            outcome.status, outcome.error = "failed", f"{type(exc).__name__}: {exc}"
            _note_error(outcome, exc)
        outcome.seconds = round(outcome.seconds + self.monotonic() - started, 3)

    def _run_hunt(self, run: HuntRun, now: datetime) -> None:
        hunt, outcome = run.hunt, run.outcome
        with self._storage:
            checkpoint = (self._checkpoints[hunt.id] if hunt.id in self._checkpoints
                          else self._checkpoint(hunt))
            if not self.force and not is_due(hunt, checkpoint, now):
                outcome.status = "not-due"
                return
            source = self.sources.get(hunt.source)
            if source is None:
                outcome.status = "skipped"
                outcome.error = f"no {hunt.source} source configured"
                return
            resume = self._resume_point(hunt, checkpoint, now)
        window = hunt_window(now, hunt.lookback, resume)
        outcome.window_start, outcome.window_end = iso(window.start), iso(window.end)
        covered = query_covering(source, hunt, window)
        dropped = dropped_by_cap(now, resume)
        if dropped is not None:
            covered.gaps.insert(0, dropped_gap(dropped))
        result = covered.result
        outcome.rows = len(result.rows)
        outcome.warnings += covered.warnings
        outcome.truncated, outcome.partial = covered.split or result.truncated, result.partial
        with self._storage:
            if self.suppressor is not None:
                applied = self.suppressor.apply(hunt, result.rows, now.date())
                result = replace(result, rows=applied.kept)
                outcome.suppressed = applied.suppressed
            if self.dry_run or self.ledger is None:
                outcome.rows_preview = result.rows
                return
            self._record(run, result, now)
            run.covered = covered

    def _record(self, run: HuntRun, result: QueryResult, now: datetime) -> None:
        """Claim the new findings, and take the pending ones no other run holds (leased to us),
        so overlapping runs never post a finding twice; delivery gives back what stays pending.
        """
        assert self.ledger is not None
        hunt, outcome = run.hunt, run.outcome
        started = self.monotonic()
        stop = min(started + self.storage_allowance.total_seconds(),
                   self._run_deadline)
        recorded = self.ledger.record(hunt, result.rows, now,
                                      deadline=Deadline(stop, self.monotonic))
        outcome.new, outcome.seen = len(recorded.new), recorded.seen
        if recorded.unrecorded:
            outcome.unrecorded = recorded.unrecorded
            first = recorded.first_unrecorded
            outcome.unrecorded_from = iso(first) if first is not None else None
            outcome.warnings.append(
                f"storage time allowance spent after {self.monotonic() - started:.0f} s: "
                f"{recorded.unrecorded} finding(s) from {outcome.unrecorded_from or 'undated rows'}"
                " not recorded; the checkpoint stays before them and the next run records them")
        outcome.new_findings = [finding.row for finding in recorded.new]
        run.held = oldest_first([*recorded.new, *self.ledger.take_pending(hunt, now)])
        oldest = min((f.first_seen for f in run.held), default=None)
        outcome.pending_since = iso(oldest) if oldest is not None else None

    def _finish_hunt(self, run: HuntRun, now: datetime) -> None:
        """After the run's deliveries: checkpoint, then health (which reads what is pending)."""
        if run.covered is not None:
            covered = run.covered
            self._isolated(run, lambda r, n: self._save_checkpoint(r.hunt, covered, n,
                                                                   r.outcome), now)
        if self.health is not None and run.tracked:
            self.health.after_hunt(run.hunt, run.outcome, now)

    def _save_checkpoint(self, hunt: Hunt, covered: Coverage, now: datetime,
                         outcome: HuntOutcome) -> None:
        """Advance the hunt's resume point over the data fully seen; a gap fails the run with a
        notice."""
        assert self.ledger is not None
        previous = self.ledger.checkpoint(hunt.id)
        resume = previous.last_success_end if previous else None
        success_end = max(resume or covered.covered_end, covered.covered_end)
        if outcome.unrecorded:  # the storage allowance ran out: resume at the first left out
            success_end = _unrecorded_start(covered, outcome)
        problems = [*covered.gaps, *covered.warnings]
        if outcome.unrecorded:
            problems.append(f"{outcome.unrecorded} finding(s) not recorded (storage time)")
        self.ledger.save_checkpoint(Checkpoint(
            hunt_id=hunt.id, last_success_end=success_end, last_run_start=now,
            last_error="; ".join(problems) if problems else None,
            rows=outcome.rows, new=outcome.new, posted=outcome.posted))
        if covered.gaps:
            line = report_gaps(self.notifier, hunt, covered.gaps)
            outcome.status, outcome.error_kind = "failed", "coverage"
            outcome.error = f"{outcome.error}; {line}" if outcome.error else line

    def _checkpoint(self, hunt: Hunt) -> Checkpoint | None:
        return self.ledger.checkpoint(hunt.id) if self.ledger is not None else None

    def _resume_point(self, hunt: Hunt, checkpoint: Checkpoint | None,
                      now: datetime) -> datetime | None:
        """Where the data not yet covered starts. A hunt's first attempt stores its first
        window's start (``--since`` or now - lookback) at once, so failed first runs lose
        nothing."""
        if checkpoint is not None and checkpoint.last_success_end is not None:
            return checkpoint.last_success_end
        first = self.since or now - hunt.lookback
        if self.ledger is not None and not self.dry_run:
            self.ledger.save_checkpoint(Checkpoint(hunt_id=hunt.id, last_success_end=first))
        return first


def is_due(hunt: Hunt, checkpoint: Checkpoint | None, now: datetime) -> bool:
    if checkpoint is None or checkpoint.last_run_start is None:
        return True
    if checkpoint.last_run_start > now:  # clock skew: never let a future stamp block a hunt
        return True
    return now - checkpoint.last_run_start >= hunt.frequency - DUE_TOLERANCE


def _unrecorded_start(covered: Coverage, outcome: HuntOutcome) -> datetime:
    """Where the next run must resume so the findings left unrecorded are queried again: the
    oldest one's event time, or this run's window start when one has no event time."""
    start = outcome.unrecorded_from or outcome.window_start
    assert start is not None, "a recorded hunt has a window"
    return min(covered.covered_end, datetime.fromisoformat(start))


def _note_error(outcome: HuntOutcome, exc: Exception) -> None:
    """What hunt health needs to know about a failure: permanent or not, and why (the reason
    the source or the storage layer set; a storage failure is never taken for the source's)."""
    outcome.error_permanent = isinstance(exc, HuntwireError) and exc.permanent
    outcome.error_kind, outcome.error_status = None, None
    if not isinstance(exc, HuntwireError):
        return
    reason = exc.reason
    if isinstance(exc, StorageError):
        outcome.error_kind = f"storage-{reason or 'failed'}"
        return
    outcome.error_kind = reason
    outcome.error_status = exc.status


def _log_outcome(outcome: HuntOutcome) -> None:
    record = {k: v for k, v in asdict(outcome).items()
              if k not in ("rows_preview", "new_findings")}
    level = logging.ERROR if outcome.status == "failed" else (
        logging.WARNING if outcome.warnings else logging.INFO)
    log.log(level, "huntwire.hunt %s", json.dumps(record))
