"""Settings are read once and every problem is reported in one clear line."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from shared.settings import APP_SETTING_NAMES, SettingsError, load_settings

DEV = "UseDevelopmentStorage=true"
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
    env = {"HUNTWIRE_STORAGE": DEV, "HUNTWIRE_SCHEDULE": schedule}
    assert load_settings(env).schedule == schedule


@pytest.mark.parametrize("schedule", ["0 61 * * * *", "0 0 25 * * *", "every hour", "0 0 * * * 9"])
def test_invalid_schedules(schedule: str) -> None:
    with pytest.raises(SettingsError, match="HUNTWIRE_SCHEDULE"):
        load_settings({"HUNTWIRE_STORAGE": DEV, "HUNTWIRE_SCHEDULE": schedule})


def test_webhook_url_never_appears_in_errors_or_repr() -> None:
    settings = load_settings({"HUNTWIRE_STORAGE": DEV, "HUNTWIRE_TEAMS_WEBHOOK_URL": WEBHOOK})
    assert "SECRET" not in repr(settings)
    insecure = WEBHOOK.replace("https://", "http://")
    with pytest.raises(SettingsError) as caught:
        load_settings({"HUNTWIRE_STORAGE": DEV, "HUNTWIRE_TEAMS_WEBHOOK_URL": insecure})
    assert "SECRET" not in str(caught.value)
    assert "must use https" in str(caught.value)


def test_plain_http_allowed_for_loopback_only() -> None:
    ok = load_settings({"HUNTWIRE_STORAGE": DEV,
                        "HUNTWIRE_GRAPH_ENDPOINT": "http://127.0.0.1:8080/"})
    assert ok.graph_endpoint == "http://127.0.0.1:8080"
    with pytest.raises(SettingsError, match="loopback only"):
        load_settings({"HUNTWIRE_STORAGE": DEV, "HUNTWIRE_LOGS_ENDPOINT": "http://10.0.0.5"})


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
        "HUNTWIRE_STORAGE__tableServiceUri", "HUNTWIRE_TEAMS_WEBHOOK_URL",
        "HUNTWIRE_TENANT_ID", "HUNTWIRE_SENTINEL_WORKSPACE_RESOURCE_ID",
        "HUNTWIRE_SUPPRESSIONS_DIR", "HUNTWIRE_HEALTH_WEBHOOK_URL", "HUNTWIRE_HEARTBEAT_HOUR",
        "HUNTWIRE_INCIDENT_WINDOW", "HUNTWIRE_INCIDENT_STORM_LIMIT", "HUNTWIRE_SNOOZE_KEY",
        "HUNTWIRE_PUBLIC_URL", "HUNTWIRE_WORKERS", "HUNTWIRE_FANOUT",
        "HUNTWIRE_STORAGE__queueServiceUri", "HUNTWIRE_STORAGE__credential",
        "HUNTWIRE_STORAGE__clientId", "HUNTWIRE_TENANTS_FILE"}


def test_workers_is_a_bounded_whole_number() -> None:
    assert load_settings({"HUNTWIRE_STORAGE": DEV}).workers == 4
    assert load_settings({"HUNTWIRE_STORAGE": DEV, "HUNTWIRE_WORKERS": "16"}).workers == 16
    for bad in ("0", "65", "four", "-1"):
        with pytest.raises(SettingsError, match="HUNTWIRE_WORKERS"):
            load_settings({"HUNTWIRE_STORAGE": DEV, "HUNTWIRE_WORKERS": bad})


WORKSPACE = ("/subscriptions/00000000-0000-0000-0000-0000000000aa/resourceGroups/rg-sec/providers/"
             "Microsoft.OperationalInsights/workspaces/law-sentinel")
KEY = "k" * 40


def test_new_settings_defaults(repo: Path) -> None:
    settings = load_settings({"HUNTWIRE_STORAGE": DEV})
    assert settings.tenant_id is None
    assert settings.sentinel_workspace_resource_id is None
    assert settings.suppressions_dir == repo / "suppressions"
    assert settings.health_webhook_url is None
    assert settings.heartbeat_hour == 8
    assert settings.incident_window == timedelta(hours=2)
    assert settings.incident_storm_limit == 10
    assert settings.snooze_key is None
    assert settings.public_url is None


def test_new_settings_are_read(tmp_path: Path) -> None:
    settings = load_settings({
        "HUNTWIRE_STORAGE": DEV, "HUNTWIRE_TENANT_ID": "00000000-0000-0000-0000-0000000000bb",
        "HUNTWIRE_SENTINEL_WORKSPACE_RESOURCE_ID": WORKSPACE,
        "HUNTWIRE_SUPPRESSIONS_DIR": str(tmp_path), "HUNTWIRE_HEARTBEAT_HOUR": "off",
        "HUNTWIRE_INCIDENT_WINDOW": "90m", "HUNTWIRE_INCIDENT_STORM_LIMIT": "25",
        "HUNTWIRE_SNOOZE_KEY": KEY, "HUNTWIRE_PUBLIC_URL": "https://func-x.azurewebsites.net/"})
    assert settings.tenant_id == "00000000-0000-0000-0000-0000000000bb"
    assert settings.sentinel_workspace_resource_id == WORKSPACE
    assert settings.suppressions_dir == tmp_path
    assert settings.heartbeat_hour is None
    assert settings.incident_window == timedelta(minutes=90)
    assert settings.incident_storm_limit == 25
    assert settings.snooze_key == KEY
    assert settings.public_url == "https://func-x.azurewebsites.net"
    assert load_settings({"HUNTWIRE_STORAGE": DEV,
                          "HUNTWIRE_HEARTBEAT_HOUR": "0"}).heartbeat_hour == 0


def test_health_webhook_defaults_to_the_teams_webhook() -> None:
    other = WEBHOOK.replace("abc", "health")
    assert load_settings({"HUNTWIRE_STORAGE": DEV, "HUNTWIRE_TEAMS_WEBHOOK_URL": WEBHOOK}
                         ).health_webhook_url == WEBHOOK
    assert load_settings({"HUNTWIRE_STORAGE": DEV, "HUNTWIRE_TEAMS_WEBHOOK_URL": WEBHOOK,
                          "HUNTWIRE_HEALTH_WEBHOOK_URL": other}).health_webhook_url == other


def test_secrets_stay_out_of_repr_and_errors() -> None:
    settings = load_settings({"HUNTWIRE_STORAGE": DEV, "HUNTWIRE_SNOOZE_KEY": KEY,
                              "HUNTWIRE_HEALTH_WEBHOOK_URL": WEBHOOK})
    assert KEY not in repr(settings)
    assert "SECRET" not in repr(settings)
    with pytest.raises(SettingsError) as caught:
        load_settings({"HUNTWIRE_STORAGE": DEV, "HUNTWIRE_SNOOZE_KEY": "short-SECRET",
                       "HUNTWIRE_HEALTH_WEBHOOK_URL": WEBHOOK.replace(".com/", ".com:99999/")})
    assert "SECRET" not in str(caught.value)
    assert len(caught.value.problems) == 1  # a short snooze key only turns snoozing off


@pytest.mark.parametrize(("name", "value", "reason"), [
    ("HUNTWIRE_TENANT_ID", "contoso.onmicrosoft.com", "is not a GUID"),
    ("HUNTWIRE_SENTINEL_WORKSPACE_RESOURCE_ID", "law-sentinel", "is not a workspace resource id"),
    ("HUNTWIRE_SENTINEL_WORKSPACE_RESOURCE_ID", WORKSPACE.replace("workspaces", "vaults"),
     "is not a workspace resource id"),
    ("HUNTWIRE_SUPPRESSIONS_DIR", "/nonexistent/suppressions", "does not exist"),
    ("HUNTWIRE_HEARTBEAT_HOUR", "24", "is not an hour 0-23"),
    ("HUNTWIRE_HEARTBEAT_HOUR", "8am", "is not an hour 0-23"),
    ("HUNTWIRE_INCIDENT_WINDOW", "2 hours", "is not a duration"),
    ("HUNTWIRE_INCIDENT_WINDOW", "0h", "is not a duration"),
    ("HUNTWIRE_INCIDENT_WINDOW", "31d", "longer than 30 days"),
    ("HUNTWIRE_INCIDENT_STORM_LIMIT", "-1", "is not a whole number"),
    ("HUNTWIRE_PUBLIC_URL", "func-x.azurewebsites.net", "is not an http(s) URL"),
    ("HUNTWIRE_PUBLIC_URL", "http://func-x.azurewebsites.net", "must use https"),
    ("HUNTWIRE_STORAGE", "garbage", "is not 'Key=Value;...' pairs"),
    ("HUNTWIRE_STORAGE", "AccountName=a;AccountKey=!!!", "AccountKey that is not base64"),
    ("HUNTWIRE_STORAGE", "AccountName=a", "neither AccountKey nor SharedAccessSignature"),
    ("HUNTWIRE_STORAGE", "AccountName=a;AccountKey=Zm9v;TableEndpoint=http://[::1/t",
     "invalid TableEndpoint"),
    ("HUNTWIRE_GRAPH_ENDPOINT", "https://[graph.microsoft.com", "is not a valid URL"),
    ("HUNTWIRE_TEAMS_WEBHOOK_URL", "https://x.logic.azure.com:99999/w?sig=S", "invalid port"),
    ("HUNTWIRE_TEAMS_WEBHOOK_URL", "https://x.logic.azure.com:https/w?sig=S", "invalid port"),
    ("HUNTWIRE_TEAMS_WEBHOOK_URL", "@Microsoft.KeyVault(SecretUri=https://kv/secrets/w)",
     "Key Vault reference was not resolved"),
])
def test_each_bad_setting_is_one_clear_line(name: str, value: str, reason: str) -> None:
    env = {"HUNTWIRE_STORAGE": DEV, name: value}
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    (problem,) = caught.value.problems
    assert problem.startswith(f"{name}: ")
    assert reason in problem
    assert "\n" not in problem


def test_valid_connection_strings_pass() -> None:
    for value in ("UseDevelopmentStorage=true",
                  "DefaultEndpointsProtocol=https;AccountName=a;AccountKey=Zm9vYmFy;"
                  "EndpointSuffix=core.windows.net",
                  "TableEndpoint=https://a.table.core.windows.net;SharedAccessSignature=sv=1&sig=x"):
        assert load_settings({"HUNTWIRE_STORAGE": value}).storage_connection_string == value


def test_flags_override_the_folders(tmp_path: Path) -> None:
    settings = load_settings({"HUNTWIRE_STORAGE": DEV, "HUNTWIRE_HUNTS_DIR": "/nonexistent"},
                             hunts_dir=tmp_path, suppressions_dir=tmp_path)
    assert settings.hunts_dir == tmp_path
    assert settings.suppressions_dir == tmp_path
