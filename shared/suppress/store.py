"""Snoozes in Table Storage (``huntwireSuppressions``): who, why, when, until when.

A snooze is a rule with one ``equals`` condition per identifying value of a finding, for one
hunt, at most 30 days. It is loaded and applied like the rules of ``suppressions/*.yaml``.
"""

from __future__ import annotations

import json
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient

from ..errors import StorageError
from ..storage import Storage, storage_errors
from .rules import Rule, compile_condition

TABLE = "huntwireSuppressions"
PARTITION = "snooze"
MAX_SNOOZE = timedelta(days=30)
SOURCE = f"table:{TABLE}"


class SnoozeStoreError(StorageError):
    """Table Storage refused or failed a snooze read or write."""


@dataclass(frozen=True)
class Snooze:
    id: str
    hunt_id: str
    values: dict[str, str]
    reason: str
    owner: str
    created: datetime
    expires: date

    def as_rule(self) -> Rule:
        where = tuple(compile_condition(c, "equals", v) for c, v in sorted(self.values.items()))
        return Rule(id=self.id, hunts=(self.hunt_id.casefold(),), where=where,
                    reason=self.reason, owner=self.owner, expires=self.expires, source=SOURCE)

    def entity(self) -> dict[str, Any]:
        return {"PartitionKey": PARTITION, "RowKey": self.id, "Hunt": self.hunt_id,
                "Where": json.dumps(self.values, ensure_ascii=False), "Reason": self.reason,
                "Owner": self.owner, "Created": self.created.isoformat(),
                "Expires": self.expires.isoformat()}

    @classmethod
    def from_entity(cls, entity: dict[str, Any]) -> Snooze:
        return cls(id=str(entity["RowKey"]), hunt_id=str(entity["Hunt"]),
                   values={str(k): str(v) for k, v in json.loads(entity["Where"]).items()},
                   reason=str(entity["Reason"]), owner=str(entity["Owner"]),
                   created=datetime.fromisoformat(str(entity["Created"])),
                   expires=date.fromisoformat(str(entity["Expires"])))


def snooze_expiry(created: datetime, days: int) -> date:
    if not 1 <= days <= MAX_SNOOZE.days:
        raise ValueError(f"a snooze lasts 1 to {MAX_SNOOZE.days} days")
    return (created.astimezone(UTC) + timedelta(days=days)).date()


class SnoozeStore:
    def __init__(self, storage: Storage, table: str = TABLE):
        self.storage = storage
        self._table_name = table

    def add(self, snooze: Snooze) -> bool:
        """Store *snooze*; False (nothing written) when an unexpired one has the same id."""
        with _storage_errors("write"):
            table = self._client()
            existing = self._get(table, snooze.id)
            if existing is not None and existing.expires >= snooze.created.date():
                return False
            if existing is not None:
                table.delete_entity(PARTITION, snooze.id)
            try:
                table.create_entity(snooze.entity())
            except ResourceExistsError:
                return False
        return True

    def get(self, snooze_id: str) -> Snooze | None:
        with _storage_errors("read"):
            return self._get(self._client(), snooze_id)

    def all(self) -> list[Snooze]:
        with _storage_errors("read"):
            entities = list(self._client().query_entities(f"PartitionKey eq '{PARTITION}'"))
        return sorted((Snooze.from_entity(dict(e)) for e in entities), key=lambda s: s.created)

    def rules(self) -> list[Rule]:
        return [s.as_rule() for s in self.all()]

    def remove(self, snooze_id: str) -> bool:
        with _storage_errors("delete"):
            if self._get(self._client(), snooze_id) is None:
                return False
            self._client().delete_entity(PARTITION, snooze_id)
        return True

    def _client(self) -> TableClient:
        return self.storage.table(self._table_name)

    @staticmethod
    def _get(table: TableClient, snooze_id: str) -> Snooze | None:
        try:
            return Snooze.from_entity(dict(table.get_entity(PARTITION, snooze_id)))
        except ResourceNotFoundError:
            return None


def _storage_errors(action: str) -> AbstractContextManager[None]:
    return storage_errors(f"snooze {action} in table {TABLE}", SnoozeStoreError)
