"""Incidents and post intents as Table Storage entities (the layout: ``store.py``)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from azure.data.tables import TableEntity

from .model import HuntRef, Incident

OUTBOX = "~outbox"
CHUNK_ITEMS = 1800
"""1,800 ids of 16 hex digits and a comma: 30,600 characters, below the 32K property limit."""
CHUNK_FINDINGS = 500
"""500 ``i:h:key`` entries (ledger keys are at most about 50 characters): below 32K."""
MAX_MEMBERS = 12_000
MAX_KEYS = 3_600
MAX_ACCOUNTS = 50
"""Accounts kept per incident (each at most 200 characters: well below the 64 KB property)."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def put_set(entity: dict[str, Any], prefix: str, values: Iterable[str], cap: int) -> None:
    items = sorted(values)[-cap:]
    for index in range(0, max(len(items), 1), CHUNK_ITEMS):
        entity[f"{prefix}{index // CHUNK_ITEMS}"] = ",".join(items[index:index + CHUNK_ITEMS])


def get_set(entity: Mapping[str, Any], prefix: str) -> set[str]:
    values: set[str] = set()
    for name, value in entity.items():
        if name.startswith(prefix) and name[len(prefix):].isdigit() and value:
            values.update(str(value).split(","))
    return values


def utc(value: Any) -> datetime:
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
        "OpeningUntil": incident.opening_until or EPOCH,
        "Hunts": json.dumps([h.as_json() for h in incident.hunts.values()]),
        "Techniques": json.dumps(list(incident.techniques)),
        "Accounts": json.dumps(sorted(incident.accounts)[:MAX_ACCOUNTS]),
    }
    put_set(entity, "Members", incident.members, MAX_MEMBERS)
    put_set(entity, "Processes", incident.process_keys, MAX_KEYS)
    put_set(entity, "Events", incident.event_keys, MAX_KEYS)
    return entity


def from_entity(entity: TableEntity) -> Incident:
    hunts = [HuntRef.from_json(h) for h in json.loads(entity.get("Hunts") or "[]")]
    return Incident(
        id=entity["RowKey"], scope=entity["Scope"], partition=entity["PartitionKey"],
        device=entity.get("Device") or "", device_id=entity.get("DeviceId") or "",
        first_event=utc(entity["FirstEvent"]), last_event=utc(entity["LastEvent"]),
        updated_at=utc(entity["UpdatedAt"]), opened=bool(entity.get("Opened")),
        announced=int(entity.get("Announced") or 0), posts=int(entity.get("Posts") or 0),
        opening_until=utc(entity["OpeningUntil"]) if entity.get("OpeningUntil") else None,
        hunts={h.id: h for h in hunts},
        members=get_set(entity, "Members"), process_keys=get_set(entity, "Processes"),
        event_keys=get_set(entity, "Events"),
        techniques=tuple(json.loads(entity.get("Techniques") or "[]")),
        accounts={str(a) for a in json.loads(entity.get("Accounts") or "[]")},
        etag=entity.metadata.get("etag"))


def outbox_entity(row_key: str, payload: Mapping[str, Any], incidents: list[tuple[str, str]],
                  findings: list[tuple[int, str, str]]) -> dict[str, Any]:
    """The payload, incidents and findings of a post intent (lease fields added by the store)."""
    entity: dict[str, Any] = {
        "PartitionKey": OUTBOX, "RowKey": row_key,
        "Payload": json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
        "Incidents": json.dumps(incidents)}
    hunts = list(dict.fromkeys(hunt_id for _, hunt_id, _ in findings))
    entity["Hunts"] = json.dumps(hunts)
    entries = [f"{i}:{hunts.index(h)}:{key}" for i, h, key in findings]
    for index in range(0, len(entries), CHUNK_FINDINGS):
        entity[f"Findings{index // CHUNK_FINDINGS}"] = "\n".join(
            entries[index:index + CHUNK_FINDINGS])
    return entity


def findings_of(entity: Mapping[str, Any]) -> list[tuple[int, str, str]]:
    hunts = [str(h) for h in json.loads(entity.get("Hunts") or "[]")]
    findings = []
    chunks = sorted((int(name[8:]), str(value)) for name, value in entity.items()
                    if name.startswith("Findings") and name[8:].isdigit() and value)
    for _, text in chunks:
        for line in text.split("\n"):
            index, hunt, key = line.split(":", 2)
            findings.append((int(index), hunts[int(hunt)], key))
    return findings
