"""A large answer is delivered and never blocks another hunt's posts (red team #11): one hunt
answers more findings than one run posts, another hunt three; the three are posted in the same
run, no post intent exceeds Table Storage's entity and property limits, and the next run posts
what waited. Real Runner, ledger, incident store and local engine on Azurite; Teams is a local
receiver."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.data.tables import TableServiceClient

from devtools.large_answer import NOW, SMALL_ROWS, LargeAnswer
from devtools.webhook import WebhookReceiver
from shared.incidents import IncidentStore
from shared.incidents.entities import OUTBOX, PIECE_CHARS, outbox_entities, references_of
from shared.incidents.pipeline import MAX_FINDINGS_PER_RUN
from shared.storage import Storage

ROWS = MAX_FINDINGS_PER_RUN + 100


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as hook:
        yield hook


def test_another_hunts_findings_are_posted_beside_a_large_answer(
        storage_connection_string: str, receiver: WebhookReceiver, tmp_path: Path) -> None:
    world = LargeAnswer(storage_connection_string, tmp_path / "DeviceProcessEvents.jsonl", ROWS,
                        receiver, devices=8)
    first = world.run()
    assert first.small_posted == SMALL_ROWS
    assert first.large_posted == MAX_FINDINGS_PER_RUN - SMALL_ROWS
    assert first.summary.ok
    large = next(o for o in first.summary.outcomes if o.hunt_id == world.large.id)
    assert large.pending == ROWS - first.large_posted  # they wait, pending, for the next run
    assert any("share" in warning for warning in large.warnings)
    print(f"{ROWS:,} rows: {first.seconds:.1f} s, {first.storage_requests:,} storage requests")


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
