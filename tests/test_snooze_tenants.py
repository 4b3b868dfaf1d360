"""Snooze links on a multi-tenant deployment: a link from tenant A's card snoozes in A's tables
only, A's next run honours it and B's does not see it; a link naming a tenant the tenants file
does not list, or whose tenant was changed, is refused; `huntwire suppressions --tenant`.

The world of tests/test_tenancy.py (a tenants file, Azurite, the real Defender source against a
per-tenant Graph stand-in, local webhooks); the page is the real function, called as the host
calls it. Single-tenant links: tests/test_snooze.py, unchanged."""

from __future__ import annotations

import base64
import json
import re
import uuid
import zlib
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import azure.functions as func
import pytest
from azure.data.tables import TableServiceClient

from shared.cli import main
from shared.storage import Storage
from shared.suppress.snooze_page import PageRequest, SnoozeContext, TenantSnoozes, handle
from shared.suppress.store import PARTITION, TABLE, SnoozeStore
from shared.suppress.token import TokenError, make_token, read_token
from shared.tenancy import tenant_prefix
from shared.tenants import Tenant
from tests.test_tenancy import HUNTS, NOW, World
from tests.test_tenancy import world as world  # the fixture

KEY = "s" * 40
BASE = "https://hw.example"
DEFENDER_HUNT = HUNTS["defender"][0]
LINK = re.compile(re.escape(BASE) + r"/api/snooze\?t=([A-Za-z0-9_.%-]+)")

Page = Callable[[func.HttpRequest], func.HttpResponse]


