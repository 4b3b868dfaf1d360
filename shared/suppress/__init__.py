"""Suppressions as code (``suppressions/*.yaml``) and snoozes from the card (Table Storage).

Entry points: ``Suppressor.apply(hunt, rows, today)`` (a run, per hunt, before the ledger),
``build_suppressor(settings)`` (the run's rules), ``validate_rules`` (``huntwire validate``),
``snooze_url(settings, hunt, row)`` (the card's link) and ``snooze_page.handle`` (the page).
"""

from __future__ import annotations

from .apply import SuppressionResult, Suppressor, apply_suppressions
from .loader import LoadedRules, load_rule_files
from .rules import Condition, Rule, RuleError
from .validate import RuleProblem, validate_rules
from .wiring import build_suppressor, snooze_url

__all__ = ["Condition", "LoadedRules", "Rule", "RuleError", "RuleProblem", "SuppressionResult",
           "Suppressor", "apply_suppressions", "build_suppressor", "load_rule_files",
           "snooze_url", "validate_rules"]
