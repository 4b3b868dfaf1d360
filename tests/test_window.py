"""hunt_window: first run, hourly runs, catch-up after missed runs, clock skew, the 30-day cap."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.window import MAX_CATCH_UP, Window, hunt_window, iso

NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
LOOKBACK = timedelta(hours=4)


def test_first_run_covers_the_lookback() -> None:
    window = hunt_window(NOW, LOOKBACK, last_success_end=None)

    assert window == Window(NOW - LOOKBACK, NOW)


def test_hourly_run_overlaps_the_previous_window_by_lookback_minus_frequency() -> None:
    previous = hunt_window(NOW - HOUR, LOOKBACK)

    window = hunt_window(NOW, LOOKBACK, last_success_end=previous.end)

    assert window == Window(NOW - LOOKBACK, NOW)
    assert window.start < previous.end, "consecutive windows overlap; the ledger dedups repeats"


def test_missed_runs_are_caught_up_from_the_last_success() -> None:
    last_success_end = NOW - timedelta(hours=10)

    window = hunt_window(NOW, LOOKBACK, last_success_end=last_success_end)

    assert window == Window(last_success_end, NOW)


def test_checkpoint_exactly_at_lookback_start_changes_nothing() -> None:
    assert hunt_window(NOW, LOOKBACK, NOW - LOOKBACK) == Window(NOW - LOOKBACK, NOW)


def test_checkpoint_in_the_future_from_clock_skew_is_ignored() -> None:
    skewed = NOW + timedelta(minutes=7)

    window = hunt_window(NOW, LOOKBACK, last_success_end=skewed)

    assert window == Window(NOW - LOOKBACK, NOW)


def test_catch_up_never_reaches_back_more_than_30_days() -> None:
    window = hunt_window(NOW, LOOKBACK, last_success_end=NOW - timedelta(days=45))

    assert window.start == NOW - timedelta(days=30)
    assert window.duration == MAX_CATCH_UP


def test_a_30_day_lookback_is_allowed_and_capped_at_30_days() -> None:
    assert hunt_window(NOW, timedelta(days=30)).duration == timedelta(days=30)
    assert hunt_window(NOW, timedelta(days=31)).duration == timedelta(days=30)


def test_window_in_another_timezone_is_sent_as_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    now = datetime(2026, 11, 20, 14, 0, tzinfo=plus_two)

    window = hunt_window(now, LOOKBACK)

    assert window.iso_interval() == "2026-11-20T08:00:00Z/2026-11-20T12:00:00Z"


def test_iso_keeps_sub_second_parts() -> None:
    assert iso(datetime(2026, 1, 2, 3, 4, 5, 120000, tzinfo=UTC)) == "2026-01-02T03:04:05.120000Z"


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        hunt_window(datetime(2026, 11, 20, 12, 0), LOOKBACK)


def test_window_bounds_must_be_aware_and_ordered() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        Window(datetime(2026, 1, 1), NOW)
    with pytest.raises(ValueError, match="not before"):
        Window(NOW, NOW)


def test_the_catch_up_cap_names_the_data_it_cannot_reach() -> None:
    from shared.window import dropped_by_cap, halves

    now = datetime(2026, 11, 27, 12, tzinfo=UTC)
    assert dropped_by_cap(now, None) is None
    assert dropped_by_cap(now, now - MAX_CATCH_UP) is None
    gap = dropped_by_cap(now, now - timedelta(days=35))
    assert gap is not None
    assert (gap.start, gap.end) == (now - timedelta(days=35), now - MAX_CATCH_UP)
    first, second = halves(Window(now - timedelta(hours=4), now))
    assert (first.end, second.start, second.end) == (now - timedelta(hours=2),) * 2 + (now,)
