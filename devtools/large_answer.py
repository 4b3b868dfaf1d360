"""A run where one hunt answers a very large result and another hunt a few rows (red team #11):
real Runner, ledger and incident store on the given storage account, the local engine over
generated DeviceProcessEvents, Teams as a local receiver. Used by ``bench/bench_large_answer.py``
and ``tests/test_large_answer.py``."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from devtools.webhook import WebhookReceiver
from shared.hunt import Hunt
from shared.incidents import IncidentStore
from shared.ledger import Ledger
from shared.notify.teams import TeamsNotifier
from shared.runner import Runner, RunSummary
from shared.sources.local import LocalSource
from shared.storage import Storage

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
DEVICES = 500
SMALL_ROWS = 3


def hunt(name: str, token: str) -> Hunt:
    query = (f'DeviceProcessEvents | where ProcessCommandLine has "{token}" '
             "| project Timestamp, DeviceId, DeviceName, ReportId, ProcessCommandLine")
    return Hunt(id=str(uuid.uuid4()), name=name, query=query, source="defender",
                path=Path(f"{token}.yaml"), dedup_by=("DeviceId", "ReportId"),
                dedup_explicit=True, lookback=timedelta(hours=4), severity="High")


def write_events(path: Path, rows: int, devices: int = DEVICES) -> None:
    """*rows* events of the large hunt over *devices* devices, and SMALL_ROWS of the small
    one (each on a device of its own)."""
    with path.open("w") as out:
        for number in range(rows + SMALL_ROWS):
            small = number >= rows
            device = 10_000_000 + number if small else number % devices
            when = NOW - timedelta(seconds=5 + number % 10_000)
            out.write(json.dumps({
                "Timestamp": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "DeviceId": f"{device:040x}",
                "DeviceName": f"ws-{device}", "ReportId": number + 1,
                "ProcessCommandLine": f"{'smalltok' if small else 'bigtok'} run {number}",
            }) + "\n")


@dataclass
class Measured:
    summary: RunSummary
    seconds: float
    storage_requests: int
    small_posted: int
    large_posted: int


class LargeAnswer:
    """The two hunts on fresh tables; :meth:`run` runs them once, as the hourly timer does."""

    def __init__(self, connection_string: str, events: Path, rows: int,
                 receiver: WebhookReceiver, devices: int = DEVICES) -> None:
        write_events(events, rows, devices)
        self.connection_string, self.events, self.receiver = connection_string, events, receiver
        self.large, self.small = hunt("Large answer", "bigtok"), hunt("Three rows", "smalltok")
        self.suffix = uuid.uuid4().hex[:8]

    def run(self, now: datetime = NOW) -> Measured:
        """One run; what it cost and what it posted."""
        large, small, suffix, events = self.large, self.small, self.suffix, self.events
        storage = Storage.from_connection_string(self.connection_string)
        runner = Runner(hunts=[large, small],
                        sources={"defender": LocalSource({"DeviceProcessEvents": events})},
                        ledger=Ledger(storage, findings_table=f"laF{suffix}",
                                      pending_table=f"laP{suffix}",
                                      checkpoints_table=f"laC{suffix}"),
                        notifier=TeamsNotifier(self.receiver.url, min_interval_seconds=0),
                        incidents=IncidentStore(storage, table=f"laI{suffix}"),
                        storage=storage)
        started = time.monotonic()
        summary = runner.run_once(now)
        seconds = time.monotonic() - started
        by_id = {outcome.hunt_id: outcome for outcome in summary.outcomes}
        return Measured(summary, seconds, summary.storage_requests, by_id[small.id].posted,
                        by_id[large.id].posted)
