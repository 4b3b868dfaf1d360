"""Storage transactions per hunt-run for a multi-tenant hourly cycle, on Azurite.

The real multi-tenant job (``shared.tenancy.run_tenants``): a tenants file, each tenant's tables
on one Azurite account, the real Defender source against the local Graph stand-in answering
each tenant from its own telemetry (no latency: this bench counts requests, not time), a local
Teams webhook. Two hourly cycles: the first backfills a day and finds every matching hunt's
findings, the second an hour later finds new ones (a quiet hour: most hunts find nothing). The
storage layer's meter counts every HTTP request to Table Storage (retries included), which is
what the service bills as transactions.

    .venv/bin/python bench/bench_tenancy.py [--tenants 10] [--hunts 30] [--matching 0.2]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from devtools.azurite import Azurite
from devtools.service_model import TenantTokens
from devtools.tenant_services import TenantGraph
from devtools.webhook import WebhookReceiver
from shared.settings import load_settings
from shared.tenancy import TenancyRun, run_tenants

START = datetime(2026, 11, 28, 0, 0, tzinfo=UTC)
HOME = "0a0a0a0a-0000-4000-8000-000000000001"


def write_hunts(folder: Path, count: int, matching: float) -> None:
    """*count* hourly Defender hunts; the first *matching* share match the telemetry."""
    folder.mkdir()
    hits = round(count * matching)
    for number in range(count):
        needle = "TCPClient" if number < hits else f"never-seen-{number}"
        (folder / f"hunt-{number:03}.yaml").write_text(
            f"id: {uuid.UUID(int=number + 1)}\nname: bench hunt {number}\nseverity: High\n"
            "source: defender\ndedupBy: [DeviceId, ReportId]\nquery: |\n"
            f"  DeviceProcessEvents\n  | where ProcessCommandLine has \"{needle}\"\n"
            "  | project Timestamp, DeviceId, ReportId, ProcessCommandLine\n")


def write_events(folder: Path, tenant: int) -> dict[str, Path]:
    """Three devices with a finding every 20 minutes over the day before and the next hour."""
    folder.mkdir(parents=True)
    rows = [{"Timestamp": (START - timedelta(minutes=20 * i)).isoformat(),
             "DeviceId": f"t{tenant}-dev-{i % 3}", "ReportId": 1000 + i,
             "ProcessCommandLine": "New-Object Net.Sockets.TCPClient('203.0.113.5',443)"}
            for i in range(-3, 72)]
    path = folder / "DeviceProcessEvents.jsonl"
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return {"DeviceProcessEvents": path}


def hunt_runs(run: TenancyRun) -> int:
    return sum(1 for result in run.results if result.summary
               for outcome in result.summary.outcomes if outcome.status in ("ok", "failed"))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tenants", type=int, default=10)
    parser.add_argument("--hunts", type=int, default=30, help="hunts per tenant")
    parser.add_argument("--matching", type=float, default=0.2,
                        help="share of hunts that find something")
    args = parser.parse_args()
    logging.basicConfig(level=logging.CRITICAL)
    with tempfile.TemporaryDirectory() as scratch, Azurite() as azurite, \
            WebhookReceiver() as teams:
        folder = Path(scratch)
        write_hunts(folder / "hunts", args.hunts, args.matching)
        ids = [str(uuid.uuid4()) for _ in range(args.tenants)]
        (folder / "tenants.yaml").write_text("tenants:\n" + "".join(
            f"  - {{name: customer-{n}, tenant_id: {tid}}}\n" for n, tid in enumerate(ids)))
        telemetry = {tid: write_events(folder / tid, n) for n, tid in enumerate(ids)}
        with TenantGraph(telemetry) as graph:
            env = {"HUNTWIRE_STORAGE": azurite.connection_string,
                   "HUNTWIRE_HUNTS_DIR": str(folder / "hunts"),
                   "HUNTWIRE_GRAPH_ENDPOINT": graph.url,
                   "HUNTWIRE_TENANTS_FILE": str(folder / "tenants.yaml"),
                   "HUNTWIRE_TEAMS_WEBHOOK_URL": teams.url, "HUNTWIRE_HEARTBEAT_HOUR": "off"}
            print(f"{args.tenants} tenants x {args.hunts} hunts ({args.matching:.0%} finding "
                  "something), Azurite, Graph stand-in without latency")
            print("cycle  hunt-runs  new  posts  storage requests  per hunt-run  wall")
            for cycle, now in enumerate((START, START + timedelta(hours=1)), start=1):
                posts = len(teams.payloads)
                started = time.monotonic()
                run = run_tenants(load_settings(env), now, env=env, identity=TenantTokens(HOME),
                                  since=START - timedelta(days=1) if cycle == 1 else None,
                                  graph_credential=lambda t, _: TenantTokens(t.tenant_id or HOME))
                runs = hunt_runs(run)
                new = sum(r.summary.totals()["new"] for r in run.results if r.summary)
                print(f"{cycle:>5}  {runs:>9}  {new:>3}  {len(teams.payloads) - posts:>5}  "
                      f"{run.storage_requests:>16}  {run.storage_requests / max(runs, 1):>12.1f}"
                      f"  {time.monotonic() - started:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
