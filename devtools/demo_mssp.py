"""`make demo-mssp`: the hourly job for a managed security provider's three customer tenants,
end to end, with no Azure account.

Starts Azurite, local Graph and Log Analytics stand-ins that answer each tenant from its own
telemetry (the bundled sample day, with each customer's own device names), and local webhooks:
Contoso and Fabrikam post to their own Teams channels, Northwind to the shared one, health
notices go to the MSSP's health channel. Northwind never consented the huntwire app, so Graph
refuses it (403): the run announces that once, naming the tenant, and the other two tenants'
incidents are posted as usual, each on its own channel and naming its tenant. A second run an
hour later posts nothing new and announces nothing again. Stops what it started.

The job runs in-process (``shared.tenancy.run_tenants``, the call the timer makes), since the
tenants' Entra tokens come from a local stand-in (``TenantTokens``: the real login needs https).
"""

from __future__ import annotations

import json
import logging
import sys
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

from devtools.azurite import Azurite
from devtools.service_model import TenantTokens
from devtools.tenant_services import TenantGraph, TenantLogs
from devtools.webhook import WebhookReceiver
from shared.cards import summarize_digest
from shared.settings import load_settings
from shared.tenancy import TenancyRun, run_tenants

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
FIRST_RUN = datetime.fromisoformat("2026-11-28T00:00:00+00:00")
SECOND_RUN = datetime.fromisoformat("2026-11-28T01:00:00+00:00")
BACKFILL_FROM = datetime.fromisoformat("2026-11-27T00:00:00+00:00")
HOME = "0a0a0a0a-0000-4000-8000-000000000001"
TENANTS = {  # name: (tenant id, own webhook?, consented?)
    "Contoso": ("1c0f0000-0000-4000-8000-00000000c001", True, True),
    "Fabrikam": ("2fab0000-0000-4000-8000-00000000fab2", True, True),
    "Northwind": ("3e0d0000-0000-4000-8000-00000000e003", False, False),
}
ATTACKS = 3
"""Incidents each consented tenant's copy of the sample day makes (see devtools/demo.py)."""


def tenant_telemetry(folder: Path, name: str) -> dict[str, Path]:
    """The sample day as *name*'s own: its device names under its own domain."""
    folder.mkdir(parents=True)
    files = {}
    for table in ("DeviceProcessEvents", "DeviceNetworkEvents"):
        text = (SAMPLES / f"{table}.jsonl").read_text()
        path = folder / f"{table}.jsonl"
        path.write_text(text.replace("corp.contoso.com", f"corp.{name.lower()}.example"))
        files[table] = path
    return files


def tenants_file(folder: Path) -> Path:
    lines = ["tenants:"]
    for name, (tenant_id, own_webhook, _) in TENANTS.items():
        lines += [f"  - name: {name}", f"    tenant_id: {tenant_id}",
                  "    defender: {client_id: 5a5a5a5a-0000-4000-8000-00000000a99a}"]
        if own_webhook:
            lines.append(f"    teams_webhook_setting: HUNTWIRE_TEAMS_WEBHOOK_{name.upper()}")
    path = folder / "tenants.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> int:
    logging.basicConfig(level=logging.CRITICAL)  # the run's results are printed below
    print("Starting Azurite, Graph and Log Analytics stand-ins for three tenants, and webhooks")
    with tempfile.TemporaryDirectory(prefix="huntwire-mssp-") as scratch, Azurite() as azurite:
        folder = Path(scratch)
        telemetry = {tenant_id: tenant_telemetry(folder / name, name)
                     for name, (tenant_id, _, _) in TENANTS.items()}
        unconsented = [tid for tid, _, consented in TENANTS.values() if not consented]
        channels = {name: WebhookReceiver() for name in ("Contoso", "Fabrikam", "shared",
                                                         "health")}
        with TenantGraph(telemetry, unconsented=unconsented) as graph, \
                TenantLogs({HOME: {}}) as logs:
            for receiver in channels.values():
                receiver.start()
            try:
                env = {"HUNTWIRE_STORAGE": azurite.connection_string,
                       "HUNTWIRE_HUNTS_DIR": str(REPO / "hunts"),
                       "HUNTWIRE_GRAPH_ENDPOINT": graph.url, "HUNTWIRE_LOGS_ENDPOINT": logs.url,
                       "HUNTWIRE_TENANTS_FILE": str(tenants_file(folder)),
                       "HUNTWIRE_TEAMS_WEBHOOK_URL": channels["shared"].url,
                       "HUNTWIRE_HEALTH_WEBHOOK_URL": channels["health"].url,
                       "HUNTWIRE_HEARTBEAT_HOUR": "off",
                       "HUNTWIRE_TEAMS_WEBHOOK_CONTOSO": channels["Contoso"].url,
                       "HUNTWIRE_TEAMS_WEBHOOK_FABRIKAM": channels["Fabrikam"].url}
                first = run(env, "first run", FIRST_RUN, since=BACKFILL_FROM)
                counts = {name: len(r.payloads) for name, r in channels.items()}
                show(channels)
                second = run(env, "second run, one hour later", SECOND_RUN)
                again = {name: len(r.payloads) - counts[name] for name, r in channels.items()}
            finally:
                for receiver in channels.values():
                    receiver.stop()
    return verdict(first, second, counts, again)


