"""Bounded retries with exponential back-off, ``Retry-After`` parsing and a per-tenant call pacer.

A hunt's query is retried on throttling (429), server errors (5xx) and network failures, but never
for longer than its policy allows: one hunt cannot eat the function's time budget. Time is read
through a :class:`Clock`, so tests can run the waits on a manual clock instead of sleeping.
"""

from __future__ import annotations

import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Generic, Protocol, TypeVar

LOG = logging.getLogger(__name__)
T = TypeVar("T")

RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})
"""Throttling and transient server errors; every other failure is final for this run."""


class Clock(Protocol):
    def monotonic(self) -> float: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    def monotonic(self) -> float:
        return time.monotonic()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


SYSTEM_CLOCK = SystemClock()


@dataclass(frozen=True)
class RetryPolicy:
    """How hard one query tries: at most *max_attempts* calls within *max_total_seconds*."""

    max_attempts: int = 4
    max_total_seconds: float = 240.0
    base_delay: float = 2.0
    max_delay: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        if min(self.max_total_seconds, self.base_delay, self.max_delay) < 0:
            raise ValueError("retry times must not be negative")

    def backoff(self, retry_number: int, rng: random.Random) -> float:
        """Delay before retry *retry_number* (1-based): exponential, capped, with jitter.

        The delay is drawn between half and all of ``base_delay * 2**(retry_number - 1)``
        (capped at ``max_delay``), so callers that failed together do not retry together.
        """
        ceiling = min(self.max_delay, self.base_delay * 2 ** (retry_number - 1))
        return rng.uniform(ceiling / 2, ceiling)


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delay-seconds or an HTTP-date (RFC 9110).

    Returns None when the header is absent or unreadable; a date in the past means 0.
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        return _seconds_until_http_date(text, now or datetime.now(UTC))
    return max(seconds, 0.0) if math.isfinite(seconds) else None


def _seconds_until_http_date(text: str, now: datetime) -> float | None:
    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max((moment - now).total_seconds(), 0.0)


class Retryable(Exception):
    """Raised by one attempt when trying again may succeed (throttling, 5xx, network)."""

    def __init__(self, message: str, *, status: int | None = None,
                 retry_after: float | None = None, reason: str | None = None):
        self.message = message
        self.status = status
        self.retry_after = retry_after
        self.reason = reason
        """Why, in the caller's words (e.g. "timeout", "throttled"); None: read it from status."""
        super().__init__(message)


class RetriesExhausted(Exception):
    """The policy's attempts or time budget ran out; *last* is the final retryable failure."""

    def __init__(self, last: Retryable, attempts: int, elapsed: float, reason: str):
        self.last = last
        self.attempts = attempts
        self.elapsed = elapsed
        self.reason = reason
        super().__init__(f"gave up after {attempts} attempt(s) in {elapsed:.1f} s ({reason}): "
                         f"{last.message}")


@dataclass(frozen=True)
class Lane:
    """A shared limit on concurrent work: at most *limit* queries holding *key* run at once
    (e.g. Log Analytics' few concurrent queries per identity). :mod:`shared.schedule` keeps it."""

    key: str
    limit: int
    pacer: CallPacer | None = field(default=None, compare=False)
    """The lane's rate: a query starts only once it holds a slot (see CallPacer.try_reserve)."""

    def __post_init__(self) -> None:
        if self.limit < 1:
            raise ValueError(f"lane {self.key}: limit must be at least 1")


class PacerTimeout(Exception):
    """No call slot is free within the time the caller can still wait."""


@dataclass(frozen=True)
class Attempt:
    number: int
    """1-based."""
    remaining_seconds: float
    """What is left of the policy's time budget: bound the call's timeouts by it."""


@dataclass(frozen=True)
class Retried(Generic[T]):
    value: T
    attempts: int


