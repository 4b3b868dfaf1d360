"""Benchmark incident correlation: 10,000 findings from 20 hunts on 500 devices, then 4x.

Prints the time of ``correlate()`` at n and 4n and their ratio. An O(n log n) algorithm grows by
about 4.6 from 10,000 to 40,000 findings; a quadratic one by 16. Exits 1 when the ratio exceeds 8.
"""

from __future__ import annotations

import random
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from shared.incidents.correlate import Evidence, correlate

HUNTS = 20
DEVICES = 500
MAX_RATIO = 8.0
START = datetime(2026, 11, 27, tzinfo=UTC)


def findings(n: int, seed: int = 7) -> list[Evidence]:
    rng = random.Random(seed)
    out = []
    for index in range(n):
        device = rng.randrange(DEVICES)
        hunt = rng.randrange(HUNTS)
        moment = START + timedelta(seconds=rng.randrange(24 * 3600))
        pid = rng.randrange(100, 60000)
        row = {"DeviceId": f"{device:040x}", "DeviceName": f"ws-{device:04d}",
               "ReportId": rng.randrange(1, 10**6), "Timestamp": moment.isoformat(),
               "ProcessId": pid, "ProcessCreationTime": moment.isoformat(),
               "InitiatingProcessId": rng.randrange(100, 60000)}
        out.append(Evidence(f"hunt-{hunt:02d}", f"Hunt {hunt}", "High" if hunt % 3 else "Medium",
                            ("T1059.001",), hunt == 0, row, moment, f"key-{index}"))
    return out


def timed(n: int) -> tuple[float, int]:
    evidence = findings(n)
    best = float("inf")
    groups = 0
    for _ in range(3):
        started = time.perf_counter()
        groups = len(correlate(evidence))
        best = min(best, time.perf_counter() - started)
    return best, groups


def main() -> int:
    small, groups_small = timed(10_000)
    large, groups_large = timed(40_000)
    ratio = large / small
    print(f"incidents: correlate 10,000 findings (20 hunts, 500 devices): {small * 1000:.0f} ms, "
          f"{groups_small:,} incidents")
    print(f"incidents: correlate 40,000 findings: {large * 1000:.0f} ms, {groups_large:,} "
          f"incidents; growth x{ratio:.1f} for 4x the findings (n log n ~4.6, n^2 16)")
    if ratio > MAX_RATIO:
        print(f"incidents: growth x{ratio:.1f} exceeds x{MAX_RATIO}: worse than n log n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
