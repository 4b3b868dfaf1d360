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
from typing import Any

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
    "HUNTWIRE_TENANTS_FILE": "unset: one tenant; an MSSP sets it to its tenants file",
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
    "Microsoft.Web/sites/config",
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
    """name -> value expression of every entry of the settings objects in api.bicep (the
    `var platformSettings = union({...})` and `var huntwireSettings = union({...})` blocks)."""
    text = strip_comments(API.read_text(encoding="utf-8"))
    block = re.search(r"^var platformSettings = (.*?)^resource ", text, re.MULTILINE | re.DOTALL)
    assert block, "api.bicep: the settings blocks moved"
    pairs = re.findall(r"^  ([A-Za-z_]\w*): (.+)$", block.group(1), re.MULTILINE)
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
                   "/modules/plan.bicep", "/modules/snooze-key.bicep"):
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
    pattern = (r"^resource \w+ 'Microsoft\.KeyVault/vaults/secrets@[^']+' = \{\n"
               r"(?:\s*//.*\n)*\s*parent: vault\n\s*name: (\w+)\n\s*properties: \{\n"
               r"\s*value: (.+)\n")
    vault = (INFRA / "modules" / "keyvault.bicep").read_text(encoding="utf-8")
    assert dict(re.findall(pattern, vault, re.MULTILINE)) == {
        "teamsWebhookSecretName": "teamsWebhookUrl",
        "healthWebhookSecretName": "empty(healthWebhookUrl) ? teamsWebhookUrl : healthWebhookUrl"}
    snooze = (INFRA / "modules" / "snooze-key.bicep").read_text(encoding="utf-8")
    assert dict(re.findall(pattern, snooze, re.MULTILINE)) == {"secretName": "snoozeKey"}


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
    assert "tableNames: huntwireTableNames" in main


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
            name = re.search(r"^\s*name:\s*(.+)$", body, re.MULTILINE)
            assert name, body
            assert name.group(1).startswith("guid("), body
            if "principalId: operatorPrincipalId" in body:
                continue  # the opt-in operator: test_operator_gets_table_data_only
            count += 1
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


def test_azure_yaml_hooks_check_their_prerequisites(tmp_path: Path) -> None:
    config = yaml.safe_load((REPO / "azure.yaml").read_text(encoding="utf-8"))
    for hook in ("prepackage", "predeploy"):
        assert config["hooks"][hook]["posix"]["run"] == "infra/hooks/validate.sh"
        assert config["hooks"][hook]["windows"]["run"] == "infra/hooks/validate.ps1"
    for script in ("validate.sh", "validate.ps1"):
        text = (INFRA / "hooks" / script).read_text(encoding="utf-8")
        assert "-m shared validate --manifest hunts/huntwire.manifest.json" in text
    hook = INFRA / "hooks" / "validate.sh"
    missing = run(["/bin/sh", hook], env={"HUNTWIRE_PYTHON": str(tmp_path / "python"),
                                         "PATH": "/usr/bin:/bin"})
    assert missing.returncode == 1
    assert missing.stderr.count("\n") == 1
    assert "make setup" in missing.stderr
    python = REPO / ".venv" / "bin" / "python"
    no_node = run(["/bin/sh", hook], env={"HUNTWIRE_PYTHON": str(python), "PATH": str(tmp_path)})
    assert no_node.returncode == 1
    assert "node not found: install Node.js 20" in no_node.stderr
    assert not (REPO / "hunts" / "huntwire.manifest.json").exists() or no_node.stdout == ""


def test_azure_yaml_deploys_the_function() -> None:
    config = yaml.safe_load((REPO / "azure.yaml").read_text(encoding="utf-8"))
    assert config["infra"] == {"provider": "bicep", "path": "infra", "module": "main"}
    assert config["services"]["api"] == {"project": ".", "language": "python", "host": "function"}
    # The Graph Bicep extension needs a recent Bicep, which only recent azd releases ship.
    assert config["requiredVersions"]["azd"] == ">= 1.18.0"
    api = API.read_text(encoding="utf-8")
    assert "param serviceName string = 'api'" in api
    assert "'azd-service-name': serviceName" in api


# --- deploying (issue 22): the parsed templates -------------------------------------------
# These read pycep's parse tree (the parser checkov uses, via tools/check_bicep.py --json), so
# they assert on what the templates declare, not on how they are formatted.


@pytest.fixture(scope="module")
def trees() -> dict[str, Any]:
    if not INFRA_PY.exists():
        pytest.skip(".venv-infra is absent (make creates it)")
    result = run([INFRA_PY, CHECK_BICEP, "--json"])
    assert result.returncode == 0, result.stderr
    parsed: dict[str, Any] = json.loads(result.stdout)
    return parsed


