"""The labelled telemetry corpus (tests/corpus_telemetry/): shells, stagers, cradles, bind shells
and internal beacons in Defender form (Device* tables) and in Sentinel-native form (Security 4688,
Sysmon 1/3 and PowerShell 4104 in the Event table), beside benign look-alikes. Every attack is
caught by at least one paging hunt of its form; no benign scenario matches any hunt; each new
hunt catches exactly its scenarios (its fixtures) and stays quiet on its known false positives."""

from __future__ import annotations

import json
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "corpus_telemetry"
HUNTS = REPO / "hunts"
NOW = "2026-11-02T12:00:00Z"

# hunt file stem -> the scenarios it must report, no more, no fewer
EXPECTED = {
    "powershell-hosted-outside-powershell": {
        "d-meterpreter-psexec", "d-cobaltstrike-powerpick", "d-powershdll"},
    "powershell-command-download-execute": {
        "d-meterpreter-psexec", "d-powershdll", "d-emotet-downloader"},
    "powershell-listener-bind-shell": {"d-powercat-bind", "d-bind-listener-opened-earlier"},
    "powershell-internal-c2-first-seen": {"d-empire-internal-beacon", "d-covenant-internal",
                                          "d-meterpreter-internal-4444"},
    "asim-powershell-socket-reverse-shell": {"s-sysmon-tcp-shell"},
    "asim-powershell-encoded-reverse-shell": {"s-4688-encoded-shell"},
    "asim-powershell-download-cradle-stager": {"s-4688-stdin-cradle"},
    "scriptblock-powershell-socket-reverse-shell": {"s-4104-obfuscated-shell"},
    "scriptblock-powershell-download-cradle-stager": {"s-4104-cradle", "s-4104-amsi-bypass"},
    "asim-powershell-listener-bind-shell": {"s-sysmon-bind"},
    "asim-powershell-internal-c2-first-seen": {"s-sysmon-internal-beacon"},
    "asim-powershell-outbound-public-connection": {"s-sysmon-public-shell"},
}
SENTINEL_NATIVE_PREFIXES = ("asim-", "scriptblock-")


def labels() -> dict[str, dict[str, str]]:
    data: dict[str, dict[str, str]] = json.loads((CORPUS / "labels.json").read_text())
    return data


def hunt_documents() -> dict[str, dict[str, Any]]:
    return {p.stem: yaml.safe_load(p.read_text(encoding="utf-8")) for p in HUNTS.glob("*.yaml")}


@cache
def matches(form: str) -> dict[str, set[str]]:
    """{hunt stem: scenarios (devices) it reported} over the corpus of one form."""
    args = [sys.executable, "-m", "shared", "eval", "--hunts", str(HUNTS), "--now", NOW,
            "--format", "json"]
    for path in sorted((CORPUS / form).glob("*.jsonl")):
        args += ["--events", f"{path.stem}={path}"]
    done = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=600,
                          check=False)
    assert done.returncode == 0, done.stderr
    stems = {str(d["id"]).lower(): stem for stem, d in hunt_documents().items()}
    known = labels()
    found: dict[str, set[str]] = {}
    for entry in json.loads(done.stdout)["hunts"]:
        assert entry["error"] is None, f"{entry['name']}: {entry['error']}"
        devices = set()
        for match in entry["matches"]:
            device = str(match.get("DeviceId") or match.get("DeviceName") or "")
            device = device.removesuffix(".contoso.local")
            assert device in known, (entry["name"], match)
            devices.add(device)
        found[stems[entry["id"]]] = devices
    return found


def paging(stem: str) -> bool:
    return not hunt_documents()[stem].get("evidenceOnly", False)


def scenarios(form: str, label: str) -> set[str]:
    return {s for s, v in labels().items() if v["form"] == form and v["label"] == label}


def test_corpus_is_labelled_and_sourced() -> None:
    for sid, value in labels().items():
        assert value["label"] in ("attack", "benign"), sid
        assert value["form"] in ("defender", "sentinel"), sid
        assert value["source"], sid
        assert isinstance(value["tolerated"], list), sid
    assert scenarios("defender", "attack")
    assert scenarios("sentinel", "attack")


def test_every_defender_form_attack_is_caught_by_a_paging_defender_hunt() -> None:
    found = matches("defender")
    documents = hunt_documents()
    caught = set().union(*(devices for stem, devices in found.items()
                           if paging(stem) and documents[stem].get("source") == "defender"))
    assert sorted(scenarios("defender", "attack") - caught) == []


def test_every_sentinel_form_attack_is_caught_by_a_sentinel_native_hunt() -> None:
    found = matches("sentinel")
    caught = set().union(*(devices for stem, devices in found.items()
                           if paging(stem) and stem.startswith(SENTINEL_NATIVE_PREFIXES)))
    assert sorted(scenarios("sentinel", "attack") - caught) == []


@pytest.mark.parametrize("form", ["defender", "sentinel"])
def test_no_benign_scenario_matches_any_hunt(form: str) -> None:
    """Except the hunts a scenario names as tolerated: the public-connection hunt is documented
    to report installers (docs/hunts.md, 'Expect noise')."""
    found = matches(form)
    benign = scenarios(form, "benign")
    known = labels()

    def pages(stem: str, device: str) -> bool:
        return stem.removeprefix("sentinel-") not in known[device]["tolerated"]

    wrong = {stem: sorted(d for d in devices & benign if pages(stem, d))
             for stem, devices in found.items()}
    assert {stem: devices for stem, devices in wrong.items() if devices} == {}


@pytest.mark.parametrize("stem", sorted(EXPECTED))
def test_each_new_hunt_reports_exactly_its_scenarios(stem: str) -> None:
    form = "sentinel" if stem.startswith(SENTINEL_NATIVE_PREFIXES) else "defender"
    assert matches(form)[stem] == EXPECTED[stem]


@pytest.mark.parametrize("stem", sorted(s for s in EXPECTED if not s.startswith("asim-")
                                        and not s.startswith("scriptblock-")))
def test_sentinel_twin_of_each_new_defender_hunt_reports_the_same(stem: str) -> None:
    assert matches("defender")[f"sentinel-{stem}"] == matches("defender")[stem]
