"""Snoozes in Table Storage (``huntwireSuppressions``): who, why, when, until when.

A snooze is a rule with one ``equals`` condition per device column and identifying value of a
finding (``scope.snooze_values``), for one hunt, at most 30 days. It is loaded and applied like
the rules of ``suppressions/*.yaml``; a stored row is re-checked on every load and skipped when
it is malformed or wider than a new snooze may be. Beside the snoozes, partition ``link`` holds
the links already used and partition ``removed`` the removals that revoke older links.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from azure.core.exceptions import AzureError, ResourceExistsError, ResourceNotFoundError
from azure.data.tables import TableClient

from ..errors import HuntwireError, StorageError
from ..storage import Storage, storage_errors
from .rules import Rule, compile_condition
from .scope import plain, too_broad
from .token import CLOCK_SKEW, LINK_LIFETIME
from .token import LINK_ID as _LINK_ID

TABLE = "huntwireSuppressions"
PARTITION = "snooze"
MAX_SNOOZE = timedelta(days=30)
SOURCE = f"table:{TABLE}"
LINKS = "link"
"""Partition of spent links: RowKey = link id, kept until the link would have expired."""
REMOVED = "removed"
"""Partition of removed snoozes: RowKey = snooze id, ``Removed`` = when; links sent before
that are refused until they would have expired."""
MAX_WHERE_CHARS = 32_768
REVOKE_MARGIN = timedelta(minutes=5)
"""A removal also revokes links sent this soon after it (the remover's clock may lag)."""
_HUNT_ID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")


class SnoozeStoreError(StorageError):
    """Table Storage refused or failed a snooze read or write."""


@dataclass(frozen=True)
class Snooze:
    id: str
    hunt_id: str
    values: dict[str, str]
    """Every condition: the device columns and the finding's identifying values."""
    reason: str
    owner: str
    created: datetime
    expires: date
    link_id: str | None = None
    """The link that created it: recorded as used when the snooze is removed."""

    def as_rule(self) -> Rule:
        where = tuple(compile_condition(c, "equals", v) for c, v in sorted(self.values.items()))
        return Rule(id=self.id, hunts=(self.hunt_id.casefold(),), where=where,
                    reason=self.reason, owner=self.owner, expires=self.expires, source=SOURCE)

    def entity(self) -> dict[str, Any]:
        return {"PartitionKey": PARTITION, "RowKey": self.id, "Hunt": self.hunt_id,
                "Where": json.dumps(self.values, ensure_ascii=False), "Reason": self.reason,
                "Owner": self.owner, "Created": self.created.isoformat(),
                "Expires": self.expires.isoformat(), "Link": self.link_id or ""}

    @classmethod
    def from_entity(cls, entity: Mapping[str, Any], now: datetime | None = None) -> Snooze:
        """The snooze a stored row describes, checked as strictly as a new one (the row may
        be hand-written or from an older version); SnoozeRowError says what is wrong."""
        return parse_row(entity, now or datetime.now(UTC))


class SnoozeRowError(ValueError):
    """A stored snooze row that cannot be trusted: malformed, or wider than a snooze may be."""


@dataclass(frozen=True)
class SnoozeRows:
    snoozes: list[Snooze]
    skipped: list[tuple[str, str]]
    """(row key, why) of each row that is not applied."""


def snooze_expiry(created: datetime, days: int) -> date:
    if not 1 <= days <= MAX_SNOOZE.days:
        raise ValueError(f"a snooze lasts 1 to {MAX_SNOOZE.days} days")
    return (created.astimezone(UTC) + timedelta(days=days)).date()


def parse_row(entity: Mapping[str, Any], now: datetime) -> Snooze:
    row_key = _field(entity, "RowKey")
    hunt_id = _field(entity, "Hunt")
    if not _HUNT_ID.match(hunt_id):
        raise SnoozeRowError(f"Hunt {_shown(hunt_id)} is not one hunt's id")
    created, expires = _when(entity, now)
    snooze = Snooze(id=row_key, hunt_id=hunt_id, values=_where(entity.get("Where")),
                    reason=_field(entity, "Reason"), owner=_field(entity, "Owner"),
                    created=created, expires=expires,
                    link_id=str(entity.get("Link") or "") or None)
    try:
        snooze.as_rule()
    except ValueError as exc:
        raise SnoozeRowError(f"Where: {exc}") from None
    return snooze


def _field(entity: Mapping[str, Any], name: str) -> str:
    value = entity.get(name)
    if not isinstance(value, str) or not value.strip():
        raise SnoozeRowError(f"{name} is missing or not text")
    return value


def _where(raw: Any) -> dict[str, str]:
    try:
        where = json.loads(raw) if isinstance(raw, str) and len(raw) <= MAX_WHERE_CHARS else None
    except (ValueError, RecursionError):
        where = None
    if not isinstance(where, dict) or not where or not all(
            isinstance(v, str | int) and not isinstance(v, bool) for v in where.values()):
        raise SnoozeRowError("Where is not a JSON object of column -> value")
    values = {str(c): str(v) for c, v in where.items()}
    broad = too_broad(values)
    if broad:
        raise SnoozeRowError(f"it would silence too much: {broad}")
    return values


def _when(entity: Mapping[str, Any], now: datetime) -> tuple[datetime, date]:
    try:
        raw = entity.get("Created")
        created = raw if isinstance(raw, datetime) else datetime.fromisoformat(
            _field(entity, "Created"))
        expires = date.fromisoformat(_field(entity, "Expires"))
    except (ValueError, OverflowError):
        raise SnoozeRowError("Created or Expires is not an ISO date") from None
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    if created > now + CLOCK_SKEW:
        raise SnoozeRowError(f"Created {created.isoformat()} is in the future")
    if (expires - created.astimezone(UTC).date()).days > MAX_SNOOZE.days:
        raise SnoozeRowError(f"Expires {expires.isoformat()} is more than {MAX_SNOOZE.days} "
                             "days after Created")
    return created, expires


def _shown(text: str) -> str:
    return repr(text[:80])


class SnoozeStore:
    def __init__(self, storage: Storage, table: str = TABLE):
        self.storage = storage
        self._table_name = table

    def add(self, snooze: Snooze, link_expires: datetime | None = None) -> bool:
        """Store *snooze*; False (nothing written) when an unexpired one has the same id.
        With ``snooze.link_id``, first refuse a spent or revoked link (LinkRefused), then spend
        it (until *link_expires*) once the snooze is written."""
        with _storage_errors("write"):
            table = self._client()
            if snooze.link_id:
                self._check_link(table, snooze.link_id, snooze.id,
                                 issued_by(link_expires or snooze.created))
            existing = self._raw(table, PARTITION, snooze.id)
            if existing is not None and _active(existing, snooze.created):
                return False
            if existing is not None:
                table.delete_entity(PARTITION, snooze.id)
            try:
                table.create_entity(snooze.entity())
            except ResourceExistsError:
                return False
            if snooze.link_id:
                until = (link_expires or snooze.created) + CLOCK_SKEW
                table.upsert_entity(_marker(LINKS, snooze.link_id, until, Snooze=snooze.id))
        self._purge(snooze.created)
        return True

    def link_refusal(self, link_id: str, snooze_id: str, link_expires: datetime) -> str | None:
        """Why a link may no longer create its snooze (spent, or its snooze was removed after
        the link was sent), or None."""
        with _storage_errors("read"):
            try:
                self._check_link(self._client(), link_id, snooze_id, issued_by(link_expires))
            except LinkRefused as refused:
                return refused.message
            except ResourceNotFoundError:
                return None
        return None

    def get(self, snooze_id: str) -> Snooze | None:
        with _storage_errors("read"):
            entity = self._raw(self._client(), PARTITION, snooze_id)
        return None if entity is None else Snooze.from_entity(entity)

    def load(self, now: datetime | None = None) -> SnoozeRows:
        """Every stored snooze that passes the checks a new one passes; the others are
        skipped, each with its row key and why (never an exception for a bad row)."""
        now = now or datetime.now(UTC)
        with _storage_errors("read"):
            try:
                entities = list(self._client().query_entities(f"PartitionKey eq '{PARTITION}'"))
            except ResourceNotFoundError:
                entities = []
        snoozes, skipped = [], []
        for entity in entities:
            try:
                snoozes.append(parse_row(entity, now))
            except SnoozeRowError as exc:
                skipped.append((str(entity.get("RowKey", "?")), plain(str(exc))[:300]))
        return SnoozeRows(sorted(snoozes, key=lambda s: s.created), skipped)

    def all(self) -> list[Snooze]:
        return self.load().snoozes

    def remove(self, snooze_id: str, now: datetime | None = None) -> bool:
        """Delete a snooze (valid or not) and revoke every link sent for it until now: a link
        of an older card cannot create it again."""
        now = now or datetime.now(UTC)
        with _storage_errors("delete"):
            table = self._client()
            entity = self._raw(table, PARTITION, snooze_id)
            if entity is None:
                return False
            until = now + LINK_LIFETIME + CLOCK_SKEW
            removed = (now + REVOKE_MARGIN).isoformat()
            table.upsert_entity(_marker(REMOVED, snooze_id, until, Removed=removed))
            link = entity.get("Link")
            if isinstance(link, str) and _LINK_ID.match(link):
                table.upsert_entity(_marker(LINKS, link, until, Snooze=snooze_id))
            table.delete_entity(PARTITION, snooze_id)
        return True

    def _check_link(self, table: TableClient, link_id: str, snooze_id: str,
                    issued: datetime) -> None:
        if not _LINK_ID.match(link_id):
            raise LinkRefused("malformed link")
        if self._raw(table, LINKS, link_id) is not None:
            raise LinkRefused("this link has already been used; the snooze it made is listed "
                              "by 'huntwire suppressions list'")
        removed = self._raw(table, REMOVED, snooze_id)
        if removed is not None and issued <= _instant(removed.get("Removed")):
            raise LinkRefused("this snooze was removed after this link was sent; the link of a "
                              "newer card can snooze it again")

    def _purge(self, now: datetime) -> None:
        """Drop link markers past their link's lifetime (best effort: they are tiny)."""
        try:
            table = self._client()
            for partition in (LINKS, REMOVED):
                for entity in table.query_entities(
                        f"PartitionKey eq '{partition}' and Until lt @now",
                        parameters={"now": now.astimezone(UTC).isoformat()}):
                    table.delete_entity(partition, str(entity["RowKey"]))
        except AzureError:
            pass

    def _client(self) -> TableClient:
        return self.storage.table(self._table_name)

    @staticmethod
    def _raw(table: TableClient, partition: str, row_key: str) -> dict[str, Any] | None:
        try:
            return dict(table.get_entity(partition, row_key))
        except ResourceNotFoundError:
            return None


class LinkRefused(HuntwireError):
    """A genuine link that may no longer create its snooze: spent, or revoked by a removal."""

    permanent = True


def issued_by(link_expires: datetime) -> datetime:
    """When a link was sent: links live LINK_LIFETIME (a shorter-lived one counts as older,
    so a removal revokes it too)."""
    return link_expires - LINK_LIFETIME


def _active(entity: Mapping[str, Any], now: datetime) -> bool:
    try:
        return parse_row(entity, now).expires >= now.date()
    except SnoozeRowError:
        return False  # an unusable row never blocks a genuine snooze


def _marker(partition: str, row_key: str, until: datetime, **fields: str) -> dict[str, Any]:
    return {"PartitionKey": partition, "RowKey": row_key,
            "Until": until.astimezone(UTC).isoformat(), **fields}


def _instant(value: Any) -> datetime:
    """A marker's time; an unreadable one counts as the end of time (refuse, never allow)."""
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        return datetime.max.replace(tzinfo=UTC)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _storage_errors(action: str) -> AbstractContextManager[None]:
    return storage_errors(f"snooze {action} in table {TABLE}", SnoozeStoreError)