class CallPacer:
    """Spaces calls so that at most *calls* start in any window of *period_seconds*.

    Thread-safe and shared by every source that talks to one tenant. Each caller reserves the
    earliest free slot under a lock and then sleeps outside it. :meth:`hold` pauses everyone,
    e.g. after the service answered 429 with ``Retry-After``.
    """

    def __init__(self, calls: int = 45, period_seconds: float = 60.0, *,
                 clock: Clock = SYSTEM_CLOCK, record: list[float] | None = None):
        if calls < 1 or period_seconds <= 0:
            raise ValueError("a pacer needs at least one call per positive period")
        self.calls = calls
        self.period_seconds = period_seconds
        self.record = record
        """When given, every slot reserved is appended to it (benches and tests read it)."""
        self._clock = clock
        self._slots: deque[float] = deque(maxlen=calls)
        self._not_before = -math.inf
        self._lock = threading.Lock()
        self._prepaid = threading.local()

    def acquire(self, max_wait: float = math.inf) -> float:
        """Wait for a call slot and return the seconds waited.

        Raises PacerTimeout, reserving nothing, when the slot is more than *max_wait* away.
        A slot the calling thread reserved with :meth:`try_reserve` is used first.
        """
        if getattr(self._prepaid, "count", 0) > 0:
            self._prepaid.count -= 1
            return 0.0
        wait, booked = self._book(max_wait)
        if not booked:
            raise PacerTimeout(f"next call slot is {wait:.1f} s away; only {max_wait:.1f} s "
                               "left")
        if wait > 0:
            self._clock.sleep(wait)
        return wait

    def try_reserve(self) -> float:
        """Reserve a slot now for the calling thread's next :meth:`acquire` and return 0, or,
        when none is free now, reserve nothing and return the seconds until one is. The pool
        (``shared.schedule``) starts a query only when its tenant has a slot, so no worker sits
        waiting on one tenant's rate while another tenant's hunts could run."""
        wait, booked = self._book(0.0)
        if not booked:
            return wait
        self._prepaid.count = getattr(self._prepaid, "count", 0) + 1
        return 0.0

    def forfeit(self) -> None:
        """Drop the calling thread's unused reservation (its query never called)."""
        self._prepaid.count = 0

    def hold(self, seconds: float) -> None:
        """Start no call for *seconds* from now."""
        with self._lock:
            self._hold_until(self._clock.monotonic() + seconds)

    # -- the seam: where the slots are kept (here: this object; shared.pacing: a table) ------

    def _book(self, max_wait: float) -> tuple[float, bool]:
        """The wait until the earliest free slot, and whether it was reserved (only when the
        wait is at most *max_wait*)."""
        with self._lock:
            return self._book_locked(self._clock.monotonic(), max_wait)

    def _book_locked(self, now: float, max_wait: float) -> tuple[float, bool]:
        wait = self._next_slot(now) - now
        if wait > max_wait:
            return wait, False
        self._reserve(now + wait)
        return wait, True

    def _hold_until(self, moment: float) -> None:
        self._not_before = max(self._not_before, moment)

    def _next_slot(self, now: float) -> float:
        slot = max(now, self._not_before)
        if len(self._slots) == self._slots.maxlen:
            slot = max(slot, self._slots[0] + self.period_seconds)
        return slot

    def _reserve(self, slot: float) -> None:
        self._slots.append(slot)
        if self.record is not None:
            self.record.append(slot)


def call_with_retries(call: Callable[[Attempt], T], policy: RetryPolicy, *,
                      clock: Clock = SYSTEM_CLOCK, rng: random.Random | None = None,
                      pacer: CallPacer | None = None, label: str = "call") -> Retried[T]:
    """Run *call* until it returns, raises something other than Retryable, or the policy gives up.

    Each attempt first takes a slot from *pacer*; the wait for the first slot is bounded by the
    budget but not charged to it (it is other queries' time), later waits are. Between attempts
    it waits ``Retry-After`` when the failure carried one, else the policy's back-off; a wait
    that would pass the time budget is not taken: RetriesExhausted is raised at once instead.
    """
    chance = rng or random.Random()
    if pacer is not None:  # waiting for the first slot is pacing, not this query's own time
        _first_slot(pacer, policy)
    started = clock.monotonic()

    def remaining() -> float:
        return policy.max_total_seconds - (clock.monotonic() - started)

    def give_up(last: Retryable, attempts: int, reason: str) -> RetriesExhausted:
        return RetriesExhausted(last, attempts, clock.monotonic() - started, reason)

    last: Retryable | None = None
    for number in range(1, policy.max_attempts + 1):
        if number > 1:
            assert last is not None
            _take_slot(pacer, remaining(), last, number - 1, give_up)
        try:
            return Retried(call(Attempt(number, remaining())), number)
        except Retryable as failure:
            last = failure
        delay = last.retry_after if last.retry_after is not None else policy.backoff(number,
                                                                                     chance)
        if pacer is not None and last.status == 429:
            pacer.hold(delay)  # the tenant's other queries wait too, even if this one gives up
        if number == policy.max_attempts:
            break
        if delay >= remaining():
            raise give_up(last, number, f"the next try in {delay:.1f} s would pass the "
                          f"{policy.max_total_seconds:.0f} s budget")
        LOG.warning("%s: attempt %d failed (%s); retrying in %.1f s", label, number,
                    last.message, delay)
        clock.sleep(delay)
    assert last is not None
    raise give_up(last, policy.max_attempts, f"all {policy.max_attempts} attempts failed")


def _first_slot(pacer: CallPacer, policy: RetryPolicy) -> None:
    try:
        pacer.acquire(max_wait=policy.max_total_seconds)
    except PacerTimeout as exc:
        raise RetriesExhausted(Retryable(f"rate pacing: {exc}", reason="throttled"), 0, 0.0,
                               "no call slot within the time budget") from exc


def _take_slot(pacer: CallPacer | None, remaining: float, last: Retryable, done: int,
               give_up: Callable[[Retryable, int, str], RetriesExhausted]) -> None:
    if pacer is None:
        return
    try:
        pacer.acquire(max_wait=max(remaining, 0.0))
    except PacerTimeout as exc:
        raise give_up(last, done, f"rate pacing: {exc}") from exc
