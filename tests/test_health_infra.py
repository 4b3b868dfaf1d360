"""The alerts module: failed runs and silence, wired into main.bicep (offline text checks; the
parse and checkov checks in test_infra.py cover the new file too)."""

from __future__ import annotations

import re
from pathlib import Path

INFRA = Path(__file__).resolve().parents[1] / "infra"
ALERTS = (INFRA / "modules" / "alerts.bicep").read_text(encoding="utf-8")


def rule(name: str) -> str:
    match = re.search(rf"^resource {name} 'Microsoft\.Insights/scheduledQueryRules@[^']+' = \{{"
                      r"(.*?)^\}", ALERTS, re.MULTILINE | re.DOTALL)
    assert match, name
    return match.group(1)


def test_failed_invocations_alert_on_any_failed_request_of_the_function() -> None:
    body = rule("failedInvocations")
    assert "where success == false" in body
    assert "operator: 'GreaterThan'" in body
    assert "threshold: 0" in body
    assert "applicationInsightsId" in body
    assert "operation_Name =~ \\'${functionName}\\'" in ALERTS
    assert "param functionName string = 'hourly_hunts'" in ALERTS  # function_app.py's name


def test_no_invocation_for_two_hours_alerts() -> None:
    body = rule("noInvocation")
    assert "windowSize: 'PT2H'" in body
    assert "operator: 'LessThan'" in body
    assert "threshold: 1" in body


def test_email_action_group_only_when_an_address_is_given() -> None:
    assert "param alertEmail string = ''" in ALERTS
    assert re.search(r"resource actionGroup '[^']+' = if \(emailEnabled\)", ALERTS)
    assert ALERTS.count("actionGroups: emailEnabled ? [") == 2


def test_main_wires_the_alerts_module() -> None:
    main = (INFRA / "main.bicep").read_text(encoding="utf-8")
    block = re.search(r"^module alerts 'modules/alerts\.bicep' = \{(.*?)^\}", main,
                      re.MULTILINE | re.DOTALL)
    assert block
    assert "applicationInsightsId: monitoring.outputs.applicationInsightsId" in block.group(1)
    assert "functionAppName: api.outputs.name" in block.group(1)
    assert "param alertEmail string = ''" in main
