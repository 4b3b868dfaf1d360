"""What the ledger hands out: findings, record results, checkpoints, its error, UTC helpers."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from ..errors import StorageError
from ..storage import Deadline as Deadline  # the run's deadline, as the ledger takes it

PENDING: Final = "pending"
NOTIFIED: Final = "notified"


class LedgerError(StorageError):
    """Table Storage could not record or read findings. Messages name the hunt, never secrets."""

    def __init__(self, message: str, *, hunt_id: str | None = None):
        self.hunt_id = hunt_id
        super().__init__(message)


@dataclass(frozen=True)
class Finding:
    hunt_id: str
    key: str
    """The RowKey in the findings table."""
    row: dict[str, Any]
    """Size-capped summary of the result row (JSON-safe values; datetimes as ISO strings)."""
    event_time: datetime | None
    first_seen: datetime
    times_seen: int


@dataclass(frozen=True)
class RecordResult:
    new: list[Finding]
    """Claimed by this call and now pending: first sightings plus re-opened findings."""
    seen: int
    """Distinct findings already in the ledger (times_seen/last_seen bumped), not re-opened."""
    reopened: int
    """How many of ``new`` were re-opened by ``realertAfter`` rather than first seen."""
    still_pending: tuple[str, ...] = ()
    """Keys of findings seen again while still ``pending`` (never delivered): ``take_pending``
    lists them even when no pending marker names them (a lost pending table loses nothing)."""
    unrecorded: int = 0
    """Distinct findings not recorded because the deadline passed (the next run records them)."""
    first_unrecorded: datetime | None = None
    """Event time of the oldest unrecorded finding; None when none, or when one has no time."""


@dataclass
class Checkpoint:
    hunt_id: str
    last_success_end: datetime | None = None
    last_run_start: datetime | None = None
    last_error: str | None = None
    rows: int = 0
    new: int = 0
    posted: int = 0


def finding_from_entity(hunt_id: str, entity: Mapping[str, Any]) -> Finding:
    """The finding a stored entity describes."""
    row = json.loads(entity.get("Row") or "{}")
    first_seen = utc_or_none(entity.get("FirstSeen")) or datetime.min.replace(tzinfo=UTC)
    return Finding(hunt_id=hunt_id, key=entity["RowKey"], row=row,
                   event_time=utc_or_none(entity.get("EventTime")), first_seen=first_seen,
                   times_seen=int(entity.get("TimesSeen", 1)))


def oldest_first(findings: Iterable[Finding]) -> list[Finding]:
    """*findings* without repeated keys, by first sighting, then event time, then key."""
    unique = {finding.key: finding for finding in findings}
    return sorted(unique.values(), key=lambda f: (f.first_seen, f.event_time or f.first_seen,
                                                  f.key))


def utc(moment: datetime) -> datetime:
    """A plain aware UTC datetime (also turns the SDK's datetime subclass into datetime)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, moment.day, moment.hour, moment.minute,
                    moment.second, moment.microsecond, tzinfo=UTC)


def utc_or_none(value: Any) -> datetime | None:
    return utc(value) if isinstance(value, datetime) else None


def require_aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return utc(now)


def utcnow() -> datetime:
    return datetime.now(UTC)
