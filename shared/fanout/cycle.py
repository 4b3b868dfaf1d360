"""The fan-in: one counter entity per (tenant, cycle) in Table Storage, written only with
ETag-conditional updates. It lists the cycle's hunts and holds the set of those done (a
bitmap over that list, so a redelivered message counts its hunt once), the cycle's deadline,
and the delivery's lease and completion, so one delivery runs per (tenant, cycle)."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Final, Literal

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, UpdateMode

from ..errors import StorageError
from ..storage import Storage, retry_conflicts, storage_errors
from . import results as results_codec
from .results import HuntResult

TABLE: Final = "huntwireFanout"
CHUNK_CHARS: Final = 30_000
"""Hunt ids per property: a string property holds at most 32K characters."""
ATTEMPTS: Final = 40
"""Conflicting writers of one counter: every worker finishing at once, retried with jitter."""


class CycleError(StorageError):
    """The cycle's counter could not be read or written."""


@dataclass(frozen=True)
class Cycle:
    tenant: str
    cycle: str
    now: datetime
    deadline: datetime
    hunts: tuple[str, ...]
    done: int = 0
    """Bitmap over *hunts*: bit i set once hunt i finished (or was given up)."""
    failed: int = 0
    announced: int = 0
    """Bitmap over *hunts*: bit i set once hunt i's poison notice was posted."""
    delivery_announced: bool = False
    """Whether a poison notice for the cycle's delivery was posted."""
    delivery_owner: str = ""
    delivery_until: datetime | None = None
    delivered_at: datetime | None = None
    etag: str | None = None
    results: dict[int, HuntResult] = field(default_factory=dict, compare=False)
    """What hunt i came to, by its index in *hunts* (recorded when counted done)."""

    def result(self, hunt_id: str) -> HuntResult | None:
        return self.results.get(self.hunts.index(hunt_id)) if hunt_id in self.hunts else None

    @property
    def complete(self) -> bool:
        return all(self.done >> i & 1 for i in range(len(self.hunts)))

    @property
    def done_ids(self) -> list[str]:
        return [h for i, h in enumerate(self.hunts) if self.done >> i & 1]

    @property
    def missing(self) -> list[str]:
        return [h for i, h in enumerate(self.hunts) if not self.done >> i & 1]

    def due(self, wall: datetime) -> bool:
        """Whether delivery may run: every hunt done, or the deadline passed."""
        return self.complete or wall >= self.deadline


Claim = Literal["claimed", "delivered", "held", "not-due"]


