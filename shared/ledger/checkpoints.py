"""Checkpoints: per hunt, the last successful window end, the last run, its error and counts.

Each checkpoint is written twice: to the checkpoints table (``<hunt>/latest``) and, as a mirror,
to the pending table (``~checkpoints/<hunt>``), so deleting either table loses no resume point.
A read merges the two: the earlier ``LastSuccessEnd`` (never skip data) and the later
``LastRunStart``."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any, Final

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode

from .keys import check_partition_key, clean_text
from .model import Checkpoint, require_aware, utc_or_none
from .tables import Tables, storage_errors

CHECKPOINT_ROW: Final = "latest"
MIRROR_PARTITION: Final = "~checkpoints"
"""The pending table's partition of checkpoint mirrors (no hunt id starts with ``~``)."""
LAST_ERROR_MAX_CHARS: Final = 2000

_MIN = datetime.min.replace(tzinfo=UTC)
_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^/\s?#]+)[^\s\"'<>]*")


class Checkpoints:
    """One entity per hunt in the checkpoints table (RowKey ``latest``)."""

    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    def read(self, hunt_id: str) -> Checkpoint | None:
        """The stored checkpoint of *hunt_id* (merged with its mirror), or None before its
        first run."""
        key = check_partition_key(hunt_id)
        with storage_errors("reading the checkpoint", hunt_id):
            primary = _get(self._tables.checkpoints, key, CHECKPOINT_ROW)
            mirror = _get(self._tables.pending, MIRROR_PARTITION, key)
        if primary is None and mirror is None:
            return None
        if primary is None or mirror is None:
            return _checkpoint(hunt_id, primary or mirror or {})
        return merged(_checkpoint(hunt_id, primary), _checkpoint(hunt_id, mirror))

    def save(self, checkpoint: Checkpoint) -> None:
        """Store *checkpoint* and its mirror, replacing the previous ones (fields set to None
        are removed). The mirror goes first: a failure in between leaves the primary older."""
        entity = _entity(checkpoint)
        mirror = {**entity, "PartitionKey": MIRROR_PARTITION, "RowKey": entity["PartitionKey"]}
        with storage_errors("saving the checkpoint", checkpoint.hunt_id):
            self._tables.pending.upsert_entity(mirror, mode=UpdateMode.REPLACE)
            self._tables.checkpoints.upsert_entity(entity, mode=UpdateMode.REPLACE)


def merged(first: Checkpoint, second: Checkpoint) -> Checkpoint:
    """Two copies of one checkpoint as one: the earlier resume point, the later run."""
    ends = [c.last_success_end for c in (first, second) if c.last_success_end is not None]
    runs = [c.last_run_start for c in (first, second) if c.last_run_start is not None]
    latest = first if (first.last_run_start or _MIN) >= (second.last_run_start or _MIN) else second
    return Checkpoint(hunt_id=first.hunt_id, last_success_end=min(ends, default=None),
                      last_run_start=max(runs, default=None), last_error=latest.last_error,
                      rows=latest.rows, new=latest.new, posted=latest.posted)


def _get(table: Any, partition: str, row: str) -> Any:
    try:
        return table.get_entity(partition, row)
    except ResourceNotFoundError:
        return None


def _checkpoint(hunt_id: str, entity: Any) -> Checkpoint:
    return Checkpoint(
        hunt_id=hunt_id,
        last_success_end=utc_or_none(entity.get("LastSuccessEnd")),
        last_run_start=utc_or_none(entity.get("LastRunStart")),
        last_error=entity.get("LastError"),
        rows=int(entity.get("Rows", 0)),
        new=int(entity.get("New", 0)),
        posted=int(entity.get("Posted", 0)),
    )


def _entity(checkpoint: Checkpoint) -> dict[str, Any]:
    entity: dict[str, Any] = {
        "PartitionKey": check_partition_key(checkpoint.hunt_id), "RowKey": CHECKPOINT_ROW,
        "Rows": checkpoint.rows, "New": checkpoint.new, "Posted": checkpoint.posted,
    }
    if checkpoint.last_success_end is not None:
        entity["LastSuccessEnd"] = require_aware(checkpoint.last_success_end)
    if checkpoint.last_run_start is not None:
        entity["LastRunStart"] = require_aware(checkpoint.last_run_start)
    if checkpoint.last_error is not None:
        entity["LastError"] = redact(checkpoint.last_error)[:LAST_ERROR_MAX_CHARS]
    return entity


def redact(text: str) -> str:
    """*text* with every URL cut to its scheme and host (webhook URLs carry their secret)."""
    return _URL.sub(r"\1/…", clean_text(text))
