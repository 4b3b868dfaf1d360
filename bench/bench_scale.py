"""Scale benchmark (``make bench``; not a test): a SOC's whole hunt library and an MSSP's tenants.

300 hunts per tenant against the local Graph stand-in answering like the service: 2-20 s a query
(mean 5 s) and 429 with Retry-After past 45 calls in any minute per tenant (the token's tenant).
Two modes, two hourly cycles per configuration:

* **in-process** (``--workers``): one instance's worker pool (``HUNTWIRE_WORKERS``, default 4):
  most-overdue-first order (``shared.schedule``), a lane of 8 concurrent queries and one pacer
  per tenant, the 28-minute budget that starts no hunt with less than the worst case left
  (``shared.app.WORST_CASE_HUNT``).
* **queue** (``--instances``): ``HUNTWIRE_FANOUT=queue``, N Functions instances each running
  ``--concurrency`` hunt messages at once (default host.json's ``batchSize + newBatchThreshold``
  = 6), the tenants' messages interleaved, the Graph pacer per instance and tenant as the product
  shares it (``--pacing``; ``bench/scale_queue.py``), delivery at the last hunt or the 20-minute
  deadline.

Both run the real ``DefenderSource`` with its retries over HTTP. Time is compressed: one real
second is ``--scale`` simulated seconds (default 15), for the stand-in's latency and rate window,
the pacer, the retry waits and the budget alike (at x60 the 2-core machine, not the product,
caps 10 tenants x 16 instances near 156 hunts a minute, and the 10 s connect timeout becomes
0.17 s real: hunts fail for the machine). Checkpoints are kept in memory (storage transactions:
``bench/bench_tenancy.py``).

Per configuration and cycle it prints the wall time of the cycle (simulated), hunts run, late
(in-process: not started for time; queue: finished after the delivery deadline or not started
by the next hour), late twice in a row, failed, the most Graph calls of one tenant in any rolling
minute as sent and as accepted, 429s, the p50/p95 time from the hour to each hunt's completion,
and hunts a minute; then the speed-up from the smallest to the largest size. Without size flags
it runs the issue's matrix: 1 tenant in-process (4 workers), and 1 and 10 tenants on 1, 4 and 16
instances in queue mode.

    .venv/bin/python bench/bench_scale.py [--scale 15] [--hunts 300] [--cycles 2]
        [--tenants 1 10] [--workers 1 4 16 | --instances 1 4 16] [--concurrency 6]
        [--pacing shared|instance|message|divided]

``shared`` pacing (the default) starts Azurite for the pacing table.
"""

from __future__ import annotations

import argparse
import itertools
import json
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

from scale_queue import PACINGS, PacerBook, QueueSetup, round_robin, run_queue_cycle  # noqa: E402

from devtools.azurite import Azurite  # noqa: E402
from devtools.fake_graph import FakeGraph, hunting_results  # noqa: E402
from devtools.identity import Reply, Request  # noqa: E402
from devtools.service_model import Latency, ScaledClock, ServiceModel, TenantTokens  # noqa: E402
from shared.app import QUERY_POLICY, QUERY_TIMEOUTS, WORST_CASE_HUNT  # noqa: E402
from shared.fanout.work import CYCLE_DEADLINE  # noqa: E402
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
INSTANCE_GB = 2.0
"""infra: instanceMemoryMB 2048."""
GB_SECOND_PRICE = 0.000026
"""Flex Consumption on-demand execution time, USD per GB-s (assumed list price, docs/scale.md)."""


@dataclass
class Cycle:
    wall: float = 0.0
    run: int = 0
    late: list[str] = field(default_factory=list)
    late_twice: int = 0
    failed: int = 0
    done_at: list[float] = field(default_factory=list)
    max_calls_minute: int = 0
    max_sent_minute: int = 0
    throttled: int = 0
    max_booked_minute: int = 0
    """Queue mode: the most call slots the pacers booked for one tenant in any minute."""
    busy: float = 0.0
    """Queue mode: instance-seconds with a message running (Flex Consumption's billed time)."""
    pacing_requests: int = 0
    """Storage requests of the shared pacers (``--pacing shared``)."""


