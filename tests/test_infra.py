"""Offline checks of the infrastructure as code (infra/, azure.yaml).

What can be checked without the Bicep CLI or an Azure subscription: every template parses
(tools/check_bicep.py, pycep + tree-sitter-bicep), checkov finds no failed check and parses
every file it scans, the app settings match the settings the code reads, and the security
properties the issue asks for are present. A real `bicep build` and `what-if` are documented in
docs/deploy.md.

The parser and checkov live in the separate venv .venv-infra (requirements-infra.txt); tests
that need it skip when it is absent.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
INFRA = REPO / "infra"
INFRA_PY = REPO / ".venv-infra" / "bin" / "python"
CHECKOV = REPO / ".venv-infra" / "bin" / "checkov"
CHECK_BICEP = REPO / "tools" / "check_bicep.py"
API = INFRA / "modules" / "api.bicep"
GRAPH_MODULE = "infra/modules/graph-app-role.bicep"

needs_infra_venv = pytest.mark.skipif(
    not (INFRA_PY.exists() and CHECKOV.exists()),
    reason=".venv-infra is absent: python3 -m venv .venv-infra && "
    ".venv-infra/bin/pip install -r requirements-infra.txt (make creates it)",
)

# Settings the code reads that Azure deliberately does not set, each with its reason.
NOT_SET_IN_AZURE = {
    "HUNTWIRE_STORAGE": "connection string for local runs (Azurite); Azure uses the identity",
    "HUNTWIRE_HUNTS_DIR": "unset: the code defaults to the hunts/ folder shipped in the package",
    "HUNTWIRE_SUPPRESSIONS_DIR": "unset: the code defaults to the suppressions/ folder shipped "
                                 "in the package",
}

# Host/platform settings, as the Flex Consumption azd template sets them.
PLATFORM_SETTINGS = {
    "AzureWebJobsStorage__credential",
    "AzureWebJobsStorage__clientId",
    "AzureWebJobsStorage__blobServiceUri",
    "AzureWebJobsStorage__queueServiceUri",
    "APPLICATIONINSIGHTS_CONNECTION_STRING",
    "APPLICATIONINSIGHTS_AUTHENTICATION_STRING",
}

# Settings Flex Consumption rejects or that would bring back shared keys.
FORBIDDEN_SETTINGS = {
    "AzureWebJobsStorage",
    "FUNCTIONS_WORKER_RUNTIME",
    "FUNCTIONS_EXTENSION_VERSION",
    "WEBSITE_RUN_FROM_PACKAGE",
    "WEBSITE_CONTENTAZUREFILECONNECTIONSTRING",
    "WEBSITE_CONTENTSHARE",
    "APPINSIGHTS_INSTRUMENTATIONKEY",
    "HUNTWIRE_STORAGE",
}

# Built-in roles the identity may hold, and nothing more.
EXPECTED_ROLES = {
    "b7e6dc6d-f1e8-4753-8033-0f276bb0955b": "Storage Blob Data Owner",
    "974c5e8b-45b9-4653-ba55-5f855dd0fb88": "Storage Queue Data Contributor",
    "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3": "Storage Table Data Contributor",
    "3913510d-42f4-4e42-8a64-420c390055eb": "Monitoring Metrics Publisher",
    "4633458b-17de-408a-b874-0445c86b69e6": "Key Vault Secrets User",
    "73c42c96-874c-492b-b04d-ab87d138a893": "Log Analytics Reader",
}

# Resource types checkov has checks for. checkov does not look inside `if (...)` or
# `[for ...]` resource bodies, so these must be declared unconditionally to be checked at all.
CHECKOV_CHECKED_TYPES = (
    "Microsoft.Web/sites",
    "Microsoft.Web/serverfarms",
    "Microsoft.Storage/storageAccounts",
    "Microsoft.Storage/storageAccounts/blobServices/containers",
    "Microsoft.KeyVault/vaults",
    "Microsoft.KeyVault/vaults/secrets",
)


def bicep_files() -> list[Path]:
    return sorted(INFRA.rglob("*.bicep"))


def strip_comments(text: str) -> str:
    """Drop // line comments (outside strings, good enough for these templates) and /* */."""
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.DOTALL)
    return "\n".join(re.sub(r"^((?:[^'/]|'[^']*'|/(?!/))*)//.*$", r"\1", line)
                     for line in text.splitlines())


