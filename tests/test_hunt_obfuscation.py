"""Invoke-Obfuscation-style variants of a cradle and a shell (tests/corpus_obfuscated/): every
attack is caught by at least one paging hunt, no benign admin line pages with the shipped
suppression rules, and the management agent's encoded cradle pages without its rule."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
VARIANTS = REPO / "tests" / "corpus_obfuscated" / "variants.jsonl"
HUNTS = REPO / "hunts"
NOW = "2026-11-02T12:00:00Z"
FIRST_REPORT_ID = 300_000


def variants() -> list[dict[str, Any]]:
    return [json.loads(line) for line in VARIANTS.read_text(encoding="utf-8").splitlines() if line]


def paging_stems() -> set[str]:
    """Hunts that page: enabled Defender hunts that are not evidence-only."""
    stems = set()
    for path in HUNTS.glob("*.yaml"):
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
        if document.get("source", "defender") == "defender" and not document.get("evidenceOnly") \
                and document.get("enabled", True):
            stems.add(path.stem)
    return stems


@cache
def matched(scratch: str, suppressions: str) -> dict[str, set[str]]:
    """{row id: hunt stems that reported it}."""
    rows = variants()
    events = Path(scratch) / f"variants-{Path(suppressions).name}.jsonl"
    events.write_text("".join(json.dumps({
        "Timestamp": f"2026-11-02T10:{i:02d}:00Z", "DeviceId": f"obf-{i:03d}",
        "DeviceName": f"obf-{i:03d}.contoso.local", "ReportId": FIRST_REPORT_ID + i,
        "ActionType": "ProcessCreated", "FileName": r["FileName"],
        "ProcessCommandLine": r["ProcessCommandLine"], "ProcessId": 7000 + i,
        "AccountDomain": "contoso", "AccountName": "user",
        "InitiatingProcessFileName": r["InitiatingProcessFileName"],
    }) + "\n" for i, r in enumerate(rows)), encoding="utf-8")
    args = [sys.executable, "-m", "shared", "eval", "--hunts", str(HUNTS), "--events",
            f"DeviceProcessEvents={events}", "--now", NOW, "--format", "json"]
    args += ["--suppressions", suppressions]
    completed = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600,
                               check=False)
    assert completed.returncode == 0, completed.stderr
    stems = {str(yaml.safe_load(p.read_text(encoding="utf-8"))["id"]).lower(): p.stem
             for p in HUNTS.glob("*.yaml")}
    found: dict[str, set[str]] = {r["id"]: set() for r in rows}
    for entry in json.loads(completed.stdout)["hunts"]:
        assert entry["error"] is None, f"{entry['name']}: {entry['error']}"
        for match in entry["matches"]:
            if match.get("ReportId") is not None:
                found[rows[int(match["ReportId"]) - FIRST_REPORT_ID]["id"]].add(
                    stems[entry["id"]])
    return found


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(tmp_path_factory.mktemp("obfuscation"))


def test_encoded_variants_carry_their_script() -> None:
    for row in variants():
        if "script" in row:
            token = row["ProcessCommandLine"].split()[-1]
            assert base64.b64decode(token).decode("utf-16-le") == row["script"], row["id"]


def test_every_obfuscated_attack_is_caught_by_a_paging_hunt(scratch: str) -> None:
    found = matched(scratch, str(REPO / "suppressions"))
    paging = paging_stems()
    attacks = [r["id"] for r in variants() if r["category"] != "benign"]
    assert len(attacks) >= 20
    assert sorted(a for a in attacks if not found[a] & paging) == []


def test_no_benign_admin_line_pages_with_the_shipped_suppressions(scratch: str) -> None:
    found = matched(scratch, str(REPO / "suppressions"))
    paging = paging_stems()
    benign = [r["id"] for r in variants() if r["category"] == "benign"]
    assert {b: sorted(found[b] & paging) for b in benign if found[b] & paging} == {}


def test_the_agent_encoded_cradle_pages_without_its_rule(scratch: str) -> None:
    """The suppression rule, not a blind spot, keeps the management agent quiet."""
    empty = Path(scratch) / "no-rules"
    empty.mkdir(exist_ok=True)
    found = matched(scratch, str(empty))
    assert "powershell-download-cradle-stager" in found["adm-009"]
