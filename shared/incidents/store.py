"""Incidents in Azure Table Storage (Azurite locally), safe with concurrent runs.

Table ``huntwireIncidents``:

* incidents: PartitionKey = the scope (device or entity, readable and hashed), RowKey = the
  incident id ``HW-<first event day>-<4 hex of the device>-<nn>``. Properties: ``Scope``,
  ``Device``, ``DeviceId``, ``FirstEvent``, ``LastEvent``, ``UpdatedAt``, ``Opened`` (an opening
  hunt matched), ``Announced`` (posts Teams accepted), ``Posts`` (posts intended), ``Hunts`` and
  ``Techniques`` (JSON), and the sets ``Members*`` (finding ids), ``Processes*``, ``Events*``
  (hashed lineage and event keys), chunked below the 32K-character property limit.
* the outbox (PartitionKey ``~outbox``): one entity per post intent, written *before* the post:
  ``Payload`` (the notifier's message, at most 28,000 bytes for Teams), ``Incidents`` (JSON),
  ``Hunts`` (JSON list of hunt ids), ``Findings*`` (``<incident index>:<hunt index>:<ledger
  key>``), ``OldestClaim``, ``Failed``, ``LeaseUntil``/``Owner``. After the notifier accepts
  it, the findings are added to their incidents (as member ids) and the entity is deleted. A
  crash before the post leaves the intent, posted by the next run; a crash after the post
  re-posts that one message; a failed post gives the lease back at once.

Every change to an incident is an ETag-conditional merge, re-read and re-applied on conflict; a
new incident is an insert-if-absent, and a run joins an incident of the same device that another
run created meanwhile instead of creating a second one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from azure.core import MatchConditions
from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    AzureError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, TableEntity, TableServiceClient, UpdateMode

from ..errors import StorageError
from .correlate import member_id
from .model import HuntRef, Incident

TABLE = "huntwireIncidents"
OUTBOX = "~outbox"
CHUNK_ITEMS = 1800
"""1,800 ids of 16 hex digits and a comma: 30,600 characters, below the 32K property limit."""
CHUNK_FINDINGS = 500
"""500 ``i:h:key`` entries (ledger keys are at most about 50 characters): below 32K."""
MAX_MEMBERS = 12_000
MAX_KEYS = 3_600
UPDATE_ATTEMPTS = 8
DEFAULT_LEASE = timedelta(minutes=15)
_UNSAFE = re.compile(r"[^A-Za-z0-9._@:-]")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_BRIEF = ["PartitionKey", "RowKey", "Scope", "FirstEvent", "LastEvent", "UpdatedAt"]


class IncidentStoreError(StorageError):
    """Table Storage could not read or write incidents."""


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def partition_of(scope: str) -> str:
    """A readable PartitionKey for *scope* (unsafe characters replaced, a hash keeps it unique)."""
    return f"{_UNSAFE.sub('_', scope)[:120]}~{short_hash(scope)[:8]}"


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

    @property
    def members(self) -> list[tuple[int, str]]:
        """(index into ``incidents``, member id) of each finding."""
        return [(index, member_id(hunt_id, key)) for index, hunt_id, key in self.findings]


def _put_set(entity: dict[str, Any], prefix: str, values: Iterable[str], cap: int) -> None:
    items = sorted(values)[-cap:]
    for index in range(0, max(len(items), 1), CHUNK_ITEMS):
        entity[f"{prefix}{index // CHUNK_ITEMS}"] = ",".join(items[index:index + CHUNK_ITEMS])


def _get_set(entity: Mapping[str, Any], prefix: str) -> set[str]:
    values: set[str] = set()
    for name, value in entity.items():
        if name.startswith(prefix) and name[len(prefix):].isdigit() and value:
            values.update(str(value).split(","))
    return values


def _utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        aware = value if value.tzinfo else value.replace(tzinfo=UTC)
        return datetime.fromtimestamp(aware.timestamp(), UTC)
    return datetime.fromisoformat(str(value))


def to_entity(incident: Incident) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": incident.partition, "RowKey": incident.id, "Scope": incident.scope,
        "Device": incident.device, "DeviceId": incident.device_id,
        "FirstEvent": incident.first_event, "LastEvent": incident.last_event,
        "UpdatedAt": incident.updated_at, "Opened": incident.opened,
        "Announced": incident.announced, "Posts": incident.posts,
        "OpeningUntil": incident.opening_until or _EPOCH,
        "Hunts": json.dumps([h.as_json() for h in incident.hunts.values()]),
        "Techniques": json.dumps(list(incident.techniques)),
    }
    _put_set(entity, "Members", incident.members, MAX_MEMBERS)
    _put_set(entity, "Processes", incident.process_keys, MAX_KEYS)
    _put_set(entity, "Events", incident.event_keys, MAX_KEYS)
    return entity


def from_entity(entity: TableEntity) -> Incident:
    hunts = [HuntRef.from_json(h) for h in json.loads(entity.get("Hunts") or "[]")]
    return Incident(
        id=entity["RowKey"], scope=entity["Scope"], partition=entity["PartitionKey"],
        device=entity.get("Device") or "", device_id=entity.get("DeviceId") or "",
        first_event=_utc(entity["FirstEvent"]), last_event=_utc(entity["LastEvent"]),
        updated_at=_utc(entity["UpdatedAt"]), opened=bool(entity.get("Opened")),
        announced=int(entity.get("Announced") or 0), posts=int(entity.get("Posts") or 0),
        opening_until=_utc(entity["OpeningUntil"]) if entity.get("OpeningUntil") else None,
        hunts={h.id: h for h in hunts},
        members=_get_set(entity, "Members"), process_keys=_get_set(entity, "Processes"),
        event_keys=_get_set(entity, "Events"),
        techniques=tuple(json.loads(entity.get("Techniques") or "[]")),
        etag=entity.metadata.get("etag"))


class IncidentStore:
    """Incidents and post intents in one table (see the module docstring)."""

    def __init__(self, service: TableServiceClient, *, table: str = TABLE,
                 lease: timedelta = DEFAULT_LEASE):
        self.lease_time = lease
        try:
            self.table: TableClient = service.create_table_if_not_exists(table)
        except AzureError as exc:
            raise IncidentStoreError(f"cannot open table {table}: {type(exc).__name__}") from exc

    @classmethod
    def from_connection_string(cls, connection_string: str, **kw: Any) -> IncidentStore:
        return cls(TableServiceClient.from_connection_string(connection_string), **kw)

    @classmethod
    def from_endpoint(cls, table_service_uri: str, credential: TokenCredential,
                      **kw: Any) -> IncidentStore:
        """The store on *table_service_uri* with *credential* (managed identity in Azure)."""
        return cls(TableServiceClient(endpoint=table_service_uri, credential=credential), **kw)

    # ----------------------------------------------------------------------------- incidents

    def open_incidents(self, now: datetime, close_after: timedelta) -> list[Incident]:
        """Incidents with evidence or an update within *close_after* of *now*."""
        since = now - close_after
        query = "PartitionKey ne @outbox and (LastEvent ge @since or UpdatedAt ge @since )"
        try:
            entities = self.table.query_entities(query, parameters={"outbox": OUTBOX,
                                                                    "since": since})
            return [from_entity(e) for e in entities]
        except AzureError as exc:
            raise IncidentStoreError(f"cannot read open incidents: {type(exc).__name__}") from exc

    def get(self, partition: str, incident_id: str) -> Incident | None:
        try:
            return from_entity(self.table.get_entity(partition, incident_id))
        except ResourceNotFoundError:
            return None

    def create(self, incident: Incident, joins: Callable[[Incident], bool]) -> Incident:
        """Insert *incident* under the next free id of its scope and first-event day, unless an
        incident of the same scope that *joins* says is the same one exists (a concurrent run
        created it since this run read the open incidents): that stored incident is returned.
        The id comes from the same read as that check, so a concurrent insert makes ours fail
        and the next attempt joins it."""
        for _ in range(UPDATE_ATTEMPTS * 4):
            stored = [from_entity(e) for e in self.table.query_entities(
                "PartitionKey eq @p", parameters={"p": incident.partition}, select=_BRIEF)]
            existing = next((other for other in stored if joins(other)), None)
            if existing is not None:
                return self.get(existing.partition, existing.id) or existing
            incident.id = _next_id(incident, [other.id for other in stored])
            try:
                metadata = self.table.create_entity(to_entity(incident))
                incident.etag = metadata.get("etag")
                return incident
            except ResourceExistsError:
                continue
        raise IncidentStoreError(f"no free incident id for {incident.scope}")

    def change(self, incident: Incident, apply: Callable[[Incident], None]) -> Incident:
        """Apply *apply* to the stored incident under its ETag, re-reading on conflict."""
        current = incident
        for _ in range(UPDATE_ATTEMPTS):
            apply(current)
            try:
                metadata = self.table.update_entity(
                    to_entity(current), mode=UpdateMode.MERGE, etag=current.etag,
                    match_condition=MatchConditions.IfNotModified)
                current.etag = metadata.get("etag")
                return current
            except ResourceModifiedError:
                fresh = self.get(incident.partition, incident.id)
                if fresh is None:
                    raise IncidentStoreError(f"incident {incident.id} disappeared") from None
                current = fresh
        raise IncidentStoreError(f"incident {incident.id} kept changing; gave up")

    # ----------------------------------------------------------------------------- the outbox

    def add_outbox(self, item: OutboxItem) -> None:
        entity: dict[str, Any] = {
            "PartitionKey": OUTBOX, "RowKey": item.row_key,
            "Payload": json.dumps(item.payload, ensure_ascii=False, separators=(",", ":")),
            "Incidents": json.dumps(item.incidents), "Owner": item.owner,
            "LeaseUntil": item.lease_until, "OldestClaim": item.oldest_claim or _EPOCH}
        hunts = list(dict.fromkeys(hunt_id for _, hunt_id, _ in item.findings))
        entity["Hunts"] = json.dumps(hunts)
        entries = [f"{i}:{hunts.index(h)}:{key}" for i, h, key in item.findings]
        for index in range(0, len(entries), CHUNK_FINDINGS):
            entity[f"Findings{index // CHUNK_FINDINGS}"] = "\n".join(
                entries[index:index + CHUNK_FINDINGS])
        metadata = self.table.create_entity(entity)
        item.etag = metadata.get("etag")

    def outbox(self) -> list[OutboxItem]:
        """Every post intent not yet completed, oldest first."""
        items = []
        for entity in self.table.query_entities("PartitionKey eq @p", parameters={"p": OUTBOX}):
            claim = _utc(entity["OldestClaim"]) if entity.get("OldestClaim") else None
            items.append(OutboxItem(
                entity["RowKey"], json.loads(entity["Payload"]),
                [(str(p), str(i)) for p, i in json.loads(entity["Incidents"])],
                _findings_of(entity),
                _utc(entity["LeaseUntil"]) if entity.get("LeaseUntil") else None,
                str(entity.get("Owner") or ""), entity.metadata.get("etag"),
                claim if claim and claim > _EPOCH else None, bool(entity.get("Failed"))))
        return sorted(items, key=lambda item: item.row_key)

    def lease(self, item: OutboxItem, owner: str, now: datetime) -> bool:
        """Take *item* for this run when its lease has expired; False when another run has it."""
        if item.lease_until is not None and item.lease_until > now and item.owner != owner:
            return False
        patch = {"PartitionKey": OUTBOX, "RowKey": item.row_key, "Owner": owner,
                 "LeaseUntil": now + self.lease_time}
        try:
            metadata = self.table.update_entity(patch, mode=UpdateMode.MERGE, etag=item.etag,
                                                match_condition=MatchConditions.IfNotModified)
        except (ResourceModifiedError, ResourceNotFoundError):
            return False
        item.etag, item.owner, item.lease_until = metadata.get("etag"), owner, now + self.lease_time
        return True

    def release(self, item: OutboxItem, *, failed: bool) -> None:
        """Give back this run's lease on *item* (not posted, or its post *failed*): the next
        run posts it."""
        patch = {"PartitionKey": OUTBOX, "RowKey": item.row_key, "Owner": "",
                 "LeaseUntil": _EPOCH, "Failed": failed or item.failed}
        with contextlib.suppress(ResourceModifiedError, ResourceNotFoundError):
            metadata = self.table.update_entity(patch, mode=UpdateMode.MERGE, etag=item.etag,
                                                match_condition=MatchConditions.IfNotModified)
            item.etag, item.owner, item.lease_until = metadata.get("etag"), "", _EPOCH

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
        with contextlib.suppress(ResourceNotFoundError):
            self.table.delete_entity(OUTBOX, item.row_key)


def _findings_of(entity: Mapping[str, Any]) -> list[tuple[int, str, str]]:
    hunts = [str(h) for h in json.loads(entity.get("Hunts") or "[]")]
    findings = []
    chunks = sorted((int(name[8:]), str(value)) for name, value in entity.items()
                    if name.startswith("Findings") and name[8:].isdigit() and value)
    for _, text in chunks:
        for line in text.split("\n"):
            index, hunt, key = line.split(":", 2)
            findings.append((int(index), hunts[int(hunt)], key))
    return findings


def _next_id(incident: Incident, used: Iterable[str]) -> str:
    prefix = f"HW-{incident.first_event:%Y%m%d}-{_tag(incident)}-"
    numbers = [int(key.rsplit("-", 1)[1]) for key in used
               if key.startswith(prefix) and key.rsplit("-", 1)[1].isdigit()]
    return f"{prefix}{max(numbers, default=0) + 1:02d}"


def _tag(incident: Incident) -> str:
    if re.fullmatch(r"[0-9a-fA-F]{40}", incident.device_id or ""):
        return incident.device_id[:4].upper()
    return short_hash(incident.scope)[:4].upper()
