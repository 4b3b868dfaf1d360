"""Run hunts locally with duckdb-kql over JSON-lines events, windowed exactly as in production.

Used by ``huntwire eval``, the demo, the tests and offline replay of exported data. duckdb-kql is
an optional dependency (``pip install huntwire[local]``) and is imported only here.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..hunt import Hunt
from ..hunt_time import render_query
from ..kql_local import asim
from ..kql_local import functions as local_engine
from ..schemas import FLAVOURS, Flavour, Schema, table_schemas
from ..suggest import did_you_mean
from ..window import Window
from .base import Column, QueryError, QueryResult
from .catalog import SourceKind, source_kind

_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,254}")
EXPORT_TIME_COLUMN = "Timestamp"
"""Exported events carry this time column; a source with another copies it over when unset."""

DUCKDB_TYPES = {
    "string": "VARCHAR", "long": "BIGINT", "int": "INTEGER", "real": "DOUBLE",
    "double": "DOUBLE", "bool": "BOOLEAN", "boolean": "BOOLEAN", "datetime": "TIMESTAMPTZ",
    "dynamic": "JSON", "guid": "VARCHAR", "timespan": "INTERVAL", "decimal": "DOUBLE",
}
KQL_TYPES = {"VARCHAR": "string", "BIGINT": "long", "INTEGER": "int", "DOUBLE": "real",
             "BOOLEAN": "bool", "TIMESTAMP": "datetime", "TIMESTAMP WITH TIME ZONE": "datetime",
             "JSON": "dynamic", "INTERVAL": "timespan", "HUGEINT": "long", "FLOAT": "real"}

# duckdb-kql 1.1.2 decodes base64 through a BLOB->VARCHAR cast, which escapes bytes such as '"'
# and NUL as text ("\x22"). decode() returns the bytes as a string, and TRY() gives KQL's empty
# string for input that is not base64 or not UTF-8.
_BASE64_DECODE_TEMPLATE = "coalesce(TRY(decode(from_base64({0}))), '')"


def _patch_duckdb_kql() -> None:
    from duckdb_kql.translate import functions

    for name in ("base64_decode_tostring", "base64_decodestring"):
        spec = functions.SCALAR_FUNCTIONS[name]
        functions.SCALAR_FUNCTIONS[name] = functions.FunctionSpec(
            spec.name, spec.kind, _BASE64_DECODE_TEMPLATE, spec.arities, spec.rules,
            "huntwire: decode() instead of a BLOB cast that escapes bytes")


class LocalSource:
    """A QuerySource over JSON-lines files, one per table (``{"DeviceProcessEvents": path}``)."""

    name = "local"

    def __init__(self, events: Mapping[str, Path | str]):
        import duckdb_kql

        _patch_duckdb_kql()
        local_engine.install()
        self._duckdb_kql = duckdb_kql
        self._events = {table: Path(path) for table, path in events.items()}
        self._connections: dict[Flavour, Any] = {}
        self._lock = threading.Lock()
        """One query at a time: the windowed views are per connection (a pool may call run)."""
        known = {table for flavour in FLAVOURS for table in table_schemas(flavour)}
        unknown = sorted(set(self._events) - known)
        if unknown:
            raise ValueError("; ".join(f"no schema for table '{table}'"
                                       f"{did_you_mean(table, known)}" for table in unknown))

    def run(self, hunt: Hunt, window: Window) -> QueryResult:
        with self._lock:
            return self._run(hunt, window)

    def _run(self, hunt: Hunt, window: Window) -> QueryResult:
        kind = source_kind(hunt.source)
        query = local_engine.prepare(asim.expand(render_query(hunt.query, window)))
        refused = local_engine.unsupported_reason(query)
        if refused:
            raise QueryError(hunt.id, refused)
        con = self._connection(kind)
        self._apply_window(con, kind, window)
        try:
            relation = self._duckdb_kql.query(con, query, query_now=window.end)
            names = list(relation.columns)
            types = [str(t) for t in relation.types]
            records = relation.fetchall()
        except Exception as exc:  # duckdb-kql and DuckDB raise many types; all mean "cannot run"
            raise QueryError(hunt.id, local_engine.describe_engine_error(exc)) from exc
        columns = [Column(n, KQL_TYPES.get(t, "string")) for n, t in zip(names, types, strict=True)]
        rows = [{c.name: _python_value(v, c.type) for c, v in zip(columns, r, strict=True)}
                for r in records]
        return QueryResult(columns=columns, rows=rows)

    def close(self) -> None:
        for con in self._connections.values():
            con.close()
        self._connections.clear()

    def _connection(self, kind: SourceKind) -> Any:
        flavour = kind.schema_flavour
        if flavour not in self._connections:
            con = self._duckdb_kql.connect()
            local_engine.register_macros(con)
            for table, columns in local_schemas(kind).items():
                self._load_table(con, table, columns, kind.time_column)
            self._connections[flavour] = con
        return self._connections[flavour]

    def _load_table(self, con: Any, table: str, columns: dict[str, str], time_column: str) -> None:
        stored = quote_identifier(f"__all_{table}")
        typed = {name: DUCKDB_TYPES.get(kql, "VARCHAR") for name, kql in columns.items()}
        copy_time = time_column != EXPORT_TIME_COLUMN
        if copy_time:
            typed.setdefault(EXPORT_TIME_COLUMN, DUCKDB_TYPES["datetime"])  # exports carry it
        path = self._events.get(table)
        if path is None or path.stat().st_size == 0:
            definition = ", ".join(f"{quote_identifier(n)} {t}" for n, t in typed.items())
            con.execute(f"CREATE TABLE {stored} ({definition})")
        else:
            spec = "{" + ", ".join(f"{quote_literal(n)}: '{t}'" for n, t in typed.items()) + "}"
            con.execute(f"CREATE TABLE {stored} AS SELECT * FROM read_json(?, "  # noqa: S608
                        f"format='newline_delimited', columns={spec})", [str(path)])
        if copy_time:
            # Exported Defender events carry Timestamp only; Sentinel stamps TimeGenerated.
            column, export = quote_identifier(time_column), quote_identifier(EXPORT_TIME_COLUMN)
            con.execute(f"UPDATE {stored} SET {column} = {export} "  # noqa: S608
                        f"WHERE {column} IS NULL")

    def _apply_window(self, con: Any, kind: SourceKind, window: Window) -> None:
        time_column = quote_identifier(kind.time_column)
        for table, columns in local_schemas(kind).items():
            # The view keeps the schema's types; TIMESTAMPTZ read in UTC becomes KQL datetime.
            projection = ", ".join(
                f"CAST({quote_identifier(n)} AS TIMESTAMP) AS {quote_identifier(n)}"
                if t == "datetime" else
                f"coalesce({quote_identifier(n)}, '') AS {quote_identifier(n)}"  # no null string
                if t == "string" else quote_identifier(n) for n, t in columns.items())
            start, end = (f"'{moment.isoformat()}'::TIMESTAMPTZ" for moment in
                          (window.start, window.end))
            con.execute(
                f"CREATE OR REPLACE VIEW {quote_identifier(table)} AS "  # noqa: S608
                f"SELECT {projection} FROM {quote_identifier(f'__all_{table}')} "
                f"WHERE {time_column} >= {start} AND {time_column} < {end}")

    def window_counts(self, hunt: Hunt, window: Window) -> dict[str, int]:
        """Events of each supplied table inside *window* (the notes ``eval`` prints)."""
        kind = source_kind(hunt.source)
        con = self._connection(kind)
        self._apply_window(con, kind, window)
        return {table: int(con.execute(
                    f"SELECT count(*) FROM {quote_identifier(table)}").fetchone()[0])  # noqa: S608
                for table in self._events if table in local_schemas(kind)}


def plain_name(name: str) -> bool:
    """A table or column name as Defender and Sentinel spell them (letters, digits, ``_``)."""
    return bool(_PLAIN_NAME.fullmatch(name))


def quote_identifier(name: str) -> str:
    """*name* as one SQL identifier, whatever it holds (a name from a pulled schema is the
    tenant's answer, not ours: it never becomes SQL)."""
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def local_schemas(kind: SourceKind) -> Schema:
    """The tables the engine loads: those with the source's time column, which windows them.
    Names that are not plain identifiers (only a tampered schema cache has them) are left out."""
    return {table: {c: t for c, t in columns.items() if plain_name(c)}
            for table, columns in table_schemas(kind.schema_flavour).items()
            if kind.time_column in columns and plain_name(table)}


def _python_value(value: Any, kql_type: str) -> Any:
    if value is None:
        return None
    if kql_type == "datetime" and isinstance(value, datetime):
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if kql_type == "dynamic" and isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value
