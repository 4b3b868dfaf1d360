"""One pass of the hourly job, read top to bottom:

hunt -> window -> query -> findings -> ledger -> card -> mark notified -> checkpoint.

Each hunt runs in isolation: its failure is logged and reported, and the others still run.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from .coverage import Coverage, dropped_gap, query_covering, report_gaps
from .errors import HuntwireError
from .hunt import Hunt
from .ledger import Checkpoint, Finding, Ledger, oldest_first
from .notify.base import FindingsBatch, Notifier, NotifyError
from .sources.base import QueryError, QueryResult, QuerySource, close_sources
from .suppress.apply import Suppressor
from .window import Window, dropped_by_cap, hunt_window, iso

log = logging.getLogger("huntwire")

DUE_TOLERANCE = timedelta(minutes=5)
"""A timer may fire a little early; a hunt last run 58 minutes ago is due on an hourly timer."""

Status = Literal["ok", "failed", "not-due", "skipped", "disabled"]


class HealthHooks(Protocol):
    """``shared.health.runner_hooks.RunnerHealth``: see that module."""

    def before_hunt(self, hunt: Hunt, now: datetime) -> str | None: ...

    def after_hunt(self, hunt: Hunt, outcome: HuntOutcome, now: datetime) -> None: ...

    def after_run(self, summary: RunSummary, now: datetime) -> None: ...


@dataclass
class HuntOutcome:
    hunt_id: str
    name: str
    status: Status
    window_start: str | None = None
    window_end: str | None = None
    rows: int = 0
    suppressed: dict[str, int] = field(default_factory=dict)
    """Rows the query returned that suppression rules silenced, per rule id."""
    new: int = 0
    seen: int = 0
    posted: int = 0
    pending: int = 0
    seconds: float = 0.0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    rows_preview: list[dict[str, Any]] = field(default_factory=list, repr=False)
    """Dry run: the rows the query returned."""
    new_findings: list[dict[str, Any]] = field(default_factory=list, repr=False)
    """The findings this run claimed as new (their ledger summaries)."""
    error_permanent: bool = False
    error_kind: str | None = None
    error_status: int | None = None
    truncated: bool = False
    partial: bool = False
    delivery_failed: bool = False
    """New or pending findings could not be delivered: they stay pending, the run fails."""
    pending_since: str | None = None
    """Claim time of the oldest finding this run found pending (before posting)."""


@dataclass
class RunSummary:
    started: str
    outcomes: list[HuntOutcome]
    stopped_early: bool = False

    @property
    def ok(self) -> bool:
        return not self.stopped_early and all(o.status != "failed" and not o.delivery_failed
                                              for o in self.outcomes)

    def totals(self) -> dict[str, int]:
        keys = ("rows", "new", "posted", "pending")
        counts = {k: sum(getattr(o, k) for o in self.outcomes) for k in keys}
        for status in ("ok", "failed", "not-due", "skipped", "disabled"):
            counts[status.replace("-", "_")] = sum(o.status == status for o in self.outcomes)
        counts["delivery_failed"] = sum(o.delivery_failed for o in self.outcomes)
        return counts


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
    since: datetime | None = None
    """Backfill: where a hunt's first window starts when it has no checkpoint yet."""
    monotonic: Callable[[], float] = time.monotonic
    suppressor: Suppressor | None = None
    """Suppression rules, applied after the query and before the ledger."""
    health: HealthHooks | None = None

    def run_once(self, now: datetime) -> RunSummary:
        deadline = self.monotonic() + self.time_budget.total_seconds()
        summary = RunSummary(started=iso(now), outcomes=[])
        for hunt in (h for h in self.hunts if h.enabled):
            remaining = deadline - self.monotonic()
            if remaining < self.min_time_per_hunt.total_seconds():
                summary.stopped_early = True
                summary.outcomes.append(HuntOutcome(
                    hunt.id, hunt.name, "skipped",
                    error=f"time budget: {remaining:.0f} s left, a hunt may need "
                          f"{self.min_time_per_hunt.total_seconds():.0f} s; runs next time"))
                continue
            summary.outcomes.append(self._run_with_health(hunt, now))
        if self.health is not None:
            self.health.after_run(summary, now)
        for outcome in summary.outcomes:
            _log_outcome(outcome)
        log.info("huntwire.run %s", json.dumps({"started": summary.started, "ok": summary.ok,
                                                "stopped_early": summary.stopped_early,
                                                **summary.totals()}))
        close_sources(self.sources.values())
        return summary

    def _run_with_health(self, hunt: Hunt, now: datetime) -> HuntOutcome:
        if self.health is None:
            return self._run_isolated(hunt, now)
        disabled = self.health.before_hunt(hunt, now)
        if disabled is not None:
            return HuntOutcome(hunt.id, hunt.name, "disabled", error=disabled)
        outcome = self._run_isolated(hunt, now)
        self.health.after_hunt(hunt, outcome, now)
        return outcome

    def _run_isolated(self, hunt: Hunt, now: datetime) -> HuntOutcome:
        started = self.monotonic()
        outcome = HuntOutcome(hunt.id, hunt.name, "ok")
        try:
            self._run_hunt(hunt, now, outcome)
        except QueryError as exc:
            outcome.status, outcome.error = "failed", exc.message
            _note_error(outcome, exc)
        except Exception as exc:  # one hunt's bug or outage must not stop the others
            log.exception("hunt %s failed", hunt.id)
            outcome.status, outcome.error = "failed", f"{type(exc).__name__}: {exc}"
            _note_error(outcome, exc)
        outcome.seconds = round(self.monotonic() - started, 3)
        return outcome

    def _run_hunt(self, hunt: Hunt, now: datetime, outcome: HuntOutcome) -> None:
        checkpoint = self._checkpoint(hunt)
        if not is_due(hunt, checkpoint, now):
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
        if self.suppressor is not None:
            applied = self.suppressor.apply(hunt, result.rows, now.date())
            result = replace(result, rows=applied.kept)
            outcome.suppressed = applied.suppressed
        if self.dry_run or self.ledger is None:
            outcome.rows_preview = result.rows
            return
        self._record_and_notify(hunt, window, result, now, outcome)
        self._save_checkpoint(hunt, covered, now, outcome)

    def _record_and_notify(self, hunt: Hunt, window: Window, result: QueryResult,
                           now: datetime, outcome: HuntOutcome) -> None:
        assert self.ledger is not None
        recorded = self.ledger.record(hunt, result.rows, now)
        outcome.new, outcome.seen = len(recorded.new), recorded.seen
        outcome.new_findings = [finding.row for finding in recorded.new]
        # Post our claims plus pending findings no other run holds (leased to us), so
        # overlapping runs never post a finding twice; a failed post gives the leases back.
        held = oldest_first([*recorded.new, *self.ledger.take_pending(hunt, now)])
        oldest = min((f.first_seen for f in held), default=None)
        outcome.pending_since = iso(oldest) if oldest is not None else None
        outcome.posted = self._notify(hunt, window, held, outcome, held_back_since=(
            oldest if oldest is not None and oldest < now else None))
        if outcome.posted:
            self.ledger.mark_notified(hunt, held, now)
        elif held:
            self.ledger.release(hunt, held)
        outcome.pending = len(held) - outcome.posted

    def _notify(self, hunt: Hunt, window: Window, pending: list[Finding],
                outcome: HuntOutcome, held_back_since: datetime | None = None) -> int:
        """Hand *pending* to the notifier. A failed delivery fails the run, loudly (the query
        itself succeeded, so the hunt's own health is untouched), and the findings stay pending
        for the next run."""
        if not pending:
            return 0
        if self.notifier is None:
            outcome.warnings.append("no Teams webhook (or other notifier) configured: findings "
                                    "stay pending")
            return 0
        batch = FindingsBatch(hunt, window, [f.row for f in pending], total_new=len(pending),
                              held_back_since=held_back_since)
        try:
            self.notifier.post_findings(batch)
        except NotifyError as exc:
            kind = "permanent" if exc.permanent else "transient"
            outcome.delivery_failed = True
            outcome.error = (f"notification failed ({kind}), {len(pending)} finding(s) stay "
                             f"pending: {exc.message}")
            return 0
        return len(pending)

    def _save_checkpoint(self, hunt: Hunt, covered: Coverage, now: datetime,
                         outcome: HuntOutcome) -> None:
        """Advance the hunt's resume point over the data fully seen; a gap fails the run with a
        notice."""
        assert self.ledger is not None
        previous = self.ledger.checkpoint(hunt.id)
        resume = previous.last_success_end if previous else None
        success_end = max(resume or covered.covered_end, covered.covered_end)
        problems = [*covered.gaps, *covered.warnings]
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


def _note_error(outcome: HuntOutcome, exc: Exception) -> None:
    """What hunt health needs to know about a failure: permanent or not, and its kind."""
    outcome.error_permanent = isinstance(exc, HuntwireError) and exc.permanent
    kind, status = getattr(exc, "kind", None), getattr(exc, "status", None)
    outcome.error_kind = kind if isinstance(kind, str) else None
    outcome.error_status = status if isinstance(status, int) else None


def _log_outcome(outcome: HuntOutcome) -> None:
    record = {k: v for k, v in asdict(outcome).items()
              if k not in ("rows_preview", "new_findings")}
    level = logging.ERROR if outcome.status == "failed" else (
        logging.WARNING if outcome.warnings else logging.INFO)
    log.log(level, "huntwire.hunt %s", json.dumps(record))
