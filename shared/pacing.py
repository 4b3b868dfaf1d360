"""Where the services' rate limits are kept: in this process, or shared by every instance.

Graph allows about 45 hunting calls a minute per tenant, whichever machine sends them. One
process paces its own calls with :class:`shared.retry.CallPacer`. In queue mode
(``HUNTWIRE_FANOUT=queue``) the Functions host runs hunt messages on many instances at once, and
per-process pacers let 16 instances send one tenant 96-123 calls a minute (the scale bench: 429s
and failed hunts). :class:`SharedPacer` keeps the same sliding log of call slots in one Table
Storage entity per limit, written with ETag-conditional updates, so every instance books from
one budget: each call costs two storage requests (read, conditional write), and a ``Retry-After``
from the service holds every instance.

A :class:`RateBook` hands out one pacer per limit key (``graph:<tenant>@<endpoint>``,
``logs:<identity>@<endpoint>``): kept in the book (this process), or, with a storage account,
shared by the deployment. When the pacing table cannot be reached, a shared pacer paces on its
own (as one process would) and says so once: a storage fault never stops a hunt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, UpdateMode

from .errors import StorageError
from .retry import SYSTEM_CLOCK, CallPacer, Clock
from .storage import CONFLICTS, Bounds, Storage, retry_conflicts, storage_errors

log = logging.getLogger("huntwire.pacing")
T = TypeVar("T")

TABLE: Final = "huntwirePacing"
PARTITION: Final = "pacer"
ATTEMPTS: Final = 40
"""Instances booking the same limit at once: each lost race reads again (about 15 s at most)."""
CONFLICT_PAUSE: Final = 0.01
"""Seconds: the first pause after a lost race is up to this, doubling to at most 0.5 s."""
BOUNDS: Final = Bounds(connect_seconds=5, read_seconds=10, retries=1, backoff_max=2)
"""A booking is on the path of every query: a slow table falls back to local pacing quickly."""


class EpochClock:
    """Seconds since the epoch: every instance reads the same time (NTP), unlike monotonic."""

    def monotonic(self) -> float:
        return time.time()

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


EPOCH_CLOCK: Final = EpochClock()


@dataclass
class SlotLog:
    """The shared state of one limit: the latest call slots (at most *calls*) and the moment
    before which no call starts (a service's ``Retry-After``)."""

    slots: list[float]
    not_before: float = -math.inf
    etag: str | None = None

    @classmethod
    def from_entity(cls, entity: Any) -> SlotLog:
        try:
            slots = json.loads(str(entity.get("Slots") or "[]"))
        except ValueError:
            slots = None
        if not isinstance(slots, list) or not all(isinstance(s, int | float) for s in slots):
            slots = []  # an unreadable log is an empty one: the next write repairs it
        raw = entity.get("NotBefore")
        not_before = float(raw) if isinstance(raw, int | float) else -math.inf
        return cls(sorted(float(s) for s in slots), not_before, entity.metadata.get("etag"))

    def entity(self, key: str, row: str) -> dict[str, Any]:
        entity: dict[str, Any] = {"PartitionKey": PARTITION, "RowKey": row, "Key": key[:500],
                                  "Slots": json.dumps([round(s, 3) for s in self.slots])}
        if math.isfinite(self.not_before):
            entity["NotBefore"] = self.not_before
        return entity


class SharedPacer(CallPacer):
    """A :class:`CallPacer` whose slots live in a Table Storage entity shared by every
    instance. Between bookings it remembers when the log was last full, so a pool polling it
    (``try_reserve``) reads the table only when a slot may have come free."""

    def __init__(self, key: str, storage: Storage, calls: int, period_seconds: float, *,
                 clock: Clock = EPOCH_CLOCK):
        super().__init__(calls, period_seconds, clock=clock)
        self.key = key
        self.row = row_key(key)
        self._storage = storage
        self._free_not_before = -math.inf
        self._fell_back = False

    def _book(self, max_wait: float) -> tuple[float, bool]:
        with self._lock:
            now = self._clock.monotonic()
            if self._free_not_before - now > max_wait:
                return self._free_not_before - now, False
            try:
                return self._against_others(lambda: self._book_shared(max_wait))
            except StorageError as exc:
                self._fall_back(exc)
                return self._book_locked(self._clock.monotonic(), max_wait)

    def _against_others(self, attempt: Callable[[], T]) -> T:
        """*attempt* (read, change, conditional write) until no other instance wrote between;
        a lost race reads again after a short random pause (real time: the table's, not the
        pacer's clock), so racers spread out instead of colliding again. Raises StorageError
        when the table stays contended or cannot be reached."""
        return retry_conflicts(attempt, attempts=ATTEMPTS,
                               gave_up=f"pacer {self.key} kept changing", pause=_pause)

    def _book_shared(self, max_wait: float) -> tuple[float, bool]:
        shared = self._read()
        self._adopt(shared)
        now = self._clock.monotonic()
        wait = self._next_slot(now) - now
        if wait > max_wait:
            self._free_not_before = now + wait
            return wait, False
        shared.slots = sorted([*shared.slots, now + wait])[-self.calls:]
        self._write(shared)
        self._reserve(now + wait)  # the local log too: where a fallback would start from
        return wait, True

    def _hold_until(self, moment: float) -> None:
        super()._hold_until(moment)
        self._free_not_before = max(self._free_not_before, moment)

        def attempt() -> None:
            shared = self._read()
            if shared.not_before >= moment:
                return
            shared.not_before = moment
            self._write(shared)

        try:
            self._against_others(attempt)
        except StorageError as exc:
            self._fall_back(exc)

    def _adopt(self, shared: SlotLog) -> None:
        """This object's log becomes the shared one (the fallback starts from it)."""
        self._slots = deque(shared.slots[-self.calls:], maxlen=self.calls)
        self._not_before = max(self._not_before, shared.not_before)

    def _table(self) -> TableClient:
        return self._storage.table(TABLE)

    def _read(self) -> SlotLog:
        with storage_errors(f"reading pacer {self.key}"):
            try:
                return SlotLog.from_entity(self._table().get_entity(PARTITION, self.row))
            except ResourceNotFoundError:
                return SlotLog([])

    def _write(self, shared: SlotLog) -> None:
        entity = shared.entity(self.key, self.row)
        with storage_errors(f"booking pacer {self.key}", StorageError, *CONFLICTS):
            if shared.etag is None:
                self._table().create_entity(entity)
            else:
                self._table().update_entity(entity, mode=UpdateMode.REPLACE, etag=shared.etag,
                                            match_condition=MatchConditions.IfNotModified)

    def _fall_back(self, exc: StorageError) -> None:
        if not self._fell_back:
            log.warning("huntwire.pacing %s: %s; pacing this instance's calls on its own",
                        self.key, exc.message)
        self._fell_back = True


def _pause(conflicts: int) -> None:
    time.sleep(random.uniform(0, min(CONFLICT_PAUSE * 2 ** (conflicts - 1), 0.5)))


def row_key(key: str) -> str:
    """A RowKey for *key* (endpoints hold characters a RowKey may not)."""
    return hashlib.sha256(key.encode()).hexdigest()[:40]


@dataclass
class RateBook:
    """The pacers of one process or deployment, one per limit key, made on first use.

    Without *storage* the pacers are this book's (share the book to share them); with it, each
    pacer books its slots in the deployment's pacing table."""

    storage: Storage | None = None
    clock: Clock | None = None
    _kept: dict[str, CallPacer] = field(default_factory=dict, init=False, repr=False)
    _guard: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def pacer(self, key: str, calls: int, period_seconds: float) -> CallPacer:
        with self._guard:
            pacer = self._kept.get(key)
            if pacer is None:
                pacer = self._kept[key] = self._make(key, calls, period_seconds)
            return pacer

    def _make(self, key: str, calls: int, period_seconds: float) -> CallPacer:
        if self.storage is None:
            return CallPacer(calls, period_seconds, clock=self.clock or SYSTEM_CLOCK)
        # One pacer per key per book (per process), booking under its own lock: an instance's
        # messages do not race each other for the entity, only other instances.
        return SharedPacer(key, self.storage, calls, period_seconds,
                           clock=self.clock or EPOCH_CLOCK)


PROCESS_BOOK: Final = RateBook()
"""This process's pacers: every runner built here (e.g. one per queue message) shares them."""

_DEPLOYMENT_BOOKS: dict[str, RateBook] = {}
_DEPLOYMENT_BOOKS_GUARD = threading.Lock()


def deployment_book(account: str, open_account: Callable[[], Storage]) -> RateBook:
    """The process's book whose pacers are shared by every instance through the storage
    *account* (its name or URI; *open_account* opens it with :data:`BOUNDS` on first use).
    The pacing storage has no run deadline: it outlives the run that opened it."""
    with _DEPLOYMENT_BOOKS_GUARD:
        book = _DEPLOYMENT_BOOKS.get(account)
        if book is None:
            book = _DEPLOYMENT_BOOKS[account] = RateBook(open_account())
        return book