def app_settings() -> dict[str, str]:
    """name -> value expression of every `{ name: '...' value: ... }` entry in api.bicep."""
    text = strip_comments(API.read_text(encoding="utf-8"))
    pairs = re.findall(r"name:\s*'([^']+)'\s*\n\s*value:\s*(.+)", text)
    settings = dict(pairs)
    assert len(settings) == len(pairs), "an app setting is declared twice"
    return settings


def run(args: list[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=REPO,
                          timeout=600, check=False, **kwargs)  # type: ignore[call-overload]


# --- parsing -------------------------------------------------------------------------------


@needs_infra_venv
def test_every_bicep_file_parses() -> None:
    result = run([INFRA_PY, CHECK_BICEP])
    assert result.returncode == 0, result.stderr + result.stdout
    assert f"{len(bicep_files())} file(s) parsed" in result.stdout


@needs_infra_venv
def test_check_bicep_reports_file_and_line(tmp_path: Path) -> None:
    broken = tmp_path / "broken.bicep"
    broken.write_text("param ok string\n\n"
                      "resource x 'Microsoft.Storage/storageAccounts@2023-05-01' = {\n"
                      "  name: 'x'\n  properties: {\n    allowSharedKeyAccess false\n  }\n}\n",
                      encoding="utf-8")
    result = run([INFRA_PY, CHECK_BICEP, broken])
    assert result.returncode == 1
    assert re.search(r"broken\.bicep:6:\d+: ", result.stderr), result.stderr


@needs_infra_venv
def test_check_bicep_rejects_unlisted_extension_file(tmp_path: Path) -> None:
    sneaky = tmp_path / "sneaky.bicep"
    sneaky.write_text("extension microsoftGraphV1\nparam p string\n", encoding="utf-8")
    result = run([INFRA_PY, CHECK_BICEP, sneaky])
    assert result.returncode == 1
    assert "sneaky.bicep:1:1: declares a Bicep extension" in result.stderr


def test_only_the_graph_module_uses_a_bicep_extension() -> None:
    users = {p.relative_to(REPO).as_posix() for p in bicep_files()
             if re.search(r"^\s*extension\s", p.read_text(encoding="utf-8"), re.MULTILINE)}
    assert users == {GRAPH_MODULE}
    config = json.loads((INFRA / "bicepconfig.json").read_text(encoding="utf-8"))
    assert config["extensions"]["microsoftGraphV1"].startswith(
        "br:mcr.microsoft.com/bicep/extensions/microsoftgraph/v1.0:")


# --- checkov -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def checkov_report() -> dict[str, object]:
    if not CHECKOV.exists():
        pytest.skip(".venv-infra is absent (make creates it)")
    result = run([CHECKOV, "--directory", INFRA, "--framework", "bicep", "--skip-download",
                  "--skip-path", r"graph-app-role\.bicep", "--output", "json"])
    assert result.returncode in (0, 1), result.stderr
    report = json.loads(result.stdout)
    assert isinstance(report, dict), report
    return report


def test_checkov_has_no_failed_check(checkov_report: dict[str, object]) -> None:
    summary = checkov_report["summary"]
    assert isinstance(summary, dict)
    failed = checkov_report["results"]["failed_checks"]  # type: ignore[index]
    assert summary["failed"] == 0, [(c["check_id"], c["resource"]) for c in failed]
    assert summary["passed"] >= 20, summary


def test_checkov_parsed_every_file_it_scanned(checkov_report: dict[str, object]) -> None:
    # checkov exits 0 when a file does not parse; it simply checks nothing in it.
    summary = checkov_report["summary"]
    assert isinstance(summary, dict)
    assert summary["parsing_errors"] == 0
    results = checkov_report["results"]
    assert isinstance(results, dict)
    scanned = {c["file_path"] for kind in ("passed_checks", "skipped_checks")
               for c in results[kind]}
    for module in ("/modules/api.bicep", "/modules/storage.bicep", "/modules/keyvault.bicep",
                   "/modules/plan.bicep"):
        assert module in scanned


def test_every_checkov_skip_has_a_documented_reason(checkov_report: dict[str, object]) -> None:
    skipped = checkov_report["results"]["skipped_checks"]  # type: ignore[index]
    deploy_doc = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    for check in skipped:
        reason = check["check_result"].get("suppress_comment", "")
        assert len(reason) > 30, f"{check['check_id']} skipped without a real reason"
        assert check["check_id"] in deploy_doc, f"{check['check_id']} not listed in docs/deploy.md"


def test_checked_resource_types_are_not_conditional_or_looped() -> None:
    types = "|".join(re.escape(t) for t in CHECKOV_CHECKED_TYPES)
    pattern = re.compile(rf"^resource\s+\w+\s+'({types})@[^']+'\s*=\s*(if\b|\[)", re.MULTILINE)
    hidden = [(p.name, m.group(1)) for p in bicep_files()
              for m in pattern.finditer(p.read_text(encoding="utf-8"))]
    assert hidden == []


# --- app settings --------------------------------------------------------------------------


def test_app_settings_match_the_settings_the_code_reads() -> None:
    try:
        from shared.settings import APP_SETTING_NAMES
    except ImportError as exc:  # pragma: no cover - until shared/settings.py lands
        pytest.skip(f"shared.settings.APP_SETTING_NAMES not importable yet: {exc}")
    code = set(APP_SETTING_NAMES)
    assert set(NOT_SET_IN_AZURE) <= code, "NOT_SET_IN_AZURE names a setting the code dropped"
    in_bicep = {n for n in app_settings() if n.startswith("HUNTWIRE_") or n == "AZURE_CLIENT_ID"}
    assert in_bicep == code - set(NOT_SET_IN_AZURE)


def test_platform_settings_follow_the_flex_template() -> None:
    names = set(app_settings())
    other = {n for n in names if not (n.startswith("HUNTWIRE_") or n == "AZURE_CLIENT_ID")}
    assert other == PLATFORM_SETTINGS
    assert not names & FORBIDDEN_SETTINGS


def test_identity_based_settings_use_the_user_assigned_identity() -> None:
    settings = app_settings()
    for name in ("AzureWebJobsStorage__clientId", "AZURE_CLIENT_ID"):
        assert settings[name].strip() == "identityClientId", name
    assert settings["AzureWebJobsStorage__credential"].strip() == "'managedidentity'"
    assert settings["APPLICATIONINSIGHTS_AUTHENTICATION_STRING"].strip() == (
        "'ClientId=${identityClientId};Authorization=AAD'")
    assert settings["HUNTWIRE_STORAGE__tableServiceUri"].strip() == (
        "stg.properties.primaryEndpoints.table")
    assert settings["HUNTWIRE_TEAMS_WEBHOOK_URL"].strip() == (
        "'@Microsoft.KeyVault(SecretUri=${teamsWebhookSecretUri})'")
    assert settings["HUNTWIRE_SCHEDULE"].strip() == "huntSchedule"
    assert settings["HUNTWIRE_HEALTH_WEBHOOK_URL"].strip() == (
        "'@Microsoft.KeyVault(SecretUri=${healthWebhookSecretUri})'")
    assert settings["HUNTWIRE_SNOOZE_KEY"].strip() == (
        "'@Microsoft.KeyVault(SecretUri=${snoozeKeySecretUri})'")
    assert settings["HUNTWIRE_TENANT_ID"].strip() == "tenantId"
    assert settings["HUNTWIRE_SENTINEL_WORKSPACE_RESOURCE_ID"].strip() == (
        "sentinelWorkspaceResourceId")
    main = (INFRA / "main.bicep").read_text(encoding="utf-8")
    assert "tenantId: tenant().tenantId" in main


def test_every_secret_is_a_key_vault_secret() -> None:
    from shared.settings import SECRET_SETTINGS

    settings = app_settings()
    for name in SECRET_SETTINGS - set(NOT_SET_IN_AZURE):
        assert settings[name].strip().startswith("'@Microsoft.KeyVault(SecretUri="), name
    vault = (INFRA / "modules" / "keyvault.bicep").read_text(encoding="utf-8")
    secrets = re.findall(r"^resource \w+ 'Microsoft\.KeyVault/vaults/secrets@[^']+' = \{\n"
                         r"(?:\s*//.*\n)*\s*parent: vault\n\s*name: (\w+)\n\s*properties: \{\n"
                         r"\s*value: (.+)\n", vault, re.MULTILINE)
    assert dict(secrets) == {
        "teamsWebhookSecretName": "teamsWebhookUrl",
        "healthWebhookSecretName": "empty(healthWebhookUrl) ? teamsWebhookUrl : healthWebhookUrl",
        "snoozeKeySecretName": "snoozeKey"}


# --- security properties -------------------------------------------------------------------


def _resource_body(path: Path, type_: str) -> str:
    text = path.read_text(encoding="utf-8")
    match = re.search(rf"^resource\s+\w+\s+'{re.escape(type_)}@[^']+'\s*=\s*(?:if \([^)]*\)\s*)?"
                      r"\{\n(.*?)^\}", text, re.MULTILINE | re.DOTALL)
    assert match, f"{type_} not declared in {path.name}"
    return match.group(1)


def test_function_app_is_flex_consumption_and_locked_down() -> None:
    plan = _resource_body(INFRA / "modules" / "plan.bicep", "Microsoft.Web/serverfarms")
    for needle in ("name: 'FC1'", "tier: 'FlexConsumption'", "reserved: true"):
        assert needle in plan, needle
    site = _resource_body(API, "Microsoft.Web/sites")
    for needle in ("kind: 'functionapp,linux'", "type: 'UserAssigned'", "httpsOnly: true",
                   "keyVaultReferenceIdentity: identityId", "minTlsVersion: '1.2'",
                   "type: 'UserAssignedIdentity'"):
        assert needle in site, needle
    # Flex Consumption rejects siteConfig.ftpsState (BadRequest 51021); FTP does not exist there.
    assert "ftpsState" not in strip_comments(site)
    api = API.read_text(encoding="utf-8")
    policies = re.findall(r"basicPublishingCredentialsPolicies@[^']+' = \{\n\s*parent: functionApp"
                          r"\n\s*name: '(ftp|scm)'\n\s*properties: \{\n\s*allow: false", api)
    assert sorted(policies) == ["ftp", "scm"]
    main = (INFRA / "main.bicep").read_text(encoding="utf-8")
    assert "runtimeName: 'python'" in main
    assert "runtimeVersion: '3.11'" in main


def test_storage_is_identity_only() -> None:
    body = _resource_body(INFRA / "modules" / "storage.bicep", "Microsoft.Storage/storageAccounts")
    for needle in ("allowSharedKeyAccess: false", "allowBlobPublicAccess: false",
                   "minimumTlsVersion: 'TLS1_2'", "supportsHttpsTrafficOnly: true"):
        assert needle in body, needle
    main = (INFRA / "main.bicep").read_text(encoding="utf-8")
    tables = re.search(r"var findingsTableNames = \[(.*?)\]", main, re.DOTALL)
    assert tables
    assert re.findall(r"'(\w+)'", tables.group(1)) == [
        "huntwireFindings", "huntwirePending", "huntwireCheckpoints"]


def test_key_vault_is_rbac_with_purge_protection() -> None:
    body = _resource_body(INFRA / "modules" / "keyvault.bicep", "Microsoft.KeyVault/vaults")
    for needle in ("enableRbacAuthorization: true", "enableSoftDelete: true",
                   "enablePurgeProtection: true"):
        assert needle in body, needle


def test_monitoring_local_auth_disabled() -> None:
    text = (INFRA / "modules" / "monitoring.bicep").read_text(encoding="utf-8")
    assert "DisableLocalAuth: true" in _resource_body(INFRA / "modules" / "monitoring.bicep",
                                                      "Microsoft.Insights/components")
    assert "disableLocalAuth: true" in text


def test_no_secrets_or_keys_in_the_templates() -> None:
    for path in [*bicep_files(), *INFRA.glob("*.json")]:
        text = path.read_text(encoding="utf-8")
        for needle in ("listKeys(", "listkeys(", "AccountKey=", "SharedAccessSignature",
                       "InstrumentationKey=", "connectionString("):
            assert needle not in text, f"{needle} in {path.name}"
    for path in bicep_files():
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"@secure\(\)\s*\n(?:\s*(?:@|//).*\n)*\s*param\s+\w+\s+\w+(.*)",
                                 text):
            # Only "empty" or a value made fresh at deployment (newGuid()) may be a default.
            default = match.group(1).partition("=")[2].strip()
            assert default in ("", "''", "'${newGuid()}${newGuid()}'"), (
                f"secure parameter with a default in {path.name}: {default}")


