"""The shipped configuration (hunts plus `suppressions/`) against the corpus and the sample day:
it raises nothing on benign lines and admins' port probes, and catches every malicious line it
caught without the rules."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.test_hunt_corpus import (
    FIRST_REPORT_ID,
    MALICIOUS_CATEGORIES,
    NOW,
    corpus_rows,
    process_event,
)

REPO = Path(__file__).resolve().parents[1]
SHIPPED = REPO / "suppressions"
SAMPLES = REPO / "samples"


def huntwire(*args: str) -> dict[str, Any]:
    done = subprocess.run([sys.executable, "-m", "shared", *args, "--format", "json"],
                          cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def corpus_matches(events: Path, rules: Path) -> tuple[dict[str, set[str]], dict[str, Any]]:
    rows = corpus_rows()
    report = huntwire("eval", "--events", f"DeviceProcessEvents={events}", "--now", NOW,
                      "--suppressions", str(rules))
    ids = {FIRST_REPORT_ID + i: r["id"] for i, r in enumerate(rows)}
    matches = {h["name"]: {ids[int(m["ReportId"])] for m in h["matches"]}
               for h in report["hunts"]}
    return matches, {h["name"]: h["suppressed"] for h in report["hunts"]}


def test_shipped_rules_hide_no_malicious_corpus_line_and_raise_no_benign_one(
        tmp_path: Path) -> None:
    rows = corpus_rows()
    events = tmp_path / "events.jsonl"
    events.write_text("".join(json.dumps(process_event(i, r)) + "\n"
                              for i, r in enumerate(rows)))
    (tmp_path / "none").mkdir()
    before, _ = corpus_matches(events, tmp_path / "none")
    after, suppressed = corpus_matches(events, SHIPPED)
    malicious = {r["id"] for r in rows if r["category"] in MALICIOUS_CATEGORIES}
    benign = {r["id"] for r in rows if r["category"] == "benign"}
    caught_before = set().union(*before.values()) & malicious
    assert caught_before
    assert set().union(*after.values()) & malicious == caught_before
    for name, matched in after.items():
        if "Microsoft original" not in name:  # the seed hunt is kept verbatim, noise and all
            assert matched & benign == set(), name
    assert all(counts == {} for counts in suppressed.values())


def dry_run(rules: Path) -> set[int]:
    report = huntwire("run", "--once", "--dry-run", "--now", "2026-11-28T00:00:00Z",
                      "--since", "2026-11-27T00:00:00Z", "--suppressions", str(rules),
                      "--events", f"DeviceProcessEvents={SAMPLES / 'DeviceProcessEvents.jsonl'}",
                      "--events", f"DeviceNetworkEvents={SAMPLES / 'DeviceNetworkEvents.jsonl'}")
    return {int(row["ReportId"]) for hunt in report["hunts"] for row in hunt["rows_preview"]
            if "Microsoft original" not in hunt["name"]}


NEGATIVES = ("tcpclient-port-probe", "test-netconnection", "invoke-webrequest-intranet")


def test_shipped_rules_on_the_sample_day(tmp_path: Path) -> None:
    """Admins' port probe and look-alikes stay quiet; every attack is still reported."""
    manifest = json.loads((SAMPLES / "manifest.json").read_text())
    (tmp_path / "none").mkdir()
    reported = dry_run(SHIPPED)
    assert reported == dry_run(tmp_path / "none")
    for negative in manifest["hard_negatives"]:
        if negative["id"] in NEGATIVES:
            assert not {r["ReportId"] for r in negative["rows"]} & reported, negative["id"]
    for attack in manifest["attacks"]:
        assert {r["ReportId"] for r in attack["rows"]} & reported, attack["id"]
