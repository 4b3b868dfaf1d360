"""The tenant's schema cache, checked: what ``schema pull`` may write and what readers accept.

Every table and column name must be a plain KQL identifier and every type a KQL scalar type,
because these names reach Microsoft's parser and DuckDB (``huntwire eval``) as identifiers; a
cache or a service answer that breaks the rules is refused as a whole with one line that says
where and what, never half used.
"""

from __future__ import annotations

import re
from typing import Any, Final

from ..errors import ConfigurationError

Schema = dict[str, dict[str, str]]

IDENTIFIER: Final = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
"""Table and column names: letters, digits and underscores, not starting with a digit."""
KQL_TYPES: Final = frozenset({"string", "datetime", "long", "int", "bool", "real", "dynamic",
                              "guid", "timespan", "decimal"})
MAX_TABLES: Final = 5_000
"""More tables than any workspace has (Log Analytics lists a few hundred, Defender ~50)."""
MAX_COLUMNS: Final = 1_000
"""Per table: Log Analytics allows 500 custom columns; Defender tables have about 100."""
MAX_TOTAL_COLUMNS: Final = 250_000
MAX_ANSWER_BYTES: Final = 20 * 2**20
"""A service answer larger than this is refused unread (a real one is a few MB at most)."""
MAX_CACHE_BYTES: Final = 32 * 2**20


class SchemaCacheError(ConfigurationError, ValueError):
    """The cache file or a pulled answer is malformed; the message names where and what."""


def check_tables(tables: Any, where: str) -> Schema:
    """*tables* as ``{table: {column: type}}`` once every name, type and count is checked."""
    if not isinstance(tables, dict):
        raise SchemaCacheError(f"{where}: tables must be an object, not {_kind(tables)}")
    if len(tables) > MAX_TABLES:
        raise SchemaCacheError(f"{where}: {len(tables):,} tables, more than the {MAX_TABLES:,} "
                               "accepted")
    checked: Schema = {}
    total = 0
    for table, columns in tables.items():
        name = check_name(table, f"{where}: table")
        if not isinstance(columns, dict):
            raise SchemaCacheError(f"{where}: table {name}: columns must be an object, not "
                                   f"{_kind(columns)}")
        if len(columns) > MAX_COLUMNS:
            raise SchemaCacheError(f"{where}: table {name}: {len(columns):,} columns, more than "
                                   f"the {MAX_COLUMNS:,} accepted")
        total += len(columns)
        if total > MAX_TOTAL_COLUMNS:
            raise SchemaCacheError(f"{where}: more than {MAX_TOTAL_COLUMNS:,} columns in all")
        checked[name] = {check_name(column, f"{where}: table {name}: column"):
                         check_type(kind, f"{where}: table {name}: column {column}")
                         for column, kind in columns.items()}
    return checked


def check_name(name: Any, what: str) -> str:
    if not isinstance(name, str) or not IDENTIFIER.match(name):
        raise SchemaCacheError(f"{what} name {shown(name)} is not a plain identifier "
                               "(letters, digits, _; at most 128)")
    return name


def check_type(kind: Any, what: str) -> str:
    if not isinstance(kind, str) or kind not in KQL_TYPES:
        raise SchemaCacheError(f"{what}: type {shown(kind)} is not a KQL type "
                               f"({', '.join(sorted(KQL_TYPES))})")
    return kind


def shown(value: Any, limit: int = 40) -> str:
    """*value* for a one-line message: repr'd (control characters escaped), cut to *limit*."""
    text = repr(value) if isinstance(value, str) else _kind(value)
    return text if len(text) <= limit else text[:limit] + "...'"


def _kind(value: Any) -> str:
    return "null" if value is None else type(value).__name__
