"""Checkpoints: per hunt, the last successful window end, the last run, its error and counts."""

from __future__ import annotations

import re
from typing import Any, Final

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import UpdateMode

from .keys import check_partition_key, clean_text
from .model import Checkpoint, require_aware, utc_or_none
from .tables import Tables, storage_errors

CHECKPOINT_ROW: Final = "latest"
LAST_ERROR_MAX_CHARS: Final = 2000

_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^/\s?#]+)[^\s\"'<>]*")


class Checkpoints:
    """One entity per hunt in the checkpoints table (RowKey ``latest``)."""

    def __init__(self, tables: Tables) -> None:
        self._tables = tables

    def read(self, hunt_id: str) -> Checkpoint | None:
        """The stored checkpoint of *hunt_id*, or None before its first run."""
        with storage_errors("reading the checkpoint", hunt_id):
            try:
                entity = self._tables.checkpoints.get_entity(check_partition_key(hunt_id),
                                                             CHECKPOINT_ROW)
            except ResourceNotFoundError:
                return None
        return Checkpoint(
            hunt_id=hunt_id,
            last_success_end=utc_or_none(entity.get("LastSuccessEnd")),
            last_run_start=utc_or_none(entity.get("LastRunStart")),
            last_error=entity.get("LastError"),
            rows=int(entity.get("Rows", 0)),
            new=int(entity.get("New", 0)),
            posted=int(entity.get("Posted", 0)),
        )

    def save(self, checkpoint: Checkpoint) -> None:
        """Store *checkpoint*, replacing the previous one (fields set to None are removed)."""
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
        with storage_errors("saving the checkpoint", checkpoint.hunt_id):
            self._tables.checkpoints.upsert_entity(entity, mode=UpdateMode.REPLACE)


def redact(text: str) -> str:
    """*text* with every URL cut to its scheme and host (webhook URLs carry their secret)."""
    return _URL.sub(r"\1/…", clean_text(text))
