"""Health records in Table Storage (table ``huntwireHealth``), updated with ETag guards.

PartitionKey ``hunt`` (RowKey = hunt id), ``source`` (RowKey = ``defender`` | ``sentinel``),
``notifier`` (RowKey ``teams``) and ``heartbeat`` (RowKey ``latest``; RowKey ``deployment``: a
multi-tenant deployment's one heartbeat, in the unprefixed table). Every write is
conditional on the ETag read (or insert-if-absent), so two overlapping runs never overwrite each
other's counts: the loser re-reads, re-applies its change and writes again.
"""

from __future__ import annotations

import json
import re
import types
import typing
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import fields, replace
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

from azure.core import MatchConditions
from azure.core.exceptions import (
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import TableClient, UpdateMode

from ..errors import StorageError
from ..storage import Conflict, Storage, retry_conflicts, storage_errors
from .model import DeploymentBeat, HeartbeatTally, HuntHealth, NotifierHealth, SourceHealth

TABLE: Final = "huntwireHealth"
ATTEMPTS: Final = 5
MAX_TEXT: Final = 2000
_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^/\s?#]+)[^\s\"'<>]*")
R = TypeVar("R", HuntHealth, SourceHealth, NotifierHealth, HeartbeatTally, DeploymentBeat)


class HealthStoreError(StorageError):
    """Health records could not be read or written (never fatal to a run)."""


class HealthStore:
    """Reads and ETag-guarded writes of every health record."""

    def __init__(self, storage: Storage, table: str = TABLE) -> None:
        self.storage = storage
        self._name = table

    @property
    def table(self) -> TableClient:
        with _errors("creating the health table"):
            return self.storage.table(self._name)

    # -- reads ----------------------------------------------------------------------------------

    def hunt(self, hunt_id: str) -> HuntHealth | None:
        return self._get(HuntHealth, "hunt", hunt_id, hunt_id=hunt_id)

    def hunts(self) -> dict[str, HuntHealth]:
        with _errors("listing hunt health"):
            entities = list(self.table.query_entities("PartitionKey eq 'hunt'"))
        return {e["RowKey"]: _decode(HuntHealth, e, hunt_id=e["RowKey"]) for e in entities}

    def source(self, name: str) -> SourceHealth | None:
        return self._get(SourceHealth, "source", name, source=name)

    def notifier(self) -> NotifierHealth | None:
        return self._get(NotifierHealth, "notifier", "teams")

    def heartbeat(self) -> HeartbeatTally | None:
        return self._get(HeartbeatTally, "heartbeat", "latest")

    def deployment_beat(self) -> DeploymentBeat | None:
        return self._get(DeploymentBeat, "heartbeat", "deployment")

    # -- writes ---------------------------------------------------------------------------------

    def save_hunt(self, record: HuntHealth) -> HuntHealth:
        return self._put(record, "hunt", record.hunt_id)

    def save_source(self, record: SourceHealth) -> SourceHealth:
        return self._put(record, "source", record.source)

    def save_notifier(self, record: NotifierHealth) -> NotifierHealth:
        return self._put(record, "notifier", "teams")

    def save_heartbeat(self, record: HeartbeatTally) -> HeartbeatTally:
        return self._put(record, "heartbeat", "latest")

    def save_deployment_beat(self, record: DeploymentBeat) -> DeploymentBeat:
        return self._put(record, "heartbeat", "deployment")

    def modify(self, read: Callable[[], R | None], change: Callable[[R | None], R],
               save: Callable[[R], R]) -> R:
        """Read, change and write back; on an ETag conflict read again and re-apply."""
        return retry_conflicts(lambda: save(change(read())), attempts=ATTEMPTS,
                               error=HealthStoreError, gave_up="health record kept changing")

    # -- plumbing -------------------------------------------------------------------------------

    def _get(self, cls: type[R], pk: str, rk: str, **keys: str) -> R | None:
        with _errors(f"reading health {pk}/{rk}"):
            try:
                entity = self.table.get_entity(pk, rk)
            except ResourceNotFoundError:
                return None
        return _decode(cls, entity, **keys)

    def _put(self, record: R, pk: str, rk: str) -> R:
        entity = _encode(record, pk, rk)
        with _errors(f"saving health {pk}/{rk}"):
            try:
                if record.etag is None:
                    meta = self.table.create_entity(entity)
                else:
                    meta = self.table.update_entity(entity, mode=UpdateMode.REPLACE,
                                                    etag=record.etag,
                                                    match_condition=MatchConditions.IfNotModified)
            except (ResourceExistsError, ResourceModifiedError) as exc:
                raise ConflictError(f"health {pk}/{rk} changed meanwhile") from exc
        return replace(record, etag=meta.get("etag"))


class ConflictError(HealthStoreError, Conflict):
    """Another run wrote the record first (ETag mismatch or insert race)."""

    permanent = False
    reason = "conflict"


def _pascal(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


_KEY_FIELDS = {"hunt_id", "source", "etag"}


def _encode(record: Any, pk: str, rk: str) -> dict[str, Any]:
    entity: dict[str, Any] = {"PartitionKey": pk, "RowKey": rk}
    for f in fields(record):
        value = getattr(record, f.name)
        if f.name in _KEY_FIELDS or value is None:
            continue
        if isinstance(value, frozenset):
            value = ",".join(sorted(value))
        elif isinstance(value, dict):
            value = json.dumps(value, sort_keys=True)
        elif isinstance(value, str):
            value = redact(value)[:MAX_TEXT]
        entity[_pascal(f.name)] = value
    return entity


def _decode(cls: type[R], entity: Any, **keys: str) -> R:
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = dict(keys)
    for f in fields(cls):
        raw = entity.get(_pascal(f.name))
        if f.name in _KEY_FIELDS or raw is None:
            continue
        values[f.name] = _convert(hints[f.name], raw)
    metadata = getattr(entity, "metadata", None) or {}
    return cls(**values, etag=metadata.get("etag"))


def _convert(hint: Any, raw: Any) -> Any:
    options = typing.get_args(hint) if isinstance(hint, types.UnionType) else (hint,)
    base = next((o for o in options if o is not type(None)), hint)
    origin = typing.get_origin(base) or base
    if origin is datetime:
        return datetime.fromtimestamp(raw.timestamp(), UTC)
    if origin is frozenset:
        return frozenset(s for s in str(raw).split(",") if s)
    if origin is dict:
        return {str(k): int(v) for k, v in json.loads(raw).items()}
    if origin in (int, bool):
        return origin(raw)
    return str(raw)


def redact(text: str) -> str:
    """*text* with every URL cut to its scheme and host (webhook URLs carry their secret)."""
    return _URL.sub(r"\1/…", text)


def _errors(action: str) -> AbstractContextManager[None]:
    return storage_errors(action, HealthStoreError)
