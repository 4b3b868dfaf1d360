"""Text rewrites applied before duckdb-kql parses a query, for forms Kusto accepts and its grammar
does not. Each keeps the query's meaning exactly (Microsoft's KQL reference):

- ``table("T")`` with a literal name is the table ``T`` (duckdb-kql has no ``table()``);
- ``x between (low .. high)`` takes any expression as a bound; duckdb-kql's grammar stops at an
  operator in the low bound (``datetime(...) - 1h``), so both bounds are parenthesised; a
  timespan literal as the high bound of a datetime range means ``low + timespan``;
- ``mv-expand todynamic(Col)`` is named ``Col`` (the one column it reads);
- ``count(Flag)`` is ``count_Flag = countif(Flag)``;
- a statement that is one parenthesised tabular expression, ``(union A, B)`` or ``(T | ...) | ...``,
  is that expression (duckdb-kql refused a parenthesised source);
- ``toscalar(a + b * c)`` over scalars (an arithmetic at its top level, no pipe) is the value;
- a bare ``| serialize`` is dropped (every input keeps its order here), and ``next(...)`` is
  spelled ``hw_next(...)``, the name its grammar accepts (``operators``).

Strings and comments are never rewritten: positions are read from the masked text.
"""

from __future__ import annotations

import re

from .let_functions import masked

_TABLE = re.compile(r"(?<![\w.$])table\s*\(\s*(\(\s*)?(['\"])[^'\"\n]*\2\s*(?(1)\)\s*)\)", re.I)
_BETWEEN = re.compile(r"(?<![\w.$])!?between\s*\(", re.I)
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_TIMESPAN = re.compile(r"\d+(?:\.\d+)?(?:d|h|m|min|minute|minutes|s|sec|second|seconds|ms|"
                       r"milli|millis|millisecond|milliseconds|microsecond|microseconds|tick|"
                       r"ticks|hr|hrs|hour|hours|day|days)")
# count(Predicate): duckdb-kql's grammar reads count(Column) as a call of Column(); Kusto takes a
# bool (Microsoft's parser: KS107 otherwise), counts the rows where it holds, names it count_X.
_COUNT_COLUMN = re.compile(r"(=\s*)?(?<![\w.$])count\s*\(\s*([A-Za-z_]\w*)\s*\)")
# mv-expand todynamic(Col): Kusto names the expansion after the one column it reads.
_MV_EXPAND_CAST = re.compile(
    r"(\|\s*mv-?expand\s+)((?:todynamic|parse_json)\s*\(\s*([A-Za-z_]\w*)\s*\))")
# duckdb-kql's grammar has no function named next(); huntwire registers it as hw_next().
# ... nor a bare `serialize` between pipes: here every input keeps its order, so it is dropped.
_SERIALIZE = re.compile(r"\|\s*serialize\s*(?=\||;|$)")
_TOSCALAR = re.compile(r"(?<![\w.$])toscalar\s*\(", re.I)
_NEXT = re.compile(r"(?<![\w.$])next(?=\s*\()")


def rewrite(query: str) -> str:
    """*query* with the rewrites above applied (unchanged when none applies)."""
    for step in (_table_calls, _between_bounds, _next_calls, _bare_serialize, _count_column,
                 _mv_expand_names, _statement_parentheses, _scalar_toscalar):
        query = step(query)
    return query


def _mv_expand_names(query: str) -> str:
    code = masked(query)
    for found in reversed(list(_MV_EXPAND_CAST.finditer(code))):
        expression = query[found.start(2):found.end(2)]
        query = (f"{query[:found.start()]}{found.group(1)}{found.group(3)} = {expression}"
                 f"{query[found.end():]}")
    return query


def _count_column(query: str) -> str:
    code = masked(query)
    for found in reversed(list(_COUNT_COLUMN.finditer(code))):
        column = found.group(2)
        counted = f"countif({column})"
        text = f"{found.group(1)}{counted}" if found.group(1) else f"count_{column} = {counted}"
        query = query[:found.start()] + text + query[found.end():]
    return query


