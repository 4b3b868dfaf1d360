"""Which hunt runs first, and how many run at once.

**Order**: the most overdue hunt first: the one whose covered window ends earliest, counted from
when it fell due (end of covered window + frequency), so a hunt skipped for time (its checkpoint
stays put) runs first next hour and no hunt starves however long the library. A hunt never run
has covered nothing and goes first of all. Ties keep the library's order.

**Pool**: a bounded set of worker threads (the work is waiting on Graph, Log Analytics and
storage) taking hunts in that order. Each hunt names the *lanes* it occupies (e.g. "Graph calls of
tenant T", at most 8 at once; "Log Analytics queries of this identity", at most 4): a worker takes
the first hunt in order whose lanes all have room, so a saturated lane never blocks hunts of
another. Rates (calls a minute) are the sources' :class:`shared.retry.CallPacer`'s job.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Generic, TypeVar

from .hunt import Hunt
from .ledger import Checkpoint
from .retry import Lane

T = TypeVar("T")
R = TypeVar("R")

_NEVER = datetime.min.replace(tzinfo=UTC)


def lanes_of(source: object) -> tuple[Lane, ...]:
    """The lanes a source's queries occupy (none when it declares none)."""
    declared = getattr(source, "lanes", ())
    return tuple(lane for lane in declared if isinstance(lane, Lane))


def due_since(hunt: Hunt, checkpoint: Checkpoint | None) -> datetime:
    """When *hunt* fell due: its covered window's end plus its frequency; the earliest possible
    instant for a hunt that has covered nothing yet."""
    end = checkpoint.last_success_end if checkpoint is not None else None
    if end is None:
        return _NEVER
    return end + hunt.frequency


def most_overdue_first(hunts: Sequence[Hunt],
                       checkpoints: Mapping[str, Checkpoint | None]) -> list[Hunt]:
    """*hunts* ordered most overdue first (stable: ties keep the given order)."""
    return sorted(hunts, key=lambda hunt: due_since(hunt, checkpoints.get(hunt.id)))


@dataclass(frozen=True)
class Job(Generic[T]):
    item: T
    lanes: tuple[Lane, ...] = ()


class Pool(Generic[T, R]):
    """Runs *jobs* in order on at most *workers* threads, respecting each job's lanes.

    ``admit(item)`` is asked, under the pool's lock, when a job's turn comes: a result means
    "do not run it" (e.g. the time budget is spent) and is returned for it as is; None lets
    ``work(item)`` run once its lanes have room and its paced lane (at most one) has a call slot,
    reserved for it before it starts. Results come back in the jobs' order. One worker runs
    everything in the calling thread. *poll_seconds*: how often a pool whose every waiting job
    waits for a rate slot looks again.
    """

    def __init__(self, workers: int, poll_seconds: float = 0.05) -> None:
        if workers < 1:
            raise ValueError("a pool needs at least one worker")
        self.workers = workers
        self._poll = poll_seconds
        self._cond = threading.Condition()
        self._running: dict[str, int] = {}

    def run(self, jobs: Sequence[Job[T]], work: Callable[[T], R],
            admit: Callable[[T], R | None]) -> list[R]:
        for job in jobs:
            if sum(lane.pacer is not None for lane in job.lanes) > 1:
                raise ValueError("a job may hold at most one paced lane")
        pending = list(enumerate(jobs))
        results: dict[int, R] = {}
        errors: list[BaseException] = []

        def worker() -> None:
            while (taken := self._take(pending, admit, results)) is not None:
                index, job = taken
                try:
                    results[index] = work(job.item)
                except BaseException as exc:  # reported after every worker stopped
                    errors.append(exc)
                finally:
                    self._release(job)

        if self.workers == 1:
            worker()
        else:
            threads = [threading.Thread(target=worker, name=f"huntwire-pool-{n}", daemon=True)
                       for n in range(min(self.workers, len(jobs)))]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
        if errors:
            raise errors[0]
        return [results[index] for index in range(len(jobs))]

    def _take(self, pending: list[tuple[int, Job[T]]], admit: Callable[[T], R | None],
              results: dict[int, R]) -> tuple[int, Job[T]] | None:
        with self._cond:
            while pending:
                found, paced = self._first_ready(pending, admit, results)
                if found is not None:
                    for lane in found[1].lanes:
                        self._running[lane.key] = self._running.get(lane.key, 0) + 1
                    return found
                if pending:
                    self._cond.wait(self._poll if paced else None)
            return None

    def _first_ready(self, pending: list[tuple[int, Job[T]]], admit: Callable[[T], R | None],
                     results: dict[int, R]) -> tuple[tuple[int, Job[T]] | None, bool]:
        """The first job whose lanes have room and a call slot (reserved now), refusing on the
        way the jobs *admit* refuses; and whether some job waits only for a slot."""
        full: set[str] = set()
        waiting_for_slot = False
        position = 0
        while position < len(pending):
            index, job = pending[position]
            busy = [lane.key for lane in job.lanes
                    if lane.key in full or self._running.get(lane.key, 0) >= lane.limit]
            if busy:
                full.update(busy)
                position += 1
                continue
            refused = admit(job.item)
            if refused is not None:
                results[index] = refused
                pending.pop(position)
                continue
            paced = next((lane for lane in job.lanes if lane.pacer is not None), None)
            if paced is not None and paced.pacer is not None and paced.pacer.try_reserve() > 0:
                full.add(paced.key)
                waiting_for_slot = True
                position += 1
                continue
            return pending.pop(position), waiting_for_slot
        return None, waiting_for_slot

    def _release(self, job: Job[T]) -> None:
        for lane in job.lanes:
            if lane.pacer is not None:
                lane.pacer.forfeit()  # a query that never called leaves no slot behind
        with self._cond:
            for lane in job.lanes:
                self._running[lane.key] -= 1
            self._cond.notify_all()
