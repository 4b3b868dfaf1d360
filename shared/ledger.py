"""The findings ledger: every hit remembered in Azure Table Storage, so each finding is posted once.

Tables (all created on first use, in one storage account):

``huntwireFindingsYYYYMMDD`` (one per UTC event day) and ``huntwireFindings`` (undated keys)
    PartitionKey = hunt id, RowKey = the finding key (below). Properties: ``State`` (``pending``
    until Teams accepted the finding, then ``notified``), ``FirstSeen``, ``LastSeen``,
    ``TimesSeen`` (runs that returned the row), ``NotifiedAt``, ``EventTime``, ``Row`` (JSON
    summary of the result row, at most 16 KiB of UTF-8, far below the 64 KiB string and 1 MiB
    entity limits), ``RowTruncated`` (only when something was cut), and ``ClaimedAt`` /
    ``LeaseUntil`` once re-opened or leased (a fresh claim is leased to its run until
    ``FirstSeen`` + ``claim_lease``; leaving them out keeps the hot path's writes small).
``huntwirePending``
    PartitionKey = hunt id, RowKey = claim time + run + sequence. Each entity (a *marker*) lists up
    to 500 finding keys that were claimed or re-opened together. ``pending()`` reads this small
    partition instead of scanning the findings; markers shrink as findings are notified.
``huntwireCheckpoints``
    PartitionKey = hunt id, RowKey = ``latest``: last successful window end, last run, last
    error and counts.

Finding keys
    ``sha256`` of the hunt id and the identity columns (``dedupBy``, or the whole row when it is
    empty), 32 hex digits, so any value (slashes, ``#``, control characters, megabytes of text) is
    safe as a RowKey. The key starts with the UTC day of the row's event time, ``YYYYMMDD-<hash>``,
    when the identity includes the event time: ``dedupBy`` is empty (the whole row includes it),
    names the time column, or names ``ReportId``. Defender documents ``ReportId`` as a per-device
    repeating counter that identifies an event only together with ``Timestamp``, so for those
    hunts the event time joins the hash. Rows whose identity does not include the time (e.g.
    ``dedupBy: [AccountName]``), or that have no parseable time column, get ``u-<hash>`` and live
    in the undated table.

    Why: the run knows the event days of its rows, so it reads only the hunt's partition in those
    days' tables (one query per day) and never the rest of the ledger; writes land in tables that
    hold only those days, so their cost does not grow with history either (Azurite's in-memory
    index even costs O(table size) per update), and old days can be dropped as whole tables. The
    event time of an event never changes, so an event always maps to the same day: the prefix
    changes nothing about identity. Trade-offs: a day read returns every finding of that hunt on
    that day, not only the rows of this run (bounded by the hunt's daily volume, not the ledger's
    size), so a day with few wanted keys is read with point lookups instead; ``u-`` keys always
    use point queries (14 keys a query, in parallel), which cost more per row but still grow with
    the rows seen; the undated table is not split by day.

Claims
    New findings are inserted with ``create`` (insert-if-absent) in entity-group transactions (at
    most 100 operations, one partition and 3 MiB of entities each; the service takes 4 MiB); when
    another run inserted one of them first, the batch fails as a whole and its rows are retried one
    by one, so exactly one run claims each finding. Existing findings are updated with
    ETag-conditional merges (re-read and retried on conflict). The marker listing a claim is
    written *before* the findings, so a crash can never leave a pending finding that ``pending()``
    does not list; a marker whose finding does not exist is skipped (and dropped once it is two
    days old).

Posting (the runner)
    ``record()`` then post ``pending()`` (which includes this run's new findings and those of runs
    whose post failed), then ``mark_notified()`` with what Teams accepted. When a timer run and a
    manual run may overlap, post ``result.new`` plus ``take_pending(now)`` instead: claims are
    leased to the claiming run for ``claim_lease`` and ``take_pending`` leases with ETags, so no
    finding is posted by both. A crash after Teams accepted a post but before ``mark_notified``
    posts it again on the next run (at least once, never lost).
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import Any, Final, TypeVar

from azure.core import MatchConditions
from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    AzureError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ResourceNotFoundError,
)
from azure.data.tables import (
    TableClient,
    TableEntity,
    TableServiceClient,
    TableTransactionError,
    UpdateMode,
)

from .errors import StorageError
from .hunt import Hunt

PENDING: Final = "pending"
NOTIFIED: Final = "notified"
MAX_BATCH: Final = 100
"""Entity-group transactions hold at most 100 operations, all in one partition."""
MAX_BATCH_BYTES: Final = 3 * 1024 * 1024
"""A transaction's body may hold 4 MiB; 3 MiB of entities leaves room for the MIME framing."""
MAX_FILTER_KEYS: Final = 14
"""A $filter allows 15 comparisons: one for PartitionKey, 14 for RowKeys."""
MARKER_KEYS: Final = 500
"""Keys per pending marker: 500 x 42 characters stays below the 32K-character string limit."""
ROW_SUMMARY_MAX_BYTES: Final = 16 * 1024
VALUE_MAX_CHARS: Final = 2048
LAST_ERROR_MAX_CHARS: Final = 2000
UNDATED_PREFIX: Final = "u-"
CHECKPOINT_ROW: Final = "latest"
DEFAULT_CLAIM_LEASE: Final = timedelta(minutes=15)
ABANDONED_MARKER_AGE: Final = timedelta(days=2)
UPDATE_ATTEMPTS: Final = 5
CLIENT_OPTIONS: Final[dict[str, Any]] = {
    "connection_timeout": 10,
    "read_timeout": 60,
    "retry_total": 3,
    "retry_backoff_factor": 0.8,
    "retry_backoff_max": 20,
}
"""Bounded timeouts (seconds) and retries for every Table Storage request."""