def answer(request: Request) -> Reply:
    return Reply(200, hunting_results([("Timestamp", "DateTime"), ("DeviceId", "String")], []))


def library(tenants: list[str], hunts: int) -> list[tuple[str, Hunt]]:
    return [(tenant, Hunt(id=f"{tenant}/hunt-{n:03d}", name=f"hunt {n}",
                          query="DeviceProcessEvents | take 1", source="defender",
                          path=Path(f"hunt-{n:03d}.yaml")))
            for tenant in tenants for n in range(hunts)]


def run_config(tenant_count: int, workers: int, args: argparse.Namespace,
               queue: QueueSetup | None = None) -> list[Cycle]:
    """Cycles of one configuration: in-process (*workers* threads, one pacer per tenant) or, with
    *queue*, queue mode (instances x concurrency message slots)."""
    clock = ScaledClock(args.scale)
    seed = tenant_count * 100 + (queue.instances * 10 if queue else workers)
    model = ServiceModel(latency=Latency(2, 20, 5), calls=CALLS_PER_MINUTE, period=60,
                         clock=clock, seed=seed)
    tenants = [f"tenant-{i:02d}" for i in range(tenant_count)]
    hunts = library(tenants, args.hunts)
    tenant_of = {hunt.id: tenant for tenant, hunt in hunts}
    checkpoints: dict[str, Checkpoint | None] = {}
    cycles: list[Cycle] = []
    with FakeGraph(model=model) as graph:
        graph.handler = answer
        sources: dict[str, QuerySource] = {}
        if queue is None:
            for tenant in tenants:
                pacer = tenant_pacer(clock)
                sources[tenant] = DefenderSource(
                    TenantTokens(tenant), graph.url, policy=QUERY_POLICY,
                    timeouts=QUERY_TIMEOUTS, clock=clock, pacer=pacer,
                    lanes=tenant_lanes(tenant, pacer), rng=random.Random(7))
        book = PacerBook(queue, clock) if queue is not None else None
        late_before: set[str] = set()
        for hour in range(args.cycles):
            refused_before, started = sum(model.refused.values()), clock.monotonic()
            if queue is None or book is None:
                cycle = run_cycle(hour, [h for _, h in hunts], tenant_of, sources, checkpoints,
                                  workers, clock)
            else:
                cycle = run_queue(hour, hunts, checkpoints, graph, queue, book, clock)
            cycle.late_twice = len(late_before & set(cycle.late))
            late_before = set(cycle.late)
            cycle.throttled = sum(model.refused.values()) - refused_before
            cycle.max_calls_minute = max(
                busiest_minute([t for t in model.accepted.get(tenant, []) if t >= started])
                for tenant in tenants)
            cycle.max_sent_minute = max(
                busiest_minute([t for t in model.arrivals.get(tenant, []) if t >= started])
                for tenant in tenants)
            if book is not None:
                cycle.max_booked_minute = max(
                    busiest_minute([t for t in book.booked.get(tenant, []) if t >= started])
                    for tenant in tenants)
            cycles.append(cycle)
        for source in sources.values():
            source.close()
    return cycles


def run_queue(hour: int, hunts: list[tuple[str, Hunt]],
              checkpoints: dict[str, Checkpoint | None], graph: FakeGraph, setup: QueueSetup,
              book: PacerBook, clock: ScaledClock) -> Cycle:
    hour_end = HOUR0 + timedelta(hours=hour)

    def window(hunt: Hunt) -> Window:
        checkpoint = checkpoints.get(hunt.id)
        since = checkpoint.last_success_end if checkpoint else None
        return Window(since or hour_end - timedelta(hours=1), hour_end)

    def mark_done(hunt: Hunt) -> None:
        checkpoints[hunt.id] = Checkpoint(hunt.id, last_success_end=hour_end,
                                          last_run_start=hour_end)

    before = book.storage_requests
    result = run_queue_cycle(window, round_robin(hunts, checkpoints), graph, setup, book, clock,
                             mark_done)
    return Cycle(wall=result.wall, run=len(result.done_at), late=result.late,
                 failed=result.failed, done_at=result.done_at, busy=result.busy,
                 pacing_requests=book.storage_requests - before)


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


