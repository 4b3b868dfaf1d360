"""The deployment's shared rate limit: every instance books Graph's calls from one sliding log in
Table Storage (Azurite), so many instances together stay under one tenant's 45 calls a minute;
a 429's Retry-After holds every instance; a storage fault falls back to local pacing."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from azure.data.tables import TableServiceClient

from devtools.fake_graph import FakeGraph
from devtools.identity import IdentityServer
from shared.app import build_runner
from shared.pacing import PARTITION, TABLE, RateBook, SharedPacer, row_key
from shared.retry import CallPacer
from shared.settings import load_settings
from shared.storage import Storage

CALLS, PERIOD = 5, 1.0


@pytest.fixture
def storage(storage_connection_string: str) -> Storage:
    service = TableServiceClient.from_connection_string(storage_connection_string)
    service.delete_table(TABLE)
    return Storage.from_connection_string(storage_connection_string)


def instances(connection: str, count: int) -> list[RateBook]:
    """*count* instances' books on one account: nothing shared in memory, only the table."""
    return [RateBook(Storage.from_connection_string(connection)) for _ in range(count)]


def busiest(slots: list[float], period: float) -> int:
    """The most slots in any window of *period* seconds."""
    ordered = sorted(slots)
    return max((sum(1 for s in ordered[i:] if s < start + period)
                for i, start in enumerate(ordered)), default=0)


def test_instances_together_stay_under_one_limit(storage: Storage,
                                                  storage_connection_string: str) -> None:
    record: list[float] = []
    books = instances(storage_connection_string, 3)
    pacers = [book.pacer("graph:contoso@test", CALLS, PERIOD) for book in books]
    for pacer in pacers:
        assert isinstance(pacer, SharedPacer)
        pacer.record = record
    started = time.time()

    def instance(pacer: CallPacer) -> None:
        for _ in range(4):
            pacer.acquire()

    threads = [threading.Thread(target=instance, args=(p,)) for p in pacers for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(record) == 24
    assert busiest(record, PERIOD - 0.002) <= CALLS  # stored to the millisecond
    # 24 calls at 5 a second: the last one at least 4 periods after the first.
    assert time.time() - started >= 4 * PERIOD - 0.05
    entity = storage.table(TABLE).get_entity(PARTITION, row_key("graph:contoso@test"))
    assert entity["Key"] == "graph:contoso@test"


def test_a_local_pacer_per_instance_would_not(storage: Storage) -> None:
    """The same load with a book per instance and no storage: each paces alone (the bug)."""
    record: list[float] = []
    pacers = [RateBook().pacer("graph:contoso@test", CALLS, PERIOD) for _ in range(3)]
    for pacer in pacers:
        pacer.record = record
        for _ in range(CALLS):
            pacer.acquire()
    assert busiest(record, PERIOD) == 3 * CALLS


def test_retry_after_on_one_instance_holds_the_others(storage: Storage,
                                                      storage_connection_string: str) -> None:
    first, second = (book.pacer("graph:fabrikam@test", CALLS, PERIOD)
                     for book in instances(storage_connection_string, 2))
    assert first.try_reserve() == 0.0
    first.forfeit()
    first.hold(3.0)
    wait = second.try_reserve()
    assert 2.5 < wait <= 3.0
    with pytest.raises(Exception, match="slot is"):
        second.acquire(max_wait=1.0)


def test_a_pool_polling_a_full_log_reads_the_table_once(storage: Storage,
                                                        storage_connection_string: str) -> None:
    pacer = instances(storage_connection_string, 1)[0].pacer("graph:polled@test", 2, 30.0)
    pacer.acquire()
    pacer.acquire()
    book_storage = pacer._storage  # type: ignore[attr-defined]
    before = book_storage.requests
    waits = [pacer.try_reserve() for _ in range(20)]
    assert all(w > 25 for w in waits)
    assert book_storage.requests - before == 1


def test_a_corrupt_log_is_repaired(storage: Storage, storage_connection_string: str) -> None:
    key = "graph:corrupt@test"
    storage.table(TABLE).upsert_entity({"PartitionKey": PARTITION, "RowKey": row_key(key),
                                        "Slots": "{not json", "NotBefore": "soon"})
    pacer = instances(storage_connection_string, 1)[0].pacer(key, CALLS, PERIOD)
    assert pacer.acquire(max_wait=0.5) == 0.0
    entity = storage.table(TABLE).get_entity(PARTITION, row_key(key))
    assert entity["Slots"].startswith("[")
    assert entity["Slots"].count(",") == 0


def test_unreachable_storage_falls_back_to_local_pacing(caplog: pytest.LogCaptureFixture,
                                                        storage_connection_string: str) -> None:
    port = storage_connection_string.split("TableEndpoint=")[1].split(":")[2].split("/")[0]
    dead = storage_connection_string.replace(f":{port}/", ":9/")  # the discard port: refused
    pacer = RateBook(Storage.from_connection_string(dead, retry_total=0)).pacer(
        "graph:offline@test", 2, 30.0)
    record: list[float] = []
    pacer.record = record
    with caplog.at_level(logging.WARNING, logger="huntwire.pacing"):
        assert pacer.acquire(max_wait=1.0) == 0.0
        assert pacer.acquire(max_wait=1.0) == 0.0
        assert pacer.try_reserve() > 25  # still paced: by this instance alone
    assert len(record) == 2
    warnings = [r for r in caplog.records if "on its own" in r.getMessage()]
    assert len(warnings) == 1
    assert "AccountKey" not in caplog.text


def test_queue_mode_runner_books_graph_calls_in_the_table(
        storage: Storage, tmp_path: Path, storage_connection_string: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    hunts = tmp_path / "hunts"
    hunts.mkdir()
    for n in range(3):
        (hunts / f"h{n}.yaml").write_text(
            f"id: 66666666-0000-0000-0000-00000000000{n}\nname: Hunt {n}\nsource: defender\n"
            "query: |\n  DeviceProcessEvents\n  | where ProcessCommandLine has \"TCPClient\"\n"
            "  | project Timestamp, DeviceId, ReportId, ProcessCommandLine\n")
    (tmp_path / "DeviceProcessEvents.jsonl").write_text("")
    with IdentityServer() as identity, \
            FakeGraph({"DeviceProcessEvents": tmp_path / "DeviceProcessEvents.jsonl"}) as graph:
        for name, value in identity.env.items():
            monkeypatch.setenv(name, value)
        settings = load_settings({**identity.env, "HUNTWIRE_STORAGE": storage_connection_string,
                                  "HUNTWIRE_GRAPH_ENDPOINT": graph.url,
                                  "HUNTWIRE_TENANT_ID": "11111111-2222-3333-4444-555555555555",
                                  "HUNTWIRE_HUNTS_DIR": str(hunts),
                                  "HUNTWIRE_HEARTBEAT_HOUR": "off"})
        runner = build_runner(settings, shared_pacing=True)
        summary = runner.run_once(datetime(2026, 1, 5, 1, 0, tzinfo=UTC))
        calls, url = len(graph.requests), graph.url
        assert [o.status for o in summary.outcomes] == ["ok"] * 3, summary.outcomes
    key = f"graph:{settings.tenant_id}@{url}"
    entity = storage.table(TABLE).get_entity(PARTITION, row_key(key))
    assert entity["Slots"].count(",") + 1 == calls == 3
