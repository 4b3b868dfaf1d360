"""``huntwire validate`` for suppression rules: every problem named by file, rule id and reason."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

from ..hunt import Hunt
from .loader import read_rule_document, rule_files
from .rules import Rule, RuleError, parse_rule

Severity = Literal["error", "warning"]
LOOSE_OPERATORS = frozenset({"contains", "matches", "startswith", "endswith"})
ATTACKER_TEXT_COLUMNS = frozenset({"decodedcommand", "scriptblocktext", "commandline",
                                   "parentcommandline", "processcommandline",
                                   "initiatingprocesscommandline", "additionalfields"})


@dataclass(frozen=True)
class RuleProblem:
    severity: Severity
    file: str
    rule: str | None
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: rule '{self.rule}'" if self.rule else self.file
        return f"{where}: {self.message}"

    def as_dict(self) -> dict[str, Any]:
        return {"severity": self.severity, "file": self.file, "rule": self.rule,
                "message": self.message}


def is_attacker_text(column: str) -> bool:
    """Command lines and decoded scripts: text whoever runs the process chooses."""
    name = column.casefold()
    return name in ATTACKER_TEXT_COLUMNS or name.endswith("commandline")


def validate_rules(rules_dir: Path | str, hunts: Sequence[Hunt], today: date,
                   columns: Mapping[str, set[str]] | None = None) -> list[RuleProblem]:
    """Errors and warnings for every rule file in *rules_dir*.

    *columns* maps hunt id -> the columns its query returns (``hunt_columns``); hunts missing
    from it (or ``None``) are not column-checked.
    """
    root = Path(rules_dir)
    if not root.is_dir():
        return [RuleProblem("error", str(root), None, "suppressions folder does not exist")]
    problems: list[RuleProblem] = []
    seen: dict[str, str] = {}
    for path in rule_files(root):
        for rule in _file_rules(path, today, problems):
            if rule.id in seen:
                problems.append(RuleProblem("error", str(path), rule.id,
                                            f"duplicate id, already used in {seen[rule.id]}"))
                continue
            seen[rule.id] = str(path)
            problems += check_rule(rule, hunts, today, columns)
    return problems


def _file_rules(path: Path, today: date, problems: list[RuleProblem]) -> list[Rule]:
    try:
        document = read_rule_document(path)
    except RuleError as error:
        problems.append(RuleProblem("error", error.path, None, error.reason))
        return []
    rules = []
    for raw in document:
        try:
            rules.append(parse_rule(raw, str(path), today))
        except RuleError as error:
            problems.append(RuleProblem("error", error.path, error.rule_id, error.reason))
    return rules


def check_rule(rule: Rule, hunts: Sequence[Hunt], today: date,
               columns: Mapping[str, set[str]] | None) -> list[RuleProblem]:
    """Hunt references, returned columns, expiry and loose matches of one parsed rule."""
    problems: list[RuleProblem] = []

    def add(severity: Severity, message: str) -> None:
        problems.append(RuleProblem(severity, rule.source, rule.id, message))

    known = {h.id.casefold() for h in hunts} | {h.name.casefold() for h in hunts}
    for name in rule.hunts:
        if name != "*" and name not in known:
            add("error", f"unknown hunt '{name}' (use a hunt id or name, or \"*\")")
    targets = [h for h in hunts if rule.applies_to(h.id, h.name)]
    for message in _column_problems(rule, targets, columns):
        add("error", message)
    if not rule.active_on(today):
        add("warning", f"expired on {rule.expires}: not applied; renew or delete it")
    for condition in rule.where:
        if condition.operator in LOOSE_OPERATORS and is_attacker_text(condition.column):
            add("warning", f"'{condition.operator}' on {condition.column} matches text the "
                "process's author chooses: an attacker can add the same text to hide; prefer "
                "'equals' on the exact command line")
    return problems


def _column_problems(rule: Rule, targets: Sequence[Hunt],
                     columns: Mapping[str, set[str]] | None) -> list[str]:
    if columns is None:
        return []
    checked = [h for h in targets if h.id in columns]
    wanted = [c.column for c in rule.where]
    if "*" in rule.hunts:
        if checked and not any(set(wanted) <= columns[h.id] for h in checked):
            return [f"no hunt returns all of the columns {', '.join(wanted)}"]
        return []
    return [f"column {column} is not returned by hunt '{hunt.name}'"
            for hunt in checked for column in wanted if column not in columns[hunt.id]]


def hunt_columns(hunts: Sequence[Hunt]) -> dict[str, set[str]]:
    """hunt id -> the columns its query returns, from Kusto.Language (hunts whose KQL has
    errors are left out)."""
    from ..kql_check import analyse

    result: dict[str, set[str]] = {}
    for flavour in ("defender", "sentinel"):
        group = {h.id: h.query for h in hunts if h.source == flavour}
        if not group:
            continue
        for key, checked in analyse(group, flavour).items():
            if not any(d.severity == "Error" for d in checked.diagnostics):
                result[key] = {name for name, _ in checked.columns}
    return result
