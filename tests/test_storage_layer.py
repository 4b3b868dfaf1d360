"""The storage layer: every store gets its bounded timeouts and the run's deadline, through one
client a run builds once. Real Azurite; a local TCP server that accepts and never answers stands
for a hanging storage account."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from shared.app import build_runner
from shared.errors import StorageError
from shared.health.records import HealthStore, HealthStoreError
from shared.health.runner_hooks import RunnerHealth
from shared.incidents import IncidentStore, IncidentStoreError
from shared.ledger import Ledger, LedgerError
from shared.settings import load_settings
from shared.storage import Bounds, Deadline, Storage, retry_conflicts
from shared.suppress.store import SnoozeStore, SnoozeStoreError

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
TIGHT = Bounds(connect_seconds=1, read_seconds=0.5, retries=1, backoff_factor=0.05,
               backoff_max=0.1)
"""Two attempts of half a second each: a hanging call ends in about one second."""


class SilentServer:
    """Accepts TCP connections, reads nothing and never answers."""

    def __init__(self) -> None:
        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self._socket.listen(64)
        self._socket.settimeout(0.1)
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    @property
    def connection_string(self) -> str:
        port = self._socket.getsockname()[1]
        return ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=a2V5;"
                f"TableEndpoint=http://127.0.0.1:{port}/devstoreaccount1;")

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                connection, _ = self._socket.accept()
            except OSError:
                continue
            self._held.append(connection)

    def __enter__(self) -> SilentServer:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for connection in self._held:
            connection.close()
        self._socket.close()


@pytest.fixture
def silent() -> Iterator[SilentServer]:
    with SilentServer() as server:
        yield server


STORES: dict[str, tuple[type[StorageError], Callable[[Storage], Any]]] = {
    "ledger": (LedgerError, lambda storage: Ledger(storage).checkpoint("hunt-1")),
    "incidents": (IncidentStoreError, lambda storage: IncidentStore(storage).outbox()),
    "health": (HealthStoreError, lambda storage: HealthStore(storage).hunts()),
    "snoozes": (SnoozeStoreError, lambda storage: SnoozeStore(storage).all()),
}


@pytest.mark.parametrize("store", sorted(STORES))
def test_each_store_gives_up_on_hanging_storage_within_its_bound(store: str,
                                                                 silent: SilentServer) -> None:
    error, call = STORES[store]
    storage = Storage.from_connection_string(silent.connection_string, bounds=TIGHT)
    started = time.monotonic()
    with pytest.raises(error) as caught:
        call(storage)
    elapsed = time.monotonic() - started
    assert elapsed < TIGHT.worst_call_seconds + 1.0, f"{store} took {elapsed:.1f} s"
    assert caught.value.reason == "timeout"
    assert 1 <= storage.requests <= TIGHT.retries + 1  # each attempt counted (POST: one)
    assert "a2V5" not in str(caught.value)


@pytest.mark.parametrize("store", sorted(STORES))
def test_the_run_deadline_cuts_a_hanging_call_and_refuses_the_next(store: str,
                                                                   silent: SilentServer) -> None:
    error, call = STORES[store]
    storage = Storage.from_connection_string(silent.connection_string)  # 30 s reads, 3 retries
    storage.limit(Deadline.after(1.0))
    started = time.monotonic()
    with pytest.raises(error) as caught:
        call(storage)
    assert time.monotonic() - started < 2.5
    assert caught.value.reason == "deadline"
    sent = storage.requests
    with pytest.raises(error, match="time budget is spent"):
        call(storage)
    assert storage.requests == sent  # past the deadline nothing is sent


def test_the_default_bounds_keep_one_call_under_four_minutes() -> None:
    assert Storage.from_connection_string(
        "UseDevelopmentStorage=true").meter.bounds.worst_call_seconds <= 240


def test_a_run_builds_one_storage_layer_for_every_store(storage_connection_string: str,
                                                        tmp_path: Path) -> None:
    (tmp_path / "hunts").mkdir()
    settings = load_settings({"HUNTWIRE_STORAGE": storage_connection_string,
                              "HUNTWIRE_HUNTS_DIR": str(tmp_path / "hunts")})
    events = {"DeviceProcessEvents": tmp_path / "events.jsonl"}
    runner = build_runner(settings, local_events=events)
    storage = runner.storage
    assert storage is not None
    assert runner.ledger is not None
    assert runner.ledger.storage is storage
    assert runner.incidents is not None
    assert runner.incidents.storage is storage
    assert isinstance(runner.health, RunnerHealth)
    assert runner.health.store.storage is storage
    assert storage.requests >= 1  # the snoozes were read through it while building
    assert storage.meter.deadline is not None


def test_tables_get_the_tenant_prefix(storage_connection_string: str) -> None:
    prefix = "t" + uuid.uuid4().hex[:6]
    storage = Storage.from_connection_string(storage_connection_string).for_tenant(prefix)
    HealthStore(storage).hunts()
    assert list(storage.tables_between("huntwire", "huntwirf")) == ["huntwireHealth"]
    assert storage.table("huntwireHealth").table_name == prefix + "huntwireHealth"
    with pytest.raises(ValueError, match="letters and digits"):
        storage.for_tenant("bad-prefix")


def test_conflicts_are_retried_then_reported() -> None:
    from azure.core.exceptions import ResourceModifiedError

    calls: list[int] = []

    def always_changed() -> None:
        calls.append(1)
        raise ResourceModifiedError("412")

    with pytest.raises(LedgerError, match="kept changing") as caught:
        retry_conflicts(always_changed, attempts=3, gave_up="finding kept changing",
                        error=LedgerError, hunt_id="h")
    assert (len(calls), caught.value.reason, caught.value.hunt_id) == (3, "conflict", "h")