def _main_params() -> dict[str, str]:
    given = json.loads((INFRA / "main.parameters.json").read_text(encoding="utf-8"))
    return {name: spec["value"] for name, spec in given["parameters"].items()}


def _conditional(node: Any) -> dict[str, Any]:
    operands: dict[str, Any] = node["operator"]["operands"]
    assert node["operator"]["type"] == "conditional", node
    return operands


def _text(node: Any) -> str:
    return json.dumps(node)


def test_public_url_is_derived_from_the_default_host_name(trees: dict[str, Any]) -> None:
    api = trees["infra/modules/api.bicep"]
    settings = api["variables"]["huntwireSettings"]["value"]["function"]
    assert settings["type"] == "union"
    assert settings["parameters"]["arg_1"]["HUNTWIRE_PUBLIC_URL"] == "publicBaseUrl"
    public = _conditional(api["variables"]["publicBaseUrl"]["value"])
    assert public["condition"] == {"function": {"type": "empty",
                                                "parameters": {"item_to_test": "publicUrl"}}}
    assert public["true_value"] == "https://${functionApp.properties.defaultHostName}"
    assert public["false_value"] == "publicUrl"
    # The settings are the site's child config (the only place that can read defaultHostName);
    # a siteConfig.appSettings beside it would be replaced by it, so there must be none.
    config = api["resources"]["appSettings"]
    assert config["type"] == "Microsoft.Web/sites/config"
    assert config["config"]["name"] == "appsettings"
    assert config["config"]["parent"] == "functionApp"
    assert config["config"]["properties"]["function"]["parameters"] == {
        "arg_1": "platformSettings", "arg_2": "huntwireSettings"}
    site_config = api["resources"]["functionApp"]["config"]["properties"]["siteConfig"]
    assert "appSettings" not in site_config
    main = trees["infra/main.bicep"]
    assert main["modules"]["api"]["config"]["params"]["publicUrl"] == "publicUrl"
    assert "publicUrl" not in _main_params() or _main_params()["publicUrl"].endswith("=}")


def test_alert_email_is_a_deploy_parameter_wired_to_the_action_group(
        trees: dict[str, Any]) -> None:
    assert _main_params()["alertEmail"] == "${HUNTWIRE_ALERT_EMAIL=}"
    main = trees["infra/main.bicep"]
    assert main["modules"]["alerts"]["config"]["params"]["alertEmail"] == "alertEmail"
    alerts = trees["infra/modules/alerts.bicep"]
    group = alerts["resources"]["actionGroup"]["config"]
    assert group["condition"] == "emailEnabled"
    receivers = group["config"]["properties"]["emailReceivers"]
    assert [r["emailAddress"] for r in receivers] == ["alertEmail"]
    deploy = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    assert "HUNTWIRE_ALERT_EMAIL" in deploy
    assert "notify nobody" in deploy  # what happens without a receiver is said


def test_operator_gets_table_data_only(trees: dict[str, Any]) -> None:
    rbac = trees["infra/modules/rbac.bicep"]
    operator = rbac["resources"]["operatorTableData"]["config"]
    assert _text(operator["condition"]) == _text(
        {"operator": {"type": "not", "operands": {"bool_value": {"function": {
            "type": "empty", "parameters": {"item_to_test": "operatorPrincipalId"}}}}}})
    body = operator["config"]
    assert body["scope"] == "storageAccount"
    assert body["properties"]["principalId"] == "operatorPrincipalId"
    assert body["properties"]["principalType"] == "operatorPrincipalType"
    role = _text(body["properties"]["roleDefinitionId"])
    assert "storageTableDataContributorRoleId" in role
    assert rbac["variables"]["storageTableDataContributorRoleId"]["value"] == (
        "0a9a7e1f-b9d0-4cc4-a60d-0319b160aaa3")
    assert rbac["parameters"]["operatorPrincipalId"]["default"] == ""
    main = trees["infra/main.bicep"]
    params = main["modules"]["rbac"]["config"]["params"]
    assert params["operatorPrincipalId"] == "operatorPrincipalId"
    assert _main_params()["operatorPrincipalId"] == "${HUNTWIRE_OPERATOR_PRINCIPAL_ID=}"
    assert main["outputs"]["AZURE_STORAGE_TABLE_ENDPOINT"]  # what the operator's CLI points at


