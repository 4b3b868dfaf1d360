"""`huntwire run --once --dry-run` against the local Graph and managed-identity servers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from devtools.fake_graph import FakeGraph, throttled
from devtools.identity import IdentityServer
from shared.cli import main

HUNT = """\
id: 33333333-0000-0000-0000-000000000001
name: Socket in PowerShell
source: defender
query: |
  DeviceProcessEvents
  | where ProcessCommandLine has "TCPClient"
  | project Timestamp, DeviceId, ReportId, DeviceName, ProcessCommandLine
"""


@pytest.fixture
def graph(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGraph]:
    now = datetime.now(UTC)
    events = tmp_path / "DeviceProcessEvents.jsonl"
    rows = [{"Timestamp": (now - timedelta(minutes=m)).isoformat(), "DeviceId": "dev-1",
             "DeviceName": "ws-1", "ReportId": m,
             "ProcessCommandLine": "New-Object Net.Sockets.TCPClient('198.51.100.1', 443)"}
            for m in (10, 20)]
    events.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "hunts").mkdir()
    (tmp_path / "hunts" / "socket.yaml").write_text(HUNT)
    with IdentityServer() as identity, FakeGraph({"DeviceProcessEvents": events}) as server:
        for name, value in {**identity.env, "HUNTWIRE_GRAPH_ENDPOINT": server.url,
                            "HUNTWIRE_HUNTS_DIR": str(tmp_path / "hunts")}.items():
            monkeypatch.setenv(name, value)
        yield server


def test_dry_run_prints_each_hunts_rows_and_writes_nothing(
        graph: FakeGraph, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--once", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "(dry run)" in out
    assert "Socket in PowerShell: 2 rows, 0 new, 0 posted" in out
    assert out.count("198.51.100.1") == 2  # each row printed


def test_dry_run_survives_two_429s_within_the_retry_budget(
        graph: FakeGraph, capsys: pytest.CaptureFixture[str]) -> None:
    graph.script(throttled("1"), throttled("1"))
    assert main(["run", "--once", "--dry-run", "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    (hunt,) = report["hunts"]
    assert hunt["status"] == "ok"
    assert len(hunt["rows_preview"]) == 2
    posts = [r for r in graph.requests if r.path.endswith("runHuntingQuery")]
    assert len(posts) == 3
    assert hunt["seconds"] >= 2  # each Retry-After: 1 was honoured


def test_missing_storage_is_a_clear_error_without_dry_run(
        graph: FakeGraph, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--once"]) == 2
    assert "HUNTWIRE_STORAGE" in capsys.readouterr().err
