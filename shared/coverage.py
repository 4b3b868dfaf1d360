"""Window coverage: which data a hunt run has fully seen, so its checkpoint advances only over it.

A truncated answer (the service's row limit) is asked again in halves, down to ``MIN_SLICE``,
until every piece fits. A piece still truncated at the smallest slice, or data older than the
30-day catch-up cap, cannot be covered: that is a failure with a notice, never silence
(docs/reliability.md).
"""

from __future__ import annotations

import logging
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .hunt import Hunt
from .notify.base import Notice, Notifier, NotifyError
from .sources.base import QueryResult, QuerySource
from .window import Window, halves, iso

log = logging.getLogger("huntwire")

MIN_SLICE = timedelta(minutes=1)
"""A truncated piece is split no further than this."""
MAX_QUERIES = 64
"""Queries one run may spend on one hunt's window; the rest is covered by the next run."""


@dataclass
class Coverage:
    """The answer over a whole window, and how much of it was fully seen."""

    result: QueryResult
    covered_end: datetime
    """Everything in ``[window.start, covered_end)`` was answered whole."""
    queries: int = 1
    split: bool = False
    """The window was queried in pieces because an answer was truncated."""
    gaps: list[str] = field(default_factory=list)
    """Data that could not be covered, and why (a failure of the run)."""
    warnings: list[str] = field(default_factory=list)
    """Data not covered this run that the next run asks again (partial answers, query budget)."""


def query_covering(source: QuerySource, hunt: Hunt, window: Window, *,
                   min_slice: timedelta = MIN_SLICE, max_queries: int = MAX_QUERIES) -> Coverage:
    """Run *hunt* over *window*, splitting truncated pieces, in time order."""
    todo: deque[Window] = deque([window])
    coverage: Coverage | None = None
    contiguous = True
    while todo:
        piece = todo.popleft()
        if coverage is not None and coverage.queries >= max_queries:
            coverage.warnings.append(f"query budget of {max_queries} queries spent: "
                                     f"{iso(piece.start)} .. {iso(window.end)} is queried next run")
            break
        result = source.run(hunt, piece)
        if coverage is None:
            coverage = Coverage(QueryResult(result.columns, []), window.start, queries=0)
        coverage.queries += 1
        if result.truncated and piece.duration / 2 >= min_slice:
            coverage.split = True
            todo.extendleft(reversed(halves(piece)))
            continue
        coverage.result.rows.extend(result.rows)
        problem = _problem(result, piece, coverage)
        if problem is None and contiguous:
            coverage.covered_end = piece.end
        contiguous = contiguous and problem is None
    assert coverage is not None
    return _finish(coverage)


def _problem(result: QueryResult, piece: Window, coverage: Coverage) -> str | None:
    """Why *piece* is not covered, filed as a gap (truncated) or a warning (partial)."""
    span = f"{iso(piece.start)} .. {iso(piece.end)}"
    if result.truncated:
        coverage.result.truncated = True
        coverage.gaps.append(f"{span} still truncated at {len(result.rows)} rows in a "
                             f"{_minutes(piece.duration)} slice: narrow the query")
        return "truncated"
    if result.partial:
        coverage.result.partial = True
        coverage.result.partial_error = coverage.result.partial_error or result.partial_error
        coverage.warnings.append(f"partial result for {span}: {result.partial_error}; "
                                 "queried again next run")
        return "partial"
    return None


def _finish(coverage: Coverage) -> Coverage:
    coverage.result.stats = {"rows": len(coverage.result.rows), "queries": coverage.queries}
    if coverage.split:
        coverage.warnings.append(f"an answer hit the row limit: the window was queried in "
                                 f"{coverage.queries} pieces")
    return coverage


def dropped_gap(dropped: Window) -> str:
    """The gap the 30-day catch-up cap leaves."""
    return (f"{iso(dropped.start)} .. {iso(dropped.end)} is older than the 30-day catch-up "
            "limit and was never queried")


def report_gaps(notifier: Notifier | None, hunt: Hunt, gaps: list[str]) -> str:
    """The error line for *gaps*; the gaps are also posted as a coverage notice when a notifier
    is configured (a failed notice is said in the line)."""
    line = "window not covered: " + "; ".join(gaps)
    if notifier is None:
        return line
    notice = Notice(kind="coverage", title=f"Hunt {hunt.name}: data not covered",
                    summary="Some data was not searched by this hunt: " + "; ".join(gaps),
                    severity="High", facts=(("Hunt", hunt.name), ("Hunt id", hunt.id)))
    try:
        notifier.post_notice(notice)
    except NotifyError as exc:
        log.error("coverage notice for hunt %s failed: %s", hunt.id, exc.message)
        return f"{line} (the notice could not be posted: {exc.message})"
    return line


def _minutes(duration: timedelta) -> str:
    return f"{duration.total_seconds() / 60:g}-minute"
