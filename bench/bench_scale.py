"""Scale benchmark (``make bench``; not a test): a SOC's whole hunt library and an MSSP's tenants.

300 hunts x 1 tenant and 300 hunts x 10 tenants, on 1, 4 and 16 workers, two hourly cycles each,
against the local Graph stand-in answering like the service: 2-20 s a query (mean 5 s) and 429
with Retry-After past 45 calls in any minute per tenant (the token's tenant). The hunts run on
the runner's own pieces: most-overdue-first order (``shared.schedule``), the worker pool with a
lane of 8 concurrent queries per tenant, the real ``DefenderSource`` with its per-tenant pacer
and retries over HTTP, the 28-minute budget that starts no hunt with less than the worst case
left (``shared.app.WORST_CASE_HUNT``). Time is compressed: one real second is ``--scale``
simulated seconds (default 60), for the stand-in's latency and rate window, the pacer, the retry
waits and the budget alike. Storage is not in this phase (the checkpoints are kept in memory);
phase 2 adds storage transactions per hunt-run and the queue fan-out.

Per configuration and cycle it prints the wall time of the cycle (simulated), hunts run, late
(not started for time: they go first next cycle), late twice in a row, failed, the most Graph
calls of one tenant in any rolling minute (server side), 429s, and the p50/p95 time from the hour
to each hunt's completion (in-process, incidents are delivered once all are done: the cycle's
wall time is when Teams is posted). Exits 1 when a tenant ever had more than 45 calls in a minute.

    .venv/bin/python bench/bench_scale.py [--scale 60] [--hunts 300] [--cycles 2]
"""

from __future__ import annotations

import argparse
import logging
import math
import random
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devtools.fake_graph import FakeGraph, hunting_results  # noqa: E402
from devtools.identity import Reply, Request  # noqa: E402
from devtools.service_model import Latency, ScaledClock, ServiceModel, TenantTokens  # noqa: E402
from shared.app import QUERY_POLICY, QUERY_TIMEOUTS, WORST_CASE_HUNT  # noqa: E402
from shared.hunt import Hunt  # noqa: E402
from shared.ledger import Checkpoint  # noqa: E402
from shared.schedule import Job, Pool, most_overdue_first  # noqa: E402
from shared.sources.base import QueryError, QuerySource  # noqa: E402
from shared.sources.defender import DefenderSource, tenant_lanes, tenant_pacer  # noqa: E402
from shared.window import Window  # noqa: E402

BUDGET = timedelta(minutes=28)
"""function_app.py: the 30-minute function timeout less a 2-minute margin."""
HOUR0 = datetime(2026, 12, 7, 0, 0, tzinfo=UTC)
CALLS_PER_MINUTE = 45


@dataclass
class Cycle:
    wall: float = 0.0
    run: int = 0
    late: list[str] = field(default_factory=list)
    late_twice: int = 0
    failed: int = 0
    done_at: list[float] = field(default_factory=list)
    max_calls_minute: int = 0
    throttled: int = 0


def answer(request: Request) -> Reply:
    return Reply(200, hunting_results([("Timestamp", "DateTime"), ("DeviceId", "String")], []))


def library(tenants: list[str], hunts: int) -> list[tuple[str, Hunt]]:
    return [(tenant, Hunt(id=f"{tenant}/hunt-{n:03d}", name=f"hunt {n}",
                          query="DeviceProcessEvents | take 1", source="defender",
                          path=Path(f"hunt-{n:03d}.yaml")))
            for tenant in tenants for n in range(hunts)]


def run_config(tenant_count: int, workers: int, args: argparse.Namespace) -> list[Cycle]:
    clock = ScaledClock(args.scale)
    model = ServiceModel(latency=Latency(2, 20, 5), calls=CALLS_PER_MINUTE, period=60,
                         clock=clock, seed=tenant_count * 100 + workers)
    tenants = [f"tenant-{i:02d}" for i in range(tenant_count)]
    hunts = library(tenants, args.hunts)
    tenant_of = {hunt.id: tenant for tenant, hunt in hunts}
    checkpoints: dict[str, Checkpoint | None] = {}
    cycles: list[Cycle] = []
    with FakeGraph(model=model) as graph:
        graph.handler = answer
        sources: dict[str, QuerySource] = {}
        for tenant in tenants:
            pacer = tenant_pacer(clock)
            sources[tenant] = DefenderSource(
                TenantTokens(tenant), graph.url, policy=QUERY_POLICY, timeouts=QUERY_TIMEOUTS,
                clock=clock, pacer=pacer, lanes=tenant_lanes(tenant, pacer), rng=random.Random(7))
        late_before: set[str] = set()
        for hour in range(args.cycles):
            refused_before, started = sum(model.refused.values()), clock.monotonic()
            cycle = run_cycle(hour, [h for _, h in hunts], tenant_of, sources, checkpoints,
                              workers, clock)
            cycle.late_twice = len(late_before & set(cycle.late))
            late_before = set(cycle.late)
            cycle.throttled = sum(model.refused.values()) - refused_before
            cycle.max_calls_minute = max(
                busiest_minute([t for t in model.accepted.get(tenant, []) if t >= started])
                for tenant in tenants)
            cycles.append(cycle)
        for source in sources.values():
            source.close()
    return cycles


