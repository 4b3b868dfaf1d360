"""The runner's own rules: due hunts, the time budget, checkpoints that only advance over data
fully seen. Real ledger (Azurite), real local engine and a real Sentinel source against the local
Log Analytics server; the only thing injected is the runner's monotonic clock."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.core.credentials import TokenCredential

from devtools.clock import ManualClock
from devtools.fake_graph import FakeGraph, hunting_results
from devtools.fake_loganalytics import FakeLogAnalytics, logs_tables, partial_error
from devtools.identity import IdentityServer, Reply
from devtools.service_model import Latency, ScaledClock, ServiceModel
from devtools.webhook import Reply as WebhookReply
from devtools.webhook import WebhookReceiver
from shared.credentials import make_credential
from shared.hunt import Hunt
from shared.incidents import IncidentStore
from shared.ledger import Checkpoint, Ledger
from shared.notify.teams import TeamsNotifier
from shared.retry import RetryPolicy
from shared.runner import Runner, is_due
from shared.sources.base import QueryResult
from shared.sources.defender import DefenderSource, tenant_lanes, tenant_pacer
from shared.sources.local import LocalSource
from shared.sources.sentinel import SentinelSource
from shared.storage import Storage
from shared.window import Window
from tests.test_schedule import max_in_window

NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
WORKSPACE = "11111111-2222-3333-4444-555555555555"
QUERY = ('DeviceProcessEvents | where ProcessCommandLine has "TCPClient" '
         "| project Timestamp, DeviceId, ReportId, ProcessCommandLine")


def hunt(number: int, source: str = "defender", query: str = QUERY) -> Hunt:
    return Hunt(id=f"00000000-0000-0000-0000-{number:012d}", name=f"hunt {number}", query=query,
                source=source,  # type: ignore[arg-type]
                path=Path(f"hunt-{number}.yaml"),
                dedup_by=("DeviceId", "ReportId"))


@pytest.fixture
def ledger(storage_connection_string: str) -> Ledger:
    suffix = uuid.uuid4().hex[:8]
    service = Storage.from_connection_string(storage_connection_string)
    return Ledger(service, findings_table=f"f{suffix}", pending_table=f"p{suffix}",
                  checkpoints_table=f"c{suffix}")


@pytest.fixture
def incidents(storage_connection_string: str) -> IncidentStore:
    return IncidentStore(Storage.from_connection_string(storage_connection_string),
                         table=f"i{uuid.uuid4().hex[:8]}")


@pytest.fixture
def events(tmp_path: Path) -> Path:
    path = tmp_path / "DeviceProcessEvents.jsonl"
    rows = [{"Timestamp": (NOW - timedelta(minutes=10 * i)).isoformat(), "DeviceId": "dev-1",
             "ReportId": i, "ProcessCommandLine": "New-Object Net.Sockets.TCPClient('x',1)"}
            for i in range(1, 4)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


@pytest.fixture
def teams() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


class SteppingClock:
    """Each reading is *step* seconds after the last: every hunt seems to take that long."""

    def __init__(self, step: float):
        self.now = 0.0
        self.step = step

    def __call__(self) -> float:
        self.now += self.step
        return self.now


def test_is_due_follows_frequency_with_tolerance_and_ignores_future_stamps() -> None:
    h = hunt(1)
    assert is_due(h, None, NOW)
    assert not is_due(h, Checkpoint(h.id, last_run_start=NOW - timedelta(minutes=30)), NOW)
    assert is_due(h, Checkpoint(h.id, last_run_start=NOW - timedelta(minutes=57)), NOW)
    assert is_due(h, Checkpoint(h.id, last_run_start=NOW + timedelta(hours=2)), NOW)


def test_time_budget_stops_starting_hunts_and_says_so(ledger: Ledger, events: Path,
                                                      teams: WebhookReceiver,
                                                      incidents: IncidentStore) -> None:
    runner = Runner(hunts=[hunt(1), hunt(2), hunt(3)],
                    sources={"defender": LocalSource({"DeviceProcessEvents": events})},
                    ledger=ledger, notifier=TeamsNotifier(teams.url), incidents=incidents,
                    time_budget=timedelta(seconds=100), min_time_per_hunt=timedelta(seconds=30),
                    monotonic=SteppingClock(step=20))
    summary = runner.run_once(NOW)
    statuses = [o.status for o in summary.outcomes]
    assert statuses == ["ok", "skipped", "skipped"]
    assert "time budget" in (summary.outcomes[1].error or "")
    assert summary.stopped_early
    assert not summary.ok
    assert len(teams.payloads) == 1  # the hunt that ran posted its incident
    assert ledger.checkpoint(hunt(2).id) is None  # a skipped hunt keeps its old window


def test_run_posts_once_then_not_due_then_catches_up(ledger: Ledger, events: Path,
                                                     teams: WebhookReceiver,
                                                     incidents: IncidentStore) -> None:
    source = LocalSource({"DeviceProcessEvents": events})
    runner = Runner(hunts=[hunt(1)], sources={"defender": source}, ledger=ledger,
                    notifier=TeamsNotifier(teams.url), incidents=incidents)
    first = runner.run_once(NOW).outcomes[0]
    assert (first.rows, first.new, first.posted, first.pending) == (3, 3, 3, 0)
    assert runner.run_once(NOW + timedelta(minutes=20)).outcomes[0].status == "not-due"
    later = runner.run_once(NOW + timedelta(hours=1)).outcomes[0]
    assert later.status == "ok"
    assert (later.new, later.posted) == (0, 0)
    assert len(teams.payloads) == 1
    checkpoint = ledger.checkpoint(hunt(1).id)
    assert checkpoint is not None
    assert checkpoint.last_success_end == NOW + timedelta(hours=1)


def test_partial_result_records_findings_but_does_not_advance_the_checkpoint(
        ledger: Ledger, teams: WebhookReceiver, monkeypatch: pytest.MonkeyPatch,
        incidents: IncidentStore) -> None:
    with IdentityServer() as identity, FakeLogAnalytics(WORKSPACE) as logs:
        for name, value in identity.env.items():
            monkeypatch.setenv(name, value)
        sentinel = SentinelSource(make_credential(None), WORKSPACE, logs.url,
                                  policy=RetryPolicy(max_attempts=1, max_total_seconds=5))
        h = hunt(7, source="sentinel", query="DeviceProcessEvents | project TimeGenerated, "
                 "DeviceId, ReportId")
        runner = Runner(hunts=[h], sources={"sentinel": sentinel}, ledger=ledger,
                        notifier=TeamsNotifier(teams.url), incidents=incidents)
        columns = [("TimeGenerated", "datetime"), ("DeviceId", "string"), ("ReportId", "long")]
        logs.script(Reply(200, logs_tables(columns, [["2026-11-27T11:00:00Z", "dev-9", 5]],
                                           error=partial_error("memory budget exceeded"))))
        first = runner.run_once(NOW).outcomes[0]
        logs.script(Reply(200, logs_tables(columns, [["2026-11-27T11:00:00Z", "dev-9", 5]])))
        second = runner.run_once(NOW + timedelta(hours=1)).outcomes[0]
    assert first.status == "ok"
    assert (first.new, first.posted) == (1, 1)
    assert any("partial result" in w and "memory budget" in w for w in first.warnings)
    checkpoint = ledger.checkpoint(h.id)
    assert checkpoint is not None
    assert checkpoint.last_success_end == NOW + timedelta(hours=1)
    # The second run's window reached back over the partial one (start <= first window start).
    assert second.window_start is not None
    assert first.window_start is not None
    assert second.window_start <= first.window_start
    assert (second.new, second.posted) == (0, 0)


def test_missing_source_and_missing_webhook_keep_findings_pending(
        ledger: Ledger, events: Path, incidents: IncidentStore) -> None:
    runner = Runner(hunts=[hunt(1), hunt(2, source="sentinel")],
                    sources={"defender": LocalSource({"DeviceProcessEvents": events})},
                    ledger=ledger, notifier=None, incidents=incidents)
    summary = runner.run_once(NOW)
    defender, sentinel = summary.outcomes
    assert sentinel.status == "skipped"
    assert "no sentinel source" in (sentinel.error or "")
    assert (defender.new, defender.posted, defender.pending) == (3, 0, 3)
    assert any("no Teams webhook" in w for w in defender.warnings)
    assert len(ledger.pending(hunt(1))) == 3
    assert summary.ok


@pytest.mark.parametrize(("answer", "kind"), [
    (WebhookReply(404), "permanent"), (WebhookReply(401), "permanent"),
    (WebhookReply(200, {}, b"Microsoft Teams endpoint returned HTTP error 413"), "permanent"),
    (WebhookReply(503, {"Retry-After": "0"}), "transient")])
def test_an_undelivered_incident_fails_the_run_and_keeps_its_findings_pending(
        ledger: Ledger, events: Path, answer: WebhookReply, kind: str,
        incidents: IncidentStore) -> None:
    with WebhookReceiver(default=answer) as dead:
        runner = Runner(hunts=[hunt(1)],
                        sources={"defender": LocalSource({"DeviceProcessEvents": events})},
                        ledger=ledger, notifier=TeamsNotifier(dead.url, max_attempts=2),
                        incidents=incidents)
        summary = runner.run_once(NOW)
    outcome = summary.outcomes[0]

    assert outcome.status == "ok"  # the query worked: the hunt's own health is not at fault
    assert outcome.delivery_failed
    assert not summary.ok
    assert f"notification failed ({kind})" in (outcome.error or "")
    assert dead.sig not in (outcome.error or "")
    assert (outcome.new, outcome.posted, outcome.pending) == (3, 0, 3)
    assert len(ledger.pending(hunt(1))) == 3
    assert len(dead.posts) == (1 if kind == "permanent" else 2)


class SlowService:
    """The local engine answering as a service that takes *seconds* a query (on *clock*)."""

    name = "local"

    def __init__(self, source: LocalSource, clock: ManualClock, seconds: float):
        self._source, self._clock, self._seconds = source, clock, seconds
        self.order: list[str] = []

    def run(self, hunt: Hunt, window: Window) -> QueryResult:
        self.order.append(hunt.id)
        self._clock.sleep(self._seconds)
        return self._source.run(hunt, window)

    def close(self) -> None:
        self._source.close()


def test_a_hunt_skipped_for_time_runs_first_next_hour_and_none_is_late_twice(
        ledger: Ledger, events: Path, teams: WebhookReceiver, incidents: IncidentStore) -> None:
    clock = ManualClock()
    service = SlowService(LocalSource({"DeviceProcessEvents": events}), clock, seconds=60)
    hunts = [hunt(n) for n in range(1, 4)]
    runner = Runner(hunts=hunts, sources={"defender": service}, ledger=ledger,
                    notifier=TeamsNotifier(teams.url), incidents=incidents,
                    time_budget=timedelta(seconds=150), min_time_per_hunt=timedelta(seconds=45),
                    monotonic=clock.monotonic)
    skipped_before: set[str] = set()
    for hour in range(4):
        service.order.clear()
        summary = runner.run_once(NOW + timedelta(hours=hour))
        skipped = {o.hunt_id for o in summary.outcomes if o.status == "skipped"}
        assert len(skipped) == 1, summary.outcomes
        assert all("runs first next time" in (o.error or "") for o in summary.outcomes
                   if o.status == "skipped")
        assert not skipped & skipped_before, f"hour {hour}: a hunt was late twice in a row"
        assert set(service.order[:len(skipped_before)]) == skipped_before  # they went first
        assert [o.hunt_id for o in summary.outcomes] == [h.id for h in hunts]  # report order
        skipped_before = skipped
    assert len(teams.payloads) >= 1


def test_a_pool_of_workers_runs_every_hunt_once_and_reports_in_library_order(
        ledger: Ledger, events: Path, teams: WebhookReceiver, incidents: IncidentStore) -> None:
    hunts = [hunt(n) for n in range(1, 9)]
    runner = Runner(hunts=hunts, sources={"defender": LocalSource({"DeviceProcessEvents": events})},
                    ledger=ledger, notifier=TeamsNotifier(teams.url), incidents=incidents,
                    workers=4)
    summary = runner.run_once(NOW)
    assert [o.hunt_id for o in summary.outcomes] == [h.id for h in hunts]
    assert [(o.status, o.new) for o in summary.outcomes] == [("ok", 3)] * 8
    assert sum(o.posted for o in summary.outcomes) == 24  # every finding delivered once
    again = runner.run_once(NOW + timedelta(hours=1))
    assert sum(o.new for o in again.outcomes) == 0


def test_the_runner_on_a_pool_paces_graph_under_45_calls_a_minute_per_tenant(
        ledger: Ledger, credential: TokenCredential) -> None:
    """60 due hunts, 8 workers, the real DefenderSource against the Graph stand-in answering in
    2-20 s (x120 compressed): every hunt runs, each 60 s holds at most 45 calls."""
    clock = ScaledClock(120)
    model = ServiceModel(latency=Latency(2, 20, 5), calls=45, period=60, clock=clock)
    slots: list[float] = []
    with FakeGraph(model=model) as graph:
        graph.handler = lambda request: Reply(200, hunting_results(
            [("Timestamp", "DateTime"), ("DeviceId", "String"), ("ReportId", "Int64")], []))
        pacer = tenant_pacer(clock, record=slots)
        source = DefenderSource(credential, graph.url, pacer=pacer, clock=clock,
                                lanes=tenant_lanes("t1", pacer),
                                policy=RetryPolicy(max_attempts=4, max_total_seconds=600))
        runner = Runner(hunts=[hunt(n) for n in range(1, 61)], sources={"defender": source},
                        ledger=ledger, notifier=None, workers=8, monotonic=clock.monotonic,
                        time_budget=timedelta(hours=10))
        summary = runner.run_once(NOW)
    assert [o.status for o in summary.outcomes] == ["ok"] * 60
    assert len(slots) >= 60
    assert max_in_window(slots, 60.0) <= 45
    assert max_in_window(next(iter(model.accepted.values())), 60.0) <= 45
    assert max(slots) - min(slots) >= 60  # 60 calls cannot all fit in one minute
