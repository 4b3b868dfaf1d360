"""Overlapping runs: two `huntwire run --once` processes at the same moment against one Azurite
and one webhook post each finding exactly once (docs/ledger.md, "Overlapping runs"), and open
each incident exactly once (docs/incidents.md, "Exactly once").

The race is forced, not hoped for: both processes reach Table Storage through a proxy that makes
them meet twice a round, when ``Ledger.record`` starts and when each looks for pending findings to
post, so both claim at the same time and both see the other's claims still pending.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from devtools.azurite import ACCOUNT, ACCOUNT_KEY, Azurite
from devtools.webhook import Reply, WebhookReceiver
from shared.cards import summarize_digest
from shared.health.notices import health_kind

REPO = Path(__file__).resolve().parents[1]
BASE = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
PER_ROUND = 6
_HOP_HEADERS = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


class RaceProxy:
    """A loopback proxy to Azurite that makes *parties* runs meet at two points each round: the
    first read of a findings table (``Ledger.record`` starts) and the first read of the pending
    table (the run looks for findings to post). Each run is held there until all have arrived."""

    GATES = ("huntwireFindings", "huntwirePending")

    def __init__(self, azurite: Azurite, parties: int = 2, timeout: float = 60.0) -> None:
        self.target = urlsplit(azurite.table_endpoint)
        self.parties = parties
        self.timeout = timeout
        self.met: list[dict[str, bool]] = []
        """Per armed round and gate: whether every run was held there at once."""
        self._lock = threading.Lock()
        self._barriers: dict[str, threading.Barrier] = {}
        self._arrived: dict[str, int] = {}
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                proxy.hold(self.command, self.path)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                connection = http.client.HTTPConnection(proxy.target.hostname or "127.0.0.1",
                                                        proxy.target.port, timeout=60)
                headers = {k: v for k, v in self.headers.items()
                           if k.lower() not in _HOP_HEADERS}
                connection.request(self.command, self.path, body=body or None, headers=headers)
                response = connection.getresponse()
                data = response.read()
                connection.close()
                self.send_response(response.status, response.reason)
                for name, value in response.getheaders():
                    if name.lower() not in _HOP_HEADERS:
                        self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_MERGE = _forward

            def log_message(self, format: str, *args: Any) -> None:
                return

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    @property
    def connection_string(self) -> str:
        endpoint = f"http://127.0.0.1:{self._server.server_address[1]}/{ACCOUNT}"
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
                f"TableEndpoint={endpoint};")

    def arm(self) -> None:
        with self._lock:
            self._barriers = {gate: threading.Barrier(self.parties, timeout=self.timeout)
                              for gate in self.GATES}
            self._arrived = dict.fromkeys(self.GATES, 0)
            self.met.append(dict.fromkeys(self.GATES, False))

    def hold(self, method: str, path: str) -> None:
        gate = next((g for g in self.GATES if path.startswith(f"/{ACCOUNT}/{g}")), None)
        if method != "GET" or gate is None:
            return
        with self._lock:
            barrier = self._barriers.get(gate)
            if barrier is None or self._arrived[gate] >= self.parties:
                return
            self._arrived[gate] += 1
            met = self.met[-1]
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            return
        met[gate] = True

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@dataclass
class World:
    hunts: Path
    events: Path
    proxy: RaceProxy
    webhook: WebhookReceiver
    rows: list[dict[str, Any]]
    device: str = "d" * 40
    """The one device of every event (each test its own: incidents are per device)."""

    def env(self) -> dict[str, str]:
        return {**os.environ, "HUNTWIRE_STORAGE": self.proxy.connection_string,
                "HUNTWIRE_TEAMS_WEBHOOK_URL": self.webhook.url,
                "HUNTWIRE_HUNTS_DIR": str(self.hunts)}

    def add_events(self, round_number: int, now: datetime) -> list[str]:
        """Six new events in the hour before *now*; returns their markers."""
        tokens = [f"overlap-{uuid.uuid4().hex[:8]}-r{round_number}e{i}" for i in range(PER_ROUND)]
        for number, token in enumerate(tokens):
            self.rows.append({
                "Timestamp": (now - timedelta(minutes=5 + 8 * number)).strftime(
                    "%Y-%m-%dT%H:%M:%SZ"),
                "DeviceId": self.device, "DeviceName": "ws-7", "ReportId": 1000 * round_number
                + number, "FileName": "cmd.exe", "ActionType": "ProcessCreated",
                "ProcessCommandLine": f"cmd.exe /c echo {token}"})
        self.events.write_text("".join(json.dumps(row) + "\n" for row in self.rows))
        return tokens

    def run(self, now: datetime, processes: int, exit_code: int = 0) -> list[dict[str, Any]]:
        """*processes* runs of `huntwire run --once`, started together; their JSON reports.
        Each must exit with *exit_code* (1: a finding could not be delivered)."""
        command = [sys.executable, "-m", "shared", "run", "--once", "--format", "json",
                   "--now", now.strftime("%Y-%m-%dT%H:%M:%SZ"),
                   "--events", f"DeviceProcessEvents={self.events}"]
        if processes > 1:
            self.proxy.arm()
        started = [subprocess.Popen(command, env=self.env(), cwd=REPO, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True)
                   for _ in range(processes)]
        reports = []
        for process in started:
            out, err = process.communicate(timeout=180)
            assert process.returncode == exit_code, err
            reports.append(json.loads(out))
        return reports

    def delivered(self) -> list[str]:
        """The bodies of the posts the webhook accepted."""
        return [post.body.decode() for post in self.webhook.posts
                if isinstance(post.answer, Reply) and post.answer.status < 300]


@pytest.fixture
def world(tmp_path: Path, azurite: Azurite) -> Iterator[World]:
    hunts = tmp_path / "hunts"
    hunts.mkdir()
    (hunts / "overlap.yaml").write_text(f"""\
