"""The pool's order and fairness, lanes, and the pacer's rolling-minute promise."""

from __future__ import annotations

import random
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devtools.clock import ManualClock
from devtools.service_model import TenantTokens
from shared.app import QUERY_POLICY, QUERY_TIMEOUTS
from shared.hunt import Hunt
from shared.ledger import Checkpoint
from shared.retry import CallPacer, Lane
from shared.schedule import Job, Pool, due_since, most_overdue_first
from shared.settings import load_settings
from shared.sources.defender import build

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)


def hunt(number: int, frequency: timedelta = timedelta(hours=1)) -> Hunt:
    return Hunt(id=f"h{number:03d}", name=f"hunt {number}", query="T", source="defender",
                path=Path(f"h{number}.yaml"), frequency=frequency)


def test_most_overdue_first_puts_new_then_oldest_window_first_and_keeps_ties_in_order() -> None:
    hunts = [hunt(n) for n in range(5)]
    checkpoints = {
        "h000": Checkpoint("h000", last_success_end=NOW - timedelta(hours=1)),
        "h001": Checkpoint("h001", last_success_end=NOW - timedelta(hours=3)),
        "h002": None,
        "h003": Checkpoint("h003", last_success_end=NOW - timedelta(hours=1)),
        "h004": Checkpoint("h004", last_run_start=NOW),  # tried once, covered nothing yet
    }
    ordered = [h.id for h in most_overdue_first(hunts, checkpoints)]
    assert ordered == ["h002", "h004", "h001", "h000", "h003"]


def test_a_daily_hunt_is_less_overdue_than_an_hourly_one_covered_as_far() -> None:
    daily, hourly = hunt(1, timedelta(days=1)), hunt(2)
    end = NOW - timedelta(hours=2)
    checkpoints = {h.id: Checkpoint(h.id, last_success_end=end) for h in (daily, hourly)}
    assert due_since(hourly, checkpoints[hourly.id]) < due_since(daily, checkpoints[daily.id])
    assert most_overdue_first([daily, hourly], checkpoints) == [hourly, daily]


def _cycle(covered: dict[str, datetime], hunts: list[Hunt], now: datetime,
           capacity: int) -> list[str]:
    """One hourly run that has time for *capacity* hunts: returns the ids skipped."""
    order = most_overdue_first(hunts, {h.id: Checkpoint(h.id, last_success_end=covered.get(h.id))
                                       for h in hunts})
    started: list[str] = []

    def admit(h: Hunt) -> str | None:
        return "late" if len(started) >= capacity else None

    def work(h: Hunt) -> str:
        started.append(h.id)
        covered[h.id] = now
        return "ok"

    results = Pool[Hunt, str](1).run([Job(h) for h in order], work, admit)
    return [h.id for h, r in zip(order, results, strict=True) if r == "late"]


def test_a_hunt_skipped_for_time_runs_first_next_hour_and_none_is_late_twice_in_a_row() -> None:
    hunts = [hunt(n) for n in range(30)]
    covered: dict[str, datetime] = {}
    late_before: set[str] = set()
    for cycle in range(12):
        now = NOW + timedelta(hours=cycle)
        late = _cycle(covered, hunts, now, capacity=22)
        assert len(late) == 8
        assert not late_before & set(late), f"cycle {cycle}: late twice in a row"
        if late_before:  # last hour's late hunts were the first to start this hour
            assert all(covered[h] == now for h in late_before)
        late_before = set(late)


def test_lanes_bound_concurrency_per_key_and_a_full_lane_does_not_block_others() -> None:
    graph, logs = Lane("graph:t1", 2), Lane("logs:me", 1)
    jobs = [Job(f"g{n}", (graph,)) for n in range(6)] + [Job(f"l{n}", (logs,)) for n in range(3)]
    running: dict[str, int] = {"graph:t1": 0, "logs:me": 0}
    peak = dict(running)
    lock = threading.Lock()
    finished: list[str] = []

    def work(item: str) -> str:
        key = "graph:t1" if item.startswith("g") else "logs:me"
        with lock:
            running[key] += 1
            peak[key] = max(peak[key], running[key])
        time.sleep(0.02)
        with lock:
            running[key] -= 1
            finished.append(item)
        return item.upper()

    results = Pool[str, str](8).run(jobs, work, lambda item: None)
    assert results == [job.item.upper() for job in jobs]  # in the jobs' order
    assert peak == {"graph:t1": 2, "logs:me": 1}
    # the Log Analytics jobs, last in order, did not wait for the Graph jobs before them
    assert finished.index("l0") < finished.index("g5")


