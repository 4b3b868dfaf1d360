"""The queue fan-out end to end on Azurite tables and queues with the real SDKs: the timer, the
worker, the delivery and the poison functions of function_app.py called as the host calls them
(devtools/queue_host.py plays the host), a local Graph, a local managed-identity endpoint and a
local Teams webhook over real HTTP. Nothing of ours or of the Azure SDKs is mocked."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest

from devtools.azurite import Azurite, AzuriteQueues
from devtools.fault_proxy import FaultProxy
from devtools.identity import Reply, Request
from devtools.queue_host import QueueHost
from shared.fanout import DELIVERY_QUEUE, HUNTS_QUEUE, POISON_SUFFIX
from shared.storage import Storage
from tests.fanout_world import (
    QUEUES,
    REPO,
    SEED,
    SEED_ID,
    cycle_of,
    digests,
    fanout_world,
    graph_queries,
    notices,
    reported,
    run_timer,
    seed_message,
    take_message,
)


@pytest.fixture
def world(tmp_path: Path, queue_connection_string: str,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    with fanout_world(tmp_path, queue_connection_string, monkeypatch) as made:
        yield made


def test_queue_functions_are_bound_to_the_fanout_queues() -> None:
    import function_app

    bound = {}
    for name in ("hunt_worker", "cycle_delivery", "hunt_poison", "delivery_poison"):
        (binding,) = [b.get_dict_repr() for b in getattr(function_app, name)._function
                      .get_bindings()]
        assert binding["type"] == "queueTrigger"
        assert binding["connection"] == "HUNTWIRE_STORAGE"
        bound[name] = binding["queueName"]
    assert sorted(bound.values()) == sorted(QUEUES)
    host = json.loads((REPO / "host.json").read_text())["extensions"]["queues"]
    assert host["maxDequeueCount"] == 5
    assert host["messageEncoding"] == "base64"


def test_a_cycle_reports_every_finding_once(world: dict[str, Any]) -> None:
    host: QueueHost = world["host"]
    run_timer()
    assert graph_queries(world["graph"]) == 0  # the timer only enqueues
    sent = host.depth(HUNTS_QUEUE)
    assert sent == 3  # the Defender hunts; Sentinel's have no workspace and are skipped
    host.drain()
    assert not host.failures
    counts = reported(world["webhook"])
    assert counts[SEED] == 2
    assert len(counts) >= 2
    assert len(digests(world["webhook"])) == 1  # one incident: one device, minutes apart
    assert graph_queries(world["graph"]) == sent
    cycle = cycle_of(host)
    assert cycle.complete
    assert cycle.delivered_at is not None
    assert "Get-Service" not in json.dumps(world["webhook"].payloads)


def test_every_message_delivered_twice_changes_nothing(world: dict[str, Any]) -> None:
    """At-least-once delivery: every hunt message, and the delivery message, comes twice
    (one copy only after the other was done); findings are still reported once."""
    host: QueueHost = world["host"]
    run_timer()
    _duplicate(host, HUNTS_QUEUE)
    host.drain()
    first = reported(world["webhook"])
    posts = len(world["webhook"].payloads)
    assert first[SEED] == 2
    cycle = cycle_of(host)
    assert cycle.complete
    # the whole cycle's messages come again (a replay after everything was done)
    for hunt_id in cycle.hunts:
        host.client(HUNTS_QUEUE).send_message(json.dumps(
            {"v": 1, "kind": "hunt", "tenant": cycle.tenant, "cycle": cycle.cycle,
             "hunt": hunt_id, "now": cycle.now.isoformat()}))
    host.client(DELIVERY_QUEUE).send_message(json.dumps(
        {"v": 1, "kind": "deliver", "tenant": cycle.tenant, "cycle": cycle.cycle,
         "reason": "complete"}))
    host.drain()
    assert not host.failures
    assert len(world["webhook"].payloads) == posts
    assert reported(world["webhook"]) == first
    assert cycle_of(host).done == cycle.done


def _duplicate(host: QueueHost, name: str) -> None:
    """Send a copy of every message waiting in *name*."""
    client = host.client(name)
    bodies = [m.content for m in client.peek_messages(max_messages=32)]
    assert bodies
    for body in bodies:
        client.send_message(body)


WORKER = ("import sys, azure.functions as func, function_app\n"
          "function_app.hunt_worker._function.get_user_function()("
          "func.QueueMessage(body=sys.stdin.buffer.read()))\n")


START_TIMEOUT = 180.0
"""Bound on the worker process reaching the point where it is killed (imports under load)."""


def _killed_worker(env: dict[str, str], body: str, started: threading.Event) -> None:
    """Run the worker on *body* in its own process, kill it (SIGKILL) once *started* is set."""
    process = subprocess.Popen([sys.executable, "-c", WORKER], cwd=REPO, env=env,
                               stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    assert process.stdin is not None
    process.stdin.write(body.encode())
    process.stdin.close()
    deadline = time.monotonic() + START_TIMEOUT
    # Wait on what can be seen, not a fixed time: the kill point reached, or the worker gone.
    while not started.wait(0.1) and process.poll() is None and time.monotonic() < deadline:
        pass
    reached = started.is_set()
    process.kill()
    process.wait()
    assert reached, (process.stderr.read().decode()[-2000:] if process.stderr else "")


def _come_back(host: QueueHost, message_id: str) -> Any:
    """The message, visible again once its lease ran out (the killed worker never deleted it);
    the other messages are dequeued once (see take_message)."""
    return take_message(host, HUNTS_QUEUE, lambda m: m.id == message_id,
                        host.lease_seconds, timeout=60)


def _kill_in_query(world: dict[str, Any], env: dict[str, str], body: str) -> None:
    """Kill the worker while Graph is answering its query (nothing recorded yet)."""
    started, release = threading.Event(), threading.Event()

    def stall(request: Request) -> Reply:
        started.set()
        release.wait(30)
        return Reply(503)

    world["graph"].script(stall)
    try:
        _killed_worker(env, body, started)
    finally:
        release.set()


def _kill_in_fan_in(world: dict[str, Any], env: dict[str, str], body: str) -> None:
    """Kill the worker after its ledger work, when it writes the fan-in counter (the write is
    held by a proxy and never reaches storage)."""
    started = threading.Event()
    table_port = int(world["env"]["HUNTWIRE_STORAGE"].split("TableEndpoint=http://127.0.0.1:")[1]
                     .split("/")[0])
    queue_part = world["env"]["HUNTWIRE_STORAGE"].split("QueueEndpoint=")[1].split(";")[0]
    with FaultProxy(table_port) as proxy:
        def hold(method: str, path: str) -> None:
            if "huntwireFanout" in path and method in ("PUT", "MERGE", "PATCH"):
                proxy.hang = True
                started.set()
                raise ConnectionAbortedError("held: the worker is about to be killed")

        proxy.on_request = hold
        proxied = {**env, "HUNTWIRE_STORAGE":
                   f"{proxy.connection_string}QueueEndpoint={queue_part};"}
        try:
            _killed_worker(proxied, body, started)
        finally:
            proxy.hang = False


@pytest.mark.parametrize("kill", [_kill_in_query, _kill_in_fan_in],
                         ids=["during-query", "after-ledger"])
def test_a_worker_killed_mid_hunt_is_run_again_and_reports_once(
        world: dict[str, Any], kill: Callable[[dict[str, Any], dict[str, str], str], None],
        monkeypatch: pytest.MonkeyPatch) -> None:
    host: QueueHost = world["host"]
    run_timer()
    message = seed_message(host, lease_seconds=2)
    import os

    kill(world, {**os.environ}, message.content)
    again = _come_back(host, message.id)
    assert again.dequeue_count == 2
    assert host.invoke(HUNTS_QUEUE, again)
    host.drain()
    assert not host.failures
    assert reported(world["webhook"])[SEED] == 2
    assert len(digests(world["webhook"])) == 1
    assert not notices(world["webhook"], "poison")  # no message was given up on
    assert cycle_of(host).complete


def test_a_poison_message_is_announced_and_its_findings_come_once_next_cycle(
        world: dict[str, Any]) -> None:
    """The seed hunt's worker crashes every time: the host gives up on its message, which goes
    to the poison queue; the poison function posts a notice, records the failure in health and
    lets the cycle deliver the others. The next cycle reports the seed's findings, once."""
    import os

    import function_app

    host: QueueHost = world["host"]
    run_timer()
    message = seed_message(host, lease_seconds=2)
    _kill_in_query(world, {**os.environ}, message.content)
    _come_back_and_poison(host, message.id)
    host.drain()
    assert not host.failures
    (notice,) = notices(world["webhook"], "poison")
    assert SEED_ID in json.dumps(notice)
    first = reported(world["webhook"])
    assert SEED not in first
    assert first  # the other hunts' findings went out
    assert cycle_of(host).complete
    health = _health(host, SEED_ID)
    assert health["ConsecutiveFailures"] >= 1
    assert "queue message failed" in health["LastError"]
    # The poison message comes again (at-least-once, or a copy): no second notice, and the
    # hunt's failure is not counted twice.
    host.client(HUNTS_QUEUE + POISON_SUFFIX).send_message(message.content)
    host.drain()
    assert not host.failures
    assert len(notices(world["webhook"], "poison")) == 1
    assert _health(host, SEED_ID)["ConsecutiveFailures"] == health["ConsecutiveFailures"]
    # The next cycle (an hour later): the seed's findings, once; the others' not again.
    function_app.fanout().start(world["now"] + timedelta(hours=1))
    host.drain()
    assert not host.failures
    second = reported(world["webhook"])
    assert second[SEED] == 2
    assert {k: v for k, v in second.items() if k != SEED} == first


