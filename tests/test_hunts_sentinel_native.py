"""The Sentinel-native hunts stay in step with the Defender hunts they are derived from, and the
local ASIM parsers return the ASIM columns from raw Windows rows."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from shared.kql_local import asim
from tests import native_hunts

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("form", native_hunts.FORMS)
@pytest.mark.parametrize("stem", native_hunts.STEMS)
def test_native_hunt_file_is_what_the_generator_writes(form: str, stem: str) -> None:
    path = native_hunts.HUNTS / f"{form}-{stem}.yaml"
    assert path.read_text(encoding="utf-8") == native_hunts.render(form, stem), \
        f"{path.name} is out of step: run python tests/native_hunts.py"


@pytest.mark.parametrize("form", native_hunts.FORMS)
@pytest.mark.parametrize("stem", native_hunts.STEMS)
def test_native_hunt_runs_the_defender_logic_unchanged(form: str, stem: str) -> None:
    defender = (native_hunts.HUNTS / f"{stem}.yaml").read_text(encoding="utf-8")
    native = (native_hunts.HUNTS / f"{form}-{stem}.yaml").read_text(encoding="utf-8")
    assert native_hunts.logic(native) == native_hunts.logic(defender)
    assert len(native_hunts.logic(defender).splitlines()) > 5


def test_native_public_connection_hunt_is_in_step() -> None:
    path = native_hunts.HUNTS / f"asim-{native_hunts.NETWORK_STEM}.yaml"
    assert path.read_text(encoding="utf-8") == native_hunts.render_network()


def test_expand_replaces_each_call_and_keeps_strings_alone() -> None:
    query = ('let x = "_Im_ProcessEvent()";\n_Im_ProcessEvent(starttime=ago(2h), pack=true)\n'
             '| join (_Im_NetworkSession() | take 1) on Dvc')
    expanded = asim.expand(query)
    assert expanded.count("let __hw_asim_Im_ProcessEvent = ") == 1
    assert expanded.count("let __hw_asim_Im_NetworkSession = ") == 1
    assert '"_Im_ProcessEvent()"' in expanded
    assert "__hw_asim_Im_ProcessEvent | where TimeGenerated >= (ago(2h))" in expanded
    assert "(__hw_asim_Im_NetworkSession | take 1)" in expanded


def test_asim_parsers_map_4688_and_sysmon_rows(tmp_path: Path) -> None:
    hunts = tmp_path / "hunts"
    hunts.mkdir()
    (hunts / "p.yaml").write_text(
        "id: 00000000-0000-4000-8000-0000000000a1\nname: p\ndescription: p\nseverity: Low\n"
        "source: sentinel\nquery: |\n  _Im_ProcessEvent()\n"
        "  | project Dvc, EventProduct, ActorUsername, TargetProcessName, TargetProcessId,\n"
        "      TargetProcessCommandLine, ActingProcessName\n", encoding="utf-8")
    (hunts / "n.yaml").write_text(
        "id: 00000000-0000-4000-8000-0000000000a2\nname: n\ndescription: n\nseverity: Low\n"
        "source: sentinel\nquery: |\n  _Im_NetworkSession()\n"
        "  | project Dvc, NetworkDirection, SrcIpAddr, DstIpAddr, DstPortNumber, SrcProcessName,\n"
        "      DstProcessName\n", encoding="utf-8")
    data = "<DataItem><EventData>{}</EventData></DataItem>"
    fields = {"Image": "C:\\x\\powershell.exe", "ProcessId": "42",
              "CommandLine": 'powershell -c "a & b <c>"', "ParentImage": "C:\\x\\cmd.exe"}
    sysmon1 = data.format("".join(
        f'<Data Name="{k}">{v.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace(chr(34), "&quot;")}</Data>'  # noqa: E501
        for k, v in fields.items()))
    sysmon3 = data.format('<Data Name="Image">C:\\x\\pwsh.exe</Data><Data Name="Initiated">'
                          'false</Data><Data Name="SourceIp">10.0.0.9</Data><Data Name='
                          '"DestinationIp">10.0.0.5</Data><Data Name="DestinationPort">4444'
                          '</Data>')
    events = tmp_path / "Event.jsonl"
    events.write_text("".join(json.dumps({
        "TimeGenerated": "2026-11-02T10:00:00Z", "Computer": "ws1", "EventID": i,
        "Source": "Microsoft-Windows-Sysmon", "EventData": d}) + "\n"
        for i, d in ((1, sysmon1), (3, sysmon3))), encoding="utf-8")
    security = tmp_path / "SecurityEvent.jsonl"
    security.write_text(json.dumps({
        "TimeGenerated": "2026-11-02T10:00:00Z", "Computer": "ws2", "EventID": 4688,
        "NewProcessName": "C:\\x\\cmd.exe", "NewProcessId": "0x1a4", "CommandLine": "cmd /c ver",
        "ParentProcessName": "C:\\x\\explorer.exe", "SubjectUserName": "ann",
        "SubjectDomainName": "CONTOSO", "TargetUserName": "-"}) + "\n", encoding="utf-8")
    done = subprocess.run(
        [sys.executable, "-m", "shared", "eval", "--hunts", str(hunts), "--events",
         f"Event={events}", "--events", f"SecurityEvent={security}", "--now",
         "2026-11-02T12:00:00Z", "--format", "json"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    results = {h["name"]: h for h in json.loads(done.stdout)["hunts"]}
    assert results["p"]["error"] is None
    assert results["n"]["error"] is None
    processes = sorted(results["p"]["matches"], key=lambda m: m["Dvc"])
    assert processes == [
        {"Dvc": "ws1", "EventProduct": "Sysmon", "ActorUsername": "",
         "TargetProcessName": "C:\\x\\powershell.exe", "TargetProcessId": "42",
         "TargetProcessCommandLine": 'powershell -c "a & b <c>"',
         "ActingProcessName": "C:\\x\\cmd.exe"},
        {"Dvc": "ws2", "EventProduct": "Security Events", "ActorUsername": "CONTOSO\\ann",
         "TargetProcessName": "C:\\x\\cmd.exe", "TargetProcessId": "0x1a4",
         "TargetProcessCommandLine": "cmd /c ver", "ActingProcessName": "C:\\x\\explorer.exe"}]
    assert results["n"]["matches"] == [
        {"Dvc": "ws1", "NetworkDirection": "Inbound", "SrcIpAddr": "10.0.0.9",
         "DstIpAddr": "10.0.0.5", "DstPortNumber": 4444, "SrcProcessName": "",
         "DstProcessName": "C:\\x\\pwsh.exe"}]
