"""``huntwire validate`` for suppression rules: every problem named by file, rule id and reason."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any, Literal

from ..hunt import Hunt
from ..suggest import did_you_mean
from .breadth import matches_everything
from .loader import read_rule_document, rule_files
from .rules import Rule, RuleError, check_rule_fields

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
                   columns: Mapping[str, Mapping[str, str] | set[str]] | None = None,
                   elsewhere: Sequence[Hunt] = ()) -> list[RuleProblem]:
    """Errors and warnings for every rule file in *rules_dir*, every problem of every rule.

    *columns* maps hunt id -> the columns its query returns (``hunt_column_types``); hunts
    missing from it (or ``None``) are not column-checked. *elsewhere*: hunts of other folders
    (the configured hunts folder when ``--hunts`` names another): a rule naming one of them is
    a warning here, not an error; a name that exists nowhere is an error.
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
            problems += check_rule(rule, hunts, today, columns, elsewhere)
    return problems


def _file_rules(path: Path, today: date, problems: list[RuleProblem]) -> list[Rule]:
    try:
        document = read_rule_document(path)
    except RuleError as error:
        problems.append(RuleProblem("error", error.path, None, error.reason))
        return []
    rules = []
    for raw in document:
        rule, errors = check_rule_fields(raw, str(path), today)
        problems += [RuleProblem("error", e.path, e.rule_id, e.reason) for e in errors]
        if rule is not None:
            rules.append(rule)
    return rules


def check_rule(rule: Rule, hunts: Sequence[Hunt], today: date,
               columns: Mapping[str, Mapping[str, str] | set[str]] | None,
               elsewhere: Sequence[Hunt] = ()) -> list[RuleProblem]:
    """Hunt references, returned columns, breadth, expiry and loose matches of one rule."""
    problems: list[RuleProblem] = []

    def add(severity: Severity, message: str) -> None:
        problems.append(RuleProblem(severity, rule.source, rule.id, message))

    for severity, message in _reference_problems(rule, hunts, elsewhere):
        add(severity, message)
    targets = [h for h in hunts if rule.applies_to(h.id, h.name)]
    for message in _column_problems(rule, targets, columns):
        add("error", message)
    if _silences_everything(rule, targets, columns):
        add("error", "matches every row its hunts can return (each condition holds for any "
            "realistic value of its column): it would silence the hunt entirely; name the "
            "exact values, or set `enabled: false` on the hunt")
    if not rule.active_on(today):
        add("warning", f"expired on {rule.expires}: not applied; renew or delete it")
    for condition in rule.where:
        if condition.operator in LOOSE_OPERATORS and is_attacker_text(condition.column):
            add("warning", f"'{condition.operator}' on {condition.column} matches text the "
                "process's author chooses: an attacker can add the same text to hide; prefer "
                "'equals' on the exact command line")
    return problems


def _names(hunts: Sequence[Hunt]) -> dict[str, str]:
    """folded id or name -> as written."""
    return {**{h.id.casefold(): h.id for h in hunts}, **{h.name.casefold(): h.name for h in hunts}}


def _reference_problems(rule: Rule, hunts: Sequence[Hunt],
                        elsewhere: Sequence[Hunt]) -> list[tuple[Severity, str]]:
    here, other = _names(hunts), _names(elsewhere)
    found: list[tuple[Severity, str]] = []
    for name in rule.hunts:
        if name == "*" or name in here:
            continue
        if name in other:
            found.append(("warning", f"hunt '{other[name]}' is not in the hunts folder "
                          "validated (it is in the configured one): not checked here"))
        else:
            found.append(("error", f"unknown hunt '{name}'"
                          f"{did_you_mean(name, [*here.values(), *other.values()])} (use a hunt "
                          "id or name, or \"*\")"))
    return found


def _silences_everything(rule: Rule, targets: Sequence[Hunt],
                         columns: Mapping[str, Mapping[str, str] | set[str]] | None) -> bool:
    types: dict[str, str] = {}
    for hunt in targets:
        known = (columns or {}).get(hunt.id)
        if isinstance(known, Mapping):
            types.update(known)
    return matches_everything(rule, types)


def _column_problems(rule: Rule, targets: Sequence[Hunt],
                     columns: Mapping[str, Mapping[str, str] | set[str]] | None) -> list[str]:
    if columns is None:
        return []
    checked = [h for h in targets if h.id in columns]
    wanted = [c.column for c in rule.where]
    if "*" in rule.hunts:
        if checked and not any(set(wanted) <= set(columns[h.id]) for h in checked):
            return [f"no hunt returns all of the columns {', '.join(wanted)}"]
        return []
    return [f"column {column} is not returned by hunt '{hunt.name}'"
            f"{did_you_mean(column, columns[hunt.id])}"
            for hunt in checked for column in wanted if column not in columns[hunt.id]]


def hunt_columns(hunts: Sequence[Hunt]) -> dict[str, set[str]]:
    """hunt id -> the columns its query returns, from Kusto.Language (hunts whose KQL has
    errors are left out)."""
    return {key: set(typed) for key, typed in hunt_column_types(hunts).items()}


def hunt_column_types(hunts: Sequence[Hunt]) -> dict[str, dict[str, str]]:
    """hunt id -> {column: KQL type} of what its query returns (hunts with KQL errors left
    out)."""
    from ..kql_check import analyse

    result: dict[str, dict[str, str]] = {}
    for flavour in ("defender", "sentinel"):
        group = {h.id: h.query for h in hunts if h.source == flavour}
        if not group:
            continue
        for key, checked in analyse(group, flavour).items():
            if not any(d.severity == "Error" for d in checked.diagnostics):
                result[key] = dict(checked.columns)
    return result
