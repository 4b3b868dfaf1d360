"""Benchmark of suppression rules (``make bench``; not a test).

Cost of 200 rules over the 10,000 rows of one hunt (parse and compile the rules, index them,
apply them), against the wall time of a real local run: ``huntwire run --once --dry-run`` over
the bundled sample day (samples/), which queries every hunt but writes nothing, so it is shorter
than a production run and the ratio is pessimistic. Target: suppression <= 5% of the run.
The naive cost (every rule checked on every row) is printed for comparison. Exits 1 when the
target is missed.

    .venv/bin/python bench/bench_suppress.py [--rules 200] [--rows 10000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from datetime import date, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from shared.suppress.apply import Suppressor  # noqa: E402
from shared.suppress.rules import Rule, parse_rule  # noqa: E402

TARGET = 0.05
TODAY = date(2026, 11, 28)
HUNT_ID = "2372bd2b-5011-45d5-8970-cd90ddc2c07a"


class Hunt:
    id, name = HUNT_ID, "PowerShell download cradle and stager"


def command(n: int) -> str:
    return (f"\"C:\\Program Files\\Vendor{n}\\agent.exe\" -executionpolicy bypass -c \"iwr "
            f"https://vendor{n}.example/policy-{n}.ps1 | iex\" --tenant {n * 7919}")


def make_rules(count: int) -> list[dict[str, Any]]:
    """Mostly exact rules (as docs/tuning.md recommends), some prefix, substring and regex."""
    rules: list[dict[str, Any]] = []
    for n in range(count):
        kind = n % 20
        if kind < 14:
            where: dict[str, Any] = {"ProcessCommandLine": {"equals": command(n)},
                                     "InitiatingProcessFileName": {"in": [f"svc{n}.exe"]}}
        elif kind < 17:
            where = {"InitiatingProcessFileName": {"in": [f"svc{n}.exe", f"upd{n}.exe"]},
                     "FolderPath": {"startswith": f"C:\\Program Files\\Vendor{n}\\"}}
        elif kind < 19:
            where = {"FolderPath": {"contains": f"\\Vendor{n}\\"},
                     "AccountName": {"endswith": f"svc{n}"}}
        else:
            where = {"DeviceName": {"matches": rf"^build-{n}-\d+\.corp\.contoso\.com$"}}
        rules.append({"id": f"rule-{n}", "hunts": ["*"] if n % 3 else [HUNT_ID],
                      "where": where, "reason": "bench", "owner": "bench@contoso.example",
                      "expires": TODAY + timedelta(days=90 if n % 10 else -1)})
    return rules


def make_rows(count: int, rules: int, seed: int = 7) -> list[dict[str, Any]]:
    """Rows of a hunt: about 1 in 10 from a suppressed vendor, the rest noise."""
    rng = random.Random(seed)
    rows = []
    for i in range(count):
        n = rng.randrange(rules)
        vendor = rng.random() < 0.1
        rows.append({
            "Timestamp": f"2026-11-28T00:{i % 60:02d}:00Z", "DeviceId": f"dev-{i % 500}",
            "DeviceName": f"build-{n}-{i}.corp.contoso.com" if vendor else f"ws-{i % 500}",
            "ReportId": i, "FileName": "powershell.exe",
            "FolderPath": f"C:\\Program Files\\Vendor{n}\\bin" if vendor else "C:\\Windows",
            "ProcessCommandLine": command(n) if vendor else f"powershell -c Get-Thing {i}",
            "InitiatingProcessFileName": f"svc{n}.exe" if vendor else "explorer.exe",
            "AccountName": f"svc{n}" if vendor else f"user{i % 50}"})
    return rows


def suppression_seconds(raw: list[dict[str, Any]], rows: list[dict[str, Any]]) -> tuple[
        float, dict[str, int]]:
    started = time.perf_counter()
    rules = [parse_rule(r, "bench.yaml", TODAY) for r in raw]
    result = Suppressor(rules, log_notices=False).apply(Hunt(), rows, TODAY)
    return time.perf_counter() - started, result.suppressed


def naive_seconds(rules: Sequence[Rule], rows: list[dict[str, Any]]) -> float:
    started = time.perf_counter()
    active = [r for r in rules if r.active_on(TODAY) and r.applies_to(Hunt.id, Hunt.name)]
    for row in rows:
        next((r for r in active if r.matches(row)), None)
    return time.perf_counter() - started


def run_seconds() -> float:
    """Wall time of `huntwire run --once --dry-run` over the sample day, as the timer runs it."""
    samples = REPO / "samples"
    command_line = [sys.executable, "-m", "shared", "run", "--once", "--dry-run",
                    "--now", "2026-11-28T00:00:00Z", "--since", "2026-11-27T00:00:00Z",
                    "--suppressions", str(REPO / "suppressions"),
                    "--events", f"DeviceProcessEvents={samples / 'DeviceProcessEvents.jsonl'}",
                    "--events", f"DeviceNetworkEvents={samples / 'DeviceNetworkEvents.jsonl'}"]
    started = time.perf_counter()
    done = subprocess.run(command_line, cwd=REPO, capture_output=True, text=True, check=False,
                          env={"PATH": "/usr/bin:/bin"})
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"the run failed: {done.stderr[-2000:]}")
    return elapsed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rules", type=int, default=200)
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    raw, rows = make_rules(args.rules), make_rows(args.rows, args.rules)
    costs = []
    for _ in range(args.repeat):
        seconds, counts = suppression_seconds(raw, rows)
        costs.append(seconds)
    cost = statistics.median(costs)
    naive = naive_seconds([parse_rule(r, "bench.yaml", TODAY) for r in raw], rows)
    run = statistics.median(run_seconds() for _ in range(3))
    ratio = cost / run
    print(f"{args.rules} rules over {args.rows} rows: {sum(counts.values())} rows suppressed "
          f"by {len(counts)} rules")
    print(f"suppression (parse + index + apply, median of {args.repeat}): {cost * 1000:8.1f} ms")
    print(f"naive (every active rule on every row):                  {naive * 1000:8.1f} ms")
    print(f"local run, `run --once --dry-run` of the sample day (median of 3): {run:6.2f} s")
    print(f"suppression / run: {ratio:.2%} (target <= {TARGET:.0%})")
    print("PASS" if ratio <= TARGET else "FAIL")
    return 0 if ratio <= TARGET else 1


if __name__ == "__main__":
    sys.exit(main())
