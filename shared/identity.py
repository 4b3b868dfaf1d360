"""A finding's stable identity: the columns whose values make two result rows the same finding.

Rules, first that applies:
1. ``dedupBy`` from the hunt file;
2. an event row (no summarize) that returns its source's event key (Defender: ``DeviceId``,
   ``ReportId``): that key;
3. the entity columns (``entityMappings``) and the last ``summarize``'s by-keys, leaving out
   aggregates (counts, ``FirstSeen``/``LastSeen`` and other min/max of time, ``make_set``, ...);
4. otherwise every returned column that is neither a time nor an aggregate.

So a summarize hunt evaluated hour after hour over the same activity keeps the same identity while
its counters and ``LastSeen`` grow, and it is posted once.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from .hunt import Hunt
from .kql_text import code_only, split_top_level
from .sources.catalog import source_kind

_AGGREGATE_PREFIXES = ("count_", "dcount_", "sum_", "avg_", "min_", "max_", "set_", "list_",
                       "any_", "take_any_", "percentile_", "stdev_", "variance_", "countif_",
                       "dcountif_", "sumif_", "bag_", "make_", "arg_max_", "arg_min_")
_AGGREGATE_NAMES = re.compile(
    r"^(count_?|counts|total|sum|first_?seen|last_?seen|(start|end)_?time(_?utc)?|"
    r"(first|last|min|max)_?(time|date|event)\w*)$", re.IGNORECASE)
# CamelCase counters and times: AttemptCount, FailedLogons Total, FirstSeenTime, MaxTimeGenerated
_AGGREGATE_CAMEL = re.compile(r"([a-z0-9_](Count|Counts|Total|Sum|Set|List)$)|"
                              r"^(First|Last|Min|Max|Start|End)(Seen|Time|Date|Event)")
_TIME_NAMES = re.compile(r"^(Timestamp|TimeGenerated|\w*Time(Utc)?|\w*Date(Time)?)$", re.I)


@dataclass(frozen=True)
class Summarize:
    """The last ``summarize`` of a query: its by-keys and its aggregate columns."""

    keys: tuple[str, ...]
    aggregates: tuple[str, ...]


@dataclass(frozen=True)
class Identity:
    columns: tuple[str, ...]
    basis: str
    """``dedupBy``, ``event`` (DeviceId+ReportId), ``entities+keys`` or ``row``."""

    def describe(self) -> str:
        names = ", ".join(self.columns) or "(every column)"
        return f"{names} [{self.basis}]"


def is_aggregate_name(column: str) -> bool:
    """A column named like a counter or a first/last time: never part of an identity."""
    return (column.lower().startswith(_AGGREGATE_PREFIXES) or bool(_AGGREGATE_NAMES.match(column))
            or bool(_AGGREGATE_CAMEL.search(column)))


def finding_identity(hunt: Hunt, result_columns: Sequence[tuple[str, str]] | Sequence[str],
                     summarize: Summarize | None = None) -> Identity:
    """The identity of *hunt*'s findings given the columns its query returns.

    *result_columns* are names or ``(name, kql_type)`` pairs; *summarize* is what Kusto.Language
    (``kql_check``) or, without it, :func:`summarize_of` found in the query.
    """
    typed = [(c, "") if isinstance(c, str) else (c[0], c[1]) for c in result_columns]
    names = [name for name, _ in typed]
    if hunt.dedup_explicit:
        return Identity(hunt.dedup_by, "dedupBy")
    if summarize is None:
        summarize = summarize_of(hunt.query)
    event_key = source_kind(hunt.source).default_dedup
    if summarize is None and event_key and all(column in names for column in event_key):
        return Identity(event_key, "event")
    aggregates = set(summarize.aggregates) if summarize else set()
    wanted = set(hunt.entity_columns) | set(summarize.keys if summarize else ())
    chosen = [n for n in names if n in wanted and n not in aggregates]
    if chosen:
        return Identity(tuple(chosen), "entities+keys")
    row = [n for n, kql_type in typed if n not in aggregates and not is_aggregate_name(n)
           and kql_type != "datetime" and not (kql_type == "" and _TIME_NAMES.match(n))]
    return Identity(tuple(row or [n for n, t in typed if t != "datetime"] or names), "row")


def summarize_of(query: str) -> Summarize | None:
    """The last top-level ``summarize`` of *query*, read without Kusto.Language (best effort).

    Used where Node is not available (the deployed function); ``validate`` uses the parser's
    answer and writes it into the manifest.
    """
    text = code_only(query)
    statement = split_top_level(text, ";")[-1] if text.strip() else ""
    stages = split_top_level(statement, "|")
    for stage in reversed(stages[1:]):
        words = stage.split(None, 1)
        if not words or words[0] != "summarize":
            continue
        body = re.sub(r"^(\s*hint\.\w+\s*=\s*\S+\s+)*", "", words[1] if len(words) > 1 else "")
        aggregate_part, keys_part = _split_by(body)
        keys = tuple(_output_name(e, query_text=e) for e in split_top_level(keys_part, ",")
                     if e.strip())
        aggregates = tuple(_output_name(e, e) for e in split_top_level(aggregate_part, ",")
                           if e.strip())
        return Summarize(keys, aggregates)
    return None


def _split_by(body: str) -> tuple[str, str]:
    depth = 0
    for index, char in enumerate(body):
        depth += char in "([{"
        depth -= char in ")]}"
        if depth == 0 and re.match(r"\bby\b", body[index:]) and (
                index == 0 or not (body[index - 1].isalnum() or body[index - 1] == "_")):
            return body[:index], body[index + 2:]
    return body, ""


def _output_name(expression: str, query_text: str) -> str:
    expression = expression.strip()
    named = re.match(r"^([A-Za-z_]\w*)\s*=(?!=)", expression)
    if named:
        return named.group(1)
    call = re.match(r"^([A-Za-z_]\w*)\s*\(\s*([A-Za-z_]\w*)?", expression)
    if call:
        function, argument = call.group(1).lower(), call.group(2)
        if function in ("bin", "floor", "tostring", "todatetime", "tolower", "toupper"):
            return argument or function
        prefix = {"make_set": "set", "makeset": "set", "make_list": "list",
                  "makelist": "list", "count": "count"}.get(function, function)
        return f"{prefix}_{argument}" if argument and function != "count" else f"{prefix}_"
    return expression.split(".")[-1]