class CycleStore:
    def __init__(self, storage: Storage, *, clock: Callable[[], datetime] | None = None,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.storage = storage
        self.clock = clock or (lambda: datetime.now(UTC))
        self._sleep = sleep

    @property
    def table(self) -> TableClient:
        return self.storage.table(TABLE)

    def open(self, tenant: str, cycle: str, now: datetime, deadline: datetime,
             hunts: Sequence[str]) -> Cycle:
        """The cycle's counter, created with *hunts*; a retried timer gets the stored one."""
        made = Cycle(tenant, cycle, now, deadline, tuple(dict.fromkeys(hunts)))
        with storage_errors(f"opening cycle {cycle}", CycleError):
            try:
                self.table.create_entity(_entity(made))
                return self.get(tenant, cycle) or made
            except ResourceExistsError:
                stored = self.get(tenant, cycle)
                return stored or made

    def get(self, tenant: str, cycle: str) -> Cycle | None:
        with storage_errors(f"reading cycle {cycle}", CycleError):
            try:
                entity = self.table.get_entity(tenant, cycle)
            except ResourceNotFoundError:
                return None
        return _cycle(entity)

    def mark_done(self, tenant: str, cycle: str, hunt_id: str, *,
                  failed: bool = False, result: HuntResult | None = None) -> Cycle | None:
        """Count *hunt_id* done (once, however often its message comes), with what it came
        to (*result*); None: no such cycle (or it does not list the hunt)."""
        failed = failed or (result is not None and result.status == "failed")

        def change(current: Cycle) -> Cycle | None:
            if hunt_id not in current.hunts:
                return None
            index = current.hunts.index(hunt_id)
            bit = 1 << index
            if current.done & bit:
                return None
            results = current.results if result is None else {**current.results,
                                                                  index: result}
            return replace(current, done=current.done | bit, results=results,
                           failed=current.failed | bit if failed else current.failed)

        return self._modify(tenant, cycle, change, f"counting hunt {hunt_id} done")

    def announced(self, tenant: str, cycle: str, hunt_id: str | None) -> bool:
        """Whether the poison notice of *hunt_id* (None: of the cycle's delivery) was posted."""
        current = self.get(tenant, cycle)
        if current is None:
            return False
        if hunt_id is None:
            return current.delivery_announced
        return hunt_id in current.hunts and bool(
            current.announced >> current.hunts.index(hunt_id) & 1)

    def mark_announced(self, tenant: str, cycle: str, hunt_id: str | None) -> Cycle | None:
        """Record that the poison notice of *hunt_id* (None: of the cycle's delivery) was
        posted, so a poison message that comes again (or its copy) is not announced twice."""
        def change(current: Cycle) -> Cycle | None:
            if hunt_id is None:
                return None if current.delivery_announced else replace(
                    current, delivery_announced=True)
            if hunt_id not in current.hunts:
                return None
            bit = 1 << current.hunts.index(hunt_id)
            if current.announced & bit:
                return None
            return replace(current, announced=current.announced | bit)

        return self._modify(tenant, cycle, change, "recording a poison notice")

    def claim_delivery(self, tenant: str, cycle: str, lease: timedelta,
                       owner: str | None = None) -> tuple[Claim, Cycle | None]:
        """Take the cycle's delivery lease. "claimed": deliver now, then :meth:`delivered`;
        "delivered": done before; "held": another delivery holds it until ``delivery_until``;
        "not-due": hunts are still running and the deadline has not passed."""
        owner = owner or uuid.uuid4().hex
        result: list[Claim] = ["claimed"]

        def change(current: Cycle) -> Cycle | None:
            wall = self.clock()
            if current.delivered_at is not None:
                result[0] = "delivered"
                return None
            if not current.due(wall):
                result[0] = "not-due"
                return None
            if (current.delivery_owner and current.delivery_owner != owner
                    and current.delivery_until is not None and current.delivery_until > wall):
                result[0] = "held"
                return None
            result[0] = "claimed"
            return replace(current, delivery_owner=owner, delivery_until=wall + lease)

        cycle_now = self._modify(tenant, cycle, change, "claiming delivery")
        return result[0], cycle_now

    def delivered(self, tenant: str, cycle: str, owner: str) -> Cycle | None:
        def change(current: Cycle) -> Cycle | None:
            if current.delivered_at is not None or current.delivery_owner != owner:
                return None
            return replace(current, delivered_at=self.clock())

        return self._modify(tenant, cycle, change, "recording delivery")

    def _modify(self, tenant: str, cycle: str, change: Callable[[Cycle], Cycle | None],
                action: str) -> Cycle | None:
        """Read, change, write with the read's ETag; a lost race reads again (with jitter, as
        every worker of a cycle may finish at once). Returns the cycle as stored after."""
        def attempt() -> Cycle | None:
            current = self.get(tenant, cycle)
            if current is None:
                return None
            changed = change(current)
            if changed is None:
                return current
            with storage_errors(f"{action} in cycle {cycle}", CycleError,
                                ResourceModifiedError):
                self.table.update_entity(_entity(changed), mode=UpdateMode.REPLACE,
                                         etag=current.etag,
                                         match_condition=MatchConditions.IfNotModified)
            return changed

        return retry_conflicts(attempt, attempts=ATTEMPTS, error=CycleError,
                               gave_up=f"{action} in cycle {cycle} kept conflicting",
                               pause=lambda _: self._sleep(random.uniform(0.01, 0.2)))

def _entity(cycle: Cycle) -> dict[str, Any]:
    text = ",".join(cycle.hunts)
    chunks = [text[i:i + CHUNK_CHARS] for i in range(0, len(text), CHUNK_CHARS)] or [""]
    entity: dict[str, Any] = {
        "PartitionKey": cycle.tenant, "RowKey": cycle.cycle, "Now": cycle.now,
        "Deadline": cycle.deadline, "Total": len(cycle.hunts), "Chunks": len(chunks),
        "Done": format(cycle.done, "x"), "Failed": format(cycle.failed, "x"),
        "Announced": format(cycle.announced, "x"),
        "DeliveryAnnounced": cycle.delivery_announced, "DeliveryOwner": cycle.delivery_owner}
    entity.update({f"Hunts{i}": chunk for i, chunk in enumerate(chunks)})
    entity.update(results_codec.encode(cycle.results, len(cycle.hunts)))
    if cycle.delivery_until is not None:
        entity["DeliveryUntil"] = cycle.delivery_until
    if cycle.delivered_at is not None:
        entity["DeliveredAt"] = cycle.delivered_at
    return entity


def _cycle(entity: Any) -> Cycle:
    text = "".join(str(entity.get(f"Hunts{i}", "")) for i in range(int(entity.get("Chunks", 1))))
    metadata = getattr(entity, "metadata", {}) or {}
    return Cycle(
        tenant=entity["PartitionKey"], cycle=entity["RowKey"], now=_utc(entity["Now"]),
        deadline=_utc(entity["Deadline"]), hunts=tuple(h for h in text.split(",") if h),
        done=int(entity.get("Done") or "0", 16), failed=int(entity.get("Failed") or "0", 16),
        announced=int(entity.get("Announced") or "0", 16),
        delivery_announced=bool(entity.get("DeliveryAnnounced")),
        delivery_owner=str(entity.get("DeliveryOwner") or ""),
        delivery_until=_utc_or_none(entity.get("DeliveryUntil")),
        delivered_at=_utc_or_none(entity.get("DeliveredAt")), etag=metadata.get("etag"),
        results=results_codec.decode(entity))


def _utc(value: datetime) -> datetime:
    return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)


def _utc_or_none(value: Any) -> datetime | None:
    return _utc(value) if isinstance(value, datetime) else None
