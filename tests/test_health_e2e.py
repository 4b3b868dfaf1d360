"""Hunt health end to end: `huntwire run --once --now ...` hour after hour against Azurite, the
local Graph, the local managed-identity endpoint and a local Teams webhook."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devtools.fake_graph import FakeGraph, graph_error
from devtools.identity import IdentityServer
from devtools.webhook import Reply, WebhookReceiver
from shared.cards import summarize_digest
from shared.cli import main
from shared.health.notices import health_kind
from tests.fanout_world import clear_tables

T0 = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)  # before the 08:00 heartbeat
HOUR = timedelta(hours=1)
GOOD = """\
id: 33333333-0000-0000-0000-000000000001
name: Socket in PowerShell
source: defender
query: |
  DeviceProcessEvents
  | where ProcessCommandLine has "TCPClient"
  | project Timestamp, DeviceId, ReportId, DeviceName, ProcessCommandLine
"""
BROKEN_ID = "99999999-0000-0000-0000-000000000001"
BROKEN = f"""\
id: {BROKEN_ID}
name: Broken on the service side
source: defender
query: |
  DeviceProcessEvents
  | where NoSuchColumn == "x"
"""
FIXED = BROKEN.replace('NoSuchColumn == "x"', 'ProcessCommandLine has "nothing-matches-this"')


def event(report_id: int, when: datetime) -> dict[str, Any]:
    return {"Timestamp": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "DeviceId": "dev-1",
            "DeviceName": "ws-1", "ReportId": report_id,
            "ProcessCommandLine": "New-Object Net.Sockets.TCPClient('198.51.100.1', 443)"}


class World:
    def __init__(self, tmp: Path, graph: FakeGraph, webhook: WebhookReceiver) -> None:
        self.hunts = tmp / "hunts"
        self.events = tmp / "DeviceProcessEvents.jsonl"
        self.graph = graph
        self.webhook = webhook

    def add_events(self, *rows: dict[str, Any]) -> None:
        """Before the first run: the local Graph reads the file once."""
        with self.events.open("a") as out:
            out.writelines(json.dumps(r) + "\n" for r in rows)

    def run(self, now: datetime, capsys: pytest.CaptureFixture[str]) -> tuple[int, Any]:
        code = main(["run", "--once", "--now", now.isoformat(), "--format", "json"])
        return code, json.loads(capsys.readouterr().out)

    def status(self, capsys: pytest.CaptureFixture[str]) -> Any:
        assert main(["status", "--format", "json"]) == 0
        return json.loads(capsys.readouterr().out)

    def notices(self) -> list[str]:
        return [k for k in map(health_kind, self.webhook.payloads) if k is not None]

    def digests(self) -> list[Any]:
        return [p for p in self.webhook.payloads if health_kind(p) is None]

    def broken_queries(self) -> int:
        return sum("NoSuchColumn" in r.json()["Query"] for r in self.graph.requests
                   if r.path.endswith("runHuntingQuery"))


@pytest.fixture
def world(tmp_path: Path, storage_connection_string: str,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    clear_tables(storage_connection_string)
    (tmp_path / "hunts").mkdir()
    (tmp_path / "hunts" / "socket.yaml").write_text(GOOD)
    (tmp_path / "hunts" / "broken.yaml").write_text(BROKEN)
    (tmp_path / "DeviceProcessEvents.jsonl").write_text("")
    with IdentityServer() as identity, \
            FakeGraph({"DeviceProcessEvents": tmp_path / "DeviceProcessEvents.jsonl"}) as graph, \
            WebhookReceiver() as webhook:
        env = {**identity.env, "HUNTWIRE_STORAGE": storage_connection_string,
               "HUNTWIRE_GRAPH_ENDPOINT": graph.url, "HUNTWIRE_TEAMS_WEBHOOK_URL": webhook.url,
               "HUNTWIRE_HUNTS_DIR": str(tmp_path / "hunts")}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        yield World(tmp_path, graph, webhook)


def by_id(report: Any, hunt_id: str) -> Any:
    """The hunt's entry in a run report (``hunt_id``) or a status report (``id``)."""
    return next(h for h in report["hunts"] if h.get("id", h.get("hunt_id")) == hunt_id)


