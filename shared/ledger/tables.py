"""The ledger's tables on the storage layer: findings split by event day, reads without scans,
entity-group transactions checked against the service's limits, SDK errors as LedgerError."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from functools import partial
from typing import Any, Final, TypeVar

from azure.core import MatchConditions
from azure.data.tables import TableClient, TableEntity, TableTransactionError, UpdateMode

from ..storage import Storage
from ..storage import storage_errors as translate
from .model import LedgerError

MAX_BATCH: Final = 100
"""Entity-group transactions hold at most 100 operations, all in one partition."""
MAX_BATCH_BYTES: Final = 3 * 1024 * 1024
"""A transaction's body may hold 4 MiB; 3 MiB of entities leaves room for the MIME framing."""
MAX_FILTER_KEYS: Final = 14
"""A $filter allows 15 comparisons: one for PartitionKey, 14 for RowKeys."""

_DATED_KEY = re.compile(r"^\d{8}-[0-9a-f]{32}$")
_TABLE_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9]{2,62}$")
_T = TypeVar("_T")
Operation = tuple[str, dict[str, Any], dict[str, Any]]
"""One transaction operation as the SDK takes it: (kind, entity, options)."""


class Tables:
    """The findings, pending and checkpoints tables of one storage account."""

    def __init__(self, storage: Storage, *, findings: str, pending: str,
                 checkpoints: str, point_lookup_limit: int = 98, lookup_workers: int = 4) -> None:
        for name in (storage.name(findings) + "20000101", storage.name(pending),
                     storage.name(checkpoints)):
            if not _TABLE_NAME.match(name):
                raise ValueError(f"'{name}' is not a valid table name (findings_table takes at "
                                 "most 55 characters: a day is appended)")
        self._storage = storage
        self._findings = findings
        self._pending = pending
        self._checkpoints = checkpoints
        self._point_lookup_limit = point_lookup_limit
        self._lookup_workers = max(1, lookup_workers)

    def table(self, name: str) -> TableClient:
        """The table client, creating the table on first use."""
        return self._storage.table(name)

    @property
    def pending(self) -> TableClient:
        return self.table(self._pending)

    @property
    def checkpoints(self) -> TableClient:
        return self.table(self._checkpoints)

    @property
    def undated_findings(self) -> TableClient:
        """The table of findings without an event day (``u-`` keys)."""
        return self.table(self._findings)

    def findings_table_name(self, key: str) -> str:
        """``<findings>YYYYMMDD`` for a key of that event day, else the undated table."""
        return self._findings + key[:8] if _DATED_KEY.match(key) else self._findings

    def findings_for(self, key: str) -> TableClient:
        return self.table(self.findings_table_name(key))

    def all_findings(self) -> list[TableClient]:
        """Every findings table that exists: the undated one and one per event day (retention
        can drop whole days: Microsoft's "high volume delete" pattern)."""
        day_table = re.compile(re.escape(self._findings) + r"(\d{8})?")
        with storage_errors("listing findings tables", None):
            names = sorted(name for name in self._storage.tables_between(
                self._findings, self._findings + "{") if day_table.fullmatch(name))
        return [self.table(name) for name in names]

    def read_findings(self, hunt_id: str, keys: Iterable[str],
                      select: list[str] | None = None) -> dict[str, TableEntity]:
        """The stored findings among *keys*, without scanning the table.

        When many keys of one event day are wanted, the hunt's partition of that day's table is
        read with one query; other keys with point queries of 14 keys. Queries run in parallel.
        """
        wanted = list(dict.fromkeys(keys))
        queries: list[Callable[[], list[TableEntity]]] = []
        for name, table_keys in group(wanted, self.findings_table_name).items():
            table = self.table(name)
            if name != self._findings and len(table_keys) > self._point_lookup_limit:
                queries.append(partial(_read_partition, table, hunt_id, select))
                continue
            queries.extend(partial(_read_keys, table, hunt_id, chunk, select)
                           for chunk in chunks(table_keys, MAX_FILTER_KEYS))
        wanted_set = set(wanted)
        return {entity["RowKey"]: entity for batch in self._run_parallel(queries)
                for entity in batch if entity["RowKey"] in wanted_set}

    def _run_parallel(self, queries: list[Callable[[], list[TableEntity]]]
                      ) -> list[list[TableEntity]]:
        if len(queries) <= 1:
            return [query() for query in queries]
        with ThreadPoolExecutor(min(self._lookup_workers, len(queries))) as pool:
            return list(pool.map(lambda query: query(), queries))


def storage_errors(action: str, hunt_id: str | None) -> AbstractContextManager[None]:
    """SDK errors as LedgerError naming the action and hunt (not URLs, keys or tokens)."""
    return translate(f"{action} (hunt {hunt_id})", LedgerError, hunt_id=hunt_id)


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


def merge(entity: dict[str, Any], etag: str | None = None) -> Operation:
    """A merge of *entity*; with *etag*, only if the stored entity did not change since."""
    options: dict[str, Any] = {"mode": UpdateMode.MERGE}
    if etag is not None:
        options.update(etag=etag, match_condition=MatchConditions.IfNotModified)
    return ("update", entity, options)


def etag_of(entity: TableEntity) -> str | None:
    return entity.metadata.get("etag")


def group(items: Iterable[_T], name_of: Callable[[_T], str]) -> dict[str, list[_T]]:
    """*items* by table name, in first-seen order (a transaction never spans two tables)."""
    groups: dict[str, list[_T]] = {}
    for item in items:
        groups.setdefault(name_of(item), []).append(item)
    return groups


def chunks(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


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