def test_role_assignments_are_deterministic_and_least_privilege() -> None:
    roles: set[str] = set()
    count = 0
    for path in bicep_files():
        text = path.read_text(encoding="utf-8")
        for body in re.findall(r"'Microsoft\.Authorization/roleAssignments@[^']+'\s*=\s*"
                               r"(?:if \([^)]*\)\s*)?\{\n(.*?)^\}", text, re.MULTILINE | re.DOTALL):
            count += 1
            name = re.search(r"^\s*name:\s*(.+)$", body, re.MULTILINE)
            assert name, body
            assert name.group(1).startswith("guid("), body
            assert "principalType: 'ServicePrincipal'" in body
            assert "principalId: managedIdentityPrincipalId" in body
            role_var = re.search(r"roleDefinitions',\s*(\w+)\)", body)
            assert role_var, body
            role_id = re.search(rf"var {role_var.group(1)} = '([0-9a-f-]+)'", text)
            assert role_id, role_var.group(1)
            roles.add(role_id.group(1))
    assert count == len(EXPECTED_ROLES)
    assert roles == set(EXPECTED_ROLES)


def test_sentinel_reader_only_when_a_workspace_is_given() -> None:
    main = (INFRA / "main.bicep").read_text(encoding="utf-8")
    assert re.search(r"module sentinelAccess '[^']+' = if \(sentinelEnabled\)", main)
    assert "var sentinelEnabled = !empty(sentinelWorkspaceResourceId)" in main
    assert "sentinelWorkspaceId: sentinelEnabled ? sentinelAccess.outputs.customerId : ''" in main


