"""Incidents under storage faults and at volume: the incident store recognises its own writes
whose replies were lost (409 on an insert, 412 on a conditional merge), a failing incident store
fails the run and keeps every finding pending, and an incident card shows every finding it
stands for (detail first, then one line each) or says how many it leaves out."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devtools.azurite import Azurite
from devtools.fault_proxy import FaultProxy
from devtools.webhook import WebhookReceiver
from shared.cards.incident import build_incident_post
from shared.cards.payload import MAX_PAYLOAD_BYTES, payload_size
from shared.incidents import Evidence, HuntRef, Incident, IncidentPost, IncidentStore
from shared.incidents.store import OutboxItem, partition_of
from shared.sources.local import LocalSource
from shared.storage import Storage
from tests.faults_world import FAST_STORAGE, Events, World, lost, make_hunt, table_names

pytestmark = pytest.mark.faults

START = datetime(2026, 11, 27, 9, tzinfo=UTC)


class FirstAttemptLost:
    """A FaultProxy filter: the first attempt of each write to *table* is applied and its reply
    lost (every other write: the retry gets through); the SDK's retry then meets our own
    write."""

    def __init__(self, table: str):
        self.table, self.writes, self.lock = table, 0, threading.Lock()

    def __call__(self, method: str, path: str) -> bool:
        if method == "GET" or self.table not in path:
            return False
        with self.lock:
            self.writes += 1
            return self.writes % 2 == 1


def incident(scope: str) -> Incident:
    return Incident(id="", scope=scope, partition=partition_of(scope), device="ws-1",
                    device_id="d" * 40, first_event=START, last_event=START, updated_at=START,
                    opened=True)


def test_the_store_recognises_its_own_writes_whose_replies_were_lost(azurite: Azurite) -> None:
    table = f"fwl{uuid.uuid4().hex[:10]}"
    assert IncidentStore(Storage.from_connection_string(azurite.connection_string),
                         table=table).table
    with FaultProxy(azurite.port, rate=1.0, kinds=("lost",),
                    only=FirstAttemptLost(table)) as proxy:
        store = IncidentStore(Storage.from_connection_string(proxy.connection_string,
                                                             **FAST_STORAGE), table=table)
        mine = store.create(incident("device:" + "d" * 40), lambda other: True)

        def bump(current: Incident) -> None:
            current.posts += 1

        changed = store.change(mine, bump)
        item = OutboxItem(f"row-{uuid.uuid4().hex[:6]}", {"type": "message"},
                          [(mine.partition, mine.id)], [(0, "hunt", "key-1")],
                          START + timedelta(minutes=15), "run-a")
        store.add_outbox(item)
        later = START + timedelta(hours=1)
        assert store.lease(store.outbox()[0], "run-b", later)
        injected = proxy.injected["lost"]
    assert injected >= 4  # create, merge, insert, lease: each first reply lost
    stored = store.get(mine.partition, mine.id)
    assert stored is not None
    assert stored.posts == 1 == changed.posts
    [leased] = store.outbox()
    assert leased.owner == "run-b"
    assert leased.findings == [(0, "hunt", "key-1")]


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as hook:
        yield hook


def test_a_failing_incident_store_fails_the_run_and_keeps_every_finding_pending(
        azurite: Azurite, tmp_path: Path, webhook: WebhookReceiver) -> None:
    events = Events(tmp_path / "DeviceProcessEvents.jsonl")
    tables = table_names()
    incidents_table = tables["incidents_table"]
    with FaultProxy(azurite.port, rate=1.0, kinds=("busy",),
                    only=lambda method, path: incidents_table in path) as proxy:
        world = World(make_hunt(), {"defender": LocalSource(
            {"DeviceProcessEvents": events.path})}, webhook, proxy.connection_string, tables)
        tokens = events.add(1, 5)
        first = world.run(1)
        assert proxy.injected["busy"] > 0
    outcome = first.outcomes[0]
    assert not first.ok
    assert outcome.delivery_failed
    assert outcome.pending == 5
    assert outcome.posted == 0
    assert "incidents failed, 5 finding(s) stay pending" in (outcome.error or "")
    assert "HTTP 503" in (outcome.error or "")
    assert webhook.posts == []
    second = world.run(2, connection_string=azurite.connection_string)  # storage is back
    assert second.ok
    assert second.outcomes[0].posted == 5
    counts = world.posts_per_token(tokens)
    assert lost(counts) == []
    assert set(counts.values()) == {1}


def evidence(count: int, *, hunt: str = "h1") -> list[Evidence]:
    return [Evidence(hunt, "Marker hunt", "High", (), False,
                     {"DeviceId": "d" * 40, "DeviceName": "ws-1", "ReportId": n,
                      "FileName": "cmd.exe", "InitiatingProcessFileName": "explorer.exe",
                      "ProcessCommandLine": f"cmd /c fwtok{n:04d}x " + "y" * 60},
                     START + timedelta(seconds=n), f"key-{n}") for n in range(count)]


@pytest.mark.parametrize("kind", ["opened", "updated"])
def test_an_incident_card_lists_every_finding_it_delivers(kind: str) -> None:
    items = evidence(60)
    subject = incident("device:" + "d" * 40)
    subject.id, subject.hunts = "HW-20261127-DDDD-01", {"h1": HuntRef("h1", "Marker hunt", "High")}
    payload = build_incident_post(IncidentPost(kind, subject, tuple(items)))  # type: ignore[arg-type]
    text = json.dumps(payload)
    assert payload_size(payload) <= MAX_PAYLOAD_BYTES
    assert [n for n in range(60) if f"fwtok{n:04d}x" not in text] == []
    assert "more of" not in text


def test_a_card_too_small_for_every_finding_says_how_many_it_leaves_out() -> None:
    items = evidence(600)
    subject = incident("device:" + "d" * 40)
    subject.id, subject.hunts = "HW-20261127-DDDD-01", {"h1": HuntRef("h1", "Marker hunt", "High")}
    payload = build_incident_post(IncidentPost("opened", subject, tuple(items)))
    text = json.dumps(payload, ensure_ascii=False)
    shown = sum(f"fwtok{n:04d}x" in text for n in range(600))
    assert payload_size(payload) <= MAX_PAYLOAD_BYTES
    assert shown >= 60
    assert "more of 600 events" in text
    assert f"…and {600 - shown:,} more" in text


def test_a_finding_without_a_process_shows_its_entity_and_key_columns() -> None:
    row = {"Account": "CONTOSO\\bob", "Computer": "dc-1", "Attempts": 5,
           "IpAddress": "203.0.113.9", "TimeGenerated": START.isoformat()}
    item = Evidence("h1", "Failed logons by account", "Medium", (), False, row, START, "k1",
                    "sentinel", keys=("Account", "Computer"))
    subject = incident("device:dc-1")
    subject.id, subject.device_id = "HW-20261127-ABCD-01", ""
    subject.hunts = {"h1": HuntRef("h1", "Failed logons by account", "Medium")}
    text = json.dumps(build_incident_post(IncidentPost("opened", subject, (item,))),
                      ensure_ascii=False)
    assert "? → ?" not in text
    for shown in ("Account: ", "CONTOSO\\\\bob", "Computer: ", "dc-1", "203.0.113.9"):
        assert shown in text
