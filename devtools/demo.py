"""`make demo`: the real hourly job on embedded defaults, with no Azure account.

Starts Azurite and a local webhook standing in for Teams, replays the bundled day of telemetry
(samples/) through the local source, runs `huntwire run --once` twice (midnight, then the next
hour), and shows the findings, the incidents they make (one post each: out/demo/*.json, the most
severe rendered as *.png) and that the second run posted nothing new. Four attacks on three
devices give three incidents: the download cradle that the 09:14 shell launched ten hours later
joins the shell's incident by process lineage; an admin's port probe, matched only by
Microsoft's evidence-only hunt, is kept as evidence and pages nobody. The day also holds one
run of a vendor agent's download cradle, which the shipped rule in
suppressions/example-vendor-agent.yaml silences (counted in the run and in the card's footer,
never posted). Stops what it started.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from devtools.azurite import Azurite
from devtools.webhook import WebhookReceiver
from shared.cards import summarize_digest
from shared.preview import write_preview

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
OUT = REPO / "out" / "demo"
FIRST_RUN = "2026-11-28T00:00:00Z"
SECOND_RUN = "2026-11-28T01:00:00Z"
BACKFILL_FROM = "2026-11-27T00:00:00Z"
ATTACKS = 3
"""The sample day's attacks: the shell and the cradle it launched on ws-fin-014 (one incident:
lineage joins them), one on ws-hr-022, one on srv-app-02."""


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for stale in OUT.glob("card-*.json"):  # cards of an earlier demo run
        stale.unlink()
    print("Starting Azurite (Table Storage) and a local Teams webhook ...")
    with Azurite() as azurite, WebhookReceiver() as teams:
        env = {**os.environ, "HUNTWIRE_STORAGE": azurite.connection_string,
               "HUNTWIRE_TEAMS_WEBHOOK_URL": teams.url,
               "HUNTWIRE_HUNTS_DIR": str(REPO / "hunts")}
        first = run_job(env, "first run", FIRST_RUN, "--since", BACKFILL_FROM)
        posted_first = len(teams.payloads)
        show_cards(teams.payloads)
        second = run_job(env, "second run, one hour later", SECOND_RUN)
        posted_second = len(teams.payloads) - posted_first
    return verdict(first, second, posted_first, posted_second)


def process_events() -> Path:
    """The sample day plus the vendor agent of the shipped suppression rule, at 23:30."""
    (rule,) = yaml.safe_load((REPO / "suppressions" / "example-vendor-agent.yaml").read_text())
    agent = {"Timestamp": "2026-11-27T23:30:00Z", "DeviceId": "a562d07cbc2c8e3e93afd954e14c1d7e"
             "84488709", "DeviceName": "ws-sales-019.corp.contoso.com", "ReportId": 99001,
             "ActionType": "ProcessCreated", "FileName": "powershell.exe", "ProcessId": 9901,
             "ProcessCommandLine": rule["where"]["ProcessCommandLine"]["equals"],
             "InitiatingProcessFileName": rule["where"]["InitiatingProcessFileName"]["in"][0],
             "AccountDomain": "nt authority", "AccountName": "system"}
    path = OUT / "DeviceProcessEvents.jsonl"
    path.write_text((SAMPLES / "DeviceProcessEvents.jsonl").read_text() + json.dumps(agent)
                    + "\n")
    return path


def run_job(env: dict[str, str], title: str, now: str, *extra: str) -> dict[str, Any]:
    print(f"\n=== {title}: huntwire run --once --now {now} {' '.join(extra)}")
    command = [sys.executable, "-m", "shared", "run", "--once", "--format", "json", "--now", now,
               "--events", f"DeviceProcessEvents={process_events()}",
               "--events", f"DeviceNetworkEvents={SAMPLES / 'DeviceNetworkEvents.jsonl'}",
               *extra]
    done = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True,
                          check=False)
    if done.stderr.strip():
        print(done.stderr.strip())
    summary: dict[str, Any] = json.loads(done.stdout)
    for hunt in summary["hunts"]:
        print(f"  [{hunt['status']:>7}] {hunt['name']}: {hunt['rows']} rows, {hunt['new']} new, "
              f"{hunt['posted']} posted"
              + (f", {hunt['held']} kept as evidence only" if hunt.get("held") else "")
              + (f"  ({hunt['error']})" if hunt["error"] else "")
              + "".join(f", {n} suppressed by rule {rule}"
                        for rule, n in hunt.get("suppressed", {}).items()))
        for finding in hunt["new_findings"]:
            print("      " + describe(finding))
    totals = summary["totals"]
    print(f"  total: {totals['new']} new findings in {totals.get('incidents_opened', 0)} new "
          f"incident(s) ({totals.get('incidents_updated', 0)} updated, "
          f"{totals.get('incidents_held', 0)} kept as evidence only); "
          f"{totals.get('incidents_posts', 0)} post(s) to Teams")
    return summary


def describe(finding: dict[str, Any]) -> str:
    when = str(finding.get("Timestamp") or finding.get("TimeGenerated") or "")[:19]
    device = str(finding.get("DeviceName") or finding.get("DeviceId") or "").split(".")[0]
    what = finding.get("ProcessCommandLine") or finding.get("InitiatingProcessCommandLine") or ""
    target = f" -> {finding['RemoteIP']}:{finding.get('RemotePort')}" if finding.get(
        "RemoteIP") else ""
    text = " ".join(str(what).split())
    return f"{when}  {device:<12} {text[:80]}{'…' if len(text) > 80 else ''}{target}"


def show_cards(payloads: list[Any]) -> None:
    print(f"\n=== Teams received {len(payloads)} post(s), one per incident")
    for index, payload in enumerate(payloads, start=1):
        post = summarize_digest(payload)
        path = OUT / f"card-{index}.json"
        path.write_text(json.dumps(payload, indent=2, ensure_ascii=False))
        print(f"  {post.severity:<6} {post.incident_id}  {post.hunt_name} on {post.where}: "
              f"{post.total_new} finding(s) -> {path.relative_to(REPO)}")
        for name, count in post.hunts:
            print(f"           {count} from {name}" if count else f"           {name} (earlier)")
    if payloads:
        # Render the most severe incident, as an analyst would look at it first.
        order = {"HIGH": 0, "MEDIUM": 1, "LOW": 2}
        chosen = min(payloads, key=lambda p: (order.get(summarize_digest(p).severity.upper(), 3),
                                              -summarize_digest(p).total_new))
        files = write_preview(chosen, OUT)
        shown = files.png or files.html
        post = summarize_digest(chosen)
        print(f"  '{post.hunt_name} on {post.where}' rendered by the Adaptive Cards "
              f"renderer: {shown.relative_to(REPO)}")


def verdict(first: dict[str, Any], second: dict[str, Any], posted_first: int,
            posted_second: int) -> int:
    print("\n=== Result")
    problems = []
    if not first["ok"] or not second["ok"]:
        problems.append("a run did not complete")
    if posted_first == 0:
        problems.append("the first run posted nothing")
    if posted_second != 0 or second["totals"]["new"] != 0:
        problems.append("the second run posted again")
    if not any(h.get("suppressed") for h in first["hunts"]):
        problems.append("the vendor agent's run was not suppressed")
    totals = first["totals"]
    if totals.get("incidents_opened") != ATTACKS or posted_first != ATTACKS:
        problems.append(f"expected {ATTACKS} incidents in {ATTACKS} posts, got "
                        f"{totals.get('incidents_opened')} in {posted_first}")
    if problems:
        print("  FAILED: " + "; ".join(problems))
        return 1
    print(f"  first run: {totals['new']} findings from {sum(1 for h in first['hunts'] if h['new'])}"
          f" hunts -> {totals['incidents_opened']} incidents (the cradle joins the shell that "
          f"launched it) in {posted_first} "
          f"posts, {totals.get('incidents_held', 0)} kept as evidence only (the port probe), "
          f"{sum(sum(h.get('suppressed', {}).values()) for h in first['hunts'])} row suppressed "
          "(the vendor agent); second run: nothing new, nothing posted. Each finding was "
          "reported once.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
