"""Across the seam of runner and health: the reason a source gives for a failed query (unknown
table, forbidden, throttled) is what the hunt's health record says, not a guess from the HTTP
status. `huntwire run --once` against the local Graph (scripted refusals), the local
managed-identity endpoint, Azurite and a local Teams webhook."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from devtools.fake_graph import FakeGraph, graph_error, throttled
from devtools.identity import IdentityServer, Reply
from devtools.webhook import WebhookReceiver
from shared.cli import main
from shared.health.records import HealthStore
from shared.storage import Storage
from tests.fanout_world import clear_tables

NOW = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)
HUNT_ID = "55555555-0000-0000-0000-000000000001"
HUNT = f"""\
id: {HUNT_ID}
name: Socket in PowerShell
source: defender
query: |
  DeviceProcessEvents
  | where ProcessCommandLine has "TCPClient"
  | project Timestamp, DeviceId, ReportId, DeviceName, ProcessCommandLine
"""
REFUSALS: dict[str, Reply] = {
    "unknown-table": graph_error(400, "BadRequest",
                                 "Query could not be parsed: Failed to resolve table or column "
                                 "expression named 'DeviceProcessEvents'"),
    "forbidden": graph_error(403, "Forbidden", "Missing role ThreatHunting.Read.All"),
    "throttled": throttled(retry_after="0"),
}


@pytest.fixture
def graph(tmp_path: Path, storage_connection_string: str,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeGraph]:
    clear_tables(storage_connection_string)
    (tmp_path / "hunts").mkdir()
    (tmp_path / "hunts" / "socket.yaml").write_text(HUNT)
    (tmp_path / "DeviceProcessEvents.jsonl").write_text("")
    with IdentityServer() as identity, \
            FakeGraph({"DeviceProcessEvents": tmp_path / "DeviceProcessEvents.jsonl"}) as fake, \
            WebhookReceiver() as webhook:
        env = {**identity.env, "HUNTWIRE_STORAGE": storage_connection_string,
               "HUNTWIRE_GRAPH_ENDPOINT": fake.url, "HUNTWIRE_TEAMS_WEBHOOK_URL": webhook.url,
               "HUNTWIRE_HUNTS_DIR": str(tmp_path / "hunts"), "HUNTWIRE_HEARTBEAT_HOUR": "off"}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield fake


@pytest.mark.parametrize("reason", sorted(REFUSALS))
def test_health_records_the_reason_the_source_gave(reason: str, graph: FakeGraph,
                                                   storage_connection_string: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    graph.script(*[REFUSALS[reason]] * 8)  # every attempt of the run is refused the same way
    code = main(["run", "--once", "--now", NOW.isoformat(), "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1
    (hunt,) = report["hunts"]
    assert hunt["status"] == "failed"
    assert hunt["error_kind"] == reason
    record = HealthStore(Storage.from_connection_string(storage_connection_string)).hunt(HUNT_ID)
    assert record is not None
    assert record.last_error_kind == reason
    assert record.consecutive_failures == 1