def host_concurrency() -> int:
    """Hunt messages one instance runs at once: host.json's batchSize + newBatchThreshold."""
    queues = json.loads((REPO / "host.json").read_text())["extensions"]["queues"]
    return int(queues["batchSize"]) + int(queues["newBatchThreshold"])


@dataclass(frozen=True)
class Config:
    mode: str  # "in-process" (threads of one instance) or "queue" (instances x concurrency)
    tenants: int
    size: int  # in-process: worker threads; queue: instances


def configs(args: argparse.Namespace) -> list[Config]:
    """The matrix: the flags' when given, else the issue's (one tenant in-process with the
    default 4 workers; one and ten tenants on 1, 4 and 16 instances in queue mode)."""
    if args.workers is not None:
        return [Config("in-process", t, w) for t in args.tenants or [1, 10] for w in args.workers]
    if args.instances is not None:
        return [Config("queue", t, n) for t in args.tenants or [1, 10] for n in args.instances]
    return [Config("in-process", 1, 4),
            *(Config("queue", tenants, n) for tenants in (1, 10) for n in (1, 4, 16))]


def main() -> int:
    args = arguments()
    logging.basicConfig(level=logging.CRITICAL)  # retries are counted (429s), not logged
    if args.pacing != "shared" or all(c.mode != "queue" for c in configs(args)):
        return run_matrix(args, None)
    with Azurite() as azurite:
        return run_matrix(args, azurite.connection_string)


def arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", type=float, default=15.0,
                        help="simulated seconds per real second (default 15)")
    parser.add_argument("--hunts", type=int, default=300, help="hunts per tenant")
    parser.add_argument("--cycles", type=int, default=2, help="hourly cycles per configuration")
    parser.add_argument("--tenants", type=int, nargs="*", default=None)
    parser.add_argument("--workers", type=int, nargs="*", default=None,
                        help="in-process mode: worker threads of one instance")
    parser.add_argument("--instances", type=int, nargs="*", default=None,
                        help="queue mode: Functions instances")
    parser.add_argument("--concurrency", type=int, default=host_concurrency(),
                        help="queue mode: messages one instance runs at once (default: host.json "
                             "batchSize + newBatchThreshold)")
    parser.add_argument("--pacing", choices=PACINGS, default="shared",
                        help="queue mode: one Graph pacer per tenant shared by every instance "
                             "through Table Storage (the product), per instance and tenant, per "
                             "message, or per instance with 45/instances calls a minute")
    return parser.parse_args()


