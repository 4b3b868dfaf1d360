"""What one hourly run of the shipped hunt pack costs in the units Azure bills: storage requests
(Table transactions), log records (Application Insights ingestion) and webhook posts.

Runs `huntwire run --once` in-process, exactly as the timer does, over the bundled sample day
(samples/, local engine for the queries) with Azurite behind a counting proxy and a local
webhook: a first run that finds the sample attacks, then 24 quiet hourly runs (the steady
state). docs/deploy.md's cost table uses the quiet runs' figures.

    .venv/bin/python bench/bench_run_cost.py
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import statistics
import sys
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from devtools.azurite import Azurite  # noqa: E402
from devtools.fault_proxy import FaultProxy  # noqa: E402
from devtools.webhook import WebhookReceiver  # noqa: E402
from shared.cli import main as huntwire  # noqa: E402

START = datetime(2026, 11, 28, 0, tzinfo=UTC)
QUIET_RUNS = 24
TABLES = ("DeviceProcessEvents", "DeviceNetworkEvents")


class Counting(logging.Handler):
    """Counts the records a run emits at INFO and above (what host.json sends to App
    Insights for the function's category) and their formatted size."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.records = 0
        self.bytes = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.records += 1
        self.bytes += len(record.getMessage().encode())


def one_run(now: datetime, requests: Counter[str], log: Counting) -> dict[str, float]:
    requests.clear()
    log.records = log.bytes = 0
    started = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        code = huntwire(["run", "--once", "--format", "json", "--now", now.isoformat(),
                         *[arg for table in TABLES
                           for arg in ("--events", f"{table}={REPO / 'samples' / table}.jsonl")]])
    return {"exit": code, "seconds": time.perf_counter() - started,
            "requests": sum(requests.values()),
            "writes": sum(n for k, n in requests.items() if k != "GET"),
            "log_records": log.records, "log_bytes": log.bytes}


def main() -> int:
    counter: Counter[str] = Counter()
    log = Counting()
    logging.getLogger().addHandler(log)
    logging.getLogger().setLevel(logging.INFO)
    for noisy in ("azure", "urllib3"):  # the SDKs' own INFO lines: host.json sends Warning+
        logging.getLogger(noisy).setLevel(logging.WARNING)
    with Azurite() as azurite, FaultProxy(azurite.port) as proxy, WebhookReceiver() as teams:
        proxy.on_request = lambda method, path: counter.update([method])
        os.environ.update({"HUNTWIRE_STORAGE": proxy.connection_string,
                           "HUNTWIRE_TEAMS_WEBHOOK_URL": teams.url,
                           "HUNTWIRE_HUNTS_DIR": str(REPO / "hunts")})
        first = one_run(START, counter, log)
        posts_first = len(teams.payloads)
        quiet = [one_run(START + timedelta(hours=h), counter, log)
                 for h in range(1, QUIET_RUNS + 1)]
        posts_quiet = len(teams.payloads) - posts_first
    hunts = len(list((REPO / "hunts").glob("*.yaml")))
    print(f"shipped pack: {hunts} hunts")
    print(f"first run (finds the sample attacks): {first['requests']:.0f} storage requests "
          f"({first['writes']:.0f} writes), {first['log_records']:.0f} log records "
          f"({first['log_bytes']:.0f} bytes of message), {posts_first} webhook posts, "
          f"{first['seconds']:.1f} s, exit {first['exit']:.0f}")
    for key in ("requests", "writes", "log_records", "log_bytes", "seconds"):
        values = [run[key] for run in quiet]
        print(f"quiet hourly run ({QUIET_RUNS} runs): {key}: median {statistics.median(values):.1f}"
              f", max {max(values):.1f}")
    print(f"quiet runs posted {posts_quiet} time(s) (the daily heartbeat is one)")
    return 0 if first["exit"] == 0 and all(run["exit"] == 0 for run in quiet) else 1


if __name__ == "__main__":
    sys.exit(main())