def _come_back_and_poison(host: QueueHost, message_id: str) -> None:
    message = _come_back(host, message_id)
    assert message.dequeue_count == 2
    host.max_dequeue_count = 1  # host.json says 5: one crash is enough to show the path
    try:
        assert not host.invoke(HUNTS_QUEUE, message)  # more dequeues than allowed: poisoned
    finally:
        host.max_dequeue_count = 5
    assert host.depth(HUNTS_QUEUE + POISON_SUFFIX) == 1


def _health(host: QueueHost, hunt_id: str) -> dict[str, Any]:
    storage = Storage.from_connection_string(host.connection_string)
    for table in ("huntwireHealth",):
        for entity in storage.table(table).list_entities():
            if hunt_id in (entity["RowKey"], entity["PartitionKey"]):
                return dict(entity)
    raise AssertionError(f"no health record of {hunt_id}")


def test_queue_host_needs_base64_messages(azurite: Azurite,
                                          azurite_queues: AzuriteQueues) -> None:
    """Messages are base64 text on the wire, as the Functions host expects by default."""
    from azure.storage.queue import QueueClient

    from shared.storage.queues import Queues

    connection = azurite_queues.connection_string(azurite.table_endpoint)
    Queues.from_connection_string(connection).send("huntwire-encoding", '{"v":1}')
    raw = QueueClient.from_connection_string(connection, "huntwire-encoding").receive_message()
    assert raw is not None
    assert raw.content == "eyJ2IjoxfQ=="
    _ = func  # the host's message type is what the handlers receive