def run_matrix(args: argparse.Namespace, storage: str | None) -> int:
    print(f"scale bench: {args.hunts} hunts per tenant, Graph stand-in 2-20 s (mean 5 s), "
          f"{CALLS_PER_MINUTE} calls/min/tenant; in-process: budget "
          f"{BUDGET.total_seconds() / 60:.0f} min, no hunt started with < "
          f"{WORST_CASE_HUNT.total_seconds() / 60:.1f} min left; queue: {args.concurrency} "
          f"messages per instance, Graph pacer per {args.pacing}, delivery deadline "
          f"{CYCLE_DEADLINE.total_seconds() / 60:.0f} min; time compressed x{args.scale:g} "
          "(figures in simulated time)")
    print(f"{'mode':>10} {'tenants':>7} {'size':>7} {'cycle':>5} {'wall min':>8} {'run':>5} "
          f"{'late':>5} {'late2x':>6} {'failed':>6} {'sent/min':>8} {'accepted/min':>12} "
          f"{'429s':>5} {'p50 min':>7} {'p95 min':>7} {'hunts/min':>9}")
    worst_sent = worst_accepted = 0
    throughput: dict[Config, float] = {}
    real_started = time.monotonic()
    for config in configs(args):
        queue = (QueueSetup(config.size, args.concurrency, args.pacing, storage)
                 if config.mode == "queue" else None)
        cycles = run_config(config.tenants, config.size, args, queue)
        size = f"{config.size}x{args.concurrency}" if queue else f"{config.size}w"
        for number, cycle in enumerate(cycles, 1):
            rate = cycle.run / (cycle.wall / 60) if cycle.wall else 0.0
            print(f"{config.mode:>10} {config.tenants:>7} {size:>7} {number:>5} "
                  f"{cycle.wall / 60:>8.1f} {cycle.run:>5} {len(cycle.late):>5} "
                  f"{cycle.late_twice:>6} {cycle.failed:>6} {cycle.max_sent_minute:>8} "
                  f"{cycle.max_calls_minute:>12} {cycle.throttled:>5} "
                  f"{percentile(cycle.done_at, 0.5) / 60:>7.1f} "
                  f"{percentile(cycle.done_at, 0.95) / 60:>7.1f} {rate:>9.1f}")
            if queue:
                gb_seconds = cycle.busy * INSTANCE_GB
                per_thousand = gb_seconds * GB_SECOND_PRICE * 1000 / max(cycle.run, 1)
                print(f"{'':>10} instances busy {cycle.busy / 60:.1f} instance-min = "
                      f"{gb_seconds:,.0f} GB-s, ${per_thousand:.3f} per 1,000 hunt-runs at 2 GB")
                print(f"{'':>10} pacing: at most {cycle.max_booked_minute} call slots booked "
                      "for one tenant in any minute" + (
                          f"; {cycle.pacing_requests} storage requests, "
                          f"{cycle.pacing_requests / max(cycle.run + cycle.failed, 1):.2f} "
                          "per hunt-run" if cycle.pacing_requests else ""))
            worst_sent = max(worst_sent, cycle.max_sent_minute)
            worst_accepted = max(worst_accepted, cycle.max_calls_minute)
        throughput[config] = statistics.mean(c.run / (c.wall / 60) for c in cycles if c.wall)
    print_ratios(throughput)
    print(f"real time {time.monotonic() - real_started:.0f} s")
    if worst_sent > CALLS_PER_MINUTE:
        print(f"note: a tenant sent up to {worst_sent} Graph calls in one minute (limit "
              f"{CALLS_PER_MINUTE}): the service refused the excess (429s above), the "
              "clients waited its Retry-After")
    if worst_accepted > CALLS_PER_MINUTE:
        print(f"FAIL: the stand-in accepted {worst_accepted} calls in one minute")
        return 1
    return 0


def print_ratios(throughput: dict[Config, float]) -> None:
    """Hunts a minute at the largest size over the smallest, per mode and tenant count."""
    groups: dict[tuple[str, int], dict[int, float]] = {}
    for config, rate in throughput.items():
        groups.setdefault((config.mode, config.tenants), {})[config.size] = rate
    for (mode, tenants), rates in groups.items():
        if len(rates) < 2:
            continue
        sizes = sorted(rates)
        low, high = sizes[0], sizes[-1]
        unit = "instances" if mode == "queue" else "workers"
        steps = ", ".join(f"{a}->{b} x{rates[b] / rates[a]:.1f}"
                          for a, b in itertools.pairwise(sizes))
        print(f"{mode}, {tenants} tenant(s): hunts/min x{rates[high] / rates[low]:.1f} from "
              f"{low} to {high} {unit} (x{high / low:g} {unit}; steps {steps}; the Graph "
              f"ceiling is {CALLS_PER_MINUTE * tenants} calls/min)")


if __name__ == "__main__":
    sys.exit(main())
