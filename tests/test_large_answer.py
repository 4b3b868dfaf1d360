"""A large answer never blocks another hunt's posts (red team #11): one hunt answers more
findings than one run posts, another hunt three; the three are posted in the same run (a storm
summary) and the rest waits pending; no post intent exceeds Table Storage's entity and property
limits. Real delivery, ledger, incident store and local engine on Azurite; Teams is a local
receiver."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import closing
from datetime import timedelta
from pathlib import Path

import pytest
from azure.data.tables import TableServiceClient

from devtools.large_answer import NOW, SMALL_ROWS, LargeAnswer
from devtools.webhook import WebhookReceiver
from shared.delivery import HuntRun, deliver, fair_shares
from shared.incidents import IncidentSettings, IncidentStore
from shared.incidents.entities import OUTBOX, PIECE_CHARS, outbox_entities, references_of
from shared.ledger import Ledger
from shared.notify.teams import TeamsNotifier
from shared.outcome import HuntOutcome
from shared.sources.local import LocalSource
from shared.storage import Storage
from shared.window import Window

LARGE = 400
CAP = 150
"""Findings one run posts in this test (the app's is ``MAX_FINDINGS_PER_RUN``)."""


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as hook:
        yield hook


def test_another_hunts_findings_are_posted_beside_a_large_answer(
        storage_connection_string: str, receiver: WebhookReceiver, tmp_path: Path) -> None:
    """At scale, the run's own cap: ``bench/bench_large_answer.py`` (10,000 and 100,000 rows)."""
    events = tmp_path / "DeviceProcessEvents.jsonl"
    world = LargeAnswer(storage_connection_string, events, LARGE, receiver, devices=40)
    storage = Storage.from_connection_string(storage_connection_string)
    ledger = Ledger(storage, findings_table=f"f{world.suffix}", pending_table=f"p{world.suffix}",
                    checkpoints_table=f"c{world.suffix}")
    source = LocalSource({"DeviceProcessEvents": events})
    window = Window(NOW - timedelta(hours=4), NOW)
    runs = []
    for hunt in (world.large, world.small):
        run = HuntRun(hunt, HuntOutcome(hunt.id, hunt.name, "ok"))
        run.held = ledger.record(hunt, source.run(hunt, window).rows, NOW).new
        runs.append(run)
    hunts = [world.large, world.small]
    with closing(TeamsNotifier(receiver.url, min_interval_seconds=0)) as teams:
        counts = deliver(runs, hunts, ledger, IncidentStore(storage, table=f"i{world.suffix}"),
                         teams, NOW, IncidentSettings(), max_findings=CAP)
    large, small = (run.outcome for run in runs)
    assert (small.posted, small.pending) == (SMALL_ROWS, 0)
    assert (large.posted, large.pending) == (CAP - SMALL_ROWS, LARGE - CAP + SMALL_ROWS)
    assert any("share" in warning for warning in large.warnings)
    # one storm summary naming every incident, plus High incidents posted on their own (never
    # more than the storm limit + 1 posts a run)
    assert 1 <= counts["posts"] <= IncidentSettings().storm_limit + 1
    assert len(ledger.pending(world.small)) == 0
    assert len(ledger.pending(world.large)) == large.pending  # what waits stays pending


def test_fair_shares_give_small_hunts_all_and_split_the_rest() -> None:
    assert fair_shares({"big": 10_000, "small": 3}, 5_000) == {"small": 3, "big": 4_997}
    assert fair_shares({"a": 9_000, "b": 8_000, "c": 10}, 5_000) == {"c": 10, "b": 2_495,
                                                                   "a": 2_495}
    assert fair_shares({"a": 2, "b": 3}, 5_000) == {"a": 2, "b": 3}


def test_a_storm_post_listing_thousands_of_findings_fits_the_service_limits(
        storage_connection_string: str) -> None:
    incidents = [(f"device_{n:05d}~{n:08x}", f"HW-20261127-{n:04X}-01") for n in range(40)]
    findings = [(n % 40, f"hunt-{n % 7}", f"20261127-{n:032x}") for n in range(15_000)]
    entities = outbox_entities("20261127T120000-run-0001", {"text": "storm"}, incidents,
                               findings)
    assert len(entities) > 1  # the head and the parts its references did not fit on
    for entity in entities:
        strings = [v for v in entity.values() if isinstance(v, str)]
        assert max(len(v) for v in strings) <= PIECE_CHARS
        assert sum(2 * (len(k) + len(v)) for k, v in entity.items() if isinstance(v, str)) \
            < 1_000_000
    *parts, head = entities
    assert references_of(head, parts) == (incidents, findings)

    storage = Storage.from_connection_string(storage_connection_string)
    store = IncidentStore(storage, table="stormLimits")
    table = store.table
    for entity in entities:  # the service (Azurite) takes every one of them
        table.upsert_entity(entity)
    (item,) = [i for i in store.outbox() if i.row_key == head["RowKey"]]
    assert (item.incidents, item.findings) == (incidents, findings)
    store.complete(item, NOW)
    service = TableServiceClient.from_connection_string(storage_connection_string)
    left = list(service.get_table_client("stormLimits").query_entities(
        "PartitionKey eq @p", parameters={"p": OUTBOX}))
    assert left == []
    assert json.loads(head["Payload"]) == {"text": "storm"}
