"""The tenants file: read, validated one line per problem; each tenant's credential and sources."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from azure.identity import ClientAssertionCredential

from devtools.fake_loganalytics import FakeLogAnalytics
from devtools.identity import IdentityServer
from shared.credentials import make_credential
from shared.hunt import Hunt
from shared.retry import RetryPolicy
from shared.settings import Settings
from shared.sources.base import Timeouts
from shared.sources.tenant import (
    ManagedIdentityAssertion,
    SharedLimits,
    defender_credential,
    tenant_sources,
)
from shared.tenants import Tenant, TenantsError, load_tenants, single_tenant
from shared.window import Window

T1, T2 = "6f1c0000-0000-4000-8000-000000000001", "6f1c0000-0000-4000-8000-000000000002"
APP = "0a2b0000-0000-4000-8000-0000000000a1"
WS1, WS2 = "5e0c0000-0000-4000-8000-0000000000b1", "5e0c0000-0000-4000-8000-0000000000b2"
UAMI = "1d1d0000-0000-4000-8000-000000000011"
WEBHOOK = "https://prod-00.westeurope.logic.azure.com/workflows/abc/triggers/manual?sig=SECRET"
ENV = {"HUNTWIRE_TEAMS_WEBHOOK_CONTOSO": WEBHOOK}
SETTING = "teams_webhook_setting"
RESOURCE_ID = ("/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/rg/providers/"
               "Microsoft.OperationalInsights/workspaces/contoso-ws")
GOOD = f"""
tenants:
  - name: Contoso
    tenant_id: {T1}
    defender: {{client_id: {APP}}}
    sentinel:
      workspaces:
        - id: {WS1}
          resource_id: {RESOURCE_ID}
        - id: {WS2}
    teams_webhook_setting: HUNTWIRE_TEAMS_WEBHOOK_CONTOSO
    hunts: [hunt-a, hunt-b]
    suppressions: [rules/contoso]
  - name: Fabrikam
    tenant_id: {T2}
    defender: {{client_id: {APP}}}
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "rules" / "contoso").mkdir(parents=True, exist_ok=True)
    path = tmp_path / "tenants.yaml"
    path.write_text(text)
    return path


def test_a_good_file_gives_every_tenant_with_its_access(tmp_path: Path) -> None:
    contoso, fabrikam = load_tenants(write(tmp_path, GOOD), ENV,
                                     known_hunts={"hunt-a", "hunt-b", "hunt-c"})
    assert (contoso.name, contoso.tenant_id, contoso.defender_client_id) == ("Contoso", T1, APP)
    assert [w.id for w in contoso.workspaces] == [WS1, WS2]
    assert contoso.workspaces[0].resource_id is not None
    assert contoso.runs("hunt-a")
    assert not contoso.runs("hunt-c")
    assert contoso.suppressions == ((tmp_path / "rules" / "contoso").resolve(),)
    assert contoso.webhook_url(ENV, shared="https://shared.example/w") == WEBHOOK
    assert fabrikam.runs("hunt-c")
    assert fabrikam.webhook_url(ENV, shared="https://shared.example/w") == \
        "https://shared.example/w"
    assert fabrikam.workspaces == ()


