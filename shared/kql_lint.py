"""What ``validate`` adds to Kusto.Language's diagnostics: one error per root cause, "did you
mean" hints for unknown names, and RE2 compilation of the regular expressions in KQL literals
(Kusto.Language does not check them; the service would fail the hunt at run time)."""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from typing import Protocol, TypeVar

from .schemas import FLAVOURS, Flavour, table_schemas
from .suggest import did_you_mean

REGEX_FUNCTIONS = {"extract": 0, "extract_all": 0, "replace_regex": 1, "replace": 0, "trim": 0,
                   "trim_start": 0, "trim_end": 0}
"""Functions taking a regular expression, and which argument (from 0) it is."""
_UNKNOWN = re.compile(r"^The name '([^']+)' does not refer to any known (\w+)")
_TOKEN = re.compile(r"""
    (?P<comment>//[^\n]*)
  | (?P<fence>```.*?```|~~~.*?~~~)
  | (?P<string>[hH]?@?'(?:[^'\\\n]|\\.|'')*'|[hH]?@?"(?:[^"\\\n]|\\.|"")*")
  | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
  | (?P<other>\S)
""", re.VERBOSE | re.DOTALL)
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "'": "'", '"': '"'}


class _Diag(Protocol):
    @property
    def start(self) -> int: ...
    @property
    def syntax(self) -> bool: ...
    @property
    def severity(self) -> str: ...
    @property
    def message(self) -> str: ...


D = TypeVar("D", bound=_Diag)


def root_causes(diagnostics: Sequence[D]) -> tuple[list[D], int]:
    """The errors worth reading, and how many follow-on errors were left out.

    After a syntax error the analysis of the rest of the query is guesswork (every later column
    becomes "unknown"), so only the first syntax error is kept. Without one, each unknown name is
    reported once, at its first use.
    """
    errors = [d for d in diagnostics if d.severity == "Error"]
    syntax = sorted((d for d in errors if d.syntax), key=lambda d: d.start)
    if syntax:
        return [syntax[0]], len(errors) - 1
    kept: list[D] = []
    seen: set[str] = set()
    for diagnostic in sorted(errors, key=lambda d: d.start):
        if diagnostic.message in seen:
            continue
        seen.add(diagnostic.message)
        kept.append(diagnostic)
    return kept, 0


def hint(message: str, flavour: Flavour, tables_read: Sequence[str]) -> str:
    """*message* plus a suggestion when it names an unknown table or column."""
    found = _UNKNOWN.match(message)
    if not found:
        return message
    name, kind = found.groups()
    tables = table_schemas(flavour)
    if kind == "table":
        for other in FLAVOURS:
            if other != flavour and name in table_schemas(other):
                return f"{message} ('{name}' is a {other} table: set `source: {other}`)"
        return message + did_you_mean(name, tables)
    columns = {column for table in tables_read for column in tables.get(table, {})}
    return message + did_you_mean(name, columns)


def regex_problems(query: str) -> list[tuple[int, str]]:
    """(offset, reason) for each regular expression literal RE2 cannot compile."""
    from .suppress.rules import compile_re2

    problems = []
    for offset, where, pattern in regex_literals(query):
        try:
            compile_re2(pattern)
        except ValueError as exc:
            problems.append((offset, f"{where}: {exc}"))
    return problems


def regex_literals(query: str) -> Iterator[tuple[int, str, str]]:
    """(offset, context, pattern) of each constant regex: ``matches regex 'p'`` and the first
    argument of ``extract``, ``replace_regex`` and the other regex functions."""
    tokens = [(m.lastgroup or "", m.group(), m.start()) for m in _TOKEN.finditer(query)
              if m.lastgroup != "comment"]
    for index, (kind, text, _) in enumerate(tokens):
        if kind != "word":
            continue
        lowered = text.lower()
        if lowered == "matches" and _word(tokens, index + 1) == "regex":
            literal = _literal(tokens, index + 2)
            context = "matches regex"
        elif lowered in REGEX_FUNCTIONS and index + 1 < len(tokens) \
                and tokens[index + 1][1] == "(":
            literal = _literal(tokens, _argument(tokens, index + 2, REGEX_FUNCTIONS[lowered]))
            context = f"{lowered}()"
        else:
            continue
        if literal is not None:
            yield literal[0], context, literal[1]


def _word(tokens: list[tuple[str, str, int]], index: int) -> str | None:
    return tokens[index][1].lower() if index < len(tokens) and tokens[index][0] == "word" \
        else None


def _argument(tokens: list[tuple[str, str, int]], index: int, number: int) -> int:
    """Index of the first token of argument *number* of a call whose arguments start at
    *index*."""
    depth = 0
    while number and index < len(tokens):
        text = tokens[index][1]
        if text in "([{":
            depth += 1
        elif text in ")]}":
            if depth == 0:
                return len(tokens)
            depth -= 1
        elif text == "," and depth == 0:
            number -= 1
        index += 1
    return index


def _literal(tokens: list[tuple[str, str, int]], index: int) -> tuple[int, str] | None:
    """The constant string starting at *index* (adjacent literals concatenate), or None."""
    parts: list[str] = []
    start = tokens[index][2] if index < len(tokens) else 0
    while index < len(tokens) and tokens[index][0] in ("string", "fence"):
        parts.append(decode_literal(tokens[index][1]))
        index += 1
    return (start, "".join(parts)) if parts else None


def decode_literal(token: str) -> str:
    """The value of one KQL string literal token."""
    if token.startswith(("```", "~~~")):
        return token[3:-3]
    token = token[1:] if token[:1] in "hH" else token
    if token.startswith("@"):
        quote = token[1]
        return token[2:-1].replace(quote * 2, quote)
    body = token[1:-1]
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), m.group()), body)
