"""Suppression rules: the typed model, parsed from one YAML mapping, conditions precompiled.

A rule silences a row when every condition in ``where`` holds. Comparisons are case-insensitive
on the value the hunt returned (``str(value)``, case-folded); a column the row lacks, or holds
null in, never matches. ``matches`` is an unanchored RE2 search (google-re2: linear time, no
back-references or look-around).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from functools import partial
from typing import Any, Literal, TypeVar

import re2

from ..errors import ConfigurationError
from ..suggest import did_you_mean

Operator = Literal["equals", "in", "startswith", "endswith", "contains", "matches"]
OPERATORS: tuple[Operator, ...] = ("equals", "in", "startswith", "endswith", "contains",
                                   "matches")
EXACT_OPERATORS = frozenset({"equals", "in"})
RULE_KEYS = frozenset({"id", "hunts", "where", "reason", "owner", "expires"})
MAX_AHEAD = timedelta(days=366)
"""`expires` at most one year ahead (366 days, so a leap year never rejects 'same date next
year')."""
_RULE_ID = re.compile(r"^[a-z0-9][a-z0-9._-]{0,99}$")
_COLUMN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class RuleError(ConfigurationError):
    """A rule or rule file that cannot be used: names the file, the rule id and the reason."""

    reason: str

    def __init__(self, path: str, reason: str, rule_id: str | None = None):
        self.path = path
        self.rule_id = rule_id
        self.reason = reason
        where = f"{path}: rule '{rule_id}'" if rule_id else path
        super().__init__(f"{where}: {reason}")

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.path, "rule": self.rule_id, "message": self.reason}


def fold(value: Any) -> str | None:
    """The text a condition compares: None stays None, everything else str(), case-folded."""
    if value is None:
        return None
    if isinstance(value, datetime):
        value = value.isoformat()
    return str(value).casefold()


@dataclass(frozen=True)
class Condition:
    column: str
    operator: Operator
    values: tuple[str, ...]
    """As written in the rule (one value, except for ``in``)."""
    test: Callable[[str], bool] = field(repr=False, compare=False)
    """Precompiled test on the folded row value."""

    @property
    def exact(self) -> bool:
        return self.operator in EXACT_OPERATORS

    def holds(self, row: Mapping[str, Any]) -> bool:
        text = fold(row.get(self.column))
        return text is not None and self.test(text)

    def pattern(self) -> str:
        """The condition as one RE2 pattern on the folded value (for a combined RE2 set)."""
        if self.operator == "matches":
            return f"(?:{self.values[0]})"
        literals = "|".join(re2.escape(v.casefold()) for v in self.values)
        return {"equals": "^(?:{})$", "in": "^(?:{})$", "startswith": "^(?:{})",
                "endswith": "(?:{})$", "contains": "(?:{})"}[self.operator].format(literals)

    def describe(self) -> str:
        shown = self.values if self.operator == "in" else self.values[0]
        return f"{self.column} {self.operator} {shown!r}"


@dataclass(frozen=True)
class Rule:
    id: str
    hunts: tuple[str, ...]
    """Hunt ids or names, case-folded; ``("*",)`` for every hunt."""
    where: tuple[Condition, ...]
    reason: str
    owner: str
    expires: date
    source: str
    """The file it came from, or ``table:huntwireSuppressions`` for a snooze."""

    def applies_to(self, hunt_id: str, hunt_name: str) -> bool:
        return "*" in self.hunts or hunt_id.casefold() in self.hunts \
            or hunt_name.casefold() in self.hunts

    def matches(self, row: Mapping[str, Any]) -> bool:
        return all(c.holds(row) for c in self.where)

    def active_on(self, today: date) -> bool:
        """A rule applies up to and including its ``expires`` date."""
        return today <= self.expires


def compile_condition(column: str, operator: str, operand: Any) -> Condition:
    """Build one condition; ValueError says what is wrong with it."""
    if not isinstance(column, str) or not _COLUMN.match(column):
        raise ValueError(f"'{column}' is not a column name")
    if operator not in OPERATORS:
        raise ValueError(f"unknown operator '{operator}' on column {column}"
                         f"{did_you_mean(str(operator), OPERATORS)} (use one of "
                         f"{', '.join(OPERATORS)})")
    if operator == "in":
        if not isinstance(operand, list) or not operand or not all(
                isinstance(v, str | int) and not isinstance(v, bool) for v in operand):
            raise ValueError(f"'in' on column {column} wants a non-empty list of strings")
        values = tuple(str(v) for v in operand)
    else:
        if not isinstance(operand, str | int) or isinstance(operand, bool) or operand == "":
            raise ValueError(f"'{operator}' on column {column} wants a non-empty string")
        values = (str(operand),)
    return Condition(column, operator, values, _test(operator, values))


