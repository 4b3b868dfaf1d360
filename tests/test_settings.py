"""Settings are read once and every problem is reported in one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.settings import APP_SETTING_NAMES, SettingsError, load_settings

WEBHOOK = "https://prod-00.westeurope.logic.azure.com/workflows/abc/triggers/manual?sig=SECRET"


def test_defaults_with_only_storage(repo: Path) -> None:
    settings = load_settings({"HUNTWIRE_STORAGE": "UseDevelopmentStorage=true"})
    assert settings.schedule == "0 0 * * * *"
    assert settings.graph_endpoint == "https://graph.microsoft.com"
    assert settings.logs_endpoint == "https://api.loganalytics.io"
    assert settings.hunts_dir == repo / "hunts"
    assert settings.teams_webhook_url is None
    assert settings.sentinel_workspace_id is None


def test_every_problem_reported_at_once() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"HUNTWIRE_SCHEDULE": "0 * * * *", "HUNTWIRE_GRAPH_ENDPOINT": "ftp://x",
                       "HUNTWIRE_SENTINEL_WORKSPACE_ID": "workspace",
                       "HUNTWIRE_HUNTS_DIR": "/nonexistent/hunts"})
    problems = caught.value.problems
    assert len(problems) == 5
    assert any(p.startswith("HUNTWIRE_SCHEDULE:") and "six fields" in p for p in problems)
    assert any(p.startswith("HUNTWIRE_GRAPH_ENDPOINT:") for p in problems)
    assert any(p.startswith("HUNTWIRE_SENTINEL_WORKSPACE_ID:") for p in problems)
    assert any(p.startswith("HUNTWIRE_HUNTS_DIR:") for p in problems)
    assert any("HUNTWIRE_STORAGE" in p and "must be set" in p for p in problems)


@pytest.mark.parametrize("schedule", ["0 0 * * * *", "0 */15 * * * *", "0 30 9-17 * * 1-5",
                                      "0 0,30 * * * *"])
def test_valid_schedules(schedule: str) -> None:
    env = {"HUNTWIRE_STORAGE": "x", "HUNTWIRE_SCHEDULE": schedule}
    assert load_settings(env).schedule == schedule


@pytest.mark.parametrize("schedule", ["0 61 * * * *", "0 0 25 * * *", "every hour", "0 0 * * * 9"])
def test_invalid_schedules(schedule: str) -> None:
    with pytest.raises(SettingsError, match="HUNTWIRE_SCHEDULE"):
        load_settings({"HUNTWIRE_STORAGE": "x", "HUNTWIRE_SCHEDULE": schedule})


def test_webhook_url_never_appears_in_errors_or_repr() -> None:
    settings = load_settings({"HUNTWIRE_STORAGE": "x", "HUNTWIRE_TEAMS_WEBHOOK_URL": WEBHOOK})
    assert "SECRET" not in repr(settings)
    insecure = WEBHOOK.replace("https://", "http://")
    with pytest.raises(SettingsError) as caught:
        load_settings({"HUNTWIRE_STORAGE": "x", "HUNTWIRE_TEAMS_WEBHOOK_URL": insecure})
    assert "SECRET" not in str(caught.value)
    assert "must use https" in str(caught.value)


def test_plain_http_allowed_for_loopback_only() -> None:
    ok = load_settings({"HUNTWIRE_STORAGE": "x",
                        "HUNTWIRE_GRAPH_ENDPOINT": "http://127.0.0.1:8080/"})
    assert ok.graph_endpoint == "http://127.0.0.1:8080"
    with pytest.raises(SettingsError, match="loopback only"):
        load_settings({"HUNTWIRE_STORAGE": "x", "HUNTWIRE_LOGS_ENDPOINT": "http://10.0.0.5"})


def test_managed_identity_storage_is_enough() -> None:
    settings = load_settings({"HUNTWIRE_STORAGE__tableServiceUri":
                              "https://acct.table.core.windows.net",
                              "AZURE_CLIENT_ID": "00000000-0000-0000-0000-000000000001"})
    assert settings.has_storage
    assert settings.storage_connection_string is None


def test_setting_names_match_the_documented_contract() -> None:
    assert {n for n in APP_SETTING_NAMES if n.startswith("HUNTWIRE_")} == {
        "HUNTWIRE_HUNTS_DIR", "HUNTWIRE_SCHEDULE", "HUNTWIRE_GRAPH_ENDPOINT",
        "HUNTWIRE_LOGS_ENDPOINT", "HUNTWIRE_SENTINEL_WORKSPACE_ID", "HUNTWIRE_STORAGE",
        "HUNTWIRE_STORAGE__tableServiceUri", "HUNTWIRE_TEAMS_WEBHOOK_URL"}