def run_cycle(hour: int, hunts: list[Hunt], tenant_of: dict[str, str],
              sources: dict[str, QuerySource], checkpoints: dict[str, Checkpoint | None],
              workers: int, clock: ScaledClock) -> Cycle:
    cycle = Cycle()
    lock = threading.Lock()
    start = clock.monotonic()
    deadline = start + BUDGET.total_seconds()
    hour_end = HOUR0 + timedelta(hours=hour)

    def admit(hunt: Hunt) -> str | None:
        if deadline - clock.monotonic() < WORST_CASE_HUNT.total_seconds():
            return "late"
        return None

    def work(hunt: Hunt) -> str:
        checkpoint = checkpoints.get(hunt.id)
        since = checkpoint.last_success_end if checkpoint else None
        window = Window(since or hour_end - timedelta(hours=1), hour_end)
        try:
            sources[tenant_of[hunt.id]].run(hunt, window)
        except QueryError:
            return "failed"
        with lock:
            cycle.done_at.append(clock.monotonic() - start)
            checkpoints[hunt.id] = Checkpoint(hunt.id, last_success_end=hour_end,
                                              last_run_start=hour_end)
        return "ok"

    ordered = most_overdue_first(hunts, checkpoints)
    jobs = [Job(hunt, tuple(getattr(sources[tenant_of[hunt.id]], "lanes", ())))
            for hunt in ordered]
    results = Pool[Hunt, str](workers).run(jobs, work, admit)
    cycle.wall = clock.monotonic() - start
    cycle.run = results.count("ok")
    cycle.failed = results.count("failed")
    cycle.late = [hunt.id for hunt, result in zip(ordered, results, strict=True)
                  if result == "late"]
    return cycle


def busiest_minute(moments: list[float]) -> int:
    ordered, best, first = sorted(moments), 0, 0
    for last, moment in enumerate(ordered):
        while moment - ordered[first] >= 60.0 - 1e-6:
            first += 1
        best = max(best, last - first + 1)
    return best


def percentile(values: list[float], share: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(share * len(ordered)) - 1)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=60.0,
                        help="simulated seconds per real second (default 60)")
    parser.add_argument("--hunts", type=int, default=300, help="hunts per tenant")
    parser.add_argument("--cycles", type=int, default=2, help="hourly cycles per configuration")
    parser.add_argument("--tenants", type=int, nargs="*", default=[1, 10])
    parser.add_argument("--workers", type=int, nargs="*", default=[1, 4, 16])
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)  # retries are counted (429s), not logged
    print(f"scale bench: {args.hunts} hunts per tenant, Graph stand-in 2-20 s (mean 5 s), "
          f"{CALLS_PER_MINUTE} calls/min/tenant, budget {BUDGET.total_seconds() / 60:.0f} min, "
          f"no hunt started with < {WORST_CASE_HUNT.total_seconds() / 60:.1f} min left; "
          f"time compressed x{args.scale:g} (figures in simulated time)")
    print(f"{'tenants':>7} {'workers':>7} {'cycle':>5} {'wall min':>8} {'run':>5} {'late':>5} "
          f"{'late2x':>6} {'failed':>6} {'max calls/min/tenant':>20} {'429s':>5} "
          f"{'p50 min':>7} {'p95 min':>7} {'hunts/min':>9}")
    worst = 0
    throughput: dict[tuple[int, int], float] = {}
    real_started = time.monotonic()
    for tenant_count in args.tenants:
        for workers in args.workers:
            cycles = run_config(tenant_count, workers, args)
            for number, cycle in enumerate(cycles, 1):
                rate = cycle.run / (cycle.wall / 60) if cycle.wall else 0.0
                print(f"{tenant_count:>7} {workers:>7} {number:>5} {cycle.wall / 60:>8.1f} "
                      f"{cycle.run:>5} {len(cycle.late):>5} {cycle.late_twice:>6} "
                      f"{cycle.failed:>6} {cycle.max_calls_minute:>20} {cycle.throttled:>5} "
                      f"{percentile(cycle.done_at, 0.5) / 60:>7.1f} "
                      f"{percentile(cycle.done_at, 0.95) / 60:>7.1f} {rate:>9.1f}")
                worst = max(worst, cycle.max_calls_minute)
            throughput[(tenant_count, workers)] = statistics.mean(
                c.run / (c.wall / 60) for c in cycles if c.wall)
    for tenant_count in args.tenants:
        lowest, highest = min(args.workers), max(args.workers)
        base = throughput.get((tenant_count, lowest)) or math.nan
        ratio = throughput[(tenant_count, highest)] / base
        print(f"{tenant_count} tenant(s): hunts/min x{ratio:.1f} from {lowest} to {highest} "
              f"workers (x{highest / lowest:g} workers; the ceiling is "
              f"{CALLS_PER_MINUTE * tenant_count} calls/min)")
    print(f"real time {time.monotonic() - real_started:.0f} s")
    if worst > CALLS_PER_MINUTE:
        print(f"FAIL: a tenant had {worst} Graph calls in one minute (limit {CALLS_PER_MINUTE})")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