_DATED_KEY = re.compile(r"^\d{8}-[0-9a-f]{32}$")
_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")
_KEY_FORBIDDEN = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")
_LOOKUP_COLUMNS: Final = ["RowKey", "State", "FirstSeen", "LastSeen", "TimesSeen", "EventTime",
                          "NotifiedAt"]
_URL = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*://[^/\s?#]+)[^\s\"'<>]*")
_T = TypeVar("_T")
Operation = tuple[str, dict[str, Any], dict[str, Any]]


class LedgerError(StorageError):
    """Table Storage could not record or read findings. Messages name the hunt, never secrets."""

    def __init__(self, message: str, *, hunt_id: str | None = None, status: int | None = None):
        self.hunt_id = hunt_id
        self.status = status
        super().__init__(message)


@dataclass(frozen=True)
class Finding:
    hunt_id: str
    key: str
    """The RowKey in the findings table."""
    row: dict[str, Any]
    """Size-capped summary of the result row (JSON-safe values; datetimes as ISO strings)."""
    event_time: datetime | None
    first_seen: datetime
    times_seen: int


@dataclass(frozen=True)
class RecordResult:
    new: list[Finding]
    """Claimed by this call and now pending: first sightings plus re-opened findings."""
    seen: int
    """Distinct findings already in the ledger (times_seen/last_seen bumped), not re-opened."""
    reopened: int
    """How many of ``new`` were re-opened by ``realertAfter`` rather than first seen."""


@dataclass
class Checkpoint:
    hunt_id: str
    last_success_end: datetime | None = None
    last_run_start: datetime | None = None
    last_error: str | None = None
    rows: int = 0
    new: int = 0
    posted: int = 0


@dataclass(frozen=True)
class Observation:
    """One distinct finding in a run's rows: its key, summary and event time."""

    key: str
    row: dict[str, Any]
    row_json: str
    truncated: bool
    event_time: datetime | None


@dataclass(frozen=True)
class _Marker:
    row_key: str
    keys: tuple[str, ...]
    created_at: datetime
    etag: str | None


# ---------------------------------------------------------------------------------------------
# Keys, event times and row summaries (pure functions)


def event_time_of(hunt: Hunt, row: Mapping[str, Any]) -> datetime | None:
    """``row[hunt.time_column]`` as an aware UTC datetime, or None when absent or unparseable."""
    value = row.get(hunt.time_column)
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            return None
    if not isinstance(value, datetime):
        return None
    return _utc(value)


def identity_includes_time(hunt: Hunt) -> bool:
    """Whether a finding's identity includes its event time (see the module docstring)."""
    columns = hunt.dedup_by
    return not columns or hunt.time_column in columns or "ReportId" in columns


def finding_key(hunt: Hunt, row: Mapping[str, Any]) -> str:
    """The stable RowKey of *row*: ``YYYYMMDD-<hash>`` when time-keyed, else ``u-<hash>``."""
    return _key(hunt, row, event_time_of(hunt, row))


def _key(hunt: Hunt, row: Mapping[str, Any], event_time: datetime | None) -> str:
    dated = event_time is not None and identity_includes_time(hunt)
    identity = _identity(hunt, row, event_time if dated else None)
    digest = hashlib.sha256(_canonical_json([hunt.id, identity]).encode("ascii")).hexdigest()[:32]
    if dated and event_time is not None:
        return f"{event_time:%Y%m%d}-{digest}"
    return UNDATED_PREFIX + digest


def _identity(hunt: Hunt, row: Mapping[str, Any], event_time: datetime | None) -> dict[str, Any]:
    if not hunt.dedup_by:
        return dict(row)
    missing = [column for column in hunt.dedup_by if column not in row]
    if missing:
        raise LedgerError(f"hunt {hunt.id}: dedupBy column(s) {', '.join(missing)} are not in "
                          "the query result", hunt_id=hunt.id)
    identity = {column: row[column] for column in hunt.dedup_by}
    if event_time is not None and hunt.time_column not in identity:
        identity[hunt.time_column] = event_time
    return identity


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=True, separators=(",", ":"),
                      default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(_utc(value))
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    return str(value)


def summarize_row(row: Mapping[str, Any], first: Sequence[str] = (),
                  max_bytes: int = ROW_SUMMARY_MAX_BYTES,
                  max_value_chars: int = VALUE_MAX_CHARS) -> tuple[dict[str, Any], bool]:
    """A JSON-safe copy of *row* whose JSON is at most *max_bytes* of UTF-8.

    Long values are cut to *max_value_chars* with a note of how much was cut; columns named in
    *first* are kept before the others; columns that no longer fit are left out. Returns the
    summary and whether anything was cut or left out.
    """
    summary, _, truncated = _summarize(row, first, max_bytes, max_value_chars)
    return summary, truncated