@pytest.fixture
def mssp(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    """The tenants world with snoozing on, its settings in the function's environment."""
    TableServiceClient.from_connection_string(world.storage).delete_table(TABLE)  # other tests'
    world.env.update({"HUNTWIRE_SNOOZE_KEY": KEY, "HUNTWIRE_PUBLIC_URL": BASE})
    for name, value in world.env.items():
        monkeypatch.setenv(name, value)
    import function_app

    function_app.settings.cache_clear()
    yield world
    function_app.settings.cache_clear()


@pytest.fixture(scope="module")
def page() -> Page:
    import function_app

    user: Page = function_app.snooze.build().get_user_function()
    return user


def get(token: str) -> func.HttpRequest:
    return func.HttpRequest("GET", f"{BASE}/api/snooze", params={"t": token}, body=b"")


def post(token: str, **fields: str) -> func.HttpRequest:
    claim = read_token(KEY.encode(), token, datetime.now(UTC))
    form = {"t": token, "finding": claim.fingerprint, "reason": "vendor agent",
            "name": "Dana Chen", **fields}
    return func.HttpRequest("POST", f"{BASE}/api/snooze", body=urlencode(form).encode(),
                            headers={"Content-Type": "application/x-www-form-urlencoded"})


def links(world: World, channel: str) -> list[str]:
    """The snooze link tokens on *channel*'s cards."""
    return [token for card in world.cards(channel) for token in LINK.findall(card)]


def snoozes(world: World, name: str | None) -> list[dict[str, Any]]:
    """The snooze rows of tenant *name*'s table (None: the default, unprefixed table)."""
    prefix = "" if name is None else tenant_prefix(Tenant(name, world.tenants[name]),
                                                   multi=True)
    service = TableServiceClient.from_connection_string(world.storage)
    if prefix + TABLE not in [t.name for t in service.list_tables()]:
        return []
    return [dict(e) for e in service.get_table_client(prefix + TABLE).list_entities()
            if e["PartitionKey"] == PARTITION]


def add_event(folder: Path, name: str, report_id: int, when: datetime) -> None:
    """One more process event on tenant *name*'s Defender device, the same command line (the
    stand-in reads its events at its first query: add them before the first run)."""
    path = folder / "g" / name / "DeviceProcessEvents.jsonl"
    row = {"Timestamp": when.isoformat(), "TimeGenerated": when.isoformat(),
           "DeviceId": f"{name.lower()}-dev", "ReportId": report_id,
           "ProcessCommandLine": "New-Object Net.Sockets.TCPClient('x',1)"}
    with path.open("a") as events:
        events.write(json.dumps(row) + "\n")


def defender_outcome(world: World, run: Any, name: str) -> Any:
    (result,) = [r for r in run.results if r.tenant.name == name]
    (outcome,) = [o for o in result.summary.outcomes if o.hunt_id == DEFENDER_HUNT]
    return outcome


def test_a_link_from_one_tenants_card_snoozes_in_its_tables_only(
        mssp: World, page: Page, tmp_path: Path) -> None:
    later = NOW + timedelta(hours=1)  # the next hour: the same event again on both devices
    for name in ("Contoso", "Fabrikam"):
        add_event(tmp_path, name, 50, later - timedelta(minutes=5))
    assert mssp.run().ok
    tokens = links(mssp, "Contoso")
    assert tokens, "tenant runners make snooze links again"
    assert links(mssp, "Fabrikam")
    claims = [read_token(KEY.encode(), t, datetime.now(UTC)) for t in tokens]
    assert {c.tenant for c in claims} == {mssp.tenants["Contoso"]}
    (token,) = [t for t, c in zip(tokens, claims, strict=True) if c.hunt_id == DEFENDER_HUNT
                and c.values.get("DeviceId") == "contoso-dev"][:1]

    shown = page(get(token))
    assert shown.status_code == 200
    assert "Tenant <b>Contoso</b>" in shown.get_body().decode()
    assert snoozes(mssp, "Contoso") == []  # GET never writes
    created = page(post(token))
    assert created.status_code == 201, created.get_body()
    assert "Tenant <b>Contoso</b>" in created.get_body().decode()
    (row,) = snoozes(mssp, "Contoso")
    assert row["Hunt"] == DEFENDER_HUNT
    assert snoozes(mssp, "Fabrikam") == snoozes(mssp, "Northwind") == []
    assert snoozes(mssp, None) == []  # never the default tables
    announced = [json.dumps(p) for p in mssp.channels["Contoso"].payloads
                 if "snoozed" in json.dumps(p)]
    assert len(announced) == 1
    assert "Contoso" in announced[0]
    assert not [p for p in mssp.channels["Fabrikam"].payloads if "snoozed" in json.dumps(p)]
    assert page(post(token)).status_code == 409  # one-time use, in the tenant's table

    second = mssp.run(later)
    assert second.ok
    contoso, fabrikam = (defender_outcome(mssp, second, n) for n in ("Contoso", "Fabrikam"))
    assert contoso.suppressed == {row["RowKey"]: contoso.rows}  # the old rows and the new
    assert contoso.rows == fabrikam.rows >= 3
    assert contoso.new == 0
    assert fabrikam.suppressed == {}
    assert fabrikam.new == 1


def test_a_link_of_an_unknown_tenant_or_without_one_is_refused_and_writes_nothing(
        mssp: World, page: Page) -> None:
    values = {"DeviceId": "contoso-dev",
              "ProcessCommandLine": "New-Object Net.Sockets.TCPClient('x',1)"}
    expires = datetime.now(UTC) + timedelta(days=7)
    stranger = make_token(KEY.encode(), DEFENDER_HUNT, values, expires,
                          tenant=str(uuid.uuid4()))
    for request in (get(stranger), post(stranger)):
        response = page(request)
        assert response.status_code == 404
        assert "not in this deployment's tenants file" in response.get_body().decode()
    untenanted = make_token(KEY.encode(), DEFENDER_HUNT, values, expires)
    response = page(post(untenanted))
    assert response.status_code == 404
    assert "names no tenant" in response.get_body().decode()
    assert all(snoozes(mssp, n) == [] for n in (None, *mssp.tenants))


def retenant(token: str, tenant: str) -> str:
    """*token* with its tenant changed and its signature kept (what an attacker can do)."""
    version, payload, signature = token.split(".")
    body = json.loads(zlib.decompress(base64.urlsafe_b64decode(payload + "=" * (-len(payload)
                                                                                % 4))))
    body["t"] = tenant
    forged = base64.urlsafe_b64encode(zlib.compress(json.dumps(body).encode())).rstrip(b"=")
    return f"{version}.{forged.decode()}.{signature}"


def test_a_token_whose_tenant_was_changed_fails_its_signature(mssp: World, page: Page) -> None:
    values = {"DeviceId": "contoso-dev", "ProcessCommandLine": "x"}
    token = make_token(KEY.encode(), DEFENDER_HUNT, values, NOW + timedelta(days=7),
                       tenant=mssp.tenants["Contoso"])
    assert read_token(KEY.encode(), token, NOW).tenant == mssp.tenants["Contoso"]
    tampered = retenant(token, mssp.tenants["Fabrikam"])
    with pytest.raises(TokenError, match="signature"):
        read_token(KEY.encode(), tampered, NOW)
    for request in (get(tampered), func.HttpRequest("POST", f"{BASE}/api/snooze", body=urlencode(
            {"t": tampered, "finding": "0" * 16, "reason": "r", "name": "n"}).encode())):
        assert page(request).status_code == 403
    assert all(snoozes(mssp, n) == [] for n in (None, *mssp.tenants))
    with pytest.raises(TokenError, match="tenant key"):
        make_token(KEY.encode(), DEFENDER_HUNT, values, NOW, tenant="<b>")


def test_single_tenant_pages_refuse_a_tenant_link_and_tenant_pages_escape_the_name(
        storage_connection_string: str) -> None:
    store = SnoozeStore(Storage.from_connection_string(storage_connection_string))
    values = {"DeviceId": "d" * 40, "ProcessCommandLine": "powershell -enc AAAA"}
    token = make_token(KEY.encode(), DEFENDER_HUNT, values, NOW + timedelta(days=7),
                       tenant="6f1c0000-0000-0000-0000-000000000001")
    single = SnoozeContext(KEY.encode(), store, {DEFENDER_HUNT: "Socket shell"},
                           now=lambda: NOW)
    refused = handle(PageRequest("GET", {"t": token}), single)
    assert refused.status == 404
    assert "has no tenants file" in refused.body
    hostile = TenantSnoozes("<img src=x onerror=alert(1)>", store)
    multi = SnoozeContext(KEY.encode(), store, {DEFENDER_HUNT: "Socket shell"},
                          now=lambda: NOW,
                          tenants={"6f1c0000-0000-0000-0000-000000000001": hostile})
    shown = handle(PageRequest("GET", {"t": token}), multi)
    assert shown.status == 200
    assert "&lt;img src=x onerror=alert(1)&gt;" in shown.body
    assert "<img" not in shown.body


def test_suppressions_list_and_remove_take_a_tenant(
        mssp: World, page: Page, capsys: pytest.CaptureFixture[str]) -> None:
    values = {"DeviceId": "contoso-dev", "ProcessCommandLine": "powershell -enc AAAA"}
    token = make_token(KEY.encode(), DEFENDER_HUNT, values,
                       datetime.now(UTC) + timedelta(days=7), tenant=mssp.tenants["Contoso"])
    assert page(post(token)).status_code == 201
    assert main(["suppressions", "list", "--format", "json", "--tenant", "contoso"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["tenant"] == "Contoso"
    assert main(["suppressions", "list", "--format", "json", "--tenant", "Fabrikam"]) == 0
    assert json.loads(capsys.readouterr().out) == []
    assert main(["suppressions", "list"]) == 0
    out = capsys.readouterr().out
    assert all(f"tenant {name}:" in out for name in mssp.tenants)
    with pytest.raises(SystemExit) as missing:
        main(["suppressions", "remove", listed["id"]])
    assert missing.value.code == 2
    assert "--tenant NAME is required" in capsys.readouterr().err
    assert main(["suppressions", "remove", listed["id"], "--tenant", "Fabrikam"]) == 1
    assert "no snooze with id" in capsys.readouterr().err
    assert main(["suppressions", "remove", listed["id"], "--tenant",
                 mssp.tenants["Contoso"]]) == 0
    assert snoozes(mssp, "Contoso") == []
    revoked = page(get(token))  # the removal revokes the tenant's link
    assert revoked.status_code == 410
    assert page(post(token)).status_code == 409
    assert snoozes(mssp, "Contoso") == []
    with pytest.raises(SystemExit):
        main(["suppressions", "list", "--tenant", "Nobody"])
    assert "no tenant of that name" in capsys.readouterr().err


def test_a_tenants_file_that_cannot_be_used_turns_the_page_off_in_one_line(
        mssp: World, page: Page, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    import function_app

    bad = tmp_path / "bad-tenants.yaml"
    bad.write_text("tenants:\n  - name: Contoso\n    tenant_id: not-a-guid\n")
    monkeypatch.setenv("HUNTWIRE_TENANTS_FILE", str(bad))
    function_app.settings.cache_clear()
    token = make_token(KEY.encode(), DEFENDER_HUNT, {"DeviceId": "contoso-dev",
                                                     "ProcessCommandLine": "x"},
                       datetime.now(UTC) + timedelta(days=7), tenant=mssp.tenants["Contoso"])
    response = page(get(token))
    assert response.status_code == 503
    assert "tenants file cannot be used" in response.get_body().decode()
    (line,) = [r.getMessage() for r in caplog.records if "tenants file not usable" in
               r.getMessage()]
    assert "not-a-guid" in line
    assert "\n" not in line


def test_a_link_sent_before_the_tenants_file_snoozes_for_the_home_tenant(
        mssp: World, page: Page, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """The deployment's own tenant (HUNTWIRE_TENANT_ID) keeps today's tables; its cards' links
    from before the tenants file carry no tenant and still snooze, in those tables."""
    import function_app

    monkeypatch.setenv("HUNTWIRE_TENANT_ID", mssp.tenants["Contoso"])
    function_app.settings.cache_clear()
    values = {"DeviceId": "contoso-dev",
              "ProcessCommandLine": "New-Object Net.Sockets.TCPClient('x',1)"}
    old_link = make_token(KEY.encode(), DEFENDER_HUNT, values, datetime.now(UTC)
                          + timedelta(days=7))
    shown = page(get(old_link))
    assert shown.status_code == 200, shown.get_body()
    assert "Contoso" in shown.get_body().decode()
    made = page(post(old_link))
    assert made.status_code == 201, made.get_body()
    assert len(snoozes(mssp, None)) == 1  # today's table, where the home tenant's runs read
    assert all(snoozes(mssp, n) == [] for n in ("Fabrikam", "Northwind"))
    capsys.readouterr()
    assert main(["suppressions", "list", "--format", "json"]) == 0
    (listed,) = json.loads(capsys.readouterr().out)  # the home tenant listed once
    assert listed["tenant"] == "Contoso"
    assert main(["suppressions", "remove", listed["id"], "--tenant", "contoso"]) == 0
    assert snoozes(mssp, None) == []
