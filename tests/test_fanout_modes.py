"""The fan-out's deadline (a hunt that never finishes does not hold the others' findings back)
and the two modes side by side (the same findings, posted the same way)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devtools.queue_host import QueueHost
from shared.fanout import (
    CYCLE_DEADLINE,
    DELIVERY_LEASE,
    DELIVERY_QUEUE,
    HUNTS_QUEUE,
    CycleStore,
    DeliveryMessage,
    encode,
)
from shared.storage import Storage
from tests.fanout_world import (
    SEED,
    SEED_ID,
    clear_tables,
    cycle_of,
    digests,
    fanout_world,
    notices,
    reported,
    run_timer,
    seed_message,
)


@pytest.fixture
def world(tmp_path: Path, queue_connection_string: str,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    with fanout_world(tmp_path, queue_connection_string, monkeypatch) as made:
        yield made


def test_a_hunt_that_never_finishes_does_not_hold_back_the_others(
        world: dict[str, Any]) -> None:
    import function_app

    host: QueueHost = world["host"]
    run_timer()
    stuck = seed_message(host, lease_seconds=600)  # its worker hangs: never deleted
    host.drain()
    assert not host.failures
    cycle = cycle_of(host)
    assert cycle.missing == [SEED_ID]
    assert not digests(world["webhook"])  # the fan-in waits for the seed hunt...
    fanout = function_app.fanout()  # ...until the deadline message comes due
    fanout.wall = lambda: cycle.now + CYCLE_DEADLINE + timedelta(seconds=1)
    fanout.deliver(encode(DeliveryMessage(cycle.tenant, cycle.cycle, "deadline")))
    first = reported(world["webhook"])
    assert first
    assert SEED not in first
    (late,) = notices(world["webhook"], "late")
    assert SEED in json.dumps(late)
    # The stuck worker's message comes back and finishes: counted, no second delivery.
    host.client(HUNTS_QUEUE).update_message(stuck, visibility_timeout=0)
    host.drain()
    assert not host.failures
    assert cycle_of(host).complete
    assert not list(host.client(DELIVERY_QUEUE).peek_messages())
    assert reported(world["webhook"]) == first
    # The next cycle delivers the seed's findings, once; the others' not again.
    function_app.fanout().start(world["now"] + timedelta(hours=1))
    host.drain()
    second = reported(world["webhook"])
    assert second[SEED] == 2
    assert {k: v for k, v in second.items() if k != SEED} == first


def test_both_modes_report_the_same_findings_the_same_way(
        world: dict[str, Any], queue_connection_string: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    host: QueueHost = world["host"]
    monkeypatch.delenv("HUNTWIRE_FANOUT")
    run_timer()  # in-process: the timer runs every hunt and delivers
    in_process = reported(world["webhook"])
    posts = len(world["webhook"].payloads)
    in_process_digests = len(digests(world["webhook"]))
    assert not host.depth(HUNTS_QUEUE)
    clear_tables(queue_connection_string)
    monkeypatch.setenv("HUNTWIRE_FANOUT", "queue")
    run_timer()
    host.drain()
    assert not host.failures
    assert in_process[SEED] == 2
    assert reported(world["webhook"], since=posts) == in_process
    assert len(digests(world["webhook"], since=posts)) == in_process_digests


@pytest.mark.parametrize("body", [
    "not a message at all",
    json.dumps({"v": 1, "kind": "hunt", "tenant": "contoso", "cycle": "20261206T1000",
                "hunt": SEED_ID, "now": "2026-12-06T10:00:00+00:00"}),
], ids=["malformed", "unknown-tenant"])
def test_a_message_that_can_never_run_ends_in_one_notice(world: dict[str, Any],
                                                          body: str) -> None:
    host: QueueHost = world["host"]
    host.client(HUNTS_QUEUE).send_message(body)
    host.drain()
    assert [name for name, _ in host.failures] == [HUNTS_QUEUE] * 5  # maxDequeueCount
    (notice,) = notices(world["webhook"], "poison")
    assert "huntwire-hunts-poison" in json.dumps(notice)
    assert not digests(world["webhook"])
    assert not world["graph"].requests


def test_a_delivery_copy_waits_for_the_running_one_and_takes_over_a_crashed_one(
        world: dict[str, Any]) -> None:
    import function_app

    host: QueueHost = world["host"]
    run_timer()
    while (message := host.receive(HUNTS_QUEUE)) is not None:
        assert host.invoke(HUNTS_QUEUE, message)
    cycle = cycle_of(host)
    assert cycle.complete
    store = CycleStore(Storage.from_connection_string(host.connection_string))
    claim, _ = store.claim_delivery(cycle.tenant, cycle.cycle, DELIVERY_LEASE, "crashed")
    assert claim == "claimed"  # a delivery that started, then its instance died
    host.drain()  # the worker's "complete" message finds the lease held...
    assert not host.failures
    assert not digests(world["webhook"])
    assert host.depth(DELIVERY_QUEUE) == 2  # ...and waits (with the deadline message)
    fanout = function_app.fanout()
    fanout.wall = lambda: datetime.now(UTC) + DELIVERY_LEASE + timedelta(seconds=5)
    fanout.deliver(encode(DeliveryMessage(cycle.tenant, cycle.cycle)))  # the copy, later
    assert reported(world["webhook"])[SEED] == 2
    fanout.deliver(encode(DeliveryMessage(cycle.tenant, cycle.cycle, "deadline")))
    assert len(digests(world["webhook"])) == 1


def test_a_deadline_message_that_comes_early_waits_for_the_deadline(
        world: dict[str, Any]) -> None:
    """The queue's clock and the instance's may differ: an early deadline message is not
    dropped (the cycle would then never be delivered around a stuck hunt)."""
    import function_app

    host: QueueHost = world["host"]
    run_timer()
    seed_message(host, lease_seconds=600)  # stuck
    host.drain()
    cycle = cycle_of(host)
    before = host.depth(DELIVERY_QUEUE)
    fanout = function_app.fanout()
    fanout.wall = lambda: cycle.deadline - timedelta(seconds=3)
    assert fanout.deliver(encode(DeliveryMessage(cycle.tenant, cycle.cycle, "deadline"))) is None
    assert host.depth(DELIVERY_QUEUE) == before + 1  # sent again, for the deadline
    assert not digests(world["webhook"])
