"""The one interface every query source implements, its error, and the retry shape they share."""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from ..errors import SourceError
from ..retry import CallPacer, Clock, Retried, RetriesExhausted, RetryPolicy, call_with_retries

if TYPE_CHECKING:
    from ..hunt import Hunt
    from ..retry import Attempt
    from ..window import Window

T = TypeVar("T")

REASONS = frozenset({"bad-query", "unknown-table", "forbidden", "not-found", "engine",
                     "no-token", "throttled", "unavailable", "timeout", "malformed"})
"""Why a query failed, for hunt health. Permanent: bad-query, unknown-table, forbidden,
not-found, engine. Transient: no-token, throttled, unavailable, timeout, malformed."""


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    """KQL type name: string, long, int, real, bool, datetime, dynamic, guid, timespan."""


@dataclass
class QueryResult:
    columns: list[Column]
    rows: list[dict[str, Any]]
    """One dict per row, values converted to Python types (datetime aware in UTC)."""
    truncated: bool = False
    """The service returned its row limit; there may be more rows than these."""
    partial: bool = False
    """The service answered with an error alongside the data (e.g. LogsQueryPartialResult)."""
    partial_error: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Timeouts:
    connect_seconds: float = 10.0
    read_seconds: float = 210.0
    """Graph stops a hunting query after about 3 minutes; wait a little longer for its answer."""

    def reply_deadline(self, attempt: Attempt) -> float:
        """Seconds one whole reply may take: connect plus read, within the retry budget."""
        return max(min(self.connect_seconds + self.read_seconds, attempt.remaining_seconds),
                   0.001)


def reason_for(status: int | None, message: str = "") -> str:
    """The reason an HTTP status (None: no answer) stands for."""
    if status is None:
        return "unavailable"
    if status == 429:
        return "throttled"
    if status in (401, 403):
        return "forbidden"
    if status == 404:
        return "not-found"
    if status == 400:
        return "unknown-table" if "resolve table" in message.casefold() else "bad-query"
    if status == 200:
        return "malformed"
    return "unavailable" if status >= 500 else "bad-query"


class QueryError(SourceError):
    """A hunt's query could not be run. ``retryable`` tells whether a later run may succeed;
    ``reason`` says why (one of :data:`REASONS`)."""

    def __init__(self, hunt_id: str, message: str, *, status: int | None = None,
                 retryable: bool = False, reason: str | None = None):
        self.hunt_id = hunt_id
        self.status = status
        self.retryable = retryable
        self.reason = reason if reason in REASONS else reason_for(status, message)
        detail = f" (HTTP {status})" if status else ""
        super().__init__(f"hunt {hunt_id}: {message}{detail}", permanent=not retryable)
        self.message = message


class QuerySource(Protocol):
    name: str

    def run(self, hunt: Hunt, window: Window) -> QueryResult:
        """Run *hunt*'s KQL over *window*; raise QueryError when it cannot."""
        ...

    def close(self) -> None:
        """Release connections; the source may be used again afterwards."""
        ...


def close_sources(sources: Iterable[QuerySource]) -> None:
    """Close each distinct source once (one source may serve several names)."""
    for source in {id(s): s for s in sources}.values():
        source.close()


def run_with_retries(hunt_id: str, service: str, call: Callable[[Attempt], T], *,
                     policy: RetryPolicy, clock: Clock, rng: random.Random,
                     pacer: CallPacer | None, label: str) -> Retried[T]:
    """:func:`call_with_retries`, with giving up reported as a transient QueryError."""
    try:
        return call_with_retries(call, policy, clock=clock, rng=rng, pacer=pacer,
                                 label=f"hunt {hunt_id} ({label})")
    except RetriesExhausted as exc:
        raise QueryError(hunt_id, f"{service}: {exc}", status=exc.last.status, retryable=True,
                         reason=exc.last.reason) from exc


def cut_short(error: json.JSONDecodeError) -> bool:
    """The JSON text ended early (a body cut off), as opposed to text that is not JSON."""
    tail = error.doc[error.pos:].strip()
    return (not tail or error.msg.startswith(("Unterminated string", "Invalid \\uXXXX"))
            or any(literal.startswith(tail) for literal in ("null", "true", "false"))
            or _NUMBER_START.fullmatch(tail) is not None)


_NUMBER_START = re.compile(r"-?\d*\.?\d*(?:[eE][+-]?\d*)?")
"""What a number cut off part-way can look like (``-``, ``1.``, ``2e``)."""


def forbidden_hint(status: int | None, grant: str) -> str:
    """For 401/403, what to grant the function's identity; else nothing."""
    return f" (grant the function's managed identity {grant})" if status in (401, 403) else ""
