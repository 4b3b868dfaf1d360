"""Benchmark a large answer (red team #11): one hunt answering 10,000 and then 100,000 rows beside
a hunt answering 3, on Azurite, the local engine and a local Teams receiver.

For each size, runs the hourly job until every finding of both hunts is posted and prints, per
run and in all, the storage requests and time, and both per 1,000 rows. Exits 1 when the small
hunt's findings are not posted by the first run, or a finding is posted twice or never.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devtools.azurite import Azurite
from devtools.large_answer import NOW, SMALL_ROWS, LargeAnswer
from devtools.webhook import WebhookReceiver

MAX_RUNS = 30


def bench(connection_string: str, rows: int, directory: Path) -> bool:
    with WebhookReceiver() as receiver:
        world = LargeAnswer(connection_string, directory / f"events{rows}.jsonl", rows, receiver)
        posted = small = requests = 0
        seconds = 0.0
        for run in range(MAX_RUNS):
            measured = world.run(NOW + timedelta(hours=run))
            posted += measured.large_posted
            small += measured.small_posted
            requests += measured.storage_requests
            seconds += measured.seconds
            print(f"  {rows:,} rows, run {run + 1}: {measured.large_posted:,} + "
                  f"{measured.small_posted} posted, {measured.storage_requests:,} storage "
                  f"requests, {measured.seconds:.1f} s")
            if run == 0 and measured.small_posted != SMALL_ROWS:
                print("  the small hunt's findings were not posted by the first run")
                return False
            if posted >= rows:
                break
    per = rows / 1000
    print(f"large answer: {rows:,} rows delivered in {run + 1} run(s): {requests:,} storage "
          f"requests ({requests / per:.0f} per 1,000 rows), {seconds:.1f} s "
          f"({seconds / per:.2f} s per 1,000 rows)")
    return posted == rows and small == SMALL_ROWS


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rows", type=int, nargs="+", default=[10_000, 100_000])
    args = parser.parse_args(argv)
    ok = True
    with Azurite() as azurite, tempfile.TemporaryDirectory() as directory:
        for rows in args.rows:
            ok &= bench(azurite.connection_string, rows, Path(directory))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
