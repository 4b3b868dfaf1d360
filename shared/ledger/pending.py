"""Pending findings: markers that list them, leases that give each to one run at a time, and
marking them notified once delivered (docs/ledger.md, "Pending markers" and "Leases")."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from azure.core import MatchConditions
from azure.core.exceptions import (
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableEntity, UpdateMode

from .model import NOTIFIED, PENDING, Finding, finding_from_entity, oldest_first, utc, utc_or_none
from .tables import Tables, batches, chunks, etag_of, group, merge, submit_in_transactions, transact

MARKER_KEYS: Final = 500
"""Keys per pending marker: 500 x 42 characters stays below the 32K-character string limit."""
ABANDONED_MARKER_AGE: Final = timedelta(days=2)
RELEASED: Final = datetime(2000, 1, 1, tzinfo=UTC)
"""``LeaseUntil`` of a released lease: long past for any run."""
_LEASE_COLUMNS: Final = ["RowKey", "State", "LeaseOwner"]


@dataclass(frozen=True)
class Marker:
    row_key: str
    keys: tuple[str, ...]
    created_at: datetime
    etag: str | None


class Markers:
    """The pending table: per hunt, markers listing keys that were claimed or re-opened."""

    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    def write(self, hunt_id: str, keys: Sequence[str], now: datetime) -> None:
        """List *keys* as pending (before they are claimed or re-opened)."""
        if not keys:
            return
        stamp = f"{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:12]}"
        markers = [{"PartitionKey": hunt_id, "RowKey": f"{stamp}-{number:05d}",
                    "Keys": ",".join(chunk), "CreatedAt": now}
                   for number, chunk in enumerate(chunks(keys, MARKER_KEYS))]
        for batch in batches([(None, ("create", marker, {})) for marker in markers]):
            try:
                transact(self._tables.pending, [operation for _, operation in batch])
            except (ResourceExistsError, HttpResponseError) as exc:
                # The row keys carry this call's random tag: "already exists" can only be our
                # own write, applied by an attempt whose reply was lost and then retried.
                if not _already_exists(exc):
                    raise

    def read(self, hunt_id: str) -> list[Marker]:
        entities = self._tables.pending.query_entities("PartitionKey eq @pk",
                                                       parameters={"pk": hunt_id})
        return [Marker(entity["RowKey"], tuple(k for k in entity.get("Keys", "").split(",") if k),
                       utc_or_none(entity.get("CreatedAt")) or datetime.min.replace(tzinfo=UTC),
                       etag_of(entity))
                for entity in entities]

    def drop(self, hunt_id: str, markers: Sequence[Marker], stale: set[str]) -> None:
        """Drop *stale* keys from markers; a marker changed meanwhile is left for the next time."""
        table = self._tables.pending
        for marker in markers:
            keep = [key for key in marker.keys if key not in stale]
            if len(keep) == len(marker.keys):
                continue
            try:
                if keep:
                    table.update_entity({"PartitionKey": hunt_id, "RowKey": marker.row_key,
                                         "Keys": ",".join(keep), "CreatedAt": marker.created_at},
                                        mode=UpdateMode.REPLACE, etag=marker.etag,
                                        match_condition=MatchConditions.IfNotModified)
                else:
                    table.delete_entity(hunt_id, marker.row_key, etag=marker.etag,
                                        match_condition=MatchConditions.IfNotModified)
            except (ResourceModifiedError, ResourceNotFoundError):
                continue


class Leases:
    """Who may post a pending finding: ``LeaseOwner`` until ``LeaseUntil``, taken with ETags.

    A fresh claim is leased to its claimant until ``FirstSeen`` + *claim_lease* without writing
    ``LeaseUntil``; a re-opened finding gets ``ClaimedAt`` and ``LeaseUntil`` written.
    """

    def __init__(self, tables: Tables, claim_lease: timedelta) -> None:
        self._tables = tables
        self.owner = uuid.uuid4().hex
        """This ledger's (this run's) name in ``LeaseOwner``."""
        self.claim_lease = claim_lease
        self.handed_out: set[str] = set()
        """Keys this ledger already handed to its caller (``record().new`` or an earlier
        ``take``): leased to this run, but never returned twice."""

    def claim_fields(self) -> dict[str, Any]:
        """What a new claim stores to be leased to this run."""
        return {"LeaseOwner": self.owner}

    def reopen_fields(self, now: datetime) -> dict[str, Any]:
        """What a re-open stores to be leased to this run."""
        return {"ClaimedAt": now, "LeaseUntil": now + self.claim_lease, "LeaseOwner": self.owner}

    def until(self, entity: TableEntity) -> datetime | None:
        """When the lease on *entity* ends (None: never leased)."""
        lease = utc_or_none(entity.get("LeaseUntil"))
        if lease is not None:
            return lease
        claimed = utc_or_none(entity.get("ClaimedAt")) or utc_or_none(entity.get("FirstSeen"))
        return claimed + self.claim_lease if claimed is not None else None

    def take(self, hunt_id: str, candidates: Sequence[tuple[Finding, TableEntity]],
             now: datetime, lease: timedelta) -> list[Finding]:
        """The candidates whose lease has ended, now leased to this run until now + *lease*."""
        free = [(finding, entity) for finding, entity in candidates
                if (self.until(entity) or now) <= now]
        # Still leased to this run but not handed out as a claim: a write of ours whose reply
        # was lost (a retried create answered 409, a retried lease 412).
        ours = [finding for finding, entity in candidates
                if entity.get("LeaseOwner") == self.owner and (self.until(entity) or now) > now
                and finding.key not in self.handed_out]
        fields = {"LeaseUntil": now + lease, "LeaseOwner": self.owner}
        taken = [*ours, *(finding for finding, _ in self._write(hunt_id, free, fields))]
        self.handed_out.update(finding.key for finding in taken)
        return taken

    def release(self, hunt_id: str, keys: Sequence[str]) -> int:
        """Give up this run's leases on *keys* (a failed post), so any run may take them now.

        A lease another run holds is left alone. Returns how many leases were released.
        """
        stored = self._tables.read_findings(hunt_id, keys, _LEASE_COLUMNS)
        ours = [(key, entity) for key, entity in stored.items()
                if entity.get("State") == PENDING and entity.get("LeaseOwner") == self.owner]
        fields = {"LeaseUntil": RELEASED, "LeaseOwner": ""}
        return len(self._write(hunt_id, ours, fields))

    def _write(self, hunt_id: str, targets: Sequence[tuple[Any, TableEntity]],
               fields: dict[str, Any]) -> list[tuple[Any, TableEntity]]:
        """Merge *fields* into each target unless it changed since read; the targets written."""
        written: list[tuple[Any, TableEntity]] = []
        for name, table_targets in group(targets, self._table_name).items():
            table = self._tables.table(name)
            operations = [(target, merge({"PartitionKey": hunt_id, "RowKey": target[1]["RowKey"],
                                          **fields}, etag_of(target[1])))
                          for target in table_targets]
            pairs = [((target, operation), operation) for target, operation in operations]
            for batch, done in submit_in_transactions(table, pairs):
                for target, (_, patch, options) in batch:
                    try:
                        if not done:
                            table.update_entity(patch, **options)
                        written.append(target)
                    except ResourceModifiedError:
                        if self._applied(table, hunt_id, target[1]["RowKey"], fields):
                            written.append(target)  # ours, applied by a retried attempt
                    except ResourceNotFoundError:
                        continue
        return written

    def _applied(self, table: Any, hunt_id: str, key: str, fields: dict[str, Any]) -> bool:
        """Whether the stored finding already holds *fields* (a write whose reply was lost)."""
        if fields.get("LeaseOwner") != self.owner:
            return False
        try:
            stored = table.get_entity(hunt_id, key, select=["LeaseOwner", "LeaseUntil"])
        except ResourceNotFoundError:
            return False
        return bool(stored.get("LeaseOwner") == self.owner
                    and utc_or_none(stored.get("LeaseUntil")) == fields["LeaseUntil"])

    def _table_name(self, target: tuple[Any, TableEntity]) -> str:
        return self._tables.findings_table_name(target[1]["RowKey"])


class Pending:
    """The pending findings of a hunt: listed from markers, taken under lease, marked notified."""

    def __init__(self, tables: Tables, markers: Markers, leases: Leases,
                 clock: Callable[[], datetime]) -> None:
        self._tables = tables
        self._markers = markers
        self._leases = leases
        self._clock = clock

    def listed(self, hunt_id: str, seen_pending: Sequence[str] = (),
               now: datetime | None = None) -> list[tuple[Finding, TableEntity]]:
        """Every pending finding the markers name, oldest first; prunes stale marker entries.

        *seen_pending*: keys a run found still pending in the findings table; those no marker
        names (a lost or wiped pending table) are listed too, and marked again.
        """
        markers = self._markers.read(hunt_id)
        listed = dict.fromkeys(key for marker in markers for key in marker.keys)
        unlisted = [key for key in dict.fromkeys(seen_pending) if key not in listed]
        if unlisted:
            self._markers.write(hunt_id, unlisted, now or utc(self._clock()))
        keys = [*listed, *unlisted]
        if not keys:
            return []
        stored = self._tables.read_findings(hunt_id, keys)
        abandoned_before = utc(self._clock()) - ABANDONED_MARKER_AGE
        stale = {key for key, entity in stored.items() if entity.get("State") != PENDING}
        stale |= {key for marker in markers if marker.created_at < abandoned_before
                  for key in marker.keys if key not in stored}
        self._markers.drop(hunt_id, markers, stale)
        live = {key: entity for key, entity in stored.items() if key not in stale}
        findings = oldest_first(finding_from_entity(hunt_id, e) for e in live.values())
        return [(finding, live[finding.key]) for finding in findings]

    def take(self, hunt_id: str, now: datetime, lease: timedelta,
             seen_pending: Sequence[str] = ()) -> list[Finding]:
        return self._leases.take(hunt_id, self.listed(hunt_id, seen_pending, now), now, lease)

    def mark_notified(self, hunt_id: str, keys: Sequence[str], now: datetime) -> None:
        """State ``notified`` on *keys* (findings that vanished are skipped); markers shrink."""
        patches = [{"PartitionKey": hunt_id, "RowKey": key, "State": NOTIFIED,
                    "NotifiedAt": now} for key in keys]
        for name, table_patches in group(patches, self._patch_table).items():
            table = self._tables.table(name)
            pairs = [(patch, merge(patch)) for patch in table_patches]
            for batch, done in submit_in_transactions(table, pairs):
                for patch in [] if done else batch:
                    try:
                        table.update_entity(patch, mode=UpdateMode.MERGE)
                    except ResourceNotFoundError:
                        continue
        self._markers.drop(hunt_id, self._markers.read(hunt_id), set(keys))

    def _patch_table(self, patch: dict[str, Any]) -> str:
        return self._tables.findings_table_name(patch["RowKey"])


def _already_exists(exc: Exception) -> bool:
    if isinstance(exc, ResourceExistsError):
        return True
    code = getattr(exc, "error_code", None) or ""
    return getattr(exc, "status_code", None) == 409 or "EntityAlreadyExists" in str(code)
