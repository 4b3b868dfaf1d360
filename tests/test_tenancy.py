"""Multi-tenant runs end to end: a tenants file, Azurite tables per tenant, the real Defender and
Sentinel sources against local Graph / Log Analytics stand-ins that answer per tenant and per
workspace, and local webhooks per channel. Only the Entra login is stood in (TenantTokens: the
real one needs https)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import TokenCredential
from azure.data.tables import TableServiceClient

from devtools.service_model import TenantTokens
from devtools.tenant_services import TenantGraph, TenantLogs
from devtools.webhook import Reply, WebhookReceiver
from shared.cli import main
from shared.settings import load_settings
from shared.tenancy import TenancyRun, run_tenants, tenant_prefix
from shared.tenants import Tenant

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
HOME = "99999999-0000-0000-0000-000000000000"
HUNTS = {
    "defender": ("a1000000-0000-0000-0000-000000000001", "Socket shell (Defender)"),
    "sentinel": ("a1000000-0000-0000-0000-000000000002", "Socket shell (Sentinel)"),
}


def hunt_yaml(source: str, hunts: dict[str, tuple[str, str]] = HUNTS,
              lookback: str | None = None) -> str:
    hunt_id, name = hunts[source]
    time = "Timestamp" if source == "defender" else "TimeGenerated"
    return (f"id: {hunt_id}\nname: {name}\nseverity: High\nsource: {source}\n"
            + (f"lookback: {lookback}\n" if lookback else "")
            + "dedupBy: [DeviceId, ReportId]\nquery: |\n  DeviceProcessEvents\n"
            "  | where ProcessCommandLine has \"TCPClient\"\n"
            f"  | project {time}, DeviceId, ReportId, ProcessCommandLine\n")


def write_events(folder: Path, device: str, times: list[datetime]) -> dict[str, Path]:
    """One socket-shell process event per time on *device*, for both sources' stand-ins."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "DeviceProcessEvents.jsonl"
    rows = [{"Timestamp": when.isoformat(), "TimeGenerated": when.isoformat(),
             "DeviceId": device, "ReportId": i,
             "ProcessCommandLine": "New-Object Net.Sockets.TCPClient('x',1)"}
            for i, when in enumerate(times, start=1)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return {"DeviceProcessEvents": path}


def events(folder: Path, device: str) -> dict[str, Path]:
    return write_events(folder, device, [NOW - timedelta(minutes=10 * i) for i in range(1, 3)])


@dataclass
class World:
    tenants: dict[str, str]
    """name -> tenant id"""
    env: dict[str, str]
    channels: dict[str, WebhookReceiver]
    """tenant name (or "shared", "health") -> its webhook"""
    graph: TenantGraph
    storage: str

    def run(self, now: datetime = NOW) -> TenancyRun:
        settings = load_settings(self.env)
        identity: TokenCredential = TenantTokens(HOME)
        return run_tenants(settings, now, identity=identity, env=self.env,
                           graph_credential=lambda tenant, _: TenantTokens(
                               tenant.tenant_id or HOME))

    def cards(self, channel: str) -> list[str]:
        """The incident cards posted on *channel*, as text."""
        return [json.dumps(p) for p in self.channels[channel].payloads
                if "huntwire-health" not in json.dumps(p) and "tenant-" not in json.dumps(p)]

    def notices(self) -> list[str]:
        return [json.dumps(p) for p in self.channels["health"].payloads]


NAMES = ("Contoso", "Fabrikam", "Northwind")


@pytest.fixture
def world(tmp_path: Path, storage_connection_string: str,
          request: pytest.FixtureRequest) -> Iterator[World]:
    broken: dict[str, str] = getattr(request, "param", {})
    hunts = tmp_path / "hunts"
    hunts.mkdir()
    for source in HUNTS:
        (hunts / f"{source}.yaml").write_text(hunt_yaml(source))
    ids = {name: str(uuid.uuid4()) for name in NAMES}
    workspaces = {name: str(uuid.uuid4()) for name in NAMES}
    graph_events = {ids[n]: events(tmp_path / "g" / n, f"{n.lower()}-dev") for n in NAMES}
    logs_events = {workspaces[n]: events(tmp_path / "l" / n, f"{n.lower()}-ws")
                   for n in NAMES if broken.get(n) != "workspace"}
    entries = []
    for name in NAMES:
        entry = (f"  - name: {name}\n    tenant_id: {ids[name]}\n"
                 f"    defender: {{client_id: {uuid.uuid4()}}}\n"
                 f"    sentinel: {{workspaces: [{{id: {workspaces[name]}}}]}}\n")
        if name != "Northwind":  # Northwind posts on the shared webhook
            entry += f"    teams_webhook_setting: WEBHOOK_{name.upper()}\n"
        entries.append(entry)
    (tmp_path / "tenants.yaml").write_text("tenants:\n" + "".join(entries))
    receivers = {name: WebhookReceiver(default=Reply(404, body=b'{"error":{"code":"NotFound"}}')
                                       if broken.get(name) == "webhook" else Reply(202))
                 for name in ("Contoso", "Fabrikam", "shared", "health")}
    unconsented = [ids[n] for n in NAMES if broken.get(n) == "consent"]
    with TenantGraph(graph_events, unconsented=unconsented) as graph, \
            TenantLogs(logs_events or {str(uuid.uuid4()): {}}) as logs:
        for receiver in receivers.values():
            receiver.start()
        env = {"HUNTWIRE_STORAGE": storage_connection_string,
               "HUNTWIRE_HUNTS_DIR": str(hunts),
               "HUNTWIRE_SUPPRESSIONS_DIR": str(tmp_path / "none"),
               "HUNTWIRE_GRAPH_ENDPOINT": graph.url, "HUNTWIRE_LOGS_ENDPOINT": logs.url,
               "HUNTWIRE_TENANTS_FILE": str(tmp_path / "tenants.yaml"),
               "HUNTWIRE_TEAMS_WEBHOOK_URL": receivers["shared"].url,
               "HUNTWIRE_HEALTH_WEBHOOK_URL": receivers["health"].url,
               "HUNTWIRE_HEARTBEAT_HOUR": "off",
               "WEBHOOK_CONTOSO": receivers["Contoso"].url,
               "WEBHOOK_FABRIKAM": receivers["Fabrikam"].url}
        (tmp_path / "none").mkdir()
        try:
            yield World(ids, env, {**receivers, "Northwind": receivers["shared"]}, graph,
                        storage_connection_string)
        finally:
            for receiver in receivers.values():
                receiver.stop()


def tables_of(world: World, name: str) -> list[str]:
    prefix = tenant_prefix(Tenant(name, world.tenants[name]), multi=True)
    service = TableServiceClient.from_connection_string(world.storage)
    return [t.name for t in service.query_tables(
        "TableName ge @low and TableName lt @high",
        parameters={"low": prefix, "high": prefix + "~"})]


def test_three_tenants_land_in_three_partitions_and_three_channels_once(world: World) -> None:
    first = world.run()
    assert first.ok, [(r.tenant.name, r.problems) for r in first.results]
    for name in NAMES:
        cards = world.cards(name)
        assert cards, f"{name} got no card"
        text = " ".join(cards)
        assert f"Tenant: {name}" in text
        assert f"{name.lower()}-dev" in text
        assert f"{name.lower()}-ws" in text
        for other in set(NAMES) - {name}:  # no tenant sees another's findings
            assert other.lower() + "-" not in text
            assert f"Tenant: {other}" not in text
        assert any(t.endswith("Health") for t in tables_of(world, name))
        assert any("Findings" in t for t in tables_of(world, name))
    posted = {name: len(world.cards(name)) for name in NAMES}
    second = world.run(NOW + timedelta(hours=1))
    assert second.ok
    assert {name: len(world.cards(name)) for name in NAMES} == posted  # each reported once
    assert world.notices() == []
    assert first.storage_requests > 0


def notices_naming(world: World, name: str) -> list[str]:
    return [n for n in world.notices() if name in n]


@pytest.mark.parametrize("world", [{"Contoso": "consent", "Fabrikam": "webhook",
                                    "Northwind": "workspace"}], indirect=True)
def test_each_failing_tenant_is_announced_once_and_the_rest_flows(world: World) -> None:
    first = world.run()
    problems = {r.tenant.name: set(r.problems) for r in first.results}
    assert problems == {"Contoso": {"defender"}, "Fabrikam": {"teams"},
                        "Northwind": {"sentinel"}}
    for name in NAMES:
        assert len(notices_naming(world, name)) == 1, world.notices()
    assert "admin consent" in notices_naming(world, "Contoso")[0]
    assert "Sentinel workspace unreachable" in notices_naming(world, "Northwind")[0]
    assert "Teams webhook" in notices_naming(world, "Fabrikam")[0]
    # What still works flows: Contoso's Sentinel, Northwind's Defender findings.
    assert "contoso-ws" in " ".join(world.cards("Contoso"))
    assert "contoso-dev" not in " ".join(world.cards("Contoso"))
    assert "northwind-dev" in " ".join(world.cards("Northwind"))
    world.run(NOW + timedelta(hours=1))
    for name in NAMES:
        assert len(notices_naming(world, name)) == 1, "announced again"
    world.graph.unconsented.clear()  # Contoso's administrator consents
    assert not world.run(NOW + timedelta(hours=2)).results[0].problems
    assert "works again" in notices_naming(world, "Contoso")[-1]
    assert "contoso-dev" in " ".join(world.cards("Contoso"))
    assert len(notices_naming(world, "Northwind")) == 1


def test_status_names_each_tenant(world: World, monkeypatch: pytest.MonkeyPatch,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    world.run()
    for key, value in world.env.items():
        monkeypatch.setenv(key, value)
    assert main(["status", "--format", "json", "--tenant", "fabrikam"]) == 0
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    [report] = document["tenants"]
    assert report["tenant"] == "Fabrikam"
    assert {h["state"] for h in report["hunts"]} == {"ok"}
    assert main(["status"]) == 0
    out = capsys.readouterr().out
    assert all(f"tenant {name}:" in out for name in NAMES)
    assert main(["status", "--tenant", "Nobody"]) == 2
    assert "no tenant of that name" in capsys.readouterr().err


def test_run_with_a_tenants_file_refuses_events_and_a_bad_file_in_one_line(
        world: World, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    for key, value in world.env.items():
        monkeypatch.setenv(key, value)
    assert main(["run", "--once", "--events", f"DeviceProcessEvents={tmp_path}/x.jsonl"]) == 2
    assert "unset HUNTWIRE_TENANTS_FILE" in capsys.readouterr().err
    bad = tmp_path / "bad-tenants.yaml"
    bad.write_text("tenants:\n  - name: Contoso\n    tenant_id: not-a-guid\n")
    monkeypatch.setenv("HUNTWIRE_TENANTS_FILE", str(bad))
    assert main(["status"]) == 2
    err = capsys.readouterr().err
    assert "tenant_id: 'not-a-guid' is not a GUID" in err
    assert "Traceback" not in err


def test_one_daily_heartbeat_for_the_deployment_names_every_tenant(world: World) -> None:
    world.env["HUNTWIRE_HEARTBEAT_HOUR"] = "0"
    world.run()
    beats = [n for n in world.notices() if "huntwire is running" in n]
    assert len(beats) == 1, beats  # not one per tenant
    assert "3 tenant(s)" in beats[0]
    for name in NAMES:
        assert name in beats[0]
    world.run(NOW + timedelta(hours=1))
    assert len([n for n in world.notices() if "huntwire is running" in n]) == 1
