"""The bundled sample telemetry in ``samples/``.

The committed files are exactly what ``devtools/make_samples.py`` writes (so they cannot drift from
the generator), every row is well formed, and the attacks listed in ``samples/manifest.json`` are
there. Nothing here depends on which hunts exist; whether the hunts catch the attacks is tested
with the hunts.
"""

from __future__ import annotations

import base64
import ipaddress
import json
import re
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devtools.make_samples import generate
from shared.schemas import table_schemas

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
DAY = "2026-11-27"
DAY_START = datetime(2026, 11, 27, tzinfo=UTC)
PROCESS, NETWORK = "DeviceProcessEvents", "DeviceNetworkEvents"
REGENERATE = f"python -m devtools.make_samples --out samples --day {DAY}"

REQUIRED = {
    PROCESS: [
        "Timestamp", "DeviceId", "DeviceName", "ActionType", "FileName", "FolderPath", "SHA256",
        "ProcessId", "ProcessCommandLine", "ProcessCreationTime", "AccountDomain", "AccountName",
        "AccountSid", "InitiatingProcessFileName", "InitiatingProcessCommandLine",
        "InitiatingProcessId", "InitiatingProcessCreationTime", "InitiatingProcessParentFileName",
        "InitiatingProcessAccountName", "InitiatingProcessAccountDomain", "ReportId",
    ],
    NETWORK: [
        "Timestamp", "DeviceId", "DeviceName", "ActionType", "RemoteIP", "RemotePort",
        "RemoteUrl", "RemoteIPType", "LocalIP", "LocalPort", "Protocol", "LocalIPType",
        "InitiatingProcessFileName", "InitiatingProcessCommandLine", "InitiatingProcessId",
        "InitiatingProcessCreationTime", "InitiatingProcessParentFileName",
        "InitiatingProcessAccountName", "ReportId",
    ],
}
INTEGERS = {"ProcessId", "InitiatingProcessId", "InitiatingProcessParentId", "ReportId",
            "RemotePort", "LocalPort", "LogonId"}
TIMES = {"Timestamp", "ProcessCreationTime", "InitiatingProcessCreationTime",
         "InitiatingProcessParentCreationTime"}
