"""Finding keys, identity, event times and the size-capped row summaries stored with findings.

Pure functions: no storage here. See docs/ledger.md for why keys start with the event day.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final

from ..hunt import Hunt
from ..identity import Summarize, finding_identity, summarize_of
from .model import LedgerError, utc

ROW_SUMMARY_MAX_BYTES: Final = 16 * 1024
VALUE_MAX_CHARS: Final = 2048
UNDATED_PREFIX: Final = "u-"

_KEY_FORBIDDEN = re.compile(r"[/\\#?\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Observation:
    """One distinct finding in a run's rows: its key, summary and event time."""

    key: str
    row: dict[str, Any]
    row_json: str
    truncated: bool
    event_time: datetime | None


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
    return utc(value)


def identity_includes_time(hunt: Hunt) -> bool:
    """Whether a finding's identity includes its event time (docs/ledger.md, "Finding keys").

    With ``dedupBy``: when it names the time column or Defender's ``ReportId`` (which repeats per
    device). Without: when the hunt returns events (no ``summarize``); a summarize hunt's rows are
    aggregates over the window, identified by their keys alone, so hour after hour over the same
    activity they keep one key while counts and ``LastSeen`` grow.
    """
    columns = hunt.dedup_by if hunt.dedup_explicit else ()
    if columns:
        return hunt.time_column in columns or "ReportId" in columns
    return _summarize_of(hunt.query) is None


def finding_key(hunt: Hunt, row: Mapping[str, Any]) -> str:
    """The stable RowKey of *row*: ``YYYYMMDD-<hash>`` when time-keyed, else ``u-<hash>``."""
    return _key(hunt, row, event_time_of(hunt, row))


def check_partition_key(value: str) -> str:
    """*value* (a hunt id) if Table Storage accepts it as a PartitionKey, else LedgerError."""
    if not value or len(value) > 512 or _KEY_FORBIDDEN.search(value):
        raise LedgerError("hunt id is not usable as a Table Storage key (empty, too long, or "
                          "contains / \\ # ? or control characters)", hunt_id=value[:80])
    return value


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


def row_json(summary: Mapping[str, Any]) -> str:
    """The compact JSON text a summary is stored as."""
    return _compact_json(summary)


def clean_text(text: str) -> str:
    """Replace lone surrogates, which cannot be sent as UTF-8."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text.encode("utf-8", "replace").decode("utf-8")
    return text


def _key(hunt: Hunt, row: Mapping[str, Any], event_time: datetime | None) -> str:
    dated = event_time is not None and identity_includes_time(hunt)
    identity = _identity(hunt, row, event_time if dated else None)
    digest = hashlib.sha256(_canonical_json([hunt.id, identity]).encode("ascii")).hexdigest()[:32]
    if dated and event_time is not None:
        return f"{event_time:%Y%m%d}-{digest}"
    return UNDATED_PREFIX + digest


def identity_columns(hunt: Hunt, columns: Sequence[str]) -> tuple[str, ...]:
    """The columns that identify *hunt*'s findings, given the columns its rows carry.

    ``dedupBy`` when the file sets it; else the identity settled when the hunt was loaded
    (``Hunt.identity``: what ``validate`` found), when the rows carry it; else
    :func:`shared.identity.finding_identity` over *columns*. Never reads a file.
    """
    if hunt.dedup_explicit and hunt.dedup_by:
        return hunt.dedup_by
    if hunt.identity and all(column in columns for column in hunt.identity):
        return hunt.identity
    return _derived_identity(hunt, tuple(columns))


def _identity(hunt: Hunt, row: Mapping[str, Any], event_time: datetime | None) -> dict[str, Any]:
    chosen = identity_columns(hunt, list(row))
    missing = [column for column in chosen if column not in row]
    if missing:
        raise LedgerError(f"hunt {hunt.id}: dedupBy column(s) {', '.join(missing)} are not in "
                          "the query result", hunt_id=hunt.id)
    identity = {column: row[column] for column in chosen}
    if event_time is not None and hunt.time_column not in identity:
        identity[hunt.time_column] = event_time
    return identity


@functools.lru_cache(maxsize=512)
def _derived_identity(hunt: Hunt, columns: tuple[str, ...]) -> tuple[str, ...]:
    return finding_identity(hunt, columns).columns


@functools.lru_cache(maxsize=512)
def _summarize_of(query: str) -> Summarize | None:
    return summarize_of(query)


def _canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, ensure_ascii=True, separators=(",", ":"),
                      default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(utc(value))
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    return str(value)


def _summarize(row: Mapping[str, Any], first: Sequence[str], max_bytes: int,
               max_value_chars: int) -> tuple[dict[str, Any], str, bool]:
    """(summary, its JSON text, truncated)."""
    values: dict[str, Any] = {}
    truncated = False
    for name, value in row.items():
        capped, cut = _capped(_json_safe(value), max_value_chars)
        values[clean_text(str(name))] = capped
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


def _json_safe(value: Any) -> Any:
    if value is None or isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return clean_text(value)
    if isinstance(value, datetime):
        return _iso(utc(value))
    if isinstance(value, Mapping):
        return {clean_text(str(k)): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return clean_text(str(value))


def _capped(value: Any, max_chars: int) -> tuple[Any, bool]:
    if isinstance(value, dict | list):
        text = _compact_json(value)
        return (value, False) if len(text) <= max_chars else (_cut(text, max_chars), True)
    if isinstance(value, str) and len(value) > max_chars:
        return _cut(value, max_chars), True
    return value, False


def _cut(text: str, max_chars: int) -> str:
    return f"{text[:max_chars]}… [{len(text) - max_chars} more characters]"


def _compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