def test_graph_permission_module() -> None:
    text = (REPO / GRAPH_MODULE).read_text(encoding="utf-8")
    assert "extension microsoftGraphV1" in text
    assert "'Microsoft.Graph/appRoleAssignedTo@v1.0'" in text
    assert "appId: '00000003-0000-0000-c000-000000000000'" in text
    assert "param appRoleValue string = 'ThreatHunting.Read.All'" in text
    main = (INFRA / "main.bicep").read_text(encoding="utf-8")
    assert re.search(r"module graphPermission 'modules/graph-app-role\.bicep' = "
                     r"if \(grantGraphPermission\)", main)


# --- azd -----------------------------------------------------------------------------------


def _params(path: Path) -> dict[str, bool]:
    """param name -> has a default value."""
    text = strip_comments(path.read_text(encoding="utf-8"))
    return {m.group(1): "=" in m.group(2)
            for m in re.finditer(r"^param\s+(\w+)\s+\w+(.*)$", text, re.MULTILINE)}


def test_main_parameters_match_main_bicep() -> None:
    declared = _params(INFRA / "main.bicep")
    given = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))["parameters"]
    assert set(given) <= set(declared)
    required = {name for name, has_default in declared.items() if not has_default}
    assert required <= set(given)
    assert given["teamsWebhookUrl"]["value"] == "${HUNTWIRE_TEAMS_WEBHOOK_URL}"
    assert given["healthWebhookUrl"]["value"] == "${HUNTWIRE_HEALTH_WEBHOOK_URL=}"
    assert "snoozeKey" not in given  # generated at deployment (newGuid()), never in a file


def test_module_params_exist() -> None:
    main = (INFRA / "main.bicep").read_text(encoding="utf-8")
    for module_path, block in re.findall(r"^module\s+\w+\s+'([^']+)'.*?params: \{\n(.*?)^  \}",
                                         main, re.MULTILINE | re.DOTALL):
        declared = _params(INFRA / module_path)
        passed = set(re.findall(r"^    (\w+):", block, re.MULTILINE))
        assert passed <= set(declared), (module_path, passed - set(declared))
        required = {n for n, has_default in declared.items() if not has_default}
        assert required <= passed, (module_path, required - passed)


def test_azure_yaml_deploys_the_function() -> None:
    config = yaml.safe_load((REPO / "azure.yaml").read_text(encoding="utf-8"))
    assert config["infra"] == {"provider": "bicep", "path": "infra", "module": "main"}
    assert config["services"]["api"] == {"project": ".", "language": "python", "host": "function"}
    # The Graph Bicep extension needs a recent Bicep, which only recent azd releases ship.
    assert config["requiredVersions"]["azd"] == ">= 1.18.0"
    api = API.read_text(encoding="utf-8")
    assert "param serviceName string = 'api'" in api
    assert "'azd-service-name': serviceName" in api


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
