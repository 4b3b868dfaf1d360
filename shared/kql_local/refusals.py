"""What the local engine says when it cannot run a query: the construct, in a hunt author's words.

Every refusal reads ``local engine cannot run X (not your query)``: a hunt that Microsoft's parser
accepts is valid KQL, so a local failure is a gap of duckdb-kql or of huntwire's extensions, never
the query's fault. The engine's own text (binder traces, grammar token lists) is never shown.
Two errors do belong to the query and say so: an invalid regular expression, and a table or column
the local schema does not know.
"""

from __future__ import annotations

import re

from ..kql_text import code_only

# Constructs found in the query text that the engine cannot run: refused before running.
_TEXT_UNSUPPORTED = (
    (re.compile(r"\bexternaldata\b", re.I), "externaldata (it reads a file from the internet)"),
    (re.compile(r"\|\s*evaluate\s+([A-Za-z_]\w*)", re.I), "evaluate {0} (plugins)"),
    (re.compile(r"\|\s*make-series\b"), "make-series"),
    (re.compile(r"\|\s*mv-apply\b"), "mv-apply"),
)
_CONSTRUCT = re.compile(r"unsupported KQL construct '([^']+)'")
_FUNCTION = re.compile(r"No function matches the given name and argument types '(\w+)\(([^)]*)\)")
_CASE_TWINS = re.compile(r"columns ('[^']+') and ('[^']+') differ only in case")
_UNKNOWN_COLUMN = re.compile(r'Referenced column "([^"]+)" not found|'
                             r'Column "([^"]+)" referenced that exists in the SELECT clause')
_CONVERT = re.compile(r"Could not convert string '([^']{0,60})[^']*' to (\w+)")
_KQL_TYPE = {"INTERVAL": "timespan", "TIMESTAMP": "datetime", "BIGINT": "long", "INT64": "long",
             "INTEGER": "int", "INT32": "int", "DOUBLE": "real", "BOOLEAN": "bool"}
_REGEX = re.compile(r"regular expression|regex|RE2", re.I)
_SYNTAX_AT = re.compile(r"at (\d+):(\d+)")
_OPERATOR_NAMES = {"PartitionOperator": "partition", "TopNestedOperator": "top-nested",
                   "SerializeOperator": "serialize", "ScanOperator": "scan",
                   "ForkOperator": "fork", "FacetOperator": "facet"}


def cannot_run(what: str) -> str:
    return f"local engine cannot run {what} (not your query)"


def unsupported_reason(query: str) -> str | None:
    """The refusal when *query* uses a construct the engine cannot run, else None."""
    text = code_only(query)
    for pattern, what in _TEXT_UNSUPPORTED:
        found = pattern.search(text)
        if found:
            return cannot_run(what.format(*found.groups()))
    return None


def describe_engine_error(exc: Exception) -> str:
    """One line for an error the engine raised while translating or running a query."""
    kind = type(exc).__name__
    message = str(exc)
    first = message.strip().splitlines()[0] if message.strip() else kind
    construct = _CONSTRUCT.search(message)
    if kind == "KqlUnsupportedError" and construct:
        return cannot_run(_construct_words(construct.group(1), message))
    twins = _CASE_TWINS.search(message)
    if kind == "KqlSchemaError" and twins:
        return cannot_run(f"two columns whose names differ only in letter case ({twins.group(1)} "
                          f"and {twins.group(2)}; DuckDB folds them into one)")
    if kind == "KqlSchemaError":
        return f"local engine: {first} (check the table and column names against the schema)"
    if kind == "KqlSyntaxError":
        at = _SYNTAX_AT.search(message)
        where = f"the KQL at line {at.group(1)}, column {at.group(2)}" if at else "this KQL"
        return (f"local engine cannot parse {where} (not your query when `huntwire validate` "
                "accepts it: duckdb-kql's grammar is narrower than Kusto's)")
    if _REGEX.search(first) and "Invalid Input" in first:
        return f"invalid regular expression (RE2, as in Kusto): {first}"
    unknown = _UNKNOWN_COLUMN.search(message)
    if unknown:
        column = unknown.group(1) or unknown.group(2)
        return (f"local engine: unknown column '{column}' (check the table and column names "
                "against the schema)")
    converted = _CONVERT.search(message)
    if converted:
        kql = _KQL_TYPE.get(converted.group(2).upper(), converted.group(2).lower())
        article = "an" if kql[:1] in "aeiou" else "a"
        return cannot_run(f"the string '{converted.group(1)}' used as {article} {kql} "
                          "(DuckDB cannot convert that text)")
    function = _FUNCTION.search(message)
    if function:
        return cannot_run(f"{function.group(1)}() on a {function.group(2).lower()} value "
                          "(a type combination the translation to DuckDB does not handle)")
    return cannot_run(f"this query: DuckDB refused the translation ({kind})")


def _construct_words(construct: str, message: str) -> str:
    name = construct.removeprefix("function:").removeprefix("aggregate:")
    name = _OPERATOR_NAMES.get(name, name)
    if construct.startswith(("function:", "aggregate:")):
        name += "()"
    hint = re.search(r"\((.*)\)\s*$", message)
    detail = hint.group(1) if hint else ""
    if "no DuckDB mapping" in detail or "not implemented" in detail or not detail:
        return name
    return f"{name} ({detail})"