@pytest.mark.parametrize(("change", "expected"), [
    ((f"tenant_id: {T2}", "tenant_id: not-a-guid"),
     "tenants[1] (Fabrikam).tenant_id: 'not-a-guid' is not a GUID"),
    ((f"{SETTING}: HUNTWIRE_TEAMS_WEBHOOK_CONTOSO", f"{SETTING}: {WEBHOOK}"),
     f"tenants[0] (Contoso).{SETTING}: a webhook URL is a secret and never goes in this file"),
    ((f"{SETTING}: HUNTWIRE_TEAMS_WEBHOOK_CONTOSO", f"{SETTING}: HUNTWIRE_NOPE"),
     "app setting HUNTWIRE_NOPE is not set"),
    (("hunts: [hunt-a, hunt-b]", "hunts: [hunt-a, hunt-z]"), "hunts: no hunt with id hunt-z"),
    (("hunts: [hunt-a, hunt-b]", "hunts: some"), "hunts: expected 'all' or a list of hunt ids"),
    (("suppressions: [rules/contoso]", "suppressions: [rules/missing]"),
     "suppressions: folder 'rules/missing' does not exist"),
    (("name: Fabrikam", "name: Contoso"), "name listed more than once: contoso"),
    ((f"tenant_id: {T2}", f"tenant_id: {T1}"), f"tenant_id listed more than once: {T1}"),
    (("    hunts: [hunt-a", "    colour: red\n    hunts: [hunt-a"), "unknown field(s) colour"),
    ((f"defender: {{client_id: {APP}}}\n    sentinel",
      "defender: {client_secret: x}\n    sentinel"),
     "defender: expected 'client_id:' of the multi-tenant app"),
    (("- id: " + WS2, "- id: " + WS2 + "\n          key: x"), "workspaces[1]: expected id"),
    (("name: Fabrikam", "name: '<b>x</b>'"), "tenants[1].name: a display name"),
])
def test_each_problem_is_one_line_naming_file_entry_and_field(
        tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    old, new = change
    assert old in GOOD
    path = write(tmp_path, GOOD.replace(old, new, 1))
    env = {**ENV, "HUNTWIRE_TEAMS_WEBHOOK_CONTOSO": WEBHOOK}
    with pytest.raises(TenantsError) as caught:
        load_tenants(path, env, known_hunts={"hunt-a", "hunt-b"})
    problems = caught.value.problems
    assert len(problems) == 1, problems
    assert problems[0].startswith(str(path))
    assert expected in problems[0]
    assert "\n" not in problems[0]
    assert "SECRET" not in problems[0]


@pytest.mark.parametrize(("text", "expected"), [
    ("tenants: []", "expected 'tenants:' with a list"),
    ("- a\n- b", "expected 'tenants:' with a list"),
    ("tenants: &a [*a]", "aliases"),
    ("tenants: " + "[" * 200 + "]" * 200, "nested deeper"),
    ("tenants: [\n", "not valid YAML"),
])
def test_an_unreadable_file_is_one_line(tmp_path: Path, text: str, expected: str) -> None:
    with pytest.raises(TenantsError) as caught:
        load_tenants(write(tmp_path, text), ENV)
    assert len(caught.value.problems) == 1
    assert expected in caught.value.problems[0]


def test_a_missing_file_is_one_line(tmp_path: Path) -> None:
    with pytest.raises(TenantsError, match="cannot read"):
        load_tenants(tmp_path / "nope.yaml", ENV)


def test_a_bad_webhook_value_is_refused_without_echoing_it(tmp_path: Path) -> None:
    env = {"HUNTWIRE_TEAMS_WEBHOOK_CONTOSO": "http://example.com/w?sig=SECRET"}
    with pytest.raises(TenantsError) as caught:
        load_tenants(write(tmp_path, GOOD), env)
    assert "must use https" in caught.value.problems[0]
    assert "SECRET" not in caught.value.problems[0]


def test_single_tenant_needs_no_file() -> None:
    tenant = single_tenant(Settings(tenant_id=T1, sentinel_workspace_id=WS1))
    assert (tenant.name, tenant.tenant_id, tenant.defender_client_id) == ("default", T1, None)
    assert [w.id for w in tenant.workspaces] == [WS1]
    assert tenant.runs("anything")


def test_the_defender_credential_is_the_app_with_the_managed_identity_as_assertion(
        monkeypatch: pytest.MonkeyPatch) -> None:
    with IdentityServer(client_ids={UAMI}) as identity:
        for name, value in identity.env.items():
            monkeypatch.setenv(name, value)
        mi = make_credential(UAMI)
        tenant = Tenant(name="Contoso", tenant_id=T1, defender_client_id=APP)
        credential = defender_credential(tenant, mi)
        assert isinstance(credential, ClientAssertionCredential)
        assertion = ManagedIdentityAssertion(mi)()
        grants = list(identity.grants)
    assert assertion.count(".") == 2
    assert [(g.resource, g.client_id) for g in grants] == [("api://AzureADTokenExchange", UAMI)]
    own = Tenant(name="default", tenant_id=T1)
    assert defender_credential(own, mi) is mi  # the function's own tenant: its own identity


def test_a_tenant_gets_its_own_graph_lane_and_one_query_over_all_its_workspaces(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    with IdentityServer() as identity, FakeLogAnalytics(WS1) as logs:
        for name, value in identity.env.items():
            monkeypatch.setenv(name, value)
        settings = Settings(graph_endpoint="http://127.0.0.1:9", logs_endpoint=logs.url)
        tenant = Tenant(name="Contoso", tenant_id=T1, defender_client_id=APP,
                        workspaces=(), webhook_setting=None)
        contoso = load_tenants(write(tmp_path, GOOD), ENV)[0]
        shared = SharedLimits()
        sources = tenant_sources(contoso, settings, make_credential(None),
                                 RetryPolicy(max_attempts=1), Timeouts(), shared)
        other = tenant_sources(tenant, settings, make_credential(None),
                               RetryPolicy(max_attempts=1), Timeouts(), shared)
        hunt = Hunt(id="h", name="h", query="DeviceProcessEvents | take 1", source="sentinel",
                    path=Path("h.yaml"))
        sources["sentinel"].run(hunt, Window(datetime(2026, 12, 6, 11, tzinfo=UTC),
                                             datetime(2026, 12, 6, 12, tzinfo=UTC)))
        body = logs.requests[-1].json()
    assert body["workspaces"] == [WS2]  # the tenant's other workspace, in the same query
    assert "sentinel" not in other
    lanes = {source: getattr(s, "lanes", ()) for source, s in sources.items()}
    assert [lane.key for lane in lanes["defender"]] == [f"graph:{T1}"]
    assert lanes["sentinel"] == shared.logs_lanes  # one identity: Log Analytics limits shared