id: {uuid.uuid4()}
name: Overlap marker
severity: Low
source: defender
frequency: 5m
lookback: 2h
dedupBy: [DeviceId, ReportId]
teams:
  maxFindings: 50
query: |
  DeviceProcessEvents
  | where ProcessCommandLine has "echo"
  | project Timestamp, DeviceId, ReportId, DeviceName, ProcessCommandLine
""")
    proxy = RaceProxy(azurite)
    with WebhookReceiver() as webhook:
        yield World(hunts, tmp_path / "DeviceProcessEvents.jsonl", proxy, webhook, [],
                    (uuid.uuid4().hex + uuid.uuid4().hex)[:40])
    proxy.close()


def posts_per_finding(world: World, tokens: list[str]) -> dict[str, int]:
    """How many accepted cards show each finding."""
    bodies = world.delivered()
    return {token: sum(token in body for body in bodies) for token in tokens}


def incident_posts(world: World) -> list[tuple[str, str | None]]:
    """(kind, incident id) of each accepted post: ``incident`` opens one, ``update`` adds."""
    summaries = [summarize_digest(payload) for payload in map(json.loads, world.delivered())
                 if health_kind(payload) is None]
    return [(summary.kind, summary.incident_id) for summary in summaries]


def hunt_of(report: dict[str, Any]) -> dict[str, Any]:
    (hunt,) = report["hunts"]
    assert isinstance(hunt, dict)
    return hunt


def test_two_overlapping_runs_post_each_finding_exactly_once(world: World) -> None:
    tokens: list[str] = []
    for round_number in range(3):
        now = BASE + timedelta(hours=round_number)
        tokens += world.add_events(round_number, now)
        reports = world.run(now, processes=2)
        assert all(world.proxy.met[-1].values()), "both runs were inside record() at the same time"
        hunts = [hunt_of(report) for report in reports]
        assert [hunt["status"] for hunt in hunts] == ["ok", "ok"]
        assert sum(hunt["new"] for hunt in hunts) == PER_ROUND  # each claimed by one run
        assert sum(hunt["posted"] for hunt in hunts) == PER_ROUND
        assert posts_per_finding(world, tokens) == dict.fromkeys(tokens, 1)
        assert sum(report["totals"].get("incidents_opened", 0) for report in reports) == (
            1 if round_number == 0 else 0)
    assert len(world.delivered()) <= 6  # at most one card per run
    # One device, events minutes apart: one incident, opened by exactly one post; every other
    # post is an update naming it.
    posts = incident_posts(world)
    opened = [incident for kind, incident in posts if kind == "incident"]
    assert len(opened) == 1
    assert {incident for _, incident in posts} == set(opened)


def test_a_failed_post_is_posted_once_by_the_next_overlapping_runs(world: World) -> None:
    failed = world.add_events(0, BASE)
    world.webhook.script(Reply(400, {"Content-Type": "application/json"},
                               b'{"error":{"code":"InvalidRequestContent"}}'))
    (report,) = world.run(BASE, processes=1, exit_code=1)
    assert (hunt_of(report)["new"], hunt_of(report)["posted"]) == (PER_ROUND, 0)
    assert world.delivered() == []

    # One minute later, well inside the 15-minute claim lease: the failed run gave it back.
    soon = BASE + timedelta(minutes=1)
    fresh = world.add_events(1, soon)
    reports = world.run(soon, processes=2)
    assert all(world.proxy.met[-1].values())
    assert sum(hunt_of(report)["posted"] for report in reports) == 2 * PER_ROUND
    assert posts_per_finding(world, failed + fresh) == dict.fromkeys(failed + fresh, 1)
    # The refused incident card is posted once (by one of the runs), the rest are updates.
    posts = incident_posts(world)
    assert [kind for kind, _ in posts].count("incident") == 1
    assert len({incident for _, incident in posts}) == 1
