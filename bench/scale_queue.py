"""Queue mode for ``bench/bench_scale.py``: N Functions instances, each running C hunt messages.

What the product does in ``HUNTWIRE_FANOUT=queue`` (``shared/fanout/work.py``): the timer sends one
message per (tenant, due hunt); every instance of the worker function runs up to ``batchSize +
newBatchThreshold`` messages at once (host.json: 4 + 2 = 6); each message builds its own runner
(``Fanout.runner`` -> ``build_runner``) and sources; the Graph pacer is the process's, per tenant
(see ``--pacing``). A 429 holds that pacer for its ``Retry-After`` and the query retries within
``QUERY_POLICY``. The cycle's delivery runs when the last hunt is counted, or at the 20-minute
deadline (``CYCLE_DEADLINE``) with what is there: a hunt finished after it is late (its findings go
out with the next cycle). The next hour's timer sends the next cycle's messages, so the bench stops
a cycle at 60 minutes; messages not started by then are late too.

``--pacing`` chooses how the Graph pacer is shared, to show what each does:

* ``shared`` (default, the product in queue mode): every instance books the tenant's calls from
  one sliding log in Table Storage (``shared.pacing.SharedPacer`` on Azurite, a book per
  instance: nothing shared in memory).
* ``instance``: one pacer per (instance, tenant), the product before ``shared.pacing`` (the
  process's book, ``shared.pacing.PROCESS_BOOK``): every message of an instance shares it;
  instances share nothing, so 16 instances sent one tenant 96-123 calls a minute.
* ``message``: a fresh pacer per message (each message's runner built its own): one instance
  sent about 90 calls a minute for one tenant.
* ``divided``: one per (instance, tenant) with the tenant's budget divided by the instance
  count (``45 // instances`` calls per 62 s): under the limit without shared state, but an
  instance's share idles while others queue.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from devtools.fake_graph import FakeGraph
from devtools.service_model import ScaledClock, TenantTokens
from shared.app import QUERY_POLICY, QUERY_TIMEOUTS
from shared.fanout.work import CYCLE_DEADLINE
from shared.hunt import Hunt
from shared.ledger import Checkpoint
from shared.pacing import BOUNDS, RateBook
from shared.pacing import TABLE as PACING_TABLE
from shared.retry import CallPacer
from shared.schedule import most_overdue_first
from shared.sources.base import QueryError
from shared.sources.defender import CALLS_PER_MINUTE, PACING_MARGIN_SECONDS, DefenderSource
from shared.storage import Storage
from shared.window import Window

NEXT_TIMER = timedelta(hours=1)
PACINGS = ("shared", "instance", "message", "divided")


@dataclass(frozen=True)
class QueueSetup:
    instances: int
    concurrency: int
    pacing: str
    storage: str | None = None
    """``shared`` pacing: the connection string of the account holding the pacing table."""


def round_robin(hunts: list[tuple[str, Hunt]],
                checkpoints: dict[str, Checkpoint | None]) -> list[tuple[str, Hunt]]:
    """Each tenant's hunts most overdue first, the tenants interleaved (docs/fanout.md: send
    round-robin so more instances spread over tenants rather than pile onto one)."""
    per_tenant: dict[str, list[Hunt]] = {}
    for tenant, hunt in hunts:
        per_tenant.setdefault(tenant, []).append(hunt)
    ordered = {tenant: most_overdue_first(own, checkpoints) for tenant, own in per_tenant.items()}
    longest = max((len(own) for own in ordered.values()), default=0)
    return [(tenant, own[n]) for n in range(longest)
            for tenant, own in ordered.items() if n < len(own)]


class PacerBook:
    """The Graph pacer a message's source gets, per the --pacing choice."""

    def __init__(self, setup: QueueSetup, clock: ScaledClock) -> None:
        self.setup, self.clock = setup, clock
        self._kept: dict[tuple[int, str], CallPacer] = {}
        self._lock = threading.Lock()
        calls = CALLS_PER_MINUTE
        if setup.pacing == "divided":
            calls = max(1, CALLS_PER_MINUTE // setup.instances)
        self.calls = calls
        self.booked: dict[str, list[float]] = {}
        """Slots the pacers booked, per tenant (the pacing itself, before any arrival jitter)."""
        self._books: list[RateBook] = []
        if setup.pacing == "shared":
            assert setup.storage is not None
            Storage.from_connection_string(setup.storage).service.delete_table(PACING_TABLE)
            self._books = [RateBook(Storage.from_connection_string(setup.storage, bounds=BOUNDS),
                                    clock=clock) for _ in range(setup.instances)]

    def pacer(self, instance: int, tenant: str) -> CallPacer:
        if self.setup.pacing == "message":
            return self._new()
        if self._books:
            pacer = self._books[instance].pacer(f"graph:{tenant}@bench", CALLS_PER_MINUTE,
                                                60 + PACING_MARGIN_SECONDS)
        else:
            with self._lock:
                pacer = self._kept.setdefault((instance, tenant), self._new())
        with self._lock:
            pacer.record = self.booked.setdefault(tenant, [])
        return pacer

    @property
    def storage_requests(self) -> int:
        """Requests the shared pacers sent (0 for the others)."""
        return sum(book.storage.requests for book in self._books if book.storage is not None)

    def _new(self) -> CallPacer:
        return CallPacer(calls=self.calls, period_seconds=60 + PACING_MARGIN_SECONDS,
                         clock=self.clock)


@dataclass
class QueueCycle:
    done_at: list[float]
    late: list[str]
    failed: int
    wall: float
    busy: float = 0.0
    """Instance-seconds with at least one message running (what Flex Consumption bills)."""


class Instance:
    """One instance's busy time: from its first running message to its last finishing."""

    def __init__(self, clock: ScaledClock) -> None:
        self.clock, self.running, self.busy, self._since = clock, 0, 0.0, 0.0
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            if self.running == 0:
                self._since = self.clock.monotonic()
            self.running += 1

    def leave(self) -> None:
        with self._lock:
            self.running -= 1
            if self.running == 0:
                self.busy += self.clock.monotonic() - self._since


def run_queue_cycle(hour_end_of: Callable[[Hunt], Window], messages: list[tuple[str, Hunt]],
                    graph: FakeGraph, setup: QueueSetup, book: PacerBook, clock: ScaledClock,
                    mark_done: Callable[[Hunt], None]) -> QueueCycle:
    """One cycle: the timer's messages consumed by instances x concurrency threads."""
    start = clock.monotonic()
    queue = deque(messages)
    lock = threading.Lock()
    stop = start + NEXT_TIMER.total_seconds()
    deadline = CYCLE_DEADLINE.total_seconds()
    done_at: list[float] = []
    late: list[str] = []
    failed = [0]
    instances = [Instance(clock) for _ in range(setup.instances)]

    def take() -> tuple[str, Hunt] | None:
        """The next message; None when none is left (or the next timer came)."""
        with lock:
            if clock.monotonic() >= stop:  # the next timer: what is left is late
                late.extend(hunt.id for _, hunt in queue)
                queue.clear()
            return queue.popleft() if queue else None

    def slot(instance: int) -> None:
        while (taken := take()) is not None:
            tenant, hunt = taken
            instances[instance].enter()
            source = DefenderSource(TenantTokens(tenant), graph.url, policy=QUERY_POLICY,
                                    timeouts=QUERY_TIMEOUTS, clock=clock,
                                    pacer=book.pacer(instance, tenant), rng=random.Random(7))
            try:
                source.run(hunt, hour_end_of(hunt))
                ok = True
            except QueryError:
                ok = False
            finally:
                source.close()
                instances[instance].leave()
            finished = clock.monotonic() - start
            with lock:
                if not ok:
                    failed[0] += 1
                    continue
                done_at.append(finished)
                mark_done(hunt)
                if finished > deadline:
                    late.append(hunt.id)

    threads = [threading.Thread(target=slot, args=(instance,), daemon=True,
                                name=f"instance-{instance}-{n}")
               for instance in range(setup.instances) for n in range(setup.concurrency)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return QueueCycle(done_at, late, failed[0], clock.monotonic() - start,
                      sum(instance.busy for instance in instances))
