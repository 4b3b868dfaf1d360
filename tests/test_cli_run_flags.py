"""`huntwire run`: --hunt, --force, the not-due hint, one line without credentials, --version
(issue 22 items 14 and 17), against Azurite and the local Graph and identity servers."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devtools.fake_graph import FakeGraph
from devtools.identity import IdentityServer
from shared.cli import main

HUNT = """\
id: 33333333-0000-0000-0000-00000000000{n}
name: Socket {n}
source: defender
query: |
  DeviceProcessEvents
  | where ProcessCommandLine has "TCPClient"
  | project Timestamp, DeviceId, ReportId, DeviceName, ProcessCommandLine
"""


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
          storage_connection_string: str) -> Iterator[FakeGraph]:
    now = datetime.now(UTC)
    events = tmp_path / "DeviceProcessEvents.jsonl"
    events.write_text(json.dumps({
        "Timestamp": (now - timedelta(minutes=5)).isoformat(), "DeviceId": "dev-1",
        "DeviceName": "ws-1", "ReportId": 1,
        "ProcessCommandLine": "New-Object Net.Sockets.TCPClient('198.51.100.1', 443)"}) + "\n")
    hunts = tmp_path / "hunts"
    hunts.mkdir()
    for n in (1, 2):
        (hunts / f"s{n}.yaml").write_text(HUNT.format(n=n))
    with IdentityServer() as identity, FakeGraph({"DeviceProcessEvents": events}) as server:
        for name, value in {**identity.env, "HUNTWIRE_GRAPH_ENDPOINT": server.url,
                            "HUNTWIRE_HUNTS_DIR": str(hunts),
                            "HUNTWIRE_STORAGE": storage_connection_string,
                            "HUNTWIRE_HEARTBEAT_HOUR": "off"}.items():
            monkeypatch.setenv(name, value)
        yield server


def _statuses(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, str]]:
    code = main(["run", *argv, "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    return code, {h["name"]: h["status"] for h in report["hunts"]}


def test_hunt_and_force_rerun_one_hunt_within_the_hour(
        world: FakeGraph, capsys: pytest.CaptureFixture[str]) -> None:
    assert _statuses(capsys) == (0, {"Socket 1": "ok", "Socket 2": "ok"})
    assert _statuses(capsys, "--once") == (0, {"Socket 1": "not-due", "Socket 2": "not-due"})
    assert main(["run"]) == 0
    assert "hint: 2 hunt(s) ran less than their frequency ago; `huntwire run --force`" \
        in capsys.readouterr().out
    queries = len([r for r in world.requests if r.path.endswith("runHuntingQuery")])
    assert _statuses(capsys, "--hunt", "socket 2", "--force") == (0, {"Socket 2": "ok"})
    after = len([r for r in world.requests if r.path.endswith("runHuntingQuery")])
    assert after == queries + 1


def test_an_unknown_hunt_is_one_line_with_a_suggestion(
        world: FakeGraph, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--dry-run", "--hunt", "Sokcet 1"]) == 2
    assert capsys.readouterr().err == "error: --hunt: no hunt 'Sokcet 1' (did you mean " \
                                      "'Socket 1'?)\n"


def test_without_credentials_a_dry_run_prints_one_line(repo: Path, tmp_path: Path) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "AZURE_CONFIG_DIR": str(tmp_path),
           "IDENTITY_ENDPOINT": "", "MSI_ENDPOINT": "",
           "AZURE_POD_IDENTITY_AUTHORITY_HOST": "http://127.0.0.1:9"}
    done = subprocess.run([sys.executable, "-m", "shared", "run", "--once", "--dry-run"],
                          capture_output=True, text=True, cwd=repo, env=env, timeout=120,
                          check=False)
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("error: no Azure credentials (")
    assert "az login" in lines[0]
    assert done.stdout == ""


def test_version(repo: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "shared", "--version"], capture_output=True,
                          text=True, cwd=repo, check=False)
    assert done.returncode == 0
    assert done.stdout.startswith("huntwire ")
    assert done.stdout.split()[1][0].isdigit()


def test_naming_a_disabled_hunt_says_why_it_does_not_run(
        world: FakeGraph, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "hunts" / "s3.yaml").write_text(HUNT.format(n=3) + "enabled: false\n")
    assert main(["run", "--dry-run", "--hunt", "Socket 3"]) == 0
    assert "note: Socket 3 has `enabled: false` in s3.yaml: not run" in capsys.readouterr().err
