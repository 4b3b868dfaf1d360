"""Slow and hanging storage end the run inside its time budget (red team #10): every storage call
of a run counts against the run's deadline, so the run stops with a clear failure, nothing is
lost (findings stay pending or unrecorded, the checkpoint stays before them) and the next run
delivers them. Real Runner, ledger, incident store, local engine and Teams receiver; Azurite
behind devtools.fault_proxy holding each request (slow) or never answering (hanging)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from devtools.azurite import Azurite
from devtools.fault_proxy import FaultProxy
from devtools.webhook import WebhookReceiver
from shared.runner import Runner, RunSummary
from shared.sources.local import LocalSource
from tests.faults_world import (
    BASE,
    Events,
    World,
    duplicates,
    fast_notifier,
    lost,
    make_hunt,
    table_names,
)

pytestmark = pytest.mark.faults

BUDGET = 3.0
"""The run's time budget in these tests (seconds)."""
SLACK = 1.5
"""What a run may take past its budget: the last, cut-short call and the bookkeeping after it."""


@pytest.fixture
def events(tmp_path: Path) -> Events:
    return Events(tmp_path / "DeviceProcessEvents.jsonl")


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as hook:
        yield hook


def budget_run(world: World, hour: float, connection_string: str,
               budget: float = BUDGET) -> tuple[RunSummary, float]:
    """One run held to *budget* seconds, as the function's timer runs it; (summary, seconds)."""
    storage = world.storage(connection_string)
    runner = Runner(hunts=[world.hunt], sources=world.sources, ledger=world.ledger(storage),
                    notifier=fast_notifier(world.webhook.url),
                    incidents=world.incidents(storage), storage=storage,
                    time_budget=timedelta(seconds=budget),
                    min_time_per_hunt=timedelta(seconds=0.1))
    started = time.monotonic()
    summary = runner.run_once(BASE + timedelta(hours=hour))
    world.summaries.append(summary)
    return summary, time.monotonic() - started


def world_for(events: Events, webhook: WebhookReceiver, connection_string: str) -> World:
    return World(make_hunt(), {"defender": LocalSource({"DeviceProcessEvents": events.path})},
                 webhook, connection_string, table_names())


def test_hanging_storage_ends_the_run_at_its_deadline_and_loses_nothing(
        azurite: Azurite, events: Events, webhook: WebhookReceiver) -> None:
    with FaultProxy(azurite.port) as proxy:
        world = world_for(events, webhook, proxy.connection_string)
        tokens = events.add(1, 5)
        proxy.hang = True
        summary, seconds = budget_run(world, 1, proxy.connection_string)
        assert seconds < BUDGET + SLACK, f"a hanging account kept the run {seconds:.1f} s"
        assert not summary.ok
        (outcome,) = summary.outcomes
        assert outcome.status == "failed"
        assert outcome.error_kind == "storage-deadline"
        assert "time budget is spent" in (outcome.error or "")
        assert world.posts_per_token(tokens) == dict.fromkeys(tokens, 0)
        proxy.hang = False
        recovered, _ = budget_run(world, 2, proxy.connection_string, budget=60)
        assert recovered.ok, recovered.outcomes
    counts = world.posts_per_token(tokens)
    assert lost(counts) == []
    assert duplicates(counts) == 0


def test_slow_storage_stops_at_the_deadline_and_the_next_runs_deliver_everything(
        azurite: Azurite, events: Events, webhook: WebhookReceiver) -> None:
    with FaultProxy(azurite.port) as proxy:
        world = world_for(events, webhook, proxy.connection_string)
        first = events.add(0, 6)
        fast, _ = budget_run(world, 0, proxy.connection_string, budget=60)
        assert fast.ok
        requests = fast.storage_requests
        assert requests > 0
        tokens = first + events.add(1, 6)
        proxy.delay = BUDGET / requests * 3  # the run would need three budgets
        summary, seconds = budget_run(world, 1, proxy.connection_string)
        assert seconds < BUDGET + SLACK + proxy.delay, f"slow storage: run took {seconds:.1f} s"
        assert not summary.ok
        assert any("time budget is spent" in (o.error or "") for o in summary.outcomes)
        proxy.delay = 0.0
        for hour in (2, 3):  # a lease the slow run took expires within the next hour
            budget_run(world, hour, proxy.connection_string, budget=60)
    assert world.summaries[-1].ok
    counts = world.posts_per_token(tokens)
    assert lost(counts) == []
    assert duplicates(counts) <= sum(o.posted for s in world.summaries for o in s.outcomes
                                     if o.status == "failed")
    print(f"storage requests of a run with 1 hunt and {len(first)} new findings: {requests}")
