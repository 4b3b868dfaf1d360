"""Storage time is bounded: past its deadline the ledger starts no new chunk and says what it left,
the checkpoint stays before the findings left unrecorded, and the next run records them; every
finding is posted exactly once. Real Azurite and local engine; only the monotonic clock is
injected (each reading one second after the last)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devtools.webhook import WebhookReceiver
from shared.hunt import Hunt
from shared.incidents import IncidentStore
from shared.ledger import NOTIFIED, Deadline, Ledger
from shared.notify.teams import TeamsNotifier
from shared.runner import Runner
from shared.sources.local import LocalSource
from shared.storage import Storage

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
CHUNK = 10
QUERY = ('DeviceProcessEvents | where ProcessCommandLine has "TCPClient" '
         "| project Timestamp, DeviceId, ReportId, ProcessCommandLine")


class Ticks:
    """A monotonic clock that reads one second later each time it is read."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


def make_hunt() -> Hunt:
    return Hunt(id="00000000-0000-0000-0000-00000000b0d9", name="storage budget", query=QUERY,
                source="defender", path=Path("storage-budget.yaml"),
                dedup_by=("DeviceId", "ReportId"), lookback=timedelta(hours=3))


def rows(count: int) -> list[dict[str, Any]]:
    """Newest first (the order a query returns them): ReportId i happened i minutes before NOW."""
    return [{"Timestamp": (NOW - timedelta(minutes=i)).isoformat(), "DeviceId": "dev-1",
             "ReportId": i, "ProcessCommandLine": f"New-Object Net.Sockets.TCPClient('x',{i})"}
            for i in range(1, count + 1)]


@pytest.fixture
def ledger(storage_connection_string: str) -> Ledger:
    suffix = uuid.uuid4().hex[:8]
    storage = Storage.from_connection_string(storage_connection_string)
    return Ledger(storage, findings_table=f"f{suffix}", pending_table=f"p{suffix}",
                  checkpoints_table=f"c{suffix}", record_chunk=CHUNK)


@pytest.fixture
def incidents(storage_connection_string: str) -> IncidentStore:
    return IncidentStore(Storage.from_connection_string(storage_connection_string),
                         table=f"i{uuid.uuid4().hex[:8]}")


@pytest.fixture
def teams() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


def stored_report_ids(ledger: Ledger) -> dict[int, str]:
    """ReportId -> State of every stored finding."""
    found: dict[int, str] = {}
    for table in ledger.findings_clients():
        for entity in table.list_entities():
            found[json.loads(entity["Row"])["ReportId"]] = entity["State"]
    return found


def test_a_passed_deadline_records_the_oldest_chunks_and_reports_the_rest(ledger: Ledger) -> None:
    hunt = make_hunt()
    clock = Ticks()
    # Checked before each chunk after the first: reads 1 (go on), then 2 (stop).
    first = ledger.record(hunt, rows(35), NOW, deadline=Deadline(2.0, clock))
    assert len(first.new) == 2 * CHUNK
    assert first.unrecorded == 35 - 2 * CHUNK
    assert first.first_unrecorded == NOW - timedelta(minutes=15)  # oldest events went first
    assert sorted(stored_report_ids(ledger)) == list(range(16, 36))
    assert {finding.row["ReportId"] for finding in ledger.pending(hunt)} == set(range(16, 36))

    rest = ledger.record(hunt, rows(35), NOW + timedelta(minutes=5))
    assert (len(rest.new), rest.seen, rest.unrecorded) == (15, 20, 0)
    assert rest.first_unrecorded is None
    assert sorted(f.row["ReportId"] for f in rest.new) == list(range(1, 16))
    assert sorted(stored_report_ids(ledger)) == list(range(1, 36))


def test_the_first_chunk_is_always_recorded(ledger: Ledger) -> None:
    hunt = make_hunt()
    result = ledger.record(hunt, rows(25), NOW, deadline=Deadline(-1.0, Ticks()))
    assert (len(result.new), result.unrecorded) == (CHUNK, 25 - CHUNK)
    assert result.first_unrecorded == NOW - timedelta(minutes=15)


def test_runner_keeps_the_checkpoint_before_unrecorded_findings_and_records_them_next_run(
        ledger: Ledger, tmp_path: Path, teams: WebhookReceiver,
        incidents: IncidentStore) -> None:
    events = tmp_path / "DeviceProcessEvents.jsonl"
    events.write_text("".join(json.dumps(row) + "\n" for row in rows(30)))
    hunt = make_hunt()
    source = LocalSource({"DeviceProcessEvents": events})
    runner = Runner(hunts=[hunt], sources={"defender": source},
                    ledger=ledger, notifier=TeamsNotifier(teams.url), incidents=incidents,
                    min_time_per_hunt=timedelta(seconds=10),
                    storage_allowance=timedelta(seconds=1.5), monotonic=Ticks())
    first = runner.run_once(NOW).outcomes[0]
    assert first.status == "ok"
    assert (first.rows, first.new, first.posted) == (30, 20, 20)
    assert first.unrecorded == 10
    assert first.unrecorded_from == "2026-11-27T11:50:00Z"
    assert any("storage time allowance" in warning and "10 finding(s)" in warning
               for warning in first.warnings)
    checkpoint = ledger.checkpoint(hunt.id)
    assert checkpoint is not None
    assert checkpoint.last_success_end == NOW - timedelta(minutes=10)  # not past the 10 left
    assert "not recorded" in (checkpoint.last_error or "")

    runner.storage_allowance = timedelta(minutes=2)
    second = runner.run_once(NOW + timedelta(hours=1)).outcomes[0]
    assert second.status == "ok"
    assert (second.new, second.seen, second.posted, second.unrecorded) == (10, 20, 10, 0)
    assert not any("storage" in warning for warning in second.warnings)
    checkpoint = ledger.checkpoint(hunt.id)
    assert checkpoint is not None
    assert checkpoint.last_success_end == NOW + timedelta(hours=1)
    assert checkpoint.last_error is None
    assert stored_report_ids(ledger) == dict.fromkeys(range(1, 31), NOTIFIED)
    assert ledger.pending(hunt) == []
    posted = json.dumps(teams.payloads)
    assert len(teams.payloads) == 2  # one incident card a run
    assert [posted.count(f"TCPClient('x',{i})") for i in range(1, 31)] == [1] * 30
