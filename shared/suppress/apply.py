"""Apply rules to the rows a hunt returned: after the query, before the ledger.

Rules are indexed per hunt: per (column, value) for rules with an ``equals``/``in`` condition,
and in one RE2 set per column for the others (one pass over the value finds every rule whose
first condition holds), so a row is checked in full only against the few rules that can match.
Each suppressed row is counted once, for the first matching rule (file order, then snoozes).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any, Protocol

import re2

from .rules import Rule, fold, re2_options

log = logging.getLogger("huntwire")

EXPIRING_SOON = timedelta(days=7)


class HuntLike(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def name(self) -> str: ...


@dataclass
class SuppressionResult:
    kept: list[dict[str, Any]]
    suppressed: dict[str, int]
    """rule id -> rows it suppressed (rules that suppressed nothing are left out)."""


@dataclass(frozen=True)
class Notices:
    expired: list[Rule]
    expiring: list[Rule]

    def lines(self, today: date) -> list[str]:
        return [f"suppression rule '{r.id}' ({r.source}) expired on {r.expires}: not applied"
                for r in self.expired] + [
            f"suppression rule '{r.id}' ({r.source}) expires on {r.expires} "
            f"(in {(r.expires - today).days} day(s)): review it" for r in self.expiring]


def notices(rules: Sequence[Rule], today: date) -> Notices:
    return Notices([r for r in rules if not r.active_on(today)],
                   [r for r in rules if r.active_on(today) and r.expires - today <= EXPIRING_SOON])


@dataclass
class _HuntIndex:
    by_value: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    """column -> folded value -> positions of rules keyed on that exact value"""
    sets: list[tuple[str, Any, list[int]]] = field(default_factory=list)
    """(column, RE2 set of the first condition of each rule with no exact condition, the
    rules' positions by pattern index)"""


class Suppressor:
    """Precompiled rules; ``apply(hunt, rows, today)`` is the one call a run makes per hunt."""

    def __init__(self, rules: Sequence[Rule], *, log_notices: bool = True):
        self.rules = list(rules)
        self.log_notices = log_notices
        """Log expired and soon-expiring rules once per day of use (off where the caller
        prints them itself)."""
        self._indexes: dict[tuple[str, date], _HuntIndex] = {}
        self._announced: set[date] = set()

    def apply(self, hunt: HuntLike, rows: Sequence[dict[str, Any]],
              today: date) -> SuppressionResult:
        self._announce(today)
        index = self._index(hunt, today)
        if not index.sets and not index.by_value:
            return SuppressionResult(list(rows), {})
        kept: list[dict[str, Any]] = []
        counts: dict[str, int] = {}
        for row in rows:
            rule = self._first_match(index, row)
            if rule is None:
                kept.append(row)
            else:
                counts[rule.id] = counts.get(rule.id, 0) + 1
        return SuppressionResult(kept, counts)

    def _first_match(self, index: _HuntIndex, row: Mapping[str, Any]) -> Rule | None:
        candidates: list[int] = []
        for column, table in index.by_value.items():
            text = fold(row.get(column))
            if text is not None:
                candidates += table.get(text, ())
        for column, patterns, positions in index.sets:
            text = fold(row.get(column))
            if text is not None:
                candidates += (positions[i] for i in patterns.Match(text) or ())
        if not candidates:
            return None
        if len(candidates) > 1:
            candidates.sort()
        for position in candidates:
            if self.rules[position].matches(row):
                return self.rules[position]
        return None

    def _index(self, hunt: HuntLike, today: date) -> _HuntIndex:
        key = (hunt.id, today)
        if key not in self._indexes:
            self._indexes[key] = self._build_index(hunt, today)
        return self._indexes[key]

    def _build_index(self, hunt: HuntLike, today: date) -> _HuntIndex:
        index = _HuntIndex()
        loose: dict[str, list[int]] = {}
        for position, rule in enumerate(self.rules):
            if not rule.active_on(today) or not rule.applies_to(hunt.id, hunt.name):
                continue
            exact = next((c for c in rule.where if c.exact), None)
            if exact is None:
                loose.setdefault(rule.where[0].column, []).append(position)
                continue
            table = index.by_value.setdefault(exact.column, {})
            for value in exact.values:
                table.setdefault(value.casefold(), []).append(position)
        for column, positions in loose.items():
            patterns = re2.Set.SearchSet(re2_options())
            for position in positions:
                patterns.Add(self.rules[position].where[0].pattern())
            patterns.Compile()
            index.sets.append((column, patterns, positions))
        return index

    def _announce(self, today: date) -> None:
        """Once per day a suppressor is used: say which rules expired or expire soon."""
        if today in self._announced or not self.log_notices:
            return
        self._announced.add(today)
        for line in notices(self.rules, today).lines(today):
            log.warning("huntwire.suppressions %s", line)


def apply_suppressions(hunt: HuntLike, rows: Sequence[dict[str, Any]], rules: Sequence[Rule],
                       today: date) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Rows no active rule suppresses, and rows suppressed per rule id."""
    result = Suppressor(rules, log_notices=False).apply(hunt, rows, today)
    return result.kept, result.suppressed