def test_snooze_key_is_written_only_when_absent_or_rotation_is_asked(
        trees: dict[str, Any]) -> None:
    main = trees["infra/main.bicep"]
    module = main["modules"]["snoozeKeySecret"]
    assert module["detail"]["path"] == "modules/snooze-key.bicep"
    assert module["config"]["condition"] == "writeSnoozeKey"
    assert _text(main["variables"]["writeSnoozeKey"]["value"]) == _text(
        {"operator": {"type": "or", "operands": {
            "operand_1": "rotateSnoozeKey",
            "operand_2": {"operator": {"type": "not",
                                       "operands": {"bool_value": "snoozeKeyProvisioned"}}}}}})
    assert main["parameters"]["snoozeKeyProvisioned"]["default"] is False
    assert main["parameters"]["rotateSnoozeKey"]["default"] is False
    # The round trip: the output azd stores in .env is the parameter of the next provision.
    assert main["outputs"]["HUNTWIRE_SNOOZE_KEY_PROVISIONED"] == {
        "decorators": [], "type": "bool", "value": True}
    params = _main_params()
    assert params["snoozeKeyProvisioned"] == "${HUNTWIRE_SNOOZE_KEY_PROVISIONED=false}"
    assert params["rotateSnoozeKey"] == "${HUNTWIRE_ROTATE_SNOOZE_KEY=false}"
    # No other template writes the key, and the app starts after it exists.
    writers = [path for path, tree in trees.items()
               for resource in tree.get("resources", {}).values()
               if resource["type"] == "Microsoft.KeyVault/vaults/secrets"
               and "snoozeKey" in _text(resource)]
    assert writers == ["infra/modules/snooze-key.bicep"]
    assert "snoozeKeySecret" in main["modules"]["api"]["config"]["dependsOn"]


def test_instance_cap_is_deliberate(trees: dict[str, Any]) -> None:
    main = trees["infra/main.bicep"]["parameters"]["maximumInstanceCount"]
    assert main["default"] == 40
    decorators = {d["type"]: d["argument"] for d in main["decorators"]}
    assert (decorators["min_value"], decorators["max_value"]) == (40, 1000)
    api = trees["infra/modules/api.bicep"]
    assert api["parameters"]["maximumInstanceCount"]["default"] == 40
    scale = api["resources"]["functionApp"]["config"]["properties"]["functionAppConfig"][
        "scaleAndConcurrency"]
    assert scale["maximumInstanceCount"] == "maximumInstanceCount"
    assert "maximumInstanceCount" in (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")


def test_storage_sku_is_a_parameter_defaulting_to_lrs(trees: dict[str, Any]) -> None:
    storage = trees["infra/modules/storage.bicep"]
    assert storage["resources"]["storage"]["config"]["sku"] == {"name": "skuName"}
    assert storage["parameters"]["skuName"]["default"] == "Standard_LRS"
    main = trees["infra/main.bicep"]
    assert main["parameters"]["storageSku"]["default"] == "Standard_LRS"
    assert main["modules"]["storage"]["config"]["params"]["skuName"] == "storageSku"
    allowed = {d["type"]: d["argument"] for d in main["parameters"]["storageSku"]["decorators"]}
    assert "Standard_GRS" in allowed["allowed"]  # replication stays one parameter away


def test_tables_are_the_ones_the_code_uses(trees: dict[str, Any]) -> None:
    code = {name for path in (REPO / "shared").rglob("*.py")
            for name in re.findall(r"[\"'](huntwire[A-Z]\w*)[\"']",
                                   path.read_text(encoding="utf-8"))}
    main = trees["infra/main.bicep"]
    assert set(main["variables"]["huntwireTableNames"]["value"]) == code
    deploy = (REPO / "docs" / "deploy.md").read_text(encoding="utf-8")
    for name in code:
        assert f"`{name}`" in deploy, name
    assert "`huntwireFindingsYYYYMMDD`" in deploy  # the ledger's table per event day


def test_skip_reasons_match_the_app_s_http_function() -> None:
    app = (REPO / "function_app.py").read_text(encoding="utf-8")
    assert re.search(r"@app\.route\([^)]*auth_level=func\.AuthLevel\.ANONYMOUS", app)
    stale = re.compile(r"(?i)no HTTP triggers|timer[- ]only|timer trigger only|has none to "
                       r"probe|huntwire has none")
    for path in [*bicep_files(), REPO / "docs" / "deploy.md"]:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            assert not stale.search(line), f"{path.name}:{number}: {line.strip()[:100]}"
    site = _resource_body(API, "Microsoft.Web/sites")
    for check in ("CKV_AZURE_222", "CKV_AZURE_17"):
        reason = re.search(rf"checkov:skip={check}:(.*)", site)
        assert reason, check
        assert "snooze" in reason.group(1), check


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