def _summarize(row: Mapping[str, Any], first: Sequence[str], max_bytes: int,
               max_value_chars: int) -> tuple[dict[str, Any], str, bool]:
    """(summary, its JSON text, truncated)."""
    values: dict[str, Any] = {}
    truncated = False
    for name, value in row.items():
        capped, cut = _capped(_json_safe(value), max_value_chars)
        values[_clean_text(str(name))] = capped
        truncated |= cut
    text = row_json(values)
    if not truncated and len(text.encode()) <= max_bytes:
        return values, text, False
    order = [*(c for c in first if c in values), *(c for c in values if c not in first)]
    budget = max_bytes - 1  # the braces, less the comma the first member does not need
    kept: set[str] = set()
    for name in order:
        size = len(row_json({name: values[name]}).encode()) - 1  # '"name":value,'
        if size > budget:
            truncated = True
            continue
        kept.add(name)
        budget -= size
    summary = {name: value for name, value in values.items() if name in kept}
    return summary, row_json(summary), truncated


def row_json(summary: Mapping[str, Any]) -> str:
    """The compact JSON text a summary is stored as."""
    return _compact_json(summary)


def _compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return _clean_text(value)
    if isinstance(value, datetime):
        return _iso(_utc(value))
    if isinstance(value, Mapping):
        return {_clean_text(str(k)): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return _clean_text(str(value))


def _clean_text(text: str) -> str:
    """Replace lone surrogates, which cannot be sent as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _capped(value: Any, max_chars: int) -> tuple[Any, bool]:
    if isinstance(value, dict | list):
        text = _compact_json(value)
        return (value, False) if len(text) <= max_chars else (_cut(text, max_chars), True)
    if isinstance(value, str) and len(value) > max_chars:
        return _cut(value, max_chars), True
    return value, False


def _cut(text: str, max_chars: int) -> str:
    return f"{text[:max_chars]}… [{len(text) - max_chars} more characters]"


def observe(hunt: Hunt, rows: Iterable[Mapping[str, Any]]) -> dict[str, Observation]:
    """The distinct findings in *rows*, by key, in first-seen order."""
    first = (*hunt.dedup_by, hunt.time_column)
    observed: dict[str, Observation] = {}
    for row in rows:
        event_time = event_time_of(hunt, row)
        key = _key(hunt, row, event_time)
        if key in observed:
            continue
        summary, text, truncated = _summarize(row, first, ROW_SUMMARY_MAX_BYTES,
                                              VALUE_MAX_CHARS)
        observed[key] = Observation(key, summary, text, truncated, event_time)
    return observed


# ---------------------------------------------------------------------------------------------
# Small helpers


def _utc(moment: datetime) -> datetime:
    """A plain aware UTC datetime (also turns the SDK's datetime subclass into datetime)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    return datetime(moment.year, moment.month, moment.day, moment.hour, moment.minute,
                    moment.second, moment.microsecond, tzinfo=UTC)


def _utc_or_none(value: Any) -> datetime | None:
    return _utc(value) if isinstance(value, datetime) else None


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _require_aware(now: datetime) -> datetime:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return _utc(now)


def _chunks(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _check_partition_key(value: str) -> str:
    if not value or len(value) > 512 or _KEY_FORBIDDEN.search(value):
        raise LedgerError("hunt id is not usable as a Table Storage key (empty, too long, or "
                          "contains / \\ # ? or control characters)", hunt_id=value[:80])
    return value


def redact(text: str) -> str:
    """*text* with every URL cut to its scheme and host (webhook URLs carry their secret)."""
    return _URL.sub(r"\1/…", _clean_text(text))


def _utcnow() -> datetime:
    return datetime.now(UTC)


@contextmanager
def _storage_errors(action: str, hunt_id: str | None) -> Iterator[None]:
    """Turn SDK errors into LedgerError naming the action and hunt (not URLs, keys or tokens)."""
    try:
        yield
    except LedgerError:
        raise
    except HttpResponseError as exc:
        error_code = getattr(exc, "error_code", None)
        code = f" {error_code}" if error_code else ""
        raise LedgerError(f"{action} (hunt {hunt_id}) failed: HTTP {exc.status_code}{code}",
                          hunt_id=hunt_id, status=exc.status_code) from exc
    except AzureError as exc:
        raise LedgerError(f"{action} (hunt {hunt_id}) failed: {type(exc).__name__}",
                          hunt_id=hunt_id) from exc


def transact(table: TableClient, operations: Sequence[Operation]) -> None:
    """Submit one entity-group transaction, refusing what the service would reject."""
    if len(operations) > MAX_BATCH:
        raise LedgerError(f"a transaction holds at most {MAX_BATCH} operations, "
                          f"got {len(operations)}")
    if len({op[1]["PartitionKey"] for op in operations}) > 1:
        raise LedgerError("a transaction must stay in one partition")
    if sum(wire_size(op) for op in operations) > MAX_BATCH_BYTES:
        raise LedgerError(f"a transaction holds at most {MAX_BATCH_BYTES} bytes of entities")
    if operations:
        table.submit_transaction(operations)


def wire_size(operation: Operation) -> int:
    """An upper estimate of the bytes *operation* adds to a transaction body."""
    size = 1024  # MIME part headers and request line
    for name, value in operation[1].items():
        size += 2 * len(name) + 64  # the name, quotes and an odata type annotation
        if isinstance(value, str):  # escaped as JSON: at most 12 bytes a character
            size += 12 * len(value) + 2 if len(value) <= 256 else len(json.dumps(value))
        else:
            size += 64
    return size


def batches(pairs: Sequence[tuple[_T, Operation]]) -> Iterator[list[tuple[_T, Operation]]]:
    """Consecutive groups of at most 100 operations and MAX_BATCH_BYTES (one partition each)."""
    batch: list[tuple[_T, Operation]] = []
    size = 0
    for pair in pairs:
        pair_size = wire_size(pair[1])
        if batch and (len(batch) == MAX_BATCH or size + pair_size > MAX_BATCH_BYTES):
            yield batch
            batch, size = [], 0
        batch.append(pair)
        size += pair_size
    if batch:
        yield batch


def submit_in_transactions(table: TableClient, pairs: Sequence[tuple[_T, Operation]]
                           ) -> Iterator[tuple[list[_T], bool]]:
    """Submit the operations of *pairs* in transactions; yield each batch's items and success.

    A transaction that fails (a conflict, a changed ETag) changes nothing; the caller retries
    its items one by one.
    """
    for batch in batches(pairs):
        try:
            transact(table, [operation for _, operation in batch])
        except TableTransactionError:
            yield [item for item, _ in batch], False
        else:
            yield [item for item, _ in batch], True


def _merge(entity: dict[str, Any], etag: str | None = None) -> Operation:
    options: dict[str, Any] = {"mode": UpdateMode.MERGE}
    if etag is not None:
        options.update(etag=etag, match_condition=MatchConditions.IfNotModified)
    return ("update", entity, options)


def _etag(entity: TableEntity) -> str | None:
    return entity.metadata.get("etag")


# ---------------------------------------------------------------------------------------------
# The ledger


class Ledger:
    """Findings, pending markers and checkpoints of every hunt, in one Table Storage account."""

    def __init__(self, service: TableServiceClient, *, findings_table: str = "huntwireFindings",
                 pending_table: str = "huntwirePending",
                 checkpoints_table: str = "huntwireCheckpoints",
                 claim_lease: timedelta = DEFAULT_CLAIM_LEASE, point_lookup_limit: int = 98,
                 lookup_workers: int = 4, clock: Callable[[], datetime] = _utcnow) -> None:
        for name in (findings_table + "20000101", pending_table, checkpoints_table):
            if not _TABLE_NAME.match(name):
                raise ValueError(f"'{name}' is not a valid table name (findings_table takes at "
                                 "most 55 characters: a day is appended)")
        self._service = service
        self._findings_name = findings_table
        self._pending_name = pending_table
        self._checkpoints_name = checkpoints_table
        self._claim_lease = claim_lease
        self._point_lookup_limit = point_lookup_limit
        self._lookup_workers = max(1, lookup_workers)
        self._clock = clock
        self._tables: dict[str, TableClient] = {}
        self._tables_lock = threading.Lock()

    @classmethod
    def from_connection_string(cls, connection_string: str, **kw: Any) -> Ledger:
        """A ledger on the account of *connection_string* (e.g. Azurite's).

        Keyword arguments the constructor does not take go to the ``TableServiceClient``.
        """
        ledger_options, client_options = _split_options(kw)
        try:
            service = TableServiceClient.from_connection_string(connection_string,
                                                                **client_options)
        except ValueError:
            raise LedgerError("the storage connection string is not valid") from None
        return cls(service, **ledger_options)

    @classmethod
    def from_endpoint(cls, table_service_uri: str, credential: TokenCredential,
                      **kw: Any) -> Ledger:
        """A ledger on *table_service_uri* authenticated with *credential* (managed identity).

        Keyword arguments the constructor does not take go to the ``TableServiceClient``.
        """
        ledger_options, client_options = _split_options(kw)
        service = TableServiceClient(endpoint=table_service_uri, credential=credential,
                                     **client_options)
        return cls(service, **ledger_options)

    # -- public operations ----------------------------------------------------------------------

    def record(self, hunt: Hunt, rows: Sequence[Mapping[str, Any]], now: datetime) -> RecordResult:
        """Remember *rows*; claim the findings no run has seen, bump the others.

        A finding is in ``new`` of exactly one call, however many runs overlap. Rows mapping to
        the same key count once. Re-opening (``realertAfter``) needs a finding that was notified
        and then not seen for at least that long.
        """
        now = _require_aware(now)
        hunt_id = _check_partition_key(hunt.id)
        observed = observe(hunt, rows)
        if not observed:
            return RecordResult([], 0, 0)
        with _storage_errors("recording findings", hunt_id):
            return _Recorder(self, hunt, observed, now).run()

    def pending(self, hunt: Hunt) -> list[Finding]:
        """Every claimed, not yet notified finding of *hunt*, oldest first.

        Reads the hunt's markers and the findings they name (never the whole findings table), and
        drops marker entries of findings notified meanwhile.
        """
        with _storage_errors("listing pending findings", hunt.id):
            return [finding for finding, _ in self._pending_entities(hunt)]

    def take_pending(self, hunt: Hunt, now: datetime,
                     lease: timedelta | None = None) -> list[Finding]:
        """Pending findings no other run is posting, leased to the caller for *lease*.

        Use instead of ``pending()`` when runs may overlap: a claim leases its findings to the
        claiming run (``claim_lease``), and each lease is taken with an ETag-conditional write, so
        two overlapping runs never both get the same finding.
        """
        now = _require_aware(now)
        lease_until = now + (lease or self._claim_lease)
        with _storage_errors("leasing pending findings", hunt.id):
            candidates = [(finding, entity) for finding, entity in self._pending_entities(hunt)
                          if (self._lease_until(entity) or now) <= now]
            return self._lease(hunt.id, candidates, lease_until)

    def mark_notified(self, hunt: Hunt, findings: Sequence[Finding], now: datetime) -> None:
        """Record that Teams accepted *findings*; they leave the pending list."""
        now = _require_aware(now)
        keys = list(dict.fromkeys(finding.key for finding in findings))
        if any(finding.hunt_id != hunt.id for finding in findings):
            raise LedgerError(f"mark_notified got findings of another hunt than {hunt.id}",
                              hunt_id=hunt.id)
        if not keys:
            return
        with _storage_errors("marking findings notified", hunt.id):
            patches = [{"PartitionKey": hunt.id, "RowKey": key, "State": NOTIFIED,
                        "NotifiedAt": now} for key in keys]
            self._apply_merges(hunt.id, patches)
            self._prune_markers(hunt.id, self._markers(hunt.id), set(keys))

    def checkpoint(self, hunt_id: str) -> Checkpoint | None:
        """The stored checkpoint of *hunt_id*, or None before its first run."""
        table = self._table(self._checkpoints_name)
        with _storage_errors("reading the checkpoint", hunt_id):
            try:
                entity = table.get_entity(_check_partition_key(hunt_id), CHECKPOINT_ROW)
            except ResourceNotFoundError:
                return None
        return Checkpoint(
            hunt_id=hunt_id,
            last_success_end=_utc_or_none(entity.get("LastSuccessEnd")),
            last_run_start=_utc_or_none(entity.get("LastRunStart")),
            last_error=entity.get("LastError"),
            rows=int(entity.get("Rows", 0)),
            new=int(entity.get("New", 0)),
            posted=int(entity.get("Posted", 0)),
        )

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Store *checkpoint*, replacing the previous one (fields set to None are removed)."""
        entity: dict[str, Any] = {
            "PartitionKey": _check_partition_key(checkpoint.hunt_id), "RowKey": CHECKPOINT_ROW,
            "Rows": checkpoint.rows, "New": checkpoint.new, "Posted": checkpoint.posted,
        }
        if checkpoint.last_success_end is not None:
            entity["LastSuccessEnd"] = _require_aware(checkpoint.last_success_end)
        if checkpoint.last_run_start is not None:
            entity["LastRunStart"] = _require_aware(checkpoint.last_run_start)
        if checkpoint.last_error is not None:
            entity["LastError"] = redact(checkpoint.last_error)[:LAST_ERROR_MAX_CHARS]
        table = self._table(self._checkpoints_name)
        with _storage_errors("saving the checkpoint", checkpoint.hunt_id):
            table.upsert_entity(entity, mode=UpdateMode.REPLACE)

    # -- tables -------------------------------------------------------------------------------

    def _table(self, name: str) -> TableClient:
        """The table client, creating the table on first use."""
        with self._tables_lock:
            if name not in self._tables:
                with _storage_errors(f"creating table {name}", None):
                    self._tables[name] = self._service.create_table_if_not_exists(name)
            return self._tables[name]

    @property
    def findings_client(self) -> TableClient:
        """The table of findings without an event day (``u-`` keys)."""
        return self._table(self._findings_name)

    def findings_table_name(self, key: str) -> str:
        """``huntwireFindingsYYYYMMDD`` for a key of that event day, else ``huntwireFindings``."""
        return self._findings_name + key[:8] if _DATED_KEY.match(key) else self._findings_name

    def findings_client_for(self, key: str) -> TableClient:
        return self._table(self.findings_table_name(key))

    def findings_clients(self) -> list[TableClient]:
        """Every findings table that exists: the undated one and one per event day (retention
        can drop whole days: Microsoft's "high volume delete" pattern)."""
        day_table = re.compile(re.escape(self._findings_name) + r"(\d{8})?")
        with _storage_errors("listing findings tables", None):
            tables = self._service.query_tables(
                "TableName ge @low and TableName lt @high",
                parameters={"low": self._findings_name, "high": self._findings_name + "{"})
            names = sorted(table.name for table in tables if day_table.fullmatch(table.name))
        return [self._table(name) for name in names]

    @property
    def pending_client(self) -> TableClient:
        return self._table(self._pending_name)

    # -- reads --------------------------------------------------------------------------------

    def read_findings(self, hunt_id: str, keys: Iterable[str],
                      select: list[str] | None = None) -> dict[str, TableEntity]:
        """The stored findings among *keys*, without scanning the table.

        When many keys of one event day are wanted, the hunt's partition of that day's table is
        read with one query; other keys with point queries of 14 keys. Queries run in parallel.
        """
        wanted = list(dict.fromkeys(keys))
        queries: list[Callable[[], list[TableEntity]]] = []
        for name, table_keys in _group(wanted, self.findings_table_name).items():
            table = self._table(name)
            if name != self._findings_name and len(table_keys) > self._point_lookup_limit:
                queries.append(partial(_read_partition, table, hunt_id, select))
                continue
            queries.extend(partial(_read_keys, table, hunt_id, chunk, select)
                           for chunk in _chunks(table_keys, MAX_FILTER_KEYS))
        wanted_set = set(wanted)
        return {entity["RowKey"]: entity for batch in self._run_parallel(queries)
                for entity in batch if entity["RowKey"] in wanted_set}

    def _run_parallel(self, queries: list[Callable[[], list[TableEntity]]]
                      ) -> list[list[TableEntity]]:
        if len(queries) <= 1:
            return [query() for query in queries]
        with ThreadPoolExecutor(min(self._lookup_workers, len(queries))) as pool:
            return list(pool.map(lambda query: query(), queries))

    # -- pending markers -------------------------------------------------------------------------

    def _write_markers(self, hunt_id: str, keys: Sequence[str], now: datetime) -> None:
        """List *keys* as pending (before they are claimed or re-opened)."""
        if not keys:
            return
        stamp = f"{now:%Y%m%dT%H%M%S%fZ}-{uuid.uuid4().hex[:12]}"
        markers = [{"PartitionKey": hunt_id, "RowKey": f"{stamp}-{number:05d}",
                    "Keys": ",".join(chunk), "CreatedAt": now}
                   for number, chunk in enumerate(_chunks(keys, MARKER_KEYS))]
        for batch in batches([(None, ("create", marker, {})) for marker in markers]):
            transact(self.pending_client, [operation for _, operation in batch])

    def _markers(self, hunt_id: str) -> list[_Marker]:
        entities = self.pending_client.query_entities("PartitionKey eq @pk",
                                                     parameters={"pk": hunt_id})
        return [_Marker(entity["RowKey"], tuple(k for k in entity.get("Keys", "").split(",") if k),
                        _utc_or_none(entity.get("CreatedAt")) or datetime.min.replace(tzinfo=UTC),
                        _etag(entity))
                for entity in entities]

    def _prune_markers(self, hunt_id: str, markers: Sequence[_Marker], stale: set[str]) -> None:
        """Drop *stale* keys from markers; a marker changed meanwhile is left for the next time."""
        table = self.pending_client
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

    def _pending_entities(self, hunt: Hunt) -> list[tuple[Finding, TableEntity]]:
        markers = self._markers(hunt.id)
        keys = list(dict.fromkeys(key for marker in markers for key in marker.keys))
        if not keys:
            return []
        stored = self.read_findings(hunt.id, keys)
        abandoned_before = _utc(self._clock()) - ABANDONED_MARKER_AGE
        stale = {key for key, entity in stored.items() if entity.get("State") != PENDING}
        stale |= {key for marker in markers if marker.created_at < abandoned_before
                  for key in marker.keys if key not in stored}
        self._prune_markers(hunt.id, markers, stale)
        live = [(_finding(hunt.id, entity), entity) for key, entity in stored.items()
                if key not in stale]
        return sorted(live, key=lambda pair: _age_order(pair[0]))

    # -- writes -------------------------------------------------------------------------------

    def _apply_merges(self, hunt_id: str, patches: Sequence[dict[str, Any]]) -> None:
        """Unconditional merges in transactions; findings that vanished are skipped."""
        by_table = _group(patches, lambda patch: self.findings_table_name(patch["RowKey"]))
        for name, table_patches in by_table.items():
            table = self._table(name)
            pairs = [(patch, _merge(patch)) for patch in table_patches]
            for batch, done in submit_in_transactions(table, pairs):
                for patch in [] if done else batch:
                    try:
                        table.update_entity(patch, mode=UpdateMode.MERGE)
                    except ResourceNotFoundError:
                        continue

    def _lease(self, hunt_id: str, candidates: Sequence[tuple[Finding, TableEntity]],
               lease_until: datetime) -> list[Finding]:
        won: list[Finding] = []
        by_table = _group(candidates, lambda pair: self.findings_table_name(pair[0].key))
        for name, table_candidates in by_table.items():
            table = self._table(name)
            operations = [(finding, _merge({"PartitionKey": hunt_id, "RowKey": finding.key,
                                            "LeaseUntil": lease_until}, _etag(entity)))
                          for finding, entity in table_candidates]
            pairs = [((finding, operation), operation) for finding, operation in operations]
            for batch, done in submit_in_transactions(table, pairs):
                for finding, (_, patch, options) in batch:
                    try:
                        if not done:
                            table.update_entity(patch, **options)
                        won.append(finding)
                    except (ResourceModifiedError, ResourceNotFoundError):
                        continue
        return won

    def _claim_entity(self, hunt: Hunt, observation: Observation, now: datetime) -> dict[str, Any]:
        """The entity that claims *observation* as a new pending finding."""
        entity: dict[str, Any] = {
            "PartitionKey": hunt.id, "RowKey": observation.key, "State": PENDING,
            "FirstSeen": now, "LastSeen": now, "TimesSeen": 1, "Row": observation.row_json,
        }  # claimed at FirstSeen, leased to the claimant until FirstSeen + claim_lease
        if observation.truncated:
            entity["RowTruncated"] = True
        if observation.event_time is not None:
            entity["EventTime"] = observation.event_time
        return entity

    def _lease_until(self, entity: Mapping[str, Any]) -> datetime | None:
        lease = _utc_or_none(entity.get("LeaseUntil"))
        if lease is not None:
            return lease
        claimed = _utc_or_none(entity.get("ClaimedAt")) or _utc_or_none(entity.get("FirstSeen"))
        return claimed + self._claim_lease if claimed is not None else None

    def _touch_patch(self, hunt: Hunt, stored: TableEntity, observation: Observation,
                    now: datetime, reopen: bool) -> dict[str, Any]:
        """The merge that records another sighting of *stored* (and re-opens it if asked)."""
        last_seen = _utc_or_none(stored.get("LastSeen")) or now
        patch: dict[str, Any] = {"PartitionKey": hunt.id, "RowKey": observation.key,
                                 "LastSeen": max(last_seen, now),
                                 "TimesSeen": int(stored.get("TimesSeen", 0)) + 1}
        if reopen:
            patch.update(State=PENDING, ClaimedAt=now, LeaseUntil=now + self._claim_lease,
                         Row=observation.row_json, RowTruncated=observation.truncated)
        return patch


_LEDGER_OPTIONS = frozenset({"findings_table", "pending_table", "checkpoints_table",
                             "claim_lease", "point_lookup_limit", "lookup_workers", "clock"})


def _split_options(kw: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(Ledger options, TableServiceClient options with the bounded defaults)."""
    ledger = {name: value for name, value in kw.items() if name in _LEDGER_OPTIONS}
    client = {**CLIENT_OPTIONS, **{n: v for n, v in kw.items() if n not in _LEDGER_OPTIONS}}
    return ledger, client


def due_for_realert(hunt: Hunt, stored: Mapping[str, Any], now: datetime) -> bool:
    """A notified finding not seen for ``realertAfter`` is re-opened when it shows up again."""
    if hunt.realert_after is None or stored.get("State") != NOTIFIED:
        return False
    last_seen = _utc_or_none(stored.get("LastSeen"))
    return last_seen is not None and now - last_seen >= hunt.realert_after


def _group(items: Iterable[_T], name_of: Callable[[_T], str]) -> dict[str, list[_T]]:
    """*items* by table name, in first-seen order (a transaction never spans two tables)."""
    groups: dict[str, list[_T]] = {}
    for item in items:
        groups.setdefault(name_of(item), []).append(item)
    return groups


def _read_partition(table: TableClient, hunt_id: str,
                    select: list[str] | None) -> list[TableEntity]:
    return list(table.query_entities("PartitionKey eq @pk", parameters={"pk": hunt_id},
                                     select=select))


def _read_keys(table: TableClient, hunt_id: str, keys: Sequence[str],
               select: list[str] | None) -> list[TableEntity]:
    parameters = {"pk": hunt_id, **{f"k{i}": key for i, key in enumerate(keys)}}
    alternatives = " or ".join(f"RowKey eq @k{i}" for i in range(len(keys)))
    return list(table.query_entities(f"PartitionKey eq @pk and ( {alternatives} )",
                                     parameters=parameters, select=select))


def _age_order(finding: Finding) -> tuple[datetime, datetime, str]:
    """Oldest first: by first sighting, then event time, then key."""
    return (finding.first_seen, finding.event_time or finding.first_seen, finding.key)


def _finding(hunt_id: str, entity: Mapping[str, Any]) -> Finding:
    row = json.loads(entity.get("Row") or "{}")
    first_seen = _utc_or_none(entity.get("FirstSeen")) or datetime.min.replace(tzinfo=UTC)
    return Finding(hunt_id=hunt_id, key=entity["RowKey"], row=row,
                   event_time=_utc_or_none(entity.get("EventTime")), first_seen=first_seen,
                   times_seen=int(entity.get("TimesSeen", 1)))


class _Recorder:
    """One ``record()`` call: read what exists, mark, claim, bump, re-open."""

    def __init__(self, ledger: Ledger, hunt: Hunt, observed: dict[str, Observation],
                 now: datetime) -> None:
        self.ledger = ledger
        self.hunt = hunt
        self.observed = observed
        self.now = now
        self.marked: set[str] = set()
        self.new: list[Finding] = []
        self.seen = 0
        self.reopened = 0

    def run(self) -> RecordResult:
        existing = self.ledger.read_findings(self.hunt.id, self.observed, _LOOKUP_COLUMNS)
        absent = [key for key in self.observed if key not in existing]
        reopen = [key for key, entity in existing.items()
                  if due_for_realert(self.hunt, entity, self.now)]
        self._mark([*absent, *reopen])
        raced = self._claim([self.observed[key] for key in absent])
        existing.update(raced)
        self._touch(existing)
        return RecordResult(self.new, self.seen, self.reopened)

    def _mark(self, keys: Sequence[str]) -> None:
        keys = [key for key in keys if key not in self.marked]
        self.ledger._write_markers(self.hunt.id, keys, self.now)
        self.marked.update(keys)

    def _claim(self, observations: Sequence[Observation]) -> dict[str, TableEntity]:
        """Insert-if-absent; returns the findings another run inserted first (re-read)."""
        raced: dict[str, TableEntity] = {}
        by_table = _group(observations, lambda obs: self.ledger.findings_table_name(obs.key))
        for name, table_observations in by_table.items():
            table = self.ledger._table(name)
            pairs: list[tuple[tuple[Observation, dict[str, Any]], Operation]] = []
            for obs in table_observations:
                entity = self.ledger._claim_entity(self.hunt, obs, self.now)
                pairs.append(((obs, entity), ("create", entity, {})))
            for batch, done in submit_in_transactions(table, pairs):
                for obs, entity in batch:
                    try:
                        if not done:
                            table.create_entity(entity)
                        self.new.append(self._claimed(obs))
                    except ResourceExistsError:
                        raced[obs.key] = table.get_entity(self.hunt.id, obs.key)
        return raced

    def _claimed(self, obs: Observation) -> Finding:
        return Finding(self.hunt.id, obs.key, obs.row, obs.event_time, self.now, 1)

    def _touch(self, existing: Mapping[str, TableEntity]) -> None:
        """Bump every existing finding (ETag-conditional); re-open those due for it."""
        plans = [(key, entity, due_for_realert(self.hunt, entity, self.now))
                 for key, entity in existing.items()]
        self._mark([key for key, _, reopen in plans if reopen])
        for name, table_plans in _group(plans, self._table_name_of_plan).items():
            pairs = [(plan, _merge(self._patch(plan[1], plan[0], plan[2]), _etag(plan[1])))
                     for plan in table_plans]
            for batch, done in submit_in_transactions(self.ledger._table(name), pairs):
                for key, entity, reopen in batch:
                    if done:
                        self._count(key, entity, reopen)
                    else:
                        self._touch_one(key, entity)

    def _table_name_of_plan(self, plan: tuple[str, TableEntity, bool]) -> str:
        return self.ledger.findings_table_name(plan[0])

    def _touch_one(self, key: str, entity: TableEntity) -> None:
        table = self.ledger.findings_client_for(key)
        for _ in range(UPDATE_ATTEMPTS):
            reopen = due_for_realert(self.hunt, entity, self.now)
            if reopen:
                self._mark([key])
            try:
                table.update_entity(self._patch(entity, key, reopen), mode=UpdateMode.MERGE,
                                    etag=_etag(entity),
                                    match_condition=MatchConditions.IfNotModified)
                self._count(key, entity, reopen)
                return
            except ResourceModifiedError:
                entity = table.get_entity(self.hunt.id, key)
        raise LedgerError(f"finding {key} of hunt {self.hunt.id} kept changing; gave up after "
                          f"{UPDATE_ATTEMPTS} attempts", hunt_id=self.hunt.id)

    def _patch(self, entity: TableEntity, key: str, reopen: bool) -> dict[str, Any]:
        return self.ledger._touch_patch(self.hunt, entity, self.observed[key], self.now, reopen)

    def _count(self, key: str, entity: TableEntity, reopen: bool) -> None:
        if not reopen:
            self.seen += 1
            return
        self.reopened += 1
        obs = self.observed[key]
        first_seen = _utc_or_none(entity.get("FirstSeen")) or self.now
        self.new.append(Finding(self.hunt.id, key, obs.row, obs.event_time, first_seen,
                                int(entity.get("TimesSeen", 0)) + 1))


def ledger_from_settings(settings: Mapping[str, str], credential: TokenCredential | None = None,
                         **kw: Any) -> Ledger:
    """The ledger the app settings describe.

    ``HUNTWIRE_STORAGE`` (a connection string, e.g. Azurite's) wins; otherwise
    ``HUNTWIRE_STORAGE__tableServiceUri`` with *credential* (the managed identity).
    """
    connection_string = settings.get("HUNTWIRE_STORAGE", "").strip()
    if connection_string:
        return Ledger.from_connection_string(connection_string, **kw)
    endpoint = settings.get("HUNTWIRE_STORAGE__tableServiceUri", "").strip()
    if not endpoint:
        raise LedgerError("no storage configured: set HUNTWIRE_STORAGE or "
                          "HUNTWIRE_STORAGE__tableServiceUri")
    if credential is None:
        raise LedgerError("HUNTWIRE_STORAGE__tableServiceUri needs a credential "
                          "(managed identity)")
    return Ledger.from_endpoint(endpoint, credential, **kw)