DOCUMENTATION_NETS = [ipaddress.ip_network(n)
                      for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")]


def parse_time(text: str) -> datetime:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", text), text
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def load(table: str) -> list[dict[str, Any]]:
    lines = (SAMPLES / f"{table}.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    assert all(isinstance(row, dict) for row in rows)
    return rows


@pytest.fixture(scope="module")
def rows() -> dict[str, list[dict[str, Any]]]:
    return {PROCESS: load(PROCESS), NETWORK: load(NETWORK)}


@pytest.fixture(scope="module")
def manifest() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((SAMPLES / "manifest.json").read_text(encoding="utf-8"))
    return data


def find(rows: dict[str, list[dict[str, Any]]], table: str, device_id: str,
         report_id: int) -> dict[str, Any]:
    hits = [r for r in rows[table] if r["DeviceId"] == device_id and r["ReportId"] == report_id]
    assert len(hits) == 1, f"{table} {device_id} ReportId {report_id}: {len(hits)} rows"
    return hits[0]


# --- The committed files are the generator's output ------------------------------------

def test_generator_is_deterministic_and_matches_the_committed_files(
        tmp_path_factory: pytest.TempPathFactory) -> None:
    first = tmp_path_factory.mktemp("samples-first")
    second = tmp_path_factory.mktemp("samples-second")
    written = generate(first, DAY)
    done = subprocess.run([sys.executable, "-m", "devtools.make_samples", "--out", str(second),
                           "--day", DAY], cwd=REPO, capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    names = sorted(written)
    assert names == ["DeviceNetworkEvents.jsonl", "DeviceProcessEvents.jsonl", "README.md",
                     "manifest.json"]
    assert sorted(p.name for p in second.iterdir()) == names
    for name in names:
        produced = (first / name).read_bytes()
        assert produced == (second / name).read_bytes(), f"{name} differs between two runs"
        committed = SAMPLES / name
        assert committed.is_file(), f"samples/{name} is missing: run `{REGENERATE}`"
        assert committed.read_bytes() == produced, (
            f"samples/{name} differs from what devtools/make_samples.py writes: edit the "
            f"generator, then run `{REGENERATE}`")


def test_files_are_commit_sized() -> None:
    sizes = {name: (SAMPLES / f"{name}.jsonl").stat().st_size for name in (PROCESS, NETWORK)}
    assert sum(sizes.values()) < 3 * 1024 * 1024, sizes


# --- Every row is well formed ----------------------------------------------------------

@pytest.mark.parametrize("table", [PROCESS, NETWORK])
def test_rows_have_the_schema_columns_and_types(rows: dict[str, list[dict[str, Any]]],
                                                table: str) -> None:
    schema = table_schemas("defender")[table]
    assert len(rows[table]) > 500
    for row in rows[table]:
        assert set(row) <= set(schema), set(row) - set(schema)
        missing = [c for c in REQUIRED[table] if row.get(c) is None]
        assert not missing, f"ReportId {row.get('ReportId')}: no {missing}"
        for column, value in row.items():
            if column in INTEGERS:
                assert type(value) is int, (column, value)
            if column in TIMES and value is not None:
                parse_time(value)
        assert re.fullmatch(r"[0-9a-f]{40}", row["DeviceId"])
        assert row["DeviceName"].endswith(".corp.contoso.com")


def test_process_rows(rows: dict[str, list[dict[str, Any]]]) -> None:
    for row in rows[PROCESS]:
        assert row["ActionType"] == "ProcessCreated"
        assert row["Timestamp"] == row["ProcessCreationTime"]
        assert row["FolderPath"].endswith("\\" + row["FileName"])
        assert re.fullmatch(r"[0-9a-f]{64}", row["SHA256"])
        assert parse_time(row["InitiatingProcessCreationTime"]) < parse_time(row["Timestamp"])


def test_network_rows(rows: dict[str, list[dict[str, Any]]]) -> None:
    actions = Counter(row["ActionType"] for row in rows[NETWORK])
    assert set(actions) == {"ConnectionSuccess", "ConnectionFailed", "InboundConnectionAccepted"}
    for row in rows[NETWORK]:
        assert row["Protocol"] == "Tcp"
        assert row["LocalIPType"] == "Private"
        remote = ipaddress.ip_address(row["RemoteIP"])
        expected = "Private" if remote.is_private and not any(
            remote in net for net in DOCUMENTATION_NETS) else "Public"
        assert row["RemoteIPType"] == expected, row["RemoteIP"]
        assert 0 < row["RemotePort"] < 65_536
        assert 0 < row["LocalPort"] < 65_536


def test_timestamps_are_inside_the_day(rows: dict[str, list[dict[str, Any]]]) -> None:
    for table in (PROCESS, NETWORK):
        for row in rows[table]:
            assert DAY_START <= parse_time(row["Timestamp"]) < DAY_START + timedelta(days=1)


def test_report_ids_are_unique_per_device(rows: dict[str, list[dict[str, Any]]]) -> None:
    seen = Counter((row["DeviceId"], row["ReportId"]) for table in (PROCESS, NETWORK)
                   for row in rows[table])
    assert [key for key, count in seen.items() if count > 1] == []


def test_several_devices_with_one_name_each(rows: dict[str, list[dict[str, Any]]]) -> None:
    names = {(r["DeviceId"], r["DeviceName"]) for t in (PROCESS, NETWORK) for r in rows[t]}
    assert len(names) == len({device_id for device_id, _ in names}) == 6


def test_process_trees_are_consistent(rows: dict[str, list[dict[str, Any]]]) -> None:
    """A parent (or a connecting process) created during the day has its own process event."""
    created = {(r["DeviceId"], r["ProcessId"], r["ProcessCreationTime"]): r
               for r in rows[PROCESS]}
    for table in (PROCESS, NETWORK):
        for row in rows[table]:
            when = row["InitiatingProcessCreationTime"]
            if parse_time(when) < DAY_START or row["InitiatingProcessFileName"] == "System":
                continue  # started before the day, or the kernel (which has no creation event)
            parent = created.get((row["DeviceId"], row["InitiatingProcessId"], when))
            assert parent is not None, f"{table} ReportId {row['ReportId']}: no parent event"
            assert parent["FileName"] == row["InitiatingProcessFileName"]
            assert parent["ProcessCommandLine"] == row["InitiatingProcessCommandLine"]
            assert parent["InitiatingProcessFileName"] == row["InitiatingProcessParentFileName"]


# --- The attacks of the manifest -------------------------------------------------------

def test_manifest_lists_four_attacks_on_two_or_three_devices(manifest: dict[str, Any]) -> None:
    attacks = manifest["attacks"]
    assert [a["id"] for a in attacks] == [
        "attack-1-tcpclient-plaintext", "attack-2-tcpclient-encoded", "attack-3-download-cradle",
        "attack-4-file-script-public-connection"]
    assert 2 <= len({a["DeviceId"] for a in attacks}) <= 3
    assert len({a["time"] for a in attacks}) == 4
    assert manifest["day"] == DAY


def test_manifest_rows_exist(rows: dict[str, list[dict[str, Any]]],
                             manifest: dict[str, Any]) -> None:
    for item in manifest["attacks"] + manifest["hard_negatives"]:
        main = find(rows, item["table"], item["DeviceId"], item["ReportId"])
        assert main["Timestamp"] == item["time"]
        assert main["DeviceName"] == item["device"]
        for ref in item["rows"]:
            row = find(rows, ref["table"], ref["DeviceId"], ref["ReportId"])
            for key, value in ref.items():
                if key not in ("role", "table", "device"):
                    assert row[key] == value, (item["id"], ref["role"], key)


def attack(manifest: dict[str, Any], rows: dict[str, list[dict[str, Any]]],
           key: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The attack's process event and its connection to the C2 address."""
    item = next(a for a in manifest["attacks"] if a["id"] == key)
    process = find(rows, PROCESS, item["DeviceId"], item["ReportId"])
    c2_ref = next(r for r in item["rows"] if r["role"] == "c2")
    c2 = find(rows, NETWORK, c2_ref["DeviceId"], c2_ref["ReportId"])
    return process, c2


@pytest.mark.parametrize("key", [
    "attack-1-tcpclient-plaintext", "attack-2-tcpclient-encoded", "attack-3-download-cradle",
    "attack-4-file-script-public-connection"])
def test_each_attack_connects_to_its_c2(rows: dict[str, list[dict[str, Any]]],
                                        manifest: dict[str, Any], key: str) -> None:
    process, c2 = attack(manifest, rows, key)
    assert process["FileName"] == "powershell.exe"
    assert c2["DeviceId"] == process["DeviceId"]
    assert c2["InitiatingProcessId"] == process["ProcessId"]
    assert c2["InitiatingProcessCreationTime"] == process["ProcessCreationTime"]
    assert c2["InitiatingProcessFileName"] == "powershell.exe"
    assert c2["ActionType"] == "ConnectionSuccess"
    assert c2["RemoteIPType"] == "Public"
    assert any(ipaddress.ip_address(c2["RemoteIP"]) in net for net in DOCUMENTATION_NETS)
    assert parse_time(c2["Timestamp"]) > parse_time(process["Timestamp"])


def test_attack_1_is_a_plaintext_tcpclient_shell_from_office(
        rows: dict[str, list[dict[str, Any]]], manifest: dict[str, Any]) -> None:
    process, c2 = attack(manifest, rows, "attack-1-tcpclient-plaintext")
    command = process["ProcessCommandLine"]
    assert "System.Net.Sockets.TCPClient" in command
    assert "iex $data" in command
    assert f"'{c2['RemoteIP']}',{c2['RemotePort']}" in command
    assert process["InitiatingProcessFileName"] == "cmd.exe"
    assert process["InitiatingProcessParentFileName"] in ("WINWORD.EXE", "OUTLOOK.EXE")


def test_attack_2_is_the_shell_encoded(rows: dict[str, list[dict[str, Any]]],
                                       manifest: dict[str, Any]) -> None:
    process, c2 = attack(manifest, rows, "attack-2-tcpclient-encoded")
    match = re.search(r"\s-e(?:nc?)?\s+([A-Za-z0-9+/=]+)$", process["ProcessCommandLine"])
    assert match, process["ProcessCommandLine"]
    script = base64.b64decode(match.group(1)).decode("utf-16-le")
    assert "System.Net.Sockets.TCPClient" in script
    assert "iex $data" in script
    assert f'"{c2["RemoteIP"]}",{c2["RemotePort"]}' in script
    assert "TCPClient" not in process["ProcessCommandLine"]
    assert process["InitiatingProcessFileName"] == "cmd.exe"


def test_attack_3_is_a_download_cradle(rows: dict[str, list[dict[str, Any]]],
                                       manifest: dict[str, Any]) -> None:
    process, c2 = attack(manifest, rows, "attack-3-download-cradle")
    command = process["ProcessCommandLine"]
    assert "IEX (New-Object Net.WebClient).DownloadString('http://" in command
    assert f"http://{c2['RemoteIP']}:{c2['RemotePort']}/" in command


def test_attack_4_command_line_shows_nothing(rows: dict[str, list[dict[str, Any]]],
                                             manifest: dict[str, Any]) -> None:
    process, c2 = attack(manifest, rows, "attack-4-file-script-public-connection")
    command = process["ProcessCommandLine"]
    assert "-File C:\\Users\\Public\\" in command
    for word in ("tcpclient", "downloadstring", "iex", "-e ", "-enc", c2["RemoteIP"]):
        assert word not in command.lower()
    assert process["InitiatingProcessFileName"] == "WmiPrvSE.exe"


def test_readme_names_the_attacks_and_the_sources(manifest: dict[str, Any]) -> None:
    text = (SAMPLES / "README.md").read_text(encoding="utf-8")
    for item in manifest["attacks"]:
        assert str(item["ReportId"]) in text
        assert item["device"] in text
    for needle in ("0dayCTF/reverse-shell-generator", "MIT", "CC-BY-4.0", "RFC 5737", "Public"):
        assert needle in text
