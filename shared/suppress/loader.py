"""Load ``suppressions/*.yaml``: each file a YAML list of rules. A broken file never stops the
others: its rules are skipped and the reason returned as an error (fail open)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from ..hunt_yaml import YamlProblem, decode, parse
from .rules import Rule, RuleError, parse_rule


@dataclass
class LoadedRules:
    rules: list[Rule] = field(default_factory=list)
    errors: list[RuleError] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)


def rule_files(directory: Path) -> list[Path]:
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])


def load_rule_files(directory: Path | str, today: date) -> LoadedRules:
    """Every valid rule of every file in *directory* (a missing folder holds no rules)."""
    loaded = LoadedRules()
    root = Path(directory)
    if not root.is_dir():
        return loaded
    seen: dict[str, str] = {}
    for path in rule_files(root):
        loaded.files.append(path)
        try:
            rules = load_rule_file(path, today)
        except RuleError as error:
            loaded.errors.append(error)
            continue
        for rule in rules:
            if rule.id in seen:
                loaded.errors.append(RuleError(str(path), f"duplicate id, already used in "
                                               f"{seen[rule.id]}; this copy is skipped", rule.id))
                continue
            seen[rule.id] = str(path)
            loaded.rules.append(rule)
    return loaded


def load_rule_file(path: Path, today: date) -> list[Rule]:
    """All rules of one file, or RuleError for the first problem (the file is then skipped)."""
    document = read_rule_document(path)
    rules: list[Rule] = []
    ids: set[str] = set()
    for raw in document:
        rule = parse_rule(raw, str(path), today)
        if rule.id in ids:
            raise RuleError(str(path), "duplicate id in the same file", rule.id)
        ids.add(rule.id)
        rules.append(rule)
    return rules


def read_rule_document(path: Path) -> list[Any]:
    """The YAML list a rule file holds; an empty file is an empty list. Read like a hunt file:
    no aliases, no duplicate keys (a second ``where:`` would silently replace the first), no
    deep nesting, a size cap."""
    try:
        document, _ = parse(decode(path.read_bytes()))
    except OSError as exc:
        raise RuleError(str(path), f"cannot read file: {exc.strerror or exc}") from exc
    except YamlProblem as exc:
        where = f" (line {exc.line})" if exc.line else ""
        raise RuleError(str(path), f"not valid{where}: {exc.reason}") from exc
    if document is None:
        return []
    if not isinstance(document, list):
        raise RuleError(str(path), f"a rule file must be a YAML list of rules, found "
                        f"{type(document).__name__}")
    return document