def _bare_serialize(query: str) -> str:
    code = masked(query)
    for found in reversed(list(_SERIALIZE.finditer(code))):
        query = query[:found.start()] + " " * (found.end() - found.start()) + query[found.end():]
    return query


def _next_calls(query: str) -> str:
    code = masked(query)
    for found in reversed(list(_NEXT.finditer(code))):
        query = query[:found.start()] + "hw_next" + query[found.end():]
    return query


def _table_calls(query: str) -> str:
    code = masked(query)
    for found in reversed(list(_TABLE.finditer(code))):
        literal = query[found.start():found.end()]
        quote = found.group(2)
        name = literal[literal.index(quote) + 1:literal.rindex(quote)]
        table = name if _NAME.fullmatch(name) else "[" + quote + name + quote + "]"
        query = query[:found.start()] + table + query[found.end():]
    return query


def _between_bounds(query: str) -> str:
    code = masked(query)
    edits: list[tuple[int, int, str]] = []
    for found in _BETWEEN.finditer(code):
        open_at = found.end() - 1
        if edits and open_at < edits[-1][1]:
            continue  # a between inside another's bound: the outer rewrite keeps it as written
        close_at, dots = _close_and_dots(code, open_at)
        if close_at is None or dots is None:
            continue
        low = query[open_at + 1:dots].strip()
        high = query[dots + 2:close_at].strip()
        if _TIMESPAN.fullmatch(high):
            high = f"({low}) + {high}"  # `t between (start .. 10min)`: up to start + 10min
        edits.append((open_at, close_at + 1, f"(({low}) .. ({high}))"))
    for start, end, text in reversed(edits):
        query = query[:start] + text + query[end:]
    return query


def _close_and_dots(code: str, open_at: int) -> tuple[int | None, int | None]:
    depth, dots = 0, None
    for index in range(open_at, len(code)):
        char = code[index]
        depth += char in "([{"
        depth -= char in ")]}"
        if depth == 0:
            return index, dots
        if depth == 1 and dots is None and code.startswith("..", index):
            dots = index
    return None, dots


def _statement_parentheses(query: str) -> str:
    """Drop the parentheses around a statement's leading tabular expression."""
    code = masked(query)
    edits: list[tuple[int, int]] = []
    start = 0
    for end in [*_top_level(code, ";"), len(code)]:
        statement = code[start:end]
        lead = len(statement) - len(statement.lstrip())
        open_at = start + lead
        if statement.lstrip().startswith("("):
            close_at, _ = _close_and_dots(code, open_at)
            rest = code[close_at + 1:end].lstrip() if close_at is not None else "x"
            if close_at is not None and (not rest or rest.startswith("|")):
                edits.append((open_at, close_at))
        start = end + 1
    for open_at, close_at in reversed(edits):
        query = query[:open_at] + " " + query[open_at + 1:close_at] + " " + query[close_at + 1:]
    return query


def _top_level(code: str, char: str) -> list[int]:
    depth, found = 0, []
    for index, c in enumerate(code):
        depth += c in "([{"
        depth -= c in ")]}"
        if c == char and depth == 0:
            found.append(index)
    return found


def _scalar_toscalar(query: str) -> str:
    code = masked(query)
    for found in reversed(list(_TOSCALAR.finditer(code))):
        open_at = found.end() - 1
        close_at, _ = _close_and_dots(code, open_at)
        if close_at is None:
            continue
        inner = code[open_at + 1:close_at]
        flat = _outside_brackets(inner)
        if "|" in flat or not re.search(r"[-+*/]", flat):
            continue  # a tabular argument (or a bare name, which may be a table): left as is
        query = query[:found.start()] + " " * (open_at - found.start()) + query[open_at:]
    return query


def _outside_brackets(code: str) -> str:
    """*code* with everything inside brackets blanked."""
    depth, out = 0, []
    for char in code:
        depth -= char in ")]}"
        out.append(char if depth == 0 else " ")
        depth += char in "([{"
    return "".join(out)
