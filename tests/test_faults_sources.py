"""Service faults and coverage: Graph and Log Analytics answering malformed, empty, cut-short,
partial and dripping replies; answers truncated at the row limit (split until each piece fits);
data that cannot be covered (still truncated at the smallest slice, older than the 30-day cap)
fails the run with a coverage notice. The real sources run against the local fakes."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from devtools.azurite import Azurite
from devtools.fake_graph import FakeGraph, cut_short, dripping, empty_200, json_cut_short
from devtools.fake_loganalytics import FakeLogAnalytics, logs_tables, no_tables, partial_error
from devtools.identity import IdentityServer, Reply
from devtools.webhook import WebhookReceiver
from shared.credentials import make_credential
from shared.ledger import Checkpoint
from shared.retry import RetryPolicy
from shared.sources.base import Timeouts
from shared.sources.defender import DefenderSource
from shared.sources.sentinel import SentinelSource
from tests.faults_world import BASE, Events, World, duplicates, lost, make_hunt, table_names

pytestmark = pytest.mark.faults

WORKSPACE = "11111111-2222-3333-4444-555555555555"
ONE_TRY = RetryPolicy(max_attempts=1, max_total_seconds=4)
SHORT = Timeouts(connect_seconds=2, read_seconds=3)


@pytest.fixture(autouse=True)
def identity(monkeypatch: pytest.MonkeyPatch) -> Iterator[IdentityServer]:
    with IdentityServer() as server:
        for name, value in server.env.items():
            monkeypatch.setenv(name, value)
        yield server


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as hook:
        yield hook


@pytest.fixture
def events(tmp_path: Path) -> Events:
    return Events(tmp_path / "DeviceProcessEvents.jsonl")


GRAPH_FAULTS = {
    "malformed": lambda: Reply(200, "{not json"),
    "empty": empty_200,
    "json cut short": lambda: json_cut_short(Reply(200, {"schema": [], "results": []})),
    "body cut short": lambda: cut_short(Reply(200, {"schema": [], "results": []}), 0.5),
    "reset mid-reply": lambda: cut_short(Reply(200, {"schema": [], "results": []}), 0.5,
                                         reset=True),
    "no results list": lambda: Reply(200, {"schema": []}),
    "dripping": lambda: dripping(Reply(200, {"schema": [], "results": []}), 0.5),
}


@pytest.mark.parametrize("case", list(GRAPH_FAULTS))
def test_graph_fault_fails_the_hunt_and_the_next_run_covers_its_window(
        case: str, azurite: Azurite, events: Events, webhook: WebhookReceiver) -> None:
    tokens = events.add(1, 3)
    with FakeGraph({"DeviceProcessEvents": events.path}) as graph:
        source = DefenderSource(make_credential(None), graph.url, policy=ONE_TRY, timeouts=SHORT)
        world = World(make_hunt(), {"defender": source}, webhook, azurite.connection_string,
                      table_names())
        graph.script(GRAPH_FAULTS[case]())
        first = world.run(1)
        assert not first.ok
        assert first.outcomes[0].status == "failed"
        assert first.outcomes[0].error
        assert first.outcomes[0].seconds < 10  # a dripping reply is cut at its deadline
        tokens += events.add(2, 2)
        second = world.run(2)
    assert second.ok
    assert second.outcomes[0].window_start == first.outcomes[0].window_start
    counts = world.posts_per_token(tokens)
    assert lost(counts) == []
    assert duplicates(counts) == 0


def sentinel_world(logs: FakeLogAnalytics, events: Events, webhook: WebhookReceiver,
                   connection_string: str) -> World:
    source = SentinelSource(make_credential(None), WORKSPACE, logs.url, policy=ONE_TRY)
    return World(make_hunt("sentinel"), {"sentinel": source}, webhook, connection_string,
                 table_names())


COLUMNS = [("TimeGenerated", "datetime"), ("DeviceId", "string"), ("ReportId", "long"),
           ("ProcessCommandLine", "string")]
LOGS_FAULTS = {
    "no tables": (lambda: no_tables(), "failed"),
    "no tables key": (lambda: no_tables(tables=False), "failed"),
    "malformed": (lambda: Reply(200, "{not json"), "failed"),
    "partial": (lambda: Reply(200, logs_tables(COLUMNS, [], error=partial_error(
        "memory budget exceeded"))), "partial"),
}


@pytest.mark.parametrize("case", list(LOGS_FAULTS))
def test_log_analytics_fault_never_advances_over_unseen_data(
        case: str, azurite: Azurite, events: Events, webhook: WebhookReceiver) -> None:
    tokens = events.add(1, 3, time_column="TimeGenerated")
    fault, effect = LOGS_FAULTS[case]
    with FakeLogAnalytics(WORKSPACE, {"DeviceProcessEvents": events.path}) as logs:
        world = sentinel_world(logs, events, webhook, azurite.connection_string)
        logs.script(fault())
        first = world.run(1)
        if effect == "failed":
            assert not first.ok
            assert first.outcomes[0].status == "failed"
        else:  # a partial answer: recorded, said, and asked again next run
            assert any("partial result" in w for w in first.outcomes[0].warnings)
        tokens += events.add(2, 2, time_column="TimeGenerated")
        second = world.run(2)
    assert second.ok
    assert second.outcomes[0].window_start == first.outcomes[0].window_start
    counts = world.posts_per_token(tokens)
    assert lost(counts) == []
    assert duplicates(counts) == 0


def test_a_truncated_window_is_split_until_each_piece_fits(
        azurite: Azurite, events: Events, webhook: WebhookReceiver) -> None:
    tokens = events.add(1, 9, time_column="TimeGenerated", spacing=timedelta(minutes=6))
    with FakeLogAnalytics(WORKSPACE, {"DeviceProcessEvents": events.path}, row_limit=2) as logs:
        world = sentinel_world(logs, events, webhook, azurite.connection_string)
        summary = world.run(1)
        queries = len(logs.requests)
    outcome = summary.outcomes[0]
    assert summary.ok, outcome.error
    assert outcome.truncated
    assert any("row limit" in w for w in outcome.warnings)
    assert queries > 4
    assert outcome.posted == 9
    counts = world.posts_per_token(tokens)
    assert lost(counts) == []
    assert duplicates(counts) == 0
    checkpoint = world.ledger().checkpoint(world.hunt.id)
    assert checkpoint is not None
    assert checkpoint.last_success_end == BASE + timedelta(hours=1)


def test_a_window_still_truncated_at_the_smallest_slice_fails_with_a_notice(
        azurite: Azurite, events: Events, webhook: WebhookReceiver) -> None:
    tokens = events.add(1, 3, time_column="TimeGenerated", spacing=timedelta(0))  # same second
    with FakeLogAnalytics(WORKSPACE, {"DeviceProcessEvents": events.path}, row_limit=1) as logs:
        world = sentinel_world(logs, events, webhook, azurite.connection_string)
        summary = world.run(1)
        logs.row_limit = 10  # the query was narrowed (or the limit raised): covered at last
        later = world.run(2)
    outcome = summary.outcomes[0]
    assert not summary.ok
    assert outcome.status == "failed"
    assert outcome.error_kind == "coverage"
    assert "still truncated" in (outcome.error or "")
    notices = world.notices()
    assert len(notices) == 1
    assert "data not covered" in notices[0]
    checkpoint_window = later.outcomes[0].window_start
    assert checkpoint_window is not None
    assert checkpoint_window <= "2026-11-27T00:57:00Z"  # asked again from the uncovered slice
    assert later.ok
    counts = world.posts_per_token(tokens)
    assert lost(counts) == []


def test_data_older_than_the_catch_up_cap_is_reported_not_dropped_silently(
        azurite: Azurite, events: Events, webhook: WebhookReceiver) -> None:
    tokens = events.add(24 * 35, 2, time_column="TimeGenerated")
    with FakeLogAnalytics(WORKSPACE, {"DeviceProcessEvents": events.path}) as logs:
        world = sentinel_world(logs, events, webhook, azurite.connection_string)
        world.ledger().save_checkpoint(Checkpoint(world.hunt.id, last_success_end=BASE,
                                                  last_run_start=BASE))
        summary = world.run(24 * 35)
        again = world.run(24 * 35 + 1)
    outcome = summary.outcomes[0]
    assert not summary.ok
    assert outcome.error_kind == "coverage"
    assert "30-day catch-up limit" in (outcome.error or "")
    assert outcome.posted == 2  # what could be covered still went out
    assert len(world.notices()) == 1
    assert again.ok  # reported once; the next run starts at the covered data
    assert lost(world.posts_per_token(tokens)) == []
