"""The time window a hunt run covers: pure functions, no clock reads."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

MAX_CATCH_UP = timedelta(days=30)
"""Defender advanced hunting keeps 30 days; no window ever reaches further back."""


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("window bounds must be timezone-aware")
        if self.start >= self.end:
            raise ValueError(f"window start {self.start} is not before end {self.end}")

    @property
    def duration(self) -> timedelta:
        return self.end - self.start

    def iso_interval(self) -> str:
        """ISO 8601 ``start/end`` as Graph's ``Timespan`` takes it."""
        return f"{iso(self.start)}/{iso(self.end)}"


def iso(moment: datetime) -> str:
    """UTC ISO 8601 with a ``Z``, seconds precision unless sub-second parts exist."""
    text = moment.astimezone(UTC).isoformat()
    return text.replace("+00:00", "Z")


def hunt_window(now: datetime, lookback: timedelta,
                last_success_end: datetime | None = None) -> Window:
    """Window for a run starting at *now*.

    It ends at *now* and starts at ``now - lookback``, or earlier when the last successful run
    ended earlier (catch-up after missed runs), never more than 30 days back. A checkpoint in
    the future (clock skew between hosts) is ignored rather than trusted, so no data is skipped.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    start = now - lookback
    if last_success_end is not None and last_success_end < start:
        start = last_success_end
    return Window(max(start, now - MAX_CATCH_UP), now)


def dropped_by_cap(now: datetime, last_success_end: datetime | None) -> Window | None:
    """The data a catch-up from *last_success_end* cannot reach (older than 30 days), if any:
    it was never queried, and the run must say so."""
    cap = now - MAX_CATCH_UP
    if last_success_end is None or last_success_end >= cap:
        return None
    return Window(last_success_end, cap)


def halves(window: Window) -> tuple[Window, Window]:
    """*window* split in two at its middle (a truncated answer is asked again in halves)."""
    middle = window.start + window.duration / 2
    return Window(window.start, middle), Window(middle, window.end)
