"""Queue mode for many tenants, end to end on Azurite tables and queues with the real SDKs: a
tenants file, the fan-out's handlers called as the host calls them (devtools/queue_host.py), the
real Defender and Sentinel sources against local Graph / Log Analytics stand-ins answering per
tenant and per workspace, and local webhooks per channel. Only the Entra login is stood in
(TenantTokens: the real federated sign-in needs the login service), which is why the handlers
are the Fanout's own methods (function_app's bodies) with that credential, not function_app's."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from devtools.queue_host import QueueHost
from devtools.service_model import TenantTokens
from devtools.tenant_services import TenantGraph, TenantLogs
from devtools.webhook import Reply, WebhookReceiver
from shared.fanout import DELIVERY_QUEUE, HUNTS_QUEUE, POISON_SUFFIX, CycleStore, Fanout, decode
from shared.fanout.messages import DeliveryMessage, HuntMessage, MessageError, encode
from shared.health.records import HealthStore
from shared.settings import load_settings
from shared.storage import Storage
from shared.storage.queues import open_queues
from shared.tenancy import tenant_tables
from shared.tenants import Tenant
from tests.fanout_world import clear_tables
from tests.test_tenancy import hunt_yaml, write_events

HOME = "99999999-0000-0000-0000-000000000000"
NAMES = ("Contoso", "Fabrikam", "Northwind")
HUNTS = {"defender": ("b1000000-0000-0000-0000-000000000001", "Socket shell (Defender)"),
         "sentinel": ("b1000000-0000-0000-0000-000000000002", "Socket shell (Sentinel)")}


def is_notice(payload: Any) -> bool:
    text = json.dumps(payload)
    return "huntwire-health" in text or "tenant-" in text


@dataclass
class QueueWorld:
    ids: dict[str, str]
    env: dict[str, str]
    channels: dict[str, WebhookReceiver]
    graph: TenantGraph
    host: QueueHost
    fanout: Fanout
    now: datetime

    def cycle(self, now: datetime | None = None) -> None:
        self.fanout.start(now or self.now)
        self.host.drain()
        assert not self.host.failures, self.host.failures

    def cards(self, name: str) -> list[str]:
        return [json.dumps(p) for p in self.channels[name].payloads if not is_notice(p)]

    def notices(self) -> list[str]:
        return [json.dumps(p) for p in self.channels["health"].payloads]

    def naming(self, name: str) -> list[str]:
        return [n for n in self.notices() if name in n]

    def tables(self, name: str) -> Storage:
        return tenant_tables(Storage.from_connection_string(self.env["HUNTWIRE_STORAGE"]),
                             self.fanout.settings, Tenant(name, self.ids[name]))


def make_fanout(env: dict[str, str], identity: Any = None) -> Fanout:
    settings = load_settings(env)
    return Fanout(settings, open_queues(settings, env), env=env, identity=identity,
                  graph_credential=lambda tenant, own: (
                      own if tenant.tenant_id in (None, settings.tenant_id)
                      else TenantTokens(tenant.tenant_id)))


def make_host(connection: str, fanout: Fanout) -> QueueHost:
    def worker(msg: func.QueueMessage) -> None:
        fanout.work(msg.get_body())

    def delivery(msg: func.QueueMessage) -> None:
        fanout.deliver(msg.get_body())

    def hunt_poison(msg: func.QueueMessage) -> None:
        fanout.poison(msg.get_body(), HUNTS_QUEUE + POISON_SUFFIX)

    def delivery_poison(msg: func.QueueMessage) -> None:
        fanout.poison(msg.get_body(), DELIVERY_QUEUE + POISON_SUFFIX)

    host = QueueHost(connection, {HUNTS_QUEUE: worker, DELIVERY_QUEUE: delivery,
                                  HUNTS_QUEUE + POISON_SUFFIX: hunt_poison,
                                  DELIVERY_QUEUE + POISON_SUFFIX: delivery_poison})
    host.clear()
    return host


@pytest.fixture
def world(tmp_path: Path, queue_connection_string: str,
          request: pytest.FixtureRequest) -> Iterator[QueueWorld]:
    """Three tenants in queue mode; Contoso's app is not consented (Graph answers 403), and
    what the test's parameter breaks besides (a tenant's "webhook" or "workspace")."""
    broken: dict[str, str] = {"Contoso": "consent", **getattr(request, "param", {})}
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    times = [now - timedelta(minutes=10 * i) for i in range(1, 3)]
    clear_tables(queue_connection_string)
    hunts = tmp_path / "hunts"
    hunts.mkdir()
    for source in HUNTS:
        (hunts / f"{source}.yaml").write_text(hunt_yaml(source, HUNTS, lookback="6h"))
    ids = {name: str(uuid.uuid4()) for name in NAMES}
    spaces = {name: str(uuid.uuid4()) for name in NAMES}
    entries = "".join(
        f"  - name: {name}\n    tenant_id: {ids[name]}\n"
        f"    defender: {{client_id: {uuid.uuid4()}}}\n"
        f"    sentinel: {{workspaces: [{{id: {spaces[name]}}}]}}\n"
        f"    teams_webhook_setting: WEBHOOK_{name.upper()}\n" for name in NAMES)
    (tmp_path / "tenants.yaml").write_text("tenants:\n" + entries)
    channels = {name: WebhookReceiver(default=Reply(404, body=b'{"error":{"code":"NotFound"}}')
                                      if broken.get(name) == "webhook" else Reply(202))
                for name in (*NAMES, "health")}
    graph_events = {ids[n]: write_events(tmp_path / "g" / n, f"{n.lower()}-dev", times)
                    for n in NAMES}
    logs_events = {spaces[n]: write_events(tmp_path / "l" / n, f"{n.lower()}-ws", times)
                   for n in NAMES if broken.get(n) != "workspace"}
    with TenantGraph(graph_events, unconsented=[ids["Contoso"]]) as graph, \
            TenantLogs(logs_events) as logs:
        for channel in channels.values():
            channel.start()
        env = {"HUNTWIRE_STORAGE": queue_connection_string, "HUNTWIRE_HUNTS_DIR": str(hunts),
               "HUNTWIRE_SUPPRESSIONS_DIR": str(tmp_path / "none"),
               "HUNTWIRE_GRAPH_ENDPOINT": graph.url, "HUNTWIRE_LOGS_ENDPOINT": logs.url,
               "HUNTWIRE_TENANTS_FILE": str(tmp_path / "tenants.yaml"),
               "HUNTWIRE_TEAMS_WEBHOOK_URL": channels["health"].url,
               "HUNTWIRE_HEALTH_WEBHOOK_URL": channels["health"].url,
               "HUNTWIRE_HEARTBEAT_HOUR": "off", "HUNTWIRE_FANOUT": "queue",
               **{f"WEBHOOK_{n.upper()}": channels[n].url for n in NAMES}}
        (tmp_path / "none").mkdir()
        fanout = make_fanout(env, TenantTokens(HOME))
        try:
            yield QueueWorld(ids, env, channels, graph, make_host(queue_connection_string, fanout),
                             fanout, now)
        finally:
            for channel in channels.values():
                channel.stop()


def test_each_tenant_flows_on_its_channel_and_the_unconsented_one_is_announced_once(
        world: QueueWorld) -> None:
    world.cycle()
    for name in NAMES:
        text = " ".join(world.cards(name))
        assert f"Tenant: {name}" in text, f"{name} got no card"
        assert f"{name.lower()}-ws" in text  # every tenant's Sentinel flows
        assert (f"{name.lower()}-dev" in text) == (name != "Contoso")
        for other in set(NAMES) - {name}:
            assert other.lower() + "-" not in text
        stored = CycleStore(world.tables(name)).get(world.ids[name],
                                                    f"{world.now:%Y%m%dT%H%M}")
        assert stored is not None
        assert stored.complete
        assert stored.delivered_at is not None
    (notice,) = world.notices()  # only the unconsented tenant's
    assert "Contoso" in notice
    assert "admin consent" in notice
    posted = {name: len(world.cards(name)) for name in NAMES}
    world.cycle(world.now + timedelta(hours=1))
    assert {name: len(world.cards(name)) for name in NAMES} == posted  # each finding once
    assert len(world.notices()) == 1  # not announced again
    world.graph.unconsented.clear()  # Contoso's administrator consents
    world.cycle(world.now + timedelta(hours=2))
    assert "works again" in world.naming("Contoso")[-1]
    assert "contoso-dev" in " ".join(world.cards("Contoso"))


def test_messages_are_interleaved_across_tenants(world: QueueWorld) -> None:
    world.fanout.start(world.now)
    peeked = world.host.client(HUNTS_QUEUE).peek_messages(max_messages=32)
    keys = [decode(m.content).tenant for m in peeked]
    assert len(keys) == len(NAMES) * len(HUNTS)
    for n in range(len(HUNTS)):  # each round names every tenant once
        assert sorted(keys[n * len(NAMES):(n + 1) * len(NAMES)]) == sorted(world.ids.values())
    assert world.host.depth(DELIVERY_QUEUE) == len(NAMES)  # one deadline message per tenant


def test_the_heartbeat_counts_every_hunt_run_of_a_queue_cycle(world: QueueWorld) -> None:
    world.cycle()
    for name in NAMES:
        tally = HealthStore(world.tables(name)).heartbeat()
        assert tally is not None
        assert tally.runs == 1
        assert tally.hunt_runs == {hunt_id: 1 for hunt_id, _ in HUNTS.values()}
        assert tally.failures == (1 if name == "Contoso" else 0)
        assert tally.findings == (2 if name == "Contoso" else 4)


def test_a_copy_changes_nothing_and_a_poison_message_notices_once_naming_its_tenant(
        world: QueueWorld) -> None:
    host, contoso, fabrikam = world.host, world.ids["Contoso"], world.ids["Fabrikam"]
    world.fanout.start(world.now)
    received = host.receive_visible(HUNTS_QUEUE, 600)
    mine = [m for m in received if decode(m.content).tenant == contoso]
    host.release(HUNTS_QUEUE, [m for m in received if m not in mine])
    for message in mine:  # Contoso's hunts fail maxDequeueCount times: the host sets them aside
        host.poison(HUNTS_QUEUE, message)
    copies = [m.content for m in host.client(HUNTS_QUEUE).peek_messages(max_messages=32)
              if decode(m.content).tenant == fabrikam]
    host.drain()
    assert not host.failures
    poison = [n for n in world.notices() if "poison" in n]
    assert len(poison) == len(mine)
    assert all("Contoso:" in n for n in poison)
    assert "Fabrikam" not in " ".join(poison)
    before = {name: len(world.channels[name].payloads) for name in (*NAMES, "health")}
    for body in copies:  # Fabrikam's messages delivered again, and its delivery
        host.client(HUNTS_QUEUE).send_message(body)
    host.client(DELIVERY_QUEUE).send_message(
        encode(DeliveryMessage(fabrikam, f"{world.now:%Y%m%dT%H%M}")))
    host.client(HUNTS_QUEUE + POISON_SUFFIX).send_message(mine[0].content)  # poison again
    host.drain()
    assert not host.failures
    assert {name: len(world.channels[name].payloads)
            for name in (*NAMES, "health")} == before  # nothing new anywhere
    assert "fabrikam-dev" in " ".join(world.cards("Fabrikam"))
    delivery = encode(DeliveryMessage(fabrikam, f"{world.now:%Y%m%dT%H%M}"))
    for _ in range(2):  # a poisoned delivery, and its copy: one notice, naming the tenant
        host.client(DELIVERY_QUEUE + POISON_SUFFIX).send_message(delivery)
    host.drain()
    (notice,) = [n for n in world.naming("Fabrikam") if "poison" in n]
    assert "Fabrikam: Queue message set aside" in notice


def test_a_message_for_a_tenant_not_in_the_file_is_refused(world: QueueWorld) -> None:
    body = json.dumps({"v": 1, "kind": "hunt", "tenant": str(uuid.uuid4()),
                       "cycle": f"{world.now:%Y%m%dT%H%M}", "hunt": HUNTS["defender"][0],
                       "now": world.now.isoformat()})
    with pytest.raises(MessageError, match="does not serve"):
        world.fanout.work(body)
    assert not world.graph.requests


@pytest.mark.parametrize("world", [{"Fabrikam": "webhook", "Northwind": "workspace"}],
                         indirect=True)
def test_a_dead_webhook_and_a_workspace_gone_are_each_announced_once(world: QueueWorld) -> None:
    world.cycle()
    for name, says in (("Contoso", "admin consent"), ("Fabrikam", "Teams webhook"),
                       ("Northwind", "Sentinel workspace unreachable")):
        (notice,) = world.naming(name)
        assert says in notice
    assert "northwind-dev" in " ".join(world.cards("Northwind"))  # its Defender flows
    assert "contoso-ws" in " ".join(world.cards("Contoso"))
    world.cycle(world.now + timedelta(hours=1))
    assert len(world.notices()) == len(NAMES)  # none announced again


def test_without_a_tenants_file_the_heartbeat_counts_the_queue_cycles_hunts(
        tmp_path: Path, queue_connection_string: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.fanout_world import fanout_world, run_timer

    with fanout_world(tmp_path, queue_connection_string, monkeypatch) as made:
        host: QueueHost = made["host"]
        monkeypatch.setenv("HUNTWIRE_HEARTBEAT_HOUR", "off")  # the tally is not sent and reset
        run_timer()
        sent = [decode(m.content) for m in host.client(HUNTS_QUEUE).peek_messages(32)]
        assert {m.tenant for m in sent} == {"default"}  # as before a tenants file existed
        host.drain()
        assert not host.failures
        tally = HealthStore(Storage.from_connection_string(queue_connection_string)).heartbeat()
        assert tally is not None
        assert tally.runs == 1
        assert tally.hunt_runs == {m.hunt: 1 for m in sent if isinstance(m, HuntMessage)}
        assert tally.findings >= 2  # the seed hunt's two reverse shells at least


def test_a_tenant_that_cannot_start_is_announced_and_the_others_are_sent(
        world: QueueWorld) -> None:
    cycle = f"{world.now:%Y%m%dT%H%M}"
    broken = world.tables("Fabrikam").table("huntwireFanout")  # a counter nobody can read
    broken.create_entity({"PartitionKey": world.ids["Fabrikam"], "RowKey": cycle,
                          "Now": "not a time"})
    with pytest.raises(RuntimeError, match=r"not started for tenant.*Fabrikam"):
        world.fanout.start(world.now)
    peeked = world.host.client(HUNTS_QUEUE).peek_messages(max_messages=32)
    assert {decode(m.content).tenant for m in peeked} == {world.ids["Contoso"],
                                                          world.ids["Northwind"]}
    world.host.drain()
    assert "northwind-dev" in " ".join(world.cards("Northwind"))
    (notice,) = world.naming("Fabrikam")
    assert "run failed" in notice
    broken.delete_entity(world.ids["Fabrikam"], cycle)
    world.cycle(world.now + timedelta(hours=1))  # it starts again: one "works again"
    assert "works again" in world.naming("Fabrikam")[-1]
    assert "fabrikam-dev" in " ".join(world.cards("Fabrikam"))


def test_the_timer_posts_one_daily_heartbeat_for_the_deployment(world: QueueWorld) -> None:
    world.fanout.settings = replace(world.fanout.settings, heartbeat_hour=0)
    world.cycle()  # the cycle's deliveries tally each tenant's hunts
    world.cycle(world.now + timedelta(hours=1))  # the next timer posts what they tallied
    beats = [n for n in world.notices() if "huntwire is running" in n]
    assert len(beats) == 1, beats
    assert "3 tenant(s)" in beats[0]
    for name in NAMES:
        assert name in beats[0]
    world.cycle(world.now + timedelta(hours=2))
    assert len([n for n in world.notices() if "huntwire is running" in n]) == 1
