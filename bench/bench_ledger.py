"""Benchmark of the findings ledger against Azurite (``make bench``; not a test).

1. Dedup 10,000 findings, half of them already in the ledger, with ``Ledger.record`` and with a
   naive baseline (one get and one upsert per finding) on the same rows. Target: 5x faster.
2. The same run with 100,000 older findings of the hunt already stored. Target: at most 1.2x
   the time of the run on an otherwise empty ledger.

Other processes on a shared 2-core machine add noise, so the work is interleaved: each of
``--repeat`` reps times a slice of the naive baseline, a ledger run on empty tables (holding only
the half stored beforehand) and a ledger run on the tables with the history (fresh days each
rep). The naive time is the sum of its
slices; ledger times are medians; the growth is the median of the per-rep ratios. Exits 1 when a
target is missed.

    .venv/bin/python bench/bench_ledger.py [--findings 10000] [--stored 100000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any

from azure.core.exceptions import ResourceNotFoundError
from azure.data.tables import TableClient, TableServiceClient, UpdateMode

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devtools.azurite import Azurite  # noqa: E402
from shared.hunt import Hunt  # noqa: E402
from shared.ledger import PENDING, Ledger, observe  # noqa: E402
from shared.storage import Storage  # noqa: E402

SPEEDUP_TARGET = 5.0
GROWTH_LIMIT = 1.2
BASE_NOW = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
"""Runs end at 02:00 UTC, so a 4-hour window spans two days, as real windows often do."""


def make_hunt() -> Hunt:
    return Hunt(id=str(uuid.uuid4()), name="bench", query="DeviceProcessEvents",
                source="defender", path=Path("bench.yaml"), dedup_by=("DeviceId", "ReportId"))


def make_rows(count: int, now: datetime, span: timedelta, seed: int) -> list[dict[str, Any]]:
    """Defender-like rows with event times spread over the *span* before *now*."""
    rng = random.Random(seed)
    rows = []
    for number in range(count):
        device = f"{rng.getrandbits(160):040x}"
        rows.append({
            "Timestamp": now - timedelta(seconds=rng.uniform(0, span.total_seconds())),
            "DeviceId": device,
            "DeviceName": f"ws-{number % 500:04d}.corp.example",
            "ReportId": rng.randrange(1, 2**40),
            "AccountName": f"user{number % 300}",
            "FileName": "powershell.exe",
            "ProcessCommandLine": "powershell.exe -nop -w hidden -enc " + "QQBB" * 40,
            "InitiatingProcessFileName": "winword.exe",
        })
    return rows


@dataclass
class NaiveLedger:
    """The baseline: for every finding, one point read and one upsert."""

    table: TableClient

    def record(self, hunt: Hunt, rows: Sequence[Mapping[str, Any]], now: datetime) -> tuple[
            int, int]:
        new = seen = 0
        for observation in observe(hunt, rows).values():
            try:
                stored = self.table.get_entity(hunt.id, observation.key)
            except ResourceNotFoundError:
                stored = None
            entity = self.entity(hunt, observation.key, observation.row_json, now)
            if stored is not None:
                entity = {"PartitionKey": hunt.id, "RowKey": observation.key, "LastSeen": now,
                          "TimesSeen": int(stored.get("TimesSeen", 0)) + 1}
                seen += 1
            else:
                new += 1
            self.table.upsert_entity(entity, mode=UpdateMode.MERGE)
        return new, seen

    def preload(self, hunt: Hunt, rows: Sequence[Mapping[str, Any]], now: datetime) -> None:
        entities = [self.entity(hunt, o.key, o.row_json, now) for o in observe(hunt, rows).values()]
        for start in range(0, len(entities), 100):
            self.table.submit_transaction([("upsert", e) for e in entities[start:start + 100]])

    @staticmethod
    def entity(hunt: Hunt, key: str, row_json: str, now: datetime) -> dict[str, Any]:
        return {"PartitionKey": hunt.id, "RowKey": key, "State": PENDING, "FirstSeen": now,
                "LastSeen": now, "TimesSeen": 1, "Row": row_json}


def timed(action: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = action()
    return time.perf_counter() - start, result


def ledger_run(ledger: Ledger, hunt: Hunt, findings: int, now: datetime, seed: int) -> float:
    """Store half of the rows an hour earlier, then time the run over all of them."""
    rows = make_rows(findings, now, timedelta(hours=4), seed)
    ledger.record(hunt, rows[: findings // 2], now - timedelta(hours=1))
    seconds, result = timed(lambda: ledger.record(hunt, rows, now))
    expected = (findings - findings // 2, findings // 2)
    if (len(result.new), result.seen) != expected:
        raise SystemExit(f"ledger run gave new={len(result.new)} seen={result.seen}, "
                         f"expected {expected}")
    return seconds


def preload_history(connection_string: str, hunt: Hunt, stored: int, per_day: int) -> float:
    """*stored* findings of *hunt* on the days before the benchmark's windows, written by
    ``Ledger.record`` in two processes (the client, not Azurite, is the bottleneck)."""
    days = [(day, min(per_day, stored - day * per_day))
            for day in range(-(-stored // per_day))]
    start = time.perf_counter()
    with ProcessPoolExecutor(2) as pool:
        list(pool.map(partial(record_history_day, connection_string, hunt), days))
    return time.perf_counter() - start


def record_history_day(connection_string: str, hunt: Hunt, day_and_count: tuple[int, int]
                       ) -> None:
    day, count = day_and_count
    day_end = BASE_NOW - timedelta(days=2 + day)
    ledger = Ledger(Storage.from_connection_string(connection_string))
    ledger.record(hunt, make_rows(count, day_end, timedelta(hours=23), 1000 + day), day_end)


@dataclass(frozen=True)
class Rep:
    naive_slice: float
    empty: float
    large: float


def naive_slice(naive: NaiveLedger, findings: int, now: datetime, seed: int) -> float:
    """Time the naive baseline over *findings* rows, half of them stored beforehand."""
    hunt = make_hunt()
    rows = make_rows(findings, now, timedelta(hours=4), seed)
    naive.preload(hunt, rows[: findings // 2], now - timedelta(hours=1))
    seconds, (new, seen) = timed(lambda: naive.record(hunt, rows, now))
    if (new, seen) != (findings - findings // 2, findings // 2):
        raise SystemExit(f"naive run gave new={new} seen={seen}")
    return seconds


def run_reps(empty_ledger: Ledger, large_ledger: Ledger, naive: NaiveLedger, large_hunt: Hunt,
             args: argparse.Namespace) -> list[Rep]:
    """Interleave a slice of the naive baseline with the ledger runs, so load from other
    processes on the machine weighs on both alike."""
    reps = []
    slices = [args.findings // args.repeat + (i < args.findings % args.repeat)
              for i in range(args.repeat)]
    for number, size in enumerate(slices):
        now = BASE_NOW + timedelta(days=2 * number)  # fresh days: earlier reps stay out of range
        rep = Rep(naive_slice(naive, size, now, seed=30 + number),
                  ledger_run(empty_ledger, make_hunt(), args.findings, now, seed=10 + number),
                  ledger_run(large_ledger, large_hunt, args.findings, now, seed=20 + number))
        print(f"  rep {number + 1}: naive, {size} findings {rep.naive_slice:6.2f} s | ledger, "
              f"{args.findings} findings: empty ledger {rep.empty:6.2f} s, {args.stored} stored "
              f"{rep.large:6.2f} s")
        reps.append(rep)
    return reps


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--findings", type=int, default=10_000)
    parser.add_argument("--stored", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    with Azurite() as azurite:
        service = TableServiceClient.from_connection_string(azurite.connection_string)
        storage = Storage.from_connection_string(azurite.connection_string)
        large_ledger = Ledger(storage)  # the default tables, where the history goes
        empty_ledger = Ledger(storage, findings_table="emptyFindings",
                              pending_table="emptyPending", checkpoints_table="emptyCheckpoints")
        naive = NaiveLedger(service.create_table_if_not_exists("naiveFindings"))
        print(f"Azurite on {azurite.table_endpoint}; {args.findings} findings a run, half of "
              "them already stored")
        large_hunt = make_hunt()
        load_seconds = preload_history(azurite.connection_string, large_hunt, args.stored,
                                       args.findings)
        print(f"stored {args.stored} older findings of one hunt in {load_seconds:.1f} s")
        reps = run_reps(empty_ledger, large_ledger, naive, large_hunt, args)
    naive_total = sum(rep.naive_slice for rep in reps)
    empty = statistics.median(rep.empty for rep in reps)
    large = statistics.median(rep.large for rep in reps)
    speedup = naive_total / empty
    growth = statistics.median(rep.large / rep.empty for rep in reps)
    print(f"naive baseline, {args.findings} findings (sum of the slices): {naive_total:7.2f} s")
    print(f"ledger, empty ledger (median of {args.repeat}):        {empty:7.2f} s")
    print(f"ledger, {args.stored} stored (median of {args.repeat}):      {large:7.2f} s")
    print(f"speed-up over naive: {speedup:5.2f}x (target >= {SPEEDUP_TARGET}x)")
    print(f"growth with {args.stored} stored (median of per-rep ratios): {growth:5.2f}x "
          f"(target <= {GROWTH_LIMIT}x)")
    ok = speedup >= SPEEDUP_TARGET and growth <= GROWTH_LIMIT
    print("PASS" if ok else "FAIL")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
