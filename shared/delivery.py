"""The run's delivery step, once after all hunts: incidents -> notify -> mark notified.

Every hunt hands over the findings it holds (its new claims and the pending findings leased to
this run). :func:`deliver` correlates them into incidents and has the notifier post them
(``shared.incidents.process_run``), then marks notified exactly the findings that were
delivered (or kept without a post), and gives back the leases of the rest: they stay pending
for the next run. A failed delivery fails the run, loudly, on every hunt whose findings stayed
pending; the query itself succeeded, so the hunts' own health is untouched.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from .coverage import Coverage
from .errors import HuntwireError
from .hunt import Hunt
from .incidents import IncidentOutcome, IncidentSettings, IncidentStore, process_run
from .incidents.pipeline import MAX_FINDINGS_PER_RUN, Snoozer
from .ledger import Finding, Ledger
from .notify.base import Notifier
from .outcome import HuntOutcome

log = logging.getLogger("huntwire")


@dataclass
class HuntRun:
    """One hunt's part of a run, from its query to its checkpoint."""

    hunt: Hunt
    outcome: HuntOutcome
    tracked: bool = False
    """Health saw it start (``before_hunt``), so it hears how it ended."""
    covered: Coverage | None = None
    """What the query covered (rows, gaps); None when the hunt did not query."""
    held: list[Finding] = field(default_factory=list)
    """The findings this run holds for the hunt (claimed or leased), oldest first."""


def deliver(runs: Sequence[HuntRun], hunts: Sequence[Hunt], ledger: Ledger,
            store: IncidentStore | None, notifier: Notifier | None, now: datetime,
            settings: IncidentSettings, snooze: Snoozer | None = None, *,
            max_findings: int = MAX_FINDINGS_PER_RUN) -> dict[str, int]:
    """Post the held findings of *runs* as incidents, at most *max_findings* in all (a fair
    share each); returns the run's incident counts. Never raises: every failure is reported on
    the hunts whose findings it concerns."""
    holding = [run for run in runs if run.held]
    if not holding:
        return {}
    if notifier is None or store is None:
        for run in holding:
            if notifier is None:
                run.outcome.warnings.append("no Teams webhook (or other notifier) configured: "
                                            "findings stay pending")
            else:
                _fail(run, f"no incident store configured: {len(run.held)} finding(s) stay "
                           "pending")
            _settle(run, ledger, [], [], now)
        return {}
    shares = fair_shares({run.hunt.id: len(run.held) for run in holding}, max_findings)
    for run in holding:
        waiting = len(run.held) - shares[run.hunt.id]
        if waiting:
            run.outcome.warnings.append(
                f"{waiting:,} finding(s) over this hunt's share of the {max_findings:,} "
                "one run posts wait for the next run (oldest first)")
    try:
        outcome = process_run({run.hunt.id: run.held[:shares[run.hunt.id]] for run in holding},
                              hunts, store, notifier, now, settings, snooze=snooze,
                              suppressed={run.hunt.id: run.outcome.suppressed for run in runs})
    except Exception as exc:  # a bug before any post: nothing was marked, all stays pending
        log.exception("huntwire.incidents failed")
        for run in holding:
            _fail(run, f"incidents failed, {len(run.held)} finding(s) stay pending: "
                       f"{_message(exc)}")
            _settle(run, ledger, [], [], now)
        return {}
    _apply(outcome, runs, hunts, ledger, now)
    return {"opened": len(outcome.opened), "updated": len(outcome.updated),
            "held": len(outcome.held), "posts": outcome.posted}


def fair_shares(held: Mapping[str, int], limit: int) -> dict[str, int]:
    """How many of its held findings each hunt hands to this run's posts, *limit* in all: every
    hunt gets what it holds up to an equal share of what is left, so one hunt's large answer
    never keeps another hunt's findings out of the run's posts."""
    shares: dict[str, int] = {}
    left = limit
    ordered = sorted(held, key=lambda hunt_id: held[hunt_id])
    for number, hunt_id in enumerate(ordered):
        shares[hunt_id] = min(held[hunt_id], left // (len(ordered) - number))
        left -= shares[hunt_id]
    return shares


def _apply(outcome: IncidentOutcome, runs: Sequence[HuntRun], hunts: Sequence[Hunt],
           ledger: Ledger, now: datetime) -> None:
    by_id = {run.hunt.id: run for run in runs}
    for run in runs:
        delivered = outcome.delivered.get(run.hunt.id, [])
        absorbed = outcome.absorbed.get(run.hunt.id, [])
        run.outcome.incidents = len(outcome.incidents.get(run.hunt.id, ()))
        _settle(run, ledger, delivered, absorbed, now)
        unrecorded = outcome.unrecorded.get(run.hunt.id, [])
        if unrecorded:
            _fail(run, f"{len(unrecorded)} finding(s) were posted but the post could not be "
                       f"recorded, the next run may post them again: {outcome.error}",
                  status=True)
        if outcome.failure is not None and run.outcome.pending:
            kind = "permanent" if outcome.failure.permanent else "transient"
            _fail(run, f"notification failed ({kind}), {run.outcome.pending} finding(s) stay "
                       f"pending: {outcome.failure.message}")
        elif outcome.error is not None and run.outcome.pending:
            _fail(run, f"incidents failed, {run.outcome.pending} finding(s) stay pending: "
                       f"{outcome.error}")
        elif run.outcome.pending:
            run.outcome.warnings += outcome.warnings
    # A recovered post may deliver findings of hunts that did not run now: mark them too.
    for hunt in hunts:
        keys = outcome.delivered.get(hunt.id, [])
        if hunt.id not in by_id and keys:
            try:
                ledger.mark_notified(hunt.id, keys, now)
            except Exception as exc:  # they stay pending; the incident keeps them as members
                log.warning("huntwire.delivery hunt %s: %s", hunt.id, _message(exc))


def _settle(run: HuntRun, ledger: Ledger, delivered: Sequence[str], absorbed: Sequence[str],
            now: datetime) -> None:
    """Mark *delivered* and *absorbed* notified, release the rest of the held findings. A
    storage failure fails the hunt: findings it could not mark stay pending (leased until the
    lease expires), and may be posted again."""
    done = list(dict.fromkeys((*delivered, *absorbed)))
    done_keys, delivered_keys = set(done), set(delivered)
    rest = [finding.key for finding in run.held if finding.key not in done_keys]
    run.outcome.posted = len(delivered)
    run.outcome.held = len([key for key in absorbed if key not in delivered_keys])
    run.outcome.pending = len(rest)
    if done:
        try:
            ledger.mark_notified(run.hunt.id, done, now)
        except Exception as exc:
            run.outcome.pending += len(done)
            _fail(run, f"{len(done)} delivered finding(s) could not be marked notified, they "
                       f"stay pending and may be posted again: {_message(exc)}", status=True)
    if rest:
        try:
            ledger.release(run.hunt.id, rest)
        except Exception as exc:
            run.outcome.warnings.append(f"{len(rest)} pending finding(s) not released, their "
                                        f"leases expire by themselves: {_message(exc)}")


def _fail(run: HuntRun, message: str, *, status: bool = False) -> None:
    """Fail the run's delivery for *run* (and the hunt itself when *status*: its bookkeeping
    failed after a post); messages add up."""
    run.outcome.delivery_failed = True
    if status:
        run.outcome.status = "failed"
    error = run.outcome.error
    run.outcome.error = f"{error}; {message}" if error and message not in error else message


def _message(exc: Exception) -> str:
    return exc.message if isinstance(exc, HuntwireError) else f"{type(exc).__name__}: {exc}"
