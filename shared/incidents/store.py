"""Incidents in Azure Table Storage (Azurite locally), safe with concurrent runs.

Table ``huntwireIncidents``:

* incidents: PartitionKey = the scope (device or entity, readable and hashed), RowKey = the
  incident id ``HW-<first event day>-<4 hex of the device>-<nn>``. Properties: ``Scope``,
  ``Device``, ``DeviceId``, ``FirstEvent``, ``LastEvent``, ``UpdatedAt``, ``Opened`` (an opening
  hunt matched), ``Announced`` (posts Teams accepted), ``Posts`` (posts intended), ``Hunts`` and
  ``Techniques`` (JSON), and the sets ``Members*`` (finding ids), ``Processes*``, ``Events*``
  (hashed lineage and event keys), chunked below the 32K-character property limit.
* the outbox (PartitionKey ``~outbox``): one head entity per post intent, written *before* the
  post: ``Payload`` (the notifier's message, at most 28,000 bytes for Teams), ``Pieces`` and
  ``Refs<n>`` (its incidents, hunts and ``<incident index>:<hunt index>:<ledger key>`` findings as
  one compact text in pieces below the property limit; a storm post's overflow goes to part
  entities ``<row key>~part<nnnn>``, written before the head), ``OldestClaim``, ``Failed``,
  ``LeaseUntil``/``Owner``. After the notifier accepts it, the findings are added to their
  incidents (as member ids) and the head, then its parts, are deleted. A crash before the post
  leaves the intent, posted by the next run; a crash after the post re-posts that one message; a
  failed post gives the lease back at once.

Every change to an incident is an ETag-conditional merge, re-read and re-applied on conflict; a
new incident is an insert-if-absent, and a run joins an incident of the same device that another
run created meanwhile instead of creating a second one.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, suppress
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableEntity, UpdateMode

from ..errors import StorageError
from ..storage import Conflict, Storage, retry_conflicts, storage_errors
from .correlate import member_id
from .entities import (
    EPOCH,
    OUTBOX,
    from_entity,
    is_part,
    outbox_entities,
    part_keys,
    references_of,
    to_entity,
    utc,
)
from .model import Incident

TABLE = "huntwireIncidents"
IDS = "~ids"
"""Partition of the id reservations (``claim_id``); no incident property, so never read as one."""
UPDATE_ATTEMPTS = 8
DEFAULT_LEASE = timedelta(minutes=15)
_UNSAFE = re.compile(r"[^A-Za-z0-9._@:-]")
_RETRY_WRITES: dict[str, Any] = {"retry_on_methods": frozenset(
    {"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE", "POST", "PATCH", "MERGE"})}
"""The SDK retries inserts and merges too after a lost reply: each write here recognises its own
earlier attempt (409 on an insert of ours, 412 with our change id or lease, 404 on a delete)."""
_BRIEF = ["PartitionKey", "RowKey", "Scope", "FirstEvent", "LastEvent", "UpdatedAt"]

log = logging.getLogger("huntwire")


class IncidentStoreError(StorageError):
    """Table Storage could not read or write incidents (transient: the next run tries again)."""


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def partition_of(scope: str) -> str:
    """A readable PartitionKey for *scope* (unsafe characters replaced, a hash keeps it unique)."""
    return f"{_UNSAFE.sub('_', scope)[:120]}~{short_hash(scope)[:8]}"


def _errors(action: str, *expected: type[Exception]) -> AbstractContextManager[None]:
    """SDK errors as IncidentStoreError naming *action* (no URLs or keys); *expected* errors
    pass through to the caller."""
    return storage_errors(action, IncidentStoreError, *expected)


@dataclass
class OutboxItem:
    row_key: str
    payload: dict[str, Any]
    incidents: list[tuple[str, str]]
    """(PartitionKey, incident id) of each incident the post announces."""
    findings: list[tuple[int, str, str]]
    """(index into ``incidents``, hunt id, ledger key) of each finding the post delivers."""
    lease_until: datetime | None = None
    owner: str = ""
    etag: str | None = None
    oldest_claim: datetime | None = None
    """When the oldest of its findings was first claimed (the "held back since" note)."""
    failed: bool = False
    """A delivery of it failed (it is re-posted with a "held back since" note)."""
    parts: list[str] = field(default_factory=list)
    """Row keys of the entities that hold the rest of its references (a large storm post)."""

    @property
    def members(self) -> list[tuple[int, str]]:
        """(index into ``incidents``, member id) of each finding."""
        return [(index, member_id(hunt_id, key)) for index, hunt_id, key in self.findings]


class IncidentStore:
    """Incidents and post intents in one table (see the module docstring). The table is created
    on first use; every SDK error becomes :class:`IncidentStoreError`; a write whose reply was
    lost and whose retry then answered 409/412 is recognised as ours."""

    def __init__(self, storage: Storage, *, table: str = TABLE,
                 lease: timedelta = DEFAULT_LEASE):
        self.lease_time = lease
        self.storage, self._name = storage, table

    @property
    def table(self) -> TableClient:
        with _errors(f"opening table {self._name}"):
            return self.storage.table(self._name)

    # ----------------------------------------------------------------------------- incidents

    def open_incidents(self, now: datetime, close_after: timedelta) -> list[Incident]:
        """Incidents with evidence or an update within *close_after* of *now*."""
        since = now - close_after
        query = "PartitionKey ne @outbox and (LastEvent ge @since or UpdatedAt ge @since )"
        with _errors("reading open incidents"):
            entities = self.table.query_entities(query, parameters={"outbox": OUTBOX,
                                                                    "since": since})
            return [from_entity(e) for e in entities]

    def get(self, partition: str, incident_id: str) -> Incident | None:
        entity = self._entity(partition, incident_id)
        return from_entity(entity) if entity is not None else None

    def create(self, incident: Incident, joins: Callable[[Incident], bool]) -> Incident:
        """Insert *incident* under the next free id of its scope and first-event day, unless an
        incident of the same scope that *joins* says is the same one exists (a concurrent run
        created it since this run read the open incidents, or our own insert whose reply was
        lost): that stored incident is returned. The id comes from the same read as that check,
        so a concurrent insert makes ours fail and the next attempt joins it."""
        taken: list[str] = []  # ids another scope holds (see claim_id)

        def attempt() -> Incident:
            with _errors(f"reading incidents of {incident.scope}"):
                stored = [from_entity(e) for e in self.table.query_entities(
                    "PartitionKey eq @p", parameters={"p": incident.partition}, select=_BRIEF)]
            existing = next((other for other in stored if joins(other)), None)
            if existing is not None:
                return self.get(existing.partition, existing.id) or existing
            incident.id = _next_id(incident, [other.id for other in stored] + taken)
            if not self.claim_id(incident.id, incident.scope):
                taken.extend([incident.id, *self.claimed_ids(incident.id.rsplit("-", 1)[0] + "-")])
                raise Conflict(f"incident id {incident.id} is held by another device")
            with _errors(f"creating incident {incident.id}", ResourceExistsError):
                metadata = self.table.create_entity(to_entity(incident), **_RETRY_WRITES)
            incident.etag = metadata.get("etag")
            return incident

        return retry_conflicts(attempt, attempts=UPDATE_ATTEMPTS * 4, error=IncidentStoreError,
                               gave_up=f"no free incident id for {incident.scope}")

    def change(self, incident: Incident, apply: Callable[[Incident], None]) -> Incident:
        """Apply *apply* to the stored incident under its ETag, re-reading on conflict. Each
        write carries a change id: a conflict after a lost reply that was ours is not
        applied twice."""
        current = [incident]

        def attempt() -> Incident:
            apply(current[0])
            change_id = uuid.uuid4().hex
            entity = {**to_entity(current[0]), "ChangeId": change_id}
            with _errors(f"updating incident {incident.id}", ResourceModifiedError):
                try:
                    metadata = self.table.update_entity(
                        entity, mode=UpdateMode.MERGE, etag=current[0].etag,
                        match_condition=MatchConditions.IfNotModified, **_RETRY_WRITES)
                except ResourceModifiedError:
                    fresh = self._entity(incident.partition, incident.id)
                    if fresh is None:
                        raise IncidentStoreError(f"incident {incident.id} disappeared") from None
                    if fresh.get("ChangeId") == change_id:
                        return from_entity(fresh)  # ours: the reply was lost, the retry 412
                    current[0] = from_entity(fresh)
                    raise
            current[0].etag = metadata.get("etag")
            return current[0]

        return retry_conflicts(attempt, attempts=UPDATE_ATTEMPTS, error=IncidentStoreError,
                               gave_up=f"incident {incident.id} kept changing")

    def _entity(self, partition: str, row_key: str) -> TableEntity | None:
        with _errors(f"reading {row_key}", ResourceNotFoundError):
            try:
                return self.table.get_entity(partition, row_key)
            except ResourceNotFoundError:
                return None

    # ----------------------------------------------------------------------------- the outbox

    def add_outbox(self, item: OutboxItem) -> None:
        """Write *item*: its parts first, then its head (an intent exists once its head does)."""
        *parts, head = outbox_entities(item.row_key, item.payload, item.incidents,
                                       item.findings)
        head.update({"Owner": item.owner, "LeaseUntil": item.lease_until,
                     "OldestClaim": item.oldest_claim or EPOCH})
        for part in parts:
            with (_errors(f"writing post intent {part['RowKey']}", ResourceExistsError),
                  suppress(ResourceExistsError)):  # the row key is this run's: our own write
                self.table.create_entity(part, **_RETRY_WRITES)
        with _errors(f"writing post intent {item.row_key}", ResourceExistsError):
            try:
                metadata: Any = self.table.create_entity(head, **_RETRY_WRITES)
            except ResourceExistsError:
                # The row key carries this run's id: only our own write, whose reply was lost.
                stored = self._entity(OUTBOX, item.row_key)
                if stored is None or stored.get("Owner") != item.owner:
                    raise IncidentStoreError(f"post intent {item.row_key} exists") from None
                metadata = stored.metadata
        item.etag = metadata.get("etag")

    def outbox(self) -> list[OutboxItem]:
        """Every post intent not yet completed, oldest first (one whose parts are missing is
        logged and left alone)."""
        items = []
        with _errors("reading the post intents"):
            entities = list(self.table.query_entities("PartitionKey eq @p",
                                                      parameters={"p": OUTBOX}))
        parts = {e["RowKey"]: e for e in entities if is_part(e["RowKey"])}
        for entity in entities:
            if is_part(entity["RowKey"]):
                continue
            try:
                incidents, findings = references_of(
                    entity, [parts[key] for key in part_keys(entity) if key in parts])
            except (ValueError, KeyError) as exc:
                log.warning("post intent %s cannot be read: %s", entity["RowKey"], exc)
                continue
            claim = utc(entity["OldestClaim"]) if entity.get("OldestClaim") else None
            items.append(OutboxItem(
                entity["RowKey"], json.loads(entity["Payload"]), incidents, findings,
                utc(entity["LeaseUntil"]) if entity.get("LeaseUntil") else None,
                str(entity.get("Owner") or ""), entity.metadata.get("etag"),
                claim if claim and claim > EPOCH else None, bool(entity.get("Failed")),
                part_keys(entity)))
        return sorted(items, key=lambda item: item.row_key)

    def lease(self, item: OutboxItem, owner: str, now: datetime) -> bool:
        """Take *item* for this run when its lease has expired; False when another run has it
        (or completed it)."""
        if item.lease_until is not None and item.lease_until > now and item.owner != owner:
            return False
        until = now + self.lease_time
        patch = {"PartitionKey": OUTBOX, "RowKey": item.row_key, "Owner": owner,
                 "LeaseUntil": until}
        with _errors(f"leasing post intent {item.row_key}", ResourceModifiedError,
                     ResourceNotFoundError):
            try:
                metadata: Any = self.table.update_entity(
                    patch, mode=UpdateMode.MERGE, etag=item.etag,
                    match_condition=MatchConditions.IfNotModified, **_RETRY_WRITES)
            except ResourceNotFoundError:
                return False
            except ResourceModifiedError:
                stored = self._entity(OUTBOX, item.row_key)
                if stored is None or stored.get("Owner") != owner:
                    return False  # another run took it
                metadata = stored.metadata  # ours: the reply was lost, the retry 412
        item.etag, item.owner, item.lease_until = metadata.get("etag"), owner, until
        return True

    def release(self, item: OutboxItem, *, failed: bool) -> None:
        """Give back this run's lease on *item* (not posted, or its post *failed*): the next
        run posts it. Never raises: a lease that could not be given back expires by itself."""
        patch = {"PartitionKey": OUTBOX, "RowKey": item.row_key, "Owner": "",
                 "LeaseUntil": EPOCH, "Failed": failed or item.failed}
        try:
            metadata = self.table.update_entity(patch, mode=UpdateMode.MERGE, etag=item.etag,
                                                match_condition=MatchConditions.IfNotModified)
            item.etag, item.owner, item.lease_until = metadata.get("etag"), "", EPOCH
        except (ResourceModifiedError, ResourceNotFoundError):
            pass
        except (AzureError, StorageError) as exc:  # the run's deadline included
            log.warning("post intent %s: lease not given back (%s); it expires by itself",
                        item.row_key, type(exc).__name__)

    def complete(self, item: OutboxItem, now: datetime) -> None:
        """After Teams accepted *item*: add its members to its incidents, then drop it."""
        for index, (partition, incident_id) in enumerate(item.incidents):
            members = {m for i, m in item.members if i == index}
            incident = self.get(partition, incident_id)
            if incident is None:
                continue

            def apply(current: Incident, members: set[str] = members) -> None:
                current.members |= members
                current.announced += 1
                current.updated_at = max(current.updated_at, now)

            self.change(incident, apply)
        for row_key in (item.row_key, *item.parts):  # the head first: no intent without parts
            with (_errors(f"deleting post intent {row_key}", ResourceNotFoundError),
                  suppress(ResourceNotFoundError)):
                self.table.delete_entity(OUTBOX, row_key, **_RETRY_WRITES)


    def claim_id(self, incident_id: str, scope: str) -> bool:
        """Reserve *incident_id* for *scope* table-wide (an entity in partition ``~ids``), so an
        id is unique by construction even when two devices' ids share their first 4 hex
        digits. True when the id was free or is already *scope*'s (our own earlier attempt)."""
        entity = {"PartitionKey": IDS, "RowKey": incident_id, "Scope": scope}
        with _errors(f"reserving incident id {incident_id}", ResourceExistsError):
            try:
                self.table.create_entity(entity, **_RETRY_WRITES)
            except ResourceExistsError:
                stored = self._entity(IDS, incident_id)
                return stored is not None and stored.get("Scope") == scope
        return True

    def claimed_ids(self, prefix: str) -> list[str]:
        """Reserved ids that start with *prefix* (``HW-<day>-<tag>-``), any scope."""
        query = "PartitionKey eq @p and RowKey ge @low and RowKey lt @high"
        with _errors(f"reading reserved ids {prefix}"):
            return [str(e["RowKey"]) for e in self.table.query_entities(
                query, parameters={"p": IDS, "low": prefix, "high": prefix + "~"},
                select=["RowKey"])]


def _next_id(incident: Incident, used: Iterable[str]) -> str:
    prefix = f"HW-{incident.first_event:%Y%m%d}-{_tag(incident)}-"
    numbers = [int(key.rsplit("-", 1)[1]) for key in used
               if key.startswith(prefix) and key.rsplit("-", 1)[1].isdigit()]
    return f"{prefix}{max(numbers, default=0) + 1:02d}"


def _tag(incident: Incident) -> str:
    if re.fullmatch(r"[0-9a-fA-F]{40}", incident.device_id or ""):
        return incident.device_id[:4].upper()
    return short_hash(incident.scope)[:4].upper()