def test_a_worker_error_is_raised_after_the_others_finish() -> None:
    done: list[int] = []

    def work(item: int) -> int:
        if item == 2:
            raise RuntimeError("boom")
        done.append(item)
        return item

    with pytest.raises(RuntimeError, match="boom"):
        Pool[int, int](3).run([Job(n) for n in range(6)], work, lambda item: None)
    assert sorted(done) == [0, 1, 3, 4, 5]


def test_pacer_never_starts_more_than_45_calls_in_any_60_seconds_across_threads() -> None:
    clock = ManualClock()
    slots: list[float] = []
    pacer = CallPacer(calls=45, period_seconds=60, clock=clock, record=slots)
    chance = random.Random(7)

    def caller(holds: bool) -> None:
        for _ in range(40):
            pacer.acquire()
            if holds and chance.random() < 0.05:  # the service answered 429 Retry-After
                pacer.hold(chance.uniform(1, 30))

    threads = [threading.Thread(target=caller, args=(n == 0,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(slots) == 240
    assert max_in_window(slots, 60.0) == 45  # full use of the rate, never more
    assert max(slots) >= 5 * 60  # 240 calls need at least 5 full minutes


def max_in_window(moments: list[float], period: float) -> int:
    """The most *moments* inside any half-open window [t, t + period) (a microsecond's
    tolerance: a slot exactly one period after another is computed as a sum of floats)."""
    ordered, best, first = sorted(moments), 0, 0
    for last, moment in enumerate(ordered):
        while moment - ordered[first] >= period - 1e-6:
            first += 1
        best = max(best, last - first + 1)
    return best


def test_a_tenant_out_of_rate_slots_does_not_hold_workers_others_could_use() -> None:
    """Two tenants, one already at its rate: the pool runs the other's jobs meanwhile, and
    every job of the throttled tenant starts only with a slot reserved for it."""
    clock = ManualClock(real=True)
    slow = CallPacer(calls=2, period_seconds=3600, clock=clock)
    fast = CallPacer(calls=100, period_seconds=60, clock=clock)
    jobs = [Job(("slow", n), (Lane("graph:slow", 8, slow),)) for n in range(4)] + \
        [Job(("fast", n), (Lane("graph:fast", 8, fast),)) for n in range(20)]
    started: list[str] = []
    lock = threading.Lock()

    def work(item: tuple[str, int]) -> str:
        pacer = slow if item[0] == "slow" else fast
        waited = pacer.acquire(max_wait=0.0)  # the reserved slot: no wait, no PacerTimeout
        with lock:
            started.append(item[0])
        return f"{item[0]}:{waited}"

    def admit(item: tuple[str, int]) -> str | None:
        return "late" if item[0] == "slow" and started.count("slow") >= 2 else None

    results = Pool[tuple[str, int], str](4, poll_seconds=0.01).run(jobs, work, admit)
    assert results.count("late") == 2  # the slow tenant's last two: no slot within the run
    assert started.count("fast") == 20
    assert all(r in ("late", "slow:0.0", "fast:0.0") for r in results)



def test_every_runner_of_a_process_shares_one_graph_pacer_per_tenant_and_endpoint() -> None:
    """Queue mode builds a runner per message: its Defender sources must share the tenant's
    pacer, or one instance's messages together send ~2x Graph's 45 calls a minute."""
    tenant_a = "6f1c0c5e-0000-4000-8000-00000000000a"
    tenant_b = "6f1c0c5e-0000-4000-8000-00000000000b"

    def pacer_of(tenant: str, endpoint: str) -> CallPacer | None:
        env = {"HUNTWIRE_TENANT_ID": tenant, "HUNTWIRE_GRAPH_ENDPOINT": endpoint}
        settings = load_settings(env, require_storage=False)
        source = build(settings, TenantTokens(tenant), QUERY_POLICY, QUERY_TIMEOUTS)
        try:
            return source.lanes[0].pacer
        finally:
            source.close()

    first = pacer_of(tenant_a, "http://127.0.0.1:1")
    assert first is not None
    assert pacer_of(tenant_a, "http://127.0.0.1:1") is first
    assert pacer_of(tenant_b, "http://127.0.0.1:1") is not first
    assert pacer_of(tenant_a, "http://127.0.0.1:2") is not first
