"""`huntwire import --sigma DIR`: Sigma rules (written for these tests in SigmaHQ's format, under
tests/fixtures/sigma/rules) become hunts that validate, run on the local engine and match their
own fixture events; a rule the pipeline cannot map says which field."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.cli import main
from shared.hunt import load_hunts
from shared.sigma_import import convert_rule
from shared.sources.local import LocalSource
from shared.window import Window

pytest.importorskip("sigma.backends.kusto.kusto")
pytestmark = pytest.mark.skipif(shutil.which("node") is None,
                                reason="import validates with Microsoft's KQL parser in node")

FIXTURES = Path(__file__).parent / "fixtures" / "sigma"
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
# rule file -> the fixture events it must match (ReportId, or Computer for script blocks)
EXPECTED = {
    "ps_download_cradle.yaml": {101, 102},  # -w hidden and its windash form /w hidden
    "ps_encoded_command.yaml": {104, 105},  # UTF-16 base64 of the payload at two offsets
    "net_connection_powershell_high_port.yaml": {201},
    "ps_script_block_socket.yaml": {"host1"},
}


@pytest.fixture(scope="module")
def imported(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    target = tmp_path_factory.mktemp("hunts")
    out = tmp_path_factory.mktemp("out") / "import.json"
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        code = main(["import", "--sigma", str(FIXTURES / "rules"), "--to", str(target),
                     "--format", "json"])
    out.write_text(buffer.getvalue())
    report = json.loads(buffer.getvalue())
    assert code == 1  # one rule cannot run
    return target, {f["file"]: f for f in report["files"]}


def test_each_rule_gets_a_verdict_and_the_unmapped_field_is_named(
        imported: tuple[Path, dict[str, Any]]) -> None:
    _, files = imported
    unmapped = files["proc_unmapped_field.yml"]
    assert unmapped["verdict"] == "cannot run"
    assert "'TerminalSessionId'" in unmapped["reasons"][0]
    assert "Microsoft XDR pipeline" in unmapped["reasons"][0]
    for name in ("ps_download_cradle.yaml", "ps_encoded_command.yaml",
                 "net_connection_powershell_high_port.yaml"):
        assert files[name]["verdict"] == "runs as is", files[name]
        assert files[name]["copied"] is True
        assert "runs on the local engine (huntwire eval)" in files[name]["notes"]
    script = files["ps_script_block_socket.yaml"]
    assert script["verdict"] == "needs a setting"  # a Sentinel hunt needs the workspace id
    assert any("event 4104" in n for n in script["notes"])


def test_hunt_keeps_the_rules_metadata(imported: tuple[Path, dict[str, Any]]) -> None:
    target, _ = imported
    cradle = yaml.safe_load((target / "ps_download_cradle.yaml").read_text())
    assert cradle["id"] == "7d2f6a0e-3c1b-4f7e-9a51-2b8c0d4e6f11"
    assert cradle["name"] == "PowerShell Download Cradle With Hidden Window"
    assert cradle["severity"] == "High"
    assert cradle["tactics"] == ["Execution", "CommandAndControl"]
    assert cradle["relevantTechniques"] == ["T1059.001", "T1105"]
    assert "False positives: Software deployment scripts" in cradle["description"]
    assert "by huntwire test fixtures" in cradle["description"]
    assert "Detection Rule License" in cradle["description"]
    assert "evidenceOnly" not in cradle
    network = yaml.safe_load((target / "net_connection_powershell_high_port.yaml").read_text())
    assert network["severity"] == "Low"
    assert network["evidenceOnly"] is True
    # pysigma-backend-kusto writes ports as strings; a long column compares numbers
    assert "RemotePort in (4444, 1337)" in network["query"]


def test_converted_hunts_match_their_own_fixture_events(
        imported: tuple[Path, dict[str, Any]]) -> None:
    target, _ = imported
    loaded = load_hunts(target)
    assert loaded.errors == []
    events = FIXTURES / "events"
    engine = LocalSource({t: events / f"{t}.jsonl" for t in
                          ("DeviceProcessEvents", "DeviceNetworkEvents", "Event")})
    try:
        for hunt in loaded.hunts:
            rows = engine.run(hunt, Window(NOW - hunt.lookback, NOW)).rows
            got = {row.get("ReportId") or row.get("Computer") for row in rows}
            assert got == EXPECTED[hunt.path.name], hunt.path.name
    finally:
        engine.close()


def test_informational_rule_is_evidence_only_and_non_rules_are_refused() -> None:
    rule = (FIXTURES / "rules" / "ps_download_cradle.yml").read_text()
    hunt, _ = convert_rule(rule.replace("level: high", "level: informational"))
    assert hunt["evidenceOnly"] is True
    assert hunt["severity"] == "Informational"
    with pytest.raises(ValueError, match="not a Sigma rule"):
        convert_rule("title: x\n")


def test_sentinel_pipeline_targets_the_asim_process_parser() -> None:
    rule = (FIXTURES / "rules" / "ps_download_cradle.yml").read_text()
    hunt, notes = convert_rule(rule, "sentinel")
    assert hunt["source"] == "sentinel"
    assert hunt["query"].startswith("imProcessCreate\n")
    assert 'TargetProcessCommandLine contains " /w hidden"' in hunt["query"]
    assert notes == ["converted with pySigma's Sentinel ASIM pipeline"]