def run(env: dict[str, str], title: str, now: datetime,
        since: datetime | None = None) -> TenancyRun:
    print(f"\n=== {title}: run_tenants(now={now.isoformat()})")
    done = run_tenants(load_settings(env), now, since=since, env=env,
                       identity=TenantTokens(HOME),
                       graph_credential=lambda tenant, _: TenantTokens(tenant.tenant_id or HOME))
    for result in done.results:
        totals = result.summary.totals() if result.summary else {}
        print(f"  {result.tenant.name:<10} {totals.get('new', 0)} new findings, "
              f"{totals.get('incidents_opened', 0)} incident(s), "
              f"{totals.get('failed', 0)} hunt(s) failed"
              + "".join(f"; problem {kind}: {text[:90]}"
                        for kind, text in result.problems.items()))
    print(f"  storage: {done.storage_requests} requests for the run")
    return done


def show(channels: dict[str, WebhookReceiver]) -> None:
    for name, receiver in channels.items():
        print(f"\n=== channel {name}: {len(receiver.payloads)} post(s)")
        for payload in receiver.payloads:
            print("  " + describe(payload))


def describe(payload: Any) -> str:
    text = json.dumps(payload)
    if "tenant-" in text or "huntwire-health" in text:
        card = payload["attachments"][0]["content"]
        words = [str(item.get("text", "")) for item in _texts(card)]
        return "notice: " + " ".join(w for w in words if len(w.strip()) > 4)[:300]
    post = summarize_digest(payload)
    tenant = next((item["text"] for item in _texts(payload["attachments"][0]["content"])
                   if str(item.get("text", "")).startswith("Tenant: ")), "no tenant line")
    return f"{tenant:<18} {post.severity:<6} {post.hunt_name} on {post.where}: " \
           f"{post.total_new} finding(s)"


def _texts(node: Any) -> list[dict[str, Any]]:
    if isinstance(node, dict):
        found = [node] if node.get("type") in ("TextBlock", "TextRun") else []
        return found + [t for value in node.values() for t in _texts(value)]
    if isinstance(node, list):
        return [t for value in node for t in _texts(value)]
    return []


def verdict(first: TenancyRun, second: TenancyRun, counts: dict[str, int],
            again: dict[str, int]) -> int:
    print("\n=== Result")
    problems = []
    by_name = {r.tenant.name: r for r in first.results}
    for name in ("Contoso", "Fabrikam"):
        if counts[name] != ATTACKS or not by_name[name].ok:
            problems.append(f"{name}: expected {ATTACKS} posts on its channel, got {counts[name]}")
    if set(by_name["Northwind"].problems) != {"defender"}:
        problems.append(f"Northwind: expected one Defender access problem, got "
                        f"{by_name['Northwind'].problems}")
    if counts["health"] != 1 or counts["shared"] != 0:
        problems.append(f"expected one notice on the health channel and nothing on the shared "
                        f"one, got {counts['health']} and {counts['shared']}")
    if any(again.values()):
        problems.append(f"the second run posted again: {again}")
    if problems:
        print("  FAILED: " + "; ".join(problems))
        return 1
    print(f"  Contoso and Fabrikam: {ATTACKS} incidents each, each on its own channel and "
          "naming its tenant; Northwind (not consented): one notice on the health channel, "
          "naming it; the second run posted and announced nothing. Each finding was reported "
          f"once. Storage: {first.storage_requests} and {second.storage_requests} requests.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