def test_broken_hunt_announced_once_disabled_then_reenabled_by_its_fix(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    # The second event falls only into the windows from 04:00 on.
    world.add_events(event(1, T0 - 30 * timedelta(minutes=1)),
                     event(2, T0 + 3 * HOUR - 10 * timedelta(minutes=1)))
    for hour in range(3):
        code, report = world.run(T0 + hour * HOUR, capsys)
        assert code == 1
        assert by_id(report, BROKEN_ID)["status"] == "failed"
        assert world.notices() == ([] if hour < 2 else ["auto-disabled"])
    # The channel heard about it exactly once, with what to do.
    (notice,) = [p for p in world.webhook.payloads if health_kind(p)]
    text = json.dumps(notice)
    assert "Broken on the service side" in text
    assert "broken.yaml" in text
    status = world.status(capsys)
    broken = by_id(status, BROKEN_ID)
    assert broken["state"] == "auto-disabled"
    assert broken["enabled"] is False
    assert broken["consecutive_failures"] == 3
    assert "refused" in broken["last_error"]
    good = by_id(status, "33333333-0000-0000-0000-000000000001")
    assert good["state"] == "ok"
    assert good["consecutive_failures"] == 0
    assert good["pending"] == 0
    # Disabled: not queried, no new notice, and the run is no longer failing.
    queries = world.broken_queries()
    code, report = world.run(T0 + 3 * HOUR, capsys)
    assert code == 0
    assert by_id(report, BROKEN_ID)["status"] == "disabled"
    assert world.broken_queries() == queries
    assert world.notices() == ["auto-disabled"]
    # Meanwhile the other hunt's findings flow as usual: one digest per run with findings.
    digests = world.digests()
    assert [summarize_digest(d).hunt_name for d in digests] == ["Socket in PowerShell"] * 2
    assert [summarize_digest(d).total_new for d in digests] == [1, 1]
    # The file is fixed: the hunt runs again, succeeds and says it was re-enabled.
    (world.hunts / "broken.yaml").write_text(FIXED)
    code, report = world.run(T0 + 4 * HOUR, capsys)
    assert code == 0
    assert by_id(report, BROKEN_ID)["status"] == "ok"
    assert world.notices() == ["auto-disabled", "re-enabled"]
    broken = by_id(world.status(capsys), BROKEN_ID)
    assert broken["state"] == "ok"
    assert broken["consecutive_failures"] == 0
    assert broken["enabled"] is True
    assert broken["last_success"] == "2026-01-05T05:00:00Z"


def test_undelivered_findings_fail_the_run_and_arrive_once_held_back(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    (world.hunts / "broken.yaml").unlink()
    world.add_events(event(1, T0 - 20 * timedelta(minutes=1)))
    world.webhook.default = Reply(503, {"Retry-After": "0"})
    code, report = world.run(T0, capsys)
    assert code == 1
    (hunt,) = report["hunts"]
    assert hunt["status"] == "ok"
    assert hunt["delivery_failed"] is True
    assert hunt["pending"] == 1
    assert report["ok"] is False
    assert report["totals"]["delivery_failed"] == 1
    notifier = world.status(capsys)["notifier"]
    assert notifier["state"] == "failing"
    assert notifier["pending"] == 1
    assert notifier["held_back_since"] == "2026-01-05T01:00:00Z"
    failed_posts = len(world.webhook.posts)
    world.webhook.default = Reply(202)
    code, report = world.run(T0 + HOUR, capsys)
    assert code == 0
    (delivered,) = world.webhook.payloads[failed_posts:]
    assert summarize_digest(delivered).total_new == 1
    assert "Held back since 2026-01-05 01:00 UTC" in json.dumps(delivered)
    assert report["hunts"][0]["pending_since"] == "2026-01-05T01:00:00Z"
    status = world.status(capsys)
    assert status["notifier"]["state"] == "ok"
    assert status["notifier"]["pending"] == 0
    world.run(T0 + 2 * HOUR, capsys)
    assert len(world.webhook.posts) == failed_posts + 1  # delivered once


def test_missing_graph_permission_is_announced_once_naming_the_grant(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    world.graph.handler = lambda request: graph_error(
        403, "Forbidden", "Missing application permission")
    for hour in range(4):
        code, _ = world.run(T0 + hour * HOUR, capsys)
        assert code == 1
    assert world.notices() == ["access"]
    assert "ThreatHunting.Read.All" in json.dumps(world.webhook.payloads[0])
    status = world.status(capsys)
    assert all(h["state"] == "failing" and h["enabled"] for h in status["hunts"])
    assert {h["consecutive_failures"] for h in status["hunts"]} == {4}


def test_heartbeat_once_a_day_at_the_configured_hour(
        world: World, capsys: pytest.CaptureFixture[str]) -> None:
    (world.hunts / "broken.yaml").unlink()
    world.add_events(event(1, T0.replace(hour=6, minute=30)))
    for hour in (6, 7, 8, 9, 10):
        world.run(T0.replace(hour=hour), capsys)
        assert world.notices().count("heartbeat") == (hour >= 8)
    beat = next(p for p in world.webhook.payloads if health_kind(p) == "heartbeat")
    text = json.dumps(beat, ensure_ascii=False)
    assert "3 run(s), 1 hunt(s) ran 3 time(s), 0 failure(s)" in text
    assert "1 new finding(s) in 1 incident(s)" in text
    world.run(T0.replace(hour=8) + 24 * HOUR, capsys)
    assert world.notices().count("heartbeat") == 2


def test_heartbeat_says_what_is_healthy_and_names_a_fully_suppressed_hunt(
        world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    """Issue 22 item 18 and issue 24 #6: the card is readable without the CLI (hunt states, the
    channel, the day's counts), and a hunt whose every row was suppressed is named."""
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(
        "- id: ws-1-everything\n  hunts: [Socket in PowerShell]\n"
        "  where: {DeviceName: {equals: ws-1}}\n  reason: lab machine\n  owner: soc@x.example\n"
        f"  expires: {(T0 + 30 * 24 * HOUR).date().isoformat()}\n")
    monkeypatch.setenv("HUNTWIRE_SUPPRESSIONS_DIR", str(rules))
    world.add_events(event(1, T0.replace(hour=4, minute=30)))
    for hour in (5, 6, 7, 8):
        world.run(T0.replace(hour=hour), capsys)
    (beat,) = [p for p in world.webhook.payloads if health_kind(p) == "heartbeat"]
    text = " ".join(json.dumps(beat, ensure_ascii=False).split())
    assert "huntwire status" not in text
    assert "1 ok, 0 failing, 1 disabled. Disabled: Broken on the service side" in text
    assert "Channel" in text
    assert "delivering; 0 finding(s) waiting" in text
    assert "Fully suppressed" in text
    assert "Socket in PowerShell (4 row(s))" in text
