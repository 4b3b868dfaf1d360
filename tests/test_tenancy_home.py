"""The deployment's own tenant keeps today's tables when a tenants file is added: a single-tenant
deployment that starts serving other tenants loses no checkpoint, ledger, snooze or incident.
Azurite tables and queues, the real Defender source against a local Graph answering per tenant,
the real managed-identity code against the local identity endpoint (its tokens are the home
tenant's), local webhooks."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from azure.data.tables import TableServiceClient

from devtools.identity import TENANT_ID as HOME
from devtools.identity import IdentityServer
from devtools.service_model import TenantTokens
from devtools.tenant_services import TenantGraph
from devtools.webhook import Reply, WebhookReceiver
from shared.ledger import Ledger
from shared.settings import load_settings
from shared.storage import Storage
from shared.tenancy import run_tenants, tenant_prefix
from shared.tenants import Tenant
from tests.fanout_world import clear_tables
from tests.test_fanout_tenants import (
    HUNTS,
    hunt_yaml,
    is_notice,
    make_fanout,
    make_host,
    write_events,
)

DEFENDER = HUNTS["defender"][0]


def cards(channel: WebhookReceiver) -> list[str]:
    return [json.dumps(p) for p in channel.payloads if not is_notice(p)]


def test_the_home_tenant_keeps_its_tables_when_a_tenants_file_is_added(
        tmp_path: Path, queue_connection_string: str, identity: IdentityServer) -> None:
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    clear_tables(queue_connection_string)
    other = str(uuid.uuid4())
    hunts = tmp_path / "hunts"
    hunts.mkdir()
    (hunts / "defender.yaml").write_text(hunt_yaml("defender", HUNTS, lookback="6h"))
    (tmp_path / "none").mkdir()
    earlier = [now - timedelta(minutes=10), now - timedelta(minutes=20)]
    graph_events = {HOME: write_events(tmp_path / "home", "home-dev",
                                       [*earlier, now + timedelta(minutes=90)]),
                    other: write_events(tmp_path / "other", "other-dev", earlier)}
    shared, theirs = WebhookReceiver(default=Reply(202)), WebhookReceiver(default=Reply(202))
    with TenantGraph(graph_events) as graph, shared, theirs:
        env = {"HUNTWIRE_STORAGE": queue_connection_string, "HUNTWIRE_HUNTS_DIR": str(hunts),
               "HUNTWIRE_SUPPRESSIONS_DIR": str(tmp_path / "none"),
               "HUNTWIRE_GRAPH_ENDPOINT": graph.url, "HUNTWIRE_TENANT_ID": HOME,
               "HUNTWIRE_TEAMS_WEBHOOK_URL": shared.url, "HUNTWIRE_HEARTBEAT_HOUR": "off",
               "WEBHOOK_OTHER": theirs.url}
        # A single-tenant deployment: today's tables.
        assert run_tenants(load_settings(env), now, env=env).ok
        assert len(cards(shared)) == 1
        assert "home-dev" in cards(shared)[0]
        # It starts serving a second tenant: its own tenant is listed in the new file.
        (tmp_path / "tenants.yaml").write_text(
            f"tenants:\n  - name: Home\n    tenant_id: {HOME}\n"
            f"  - name: Other\n    tenant_id: {other}\n"
            f"    defender: {{client_id: {uuid.uuid4()}}}\n"
            "    teams_webhook_setting: WEBHOOK_OTHER\n")
        env["HUNTWIRE_TENANTS_FILE"] = str(tmp_path / "tenants.yaml")
        settings = load_settings(env)
        later = now + timedelta(hours=1)
        run = run_tenants(settings, later, env=env, graph_credential=lambda tenant, own: (
            own if tenant.tenant_id == HOME else TenantTokens(tenant.tenant_id or "")))
        assert run.ok, run.incomplete()
        assert len(cards(shared)) == 1  # its findings, looked at again, are not posted twice
        assert len(cards(theirs)) == 1
        assert "other-dev" in cards(theirs)[0]
        storage = Storage.from_connection_string(queue_connection_string)
        checkpoint = Ledger(storage).checkpoint(DEFENDER)
        assert checkpoint is not None
        assert checkpoint.last_run_start == later
        assert tenant_prefix(Tenant("Home", HOME), multi=True, home=HOME) == ""
        prefix = tenant_prefix(Tenant("Home", HOME), multi=True)  # what it was before
        service = TableServiceClient.from_connection_string(queue_connection_string)
        assert not [t.name for t in service.list_tables() if t.name.startswith(prefix)]
        # Queue mode on the same tables: the home tenant's next finding, once.
        fanout = make_fanout(env)
        host = make_host(queue_connection_string, fanout)
        fanout.start(later + timedelta(hours=1))
        host.drain()
        assert not host.failures
        assert len(cards(shared)) == 2
        assert "Tenant: Home" in cards(shared)[1]
        assert cards(shared)[1].count("home-dev") >= 1
        assert len(cards(theirs)) == 1
        checkpoint = Ledger(storage).checkpoint(DEFENDER)
        assert checkpoint is not None
        assert checkpoint.last_run_start == later + timedelta(hours=1)
