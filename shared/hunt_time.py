"""Time as the hunt means it: the lookback a hunt's own query asks for, and its placeholders.

Rules (docs/hunts.md, "Time windows"):
1. ``lookback`` in the file wins;
2. else, when the query constrains time itself (``ago(7d)``, ``now(-3d)``, ``now() - 2h``,
   ``startofday(ago(7d))``, ``let lookback = 14d; ... ago(lookback)``), the largest reach it names,
   at least ``frequency`` and capped at 30 days (Defender's retention);
3. else the default, 4 hours (at least ``frequency``).

The window both ``eval`` and ``run`` use is built from this effective lookback, so a 7-day
baseline sees 7 days, locally and in production. Sentinel's ``{{StartTimeISO}}`` and
``{{EndTimeISO}}`` are filled with the window's bounds by :func:`render_query`, the one place every
source takes the query text from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from .kql_text import code_only
from .window import Window, iso

MAX_REACH = timedelta(days=30)
PLACEHOLDERS = ("{{StartTimeISO}}", "{{EndTimeISO}}")

_UNIT_SECONDS = {
    "d": 86400, "day": 86400, "days": 86400, "h": 3600, "hr": 3600, "hrs": 3600, "hour": 3600,
    "hours": 3600, "m": 60, "min": 60, "minute": 60, "minutes": 60, "s": 1, "sec": 1,
    "second": 1, "seconds": 1, "ms": 0.001, "millisecond": 0.001, "milliseconds": 0.001,
}
_NUMBER_UNIT = (r"(\d+(?:\.\d+)?)\s*"
                r"(milliseconds?|ms|days?|d|hours?|hrs?|h|minutes?|min|m|seconds?|sec|s)\b")
_LITERAL = re.compile(r"^\s*" + _NUMBER_UNIT + r"\s*$", re.IGNORECASE)
_TIME_CALL = re.compile(r"^\s*(?:time|totimespan)\s*\(\s*" + _NUMBER_UNIT + r"\s*\)\s*$", re.I)
_LET = re.compile(r"\blet\s+([A-Za-z_]\w*)\s*=\s*([^;]*);")
_FLOOR = {"startofday": timedelta(days=1), "startofweek": timedelta(days=7),
          "startofmonth": timedelta(days=31)}


@dataclass(frozen=True)
class Reach:
    """How far back a query reaches, and the expression that says so."""

    span: timedelta
    reason: str


def query_reach(query: str) -> Reach | None:
    """The largest time reach the query names itself, or None when it names none."""
    text = code_only(query)
    spans = _let_spans(text)
    found: list[Reach] = []
    for call in re.finditer(r"\b(ago|now)\s*\(", text):
        argument = _argument(text, call.end())
        span = _evaluate(argument, spans)
        if call.group(1) == "now":
            if span is None or span >= timedelta(0):
                continue  # now() or now(+x): no reach into the past
            span = -span
        if span is None or span <= timedelta(0):
            continue
        shown = f"{call.group(1)}({' '.join(argument.split())})"
        found.append(_floored(text, call.start(), span, shown))
    for match in re.finditer(r"\bnow\s*\(\s*\)\s*-\s*([^|;,)\n]+)", text):
        span = _evaluate(match.group(1), spans)
        if span is not None and span > timedelta(0):
            found.append(Reach(span, f"now() - {match.group(1).strip()}"))
    return max(found, key=lambda r: r.span, default=None)


def effective_lookback(query: str, explicit: timedelta | None, default: timedelta,
                       frequency: timedelta) -> tuple[timedelta, str]:
    """(lookback, why): the file's ``lookback``, else the query's reach, else *default*."""
    if explicit is not None:
        return explicit, "lookback in the file"
    reach = query_reach(query)
    if reach is None:
        return max(default, frequency), "default (the query sets no time range)"
    if reach.span > MAX_REACH:
        return MAX_REACH, f"query: {reach.reason}, capped at 30 days"
    if reach.span < frequency:
        return frequency, f"query: {reach.reason}, raised to the frequency"
    return reach.span, f"query: {reach.reason}"


def render_query(query: str, window: Window) -> str:
    """*query* with ``{{StartTimeISO}}``/``{{EndTimeISO}}`` filled with *window*'s bounds."""
    return query.replace(PLACEHOLDERS[0], iso(window.start)).replace(PLACEHOLDERS[1],
                                                                     iso(window.end))


def format_span(span: timedelta) -> str:
    """``7d``, ``4h``, ``90m``: the shortest exact form."""
    seconds = int(span.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _floored(text: str, start: int, span: timedelta, shown: str) -> Reach:
    """``startofday(ago(7d))`` reaches up to a day further than ``ago(7d)``."""
    before = text[max(0, start - 40):start]
    outer = re.search(r"\b(startofday|startofweek|startofmonth)\s*\(\s*$", before)
    if outer:
        return Reach(span + _FLOOR[outer.group(1)], f"{outer.group(1)}({shown})")
    return Reach(span, shown)


def _argument(text: str, start: int) -> str:
    depth, index = 1, start
    while index < len(text) and depth:
        depth += text[index] == "("
        depth -= text[index] == ")"
        index += 1
    return text[start:index - 1]


def _let_spans(text: str) -> dict[str, timedelta]:
    spans: dict[str, timedelta] = {}
    for match in _LET.finditer(text):
        value = _evaluate(match.group(2), spans)
        if value is not None:
            spans[match.group(1)] = value
    return spans


def _evaluate(expression: str, spans: dict[str, timedelta]) -> timedelta | None:
    """A timespan from literals, let names, ``+``, ``-`` and integer ``*``; None otherwise."""
    expression = expression.strip()
    if not expression:
        return None
    total = timedelta(0)
    for sign, term in _terms(expression):
        value = _term(term, spans)
        if value is None:
            return None
        total += value if sign > 0 else -value
    return total


def _terms(expression: str) -> list[tuple[int, str]]:
    parts = re.split(r"(?<![eE(])\s*([+-])\s*", expression)
    terms, sign = [], 1
    if parts and parts[0] == "":
        parts = parts[1:]
    for part in parts:
        if part in "+-" and part:
            sign = -1 if part == "-" else 1
            continue
        terms.append((sign, part))
        sign = 1
    return terms


def _term(term: str, spans: dict[str, timedelta]) -> timedelta | None:
    term = term.strip()
    while term.startswith("(") and term.endswith(")"):
        term = term[1:-1].strip()
    factors = [f.strip() for f in term.split("*")]
    span: timedelta | None = None
    multiplier = 1.0
    for factor in factors:
        literal = _LITERAL.match(factor) or _TIME_CALL.match(factor)
        if literal:
            value = timedelta(seconds=float(literal.group(1)) *
                              _UNIT_SECONDS[literal.group(2).lower()])
        elif factor in spans:
            value = spans[factor]
        elif re.fullmatch(r"\d+(?:\.\d+)?", factor):
            multiplier *= float(factor)
            continue
        else:
            return None
        if span is not None:
            return None  # a timespan times a timespan is not a timespan
        span = value
    return None if span is None else span * multiplier
