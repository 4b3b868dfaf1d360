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
PIECE_CHARS = 30_000
"""Characters of a post intent's references per property (the limit is 32K characters)."""
HEAD_PIECES = 10
"""Reference properties on an intent's head (next to a payload of at most 28,000 bytes)."""
PART_PIECES = 12
"""Reference properties per part entity: 12 x 60 KB stays below the 1 MiB entity limit."""
PART_MARK = "~part"
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


def outbox_entities(row_key: str, payload: Mapping[str, Any], incidents: list[tuple[str, str]],
                    findings: list[tuple[int, str, str]]) -> list[dict[str, Any]]:
    """A post intent as entities: its parts (if any), then its head, which holds the payload
    (lease fields are added by the store). What it announces and delivers (incidents, hunts,
    ``<incident index>:<hunt index>:<ledger key>`` findings) is one compact text cut into
    properties below the 32K-character limit, ten on the head and twelve on each part (a
    part stays below the 1 MiB entity limit however many findings a storm post lists)."""
    hunts = list(dict.fromkeys(hunt_id for _, hunt_id, _ in findings))
    index = {hunt_id: number for number, hunt_id in enumerate(hunts)}
    refs = json.dumps({"incidents": incidents, "hunts": hunts,
                       "findings": [f"{i}:{index[h]}:{key}" for i, h, key in findings]},
                      separators=(",", ":"))
    pieces = [refs[start:start + PIECE_CHARS] for start in range(0, len(refs), PIECE_CHARS)]
    head: dict[str, Any] = {
        "PartitionKey": OUTBOX, "RowKey": row_key,
        "Payload": json.dumps(payload, ensure_ascii=False, separators=(",", ":")),
        "Pieces": len(pieces)}
    head.update({f"Refs{n}": piece for n, piece in enumerate(pieces[:HEAD_PIECES])})
    rest = pieces[HEAD_PIECES:]
    parts = [{"PartitionKey": OUTBOX, "RowKey": key,
              **{f"Refs{HEAD_PIECES + n * PART_PIECES + k}": piece
                 for k, piece in enumerate(rest[n * PART_PIECES:(n + 1) * PART_PIECES])}}
             for n, key in enumerate(part_keys(head))]
    return [*parts, head]


def is_part(row_key: str) -> bool:
    return PART_MARK in row_key


def part_keys(head: Mapping[str, Any]) -> list[str]:
    """Row keys of the parts of the post intent *head*."""
    extra = max(0, int(head.get("Pieces") or 0) - HEAD_PIECES)
    return [f"{head['RowKey']}{PART_MARK}{n:04d}" for n in range(-(-extra // PART_PIECES))]


def references_of(head: Mapping[str, Any], parts: Iterable[Mapping[str, Any]]
                  ) -> tuple[list[tuple[str, str]], list[tuple[int, str, str]]]:
    """(incidents, findings) of a post intent from its head and parts (or an intent an older
    version wrote, with ``Incidents``, ``Hunts`` and ``Findings*`` on one entity)."""
    if "Pieces" not in head:
        return [(str(p), str(i)) for p, i in json.loads(head["Incidents"])], _old_findings(head)
    pieces: dict[int, str] = {}
    for entity in (head, *parts):
        pieces.update({int(name[4:]): str(value) for name, value in entity.items()
                       if name.startswith("Refs") and name[4:].isdigit()})
    if len(pieces) != int(head["Pieces"]):
        raise ValueError(f"post intent {head['RowKey']}: parts missing")
    refs = json.loads("".join(pieces[n] for n in sorted(pieces)))
    hunts = [str(h) for h in refs["hunts"]]
    findings = []
    for entry in refs["findings"]:
        incident, hunt, key = str(entry).split(":", 2)
        findings.append((int(incident), hunts[int(hunt)], key))
    return [(str(p), str(i)) for p, i in refs["incidents"]], findings


def _old_findings(entity: Mapping[str, Any]) -> list[tuple[int, str, str]]:
    hunts = [str(h) for h in json.loads(entity.get("Hunts") or "[]")]
    findings = []
    chunks = sorted((int(name[8:]), str(value)) for name, value in entity.items()
                    if name.startswith("Findings") and name[8:].isdigit() and value)
    for _, text in chunks:
        for line in text.split("\n"):
            index, hunt, key = line.split(":", 2)
            findings.append((int(index), hunts[int(hunt)], key))
    return findings