def _test(operator: str, values: tuple[str, ...]) -> Callable[[str], bool]:
    folded = values[0].casefold()
    if operator == "equals":
        return folded.__eq__
    if operator == "in":
        return frozenset(v.casefold() for v in values).__contains__
    if operator == "startswith":
        return lambda text: text.startswith(folded)
    if operator == "endswith":
        return lambda text: text.endswith(folded)
    if operator == "contains":
        return lambda text: folded in text
    pattern = compile_re2(values[0])
    return lambda text: pattern.search(text) is not None


def re2_options() -> Any:
    options = re2.Options()
    options.case_sensitive = False
    options.log_errors = False
    return options


def compile_re2(pattern: str) -> Any:
    """Compile *pattern* with RE2, case-insensitive; ValueError on invalid syntax."""
    try:
        return re2.compile(pattern, re2_options())
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise ValueError(f"invalid RE2 regular expression {pattern!r}: {detail}") from exc


def parse_rule(raw: Any, source: str, today: date) -> Rule:
    """One rule from its YAML mapping; RuleError names the file, the rule id and the (first)
    reason."""
    rule, problems = check_rule_fields(raw, source, today)
    if rule is None:
        raise problems[0]
    return rule


def check_rule_fields(raw: Any, source: str, today: date) -> tuple[Rule | None, list[RuleError]]:
    """The rule, or None and every problem of it (``validate`` reports them all at once)."""
    if not isinstance(raw, dict):
        return None, [RuleError(source, f"a rule must be a mapping, found {type(raw).__name__}")]
    rule_id = raw.get("id")
    label = rule_id if isinstance(rule_id, str) and _RULE_ID.match(rule_id) else None
    problems: list[str] = []
    if label is None:
        problems.append("'id' is missing or not lower-case letters, digits, '.', '_' or '-' "
                        "(at most 100 characters)")
    problems += [f"unknown key '{k}'{did_you_mean(str(k), RULE_KEYS)}"
                 for k in sorted(map(str, raw)) if k not in RULE_KEYS]
    for key in ("reason", "owner"):
        if not isinstance(raw.get(key), str) or not raw[key].strip():
            problems.append(f"'{key}' is required (a non-empty string)")
    hunts = _collect(problems, _hunts, raw.get("hunts"))
    where = _where(raw.get("where"), problems)
    expires = _collect(problems, lambda v: parse_expiry(v, today), raw.get("expires"))
    if problems or label is None or hunts is None or expires is None:
        return None, [RuleError(source, p, label) for p in problems]
    return Rule(id=label, hunts=hunts, where=where, reason=raw["reason"].strip(),
                owner=raw["owner"].strip(), expires=expires, source=source), []


T = TypeVar("T")


def _collect(problems: list[str], parse: Callable[[Any], T], value: Any) -> T | None:
    try:
        return parse(value)
    except ValueError as exc:
        problems.append(str(exc))
        return None


def _hunts(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(
            isinstance(v, str) and v.strip() for v in value):
        raise ValueError("'hunts' is required: a list of hunt ids or names, or [\"*\"]")
    return tuple(v.strip().casefold() for v in value)


def _where(value: Any, problems: list[str]) -> tuple[Condition, ...]:
    if not isinstance(value, dict) or not value:
        problems.append("'where' is required: column -> {operator: value}")
        return ()
    conditions = []
    for column, condition in value.items():
        if not isinstance(condition, dict) or len(condition) != 1:
            problems.append(f"column {column} wants exactly one condition, like "
                            "{equals: \"...\"}")
            continue
        ((operator, operand),) = condition.items()
        made = _collect(problems, partial(compile_condition, column, str(operator)), operand)
        if made is not None:
            conditions.append(made)
    return tuple(conditions)


def parse_expiry(value: Any, today: date) -> date:
    """``expires`` as a date, required, at most one year after *today*."""
    if isinstance(value, datetime):
        value = value.date()
    elif isinstance(value, str):
        try:
            value = date.fromisoformat(value.strip())
        except ValueError:
            raise ValueError(f"'expires' {value!r} is not a date like 2027-06-30") from None
    if not isinstance(value, date):
        raise ValueError("'expires' is required (a date like 2027-06-30, at most one year "
                         "ahead)")
    if value > today + MAX_AHEAD:
        raise ValueError(f"'expires' {value.isoformat()} is more than one year ahead; review "
                         "the rule within a year")
    return value
