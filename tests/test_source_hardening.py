"""Issue 24 #12: replies the sources must refuse cleanly, and settings refused at load.

Real sources (azure-identity, requests, azure-monitor-query) against the local stand-ins."""

from __future__ import annotations

import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from azure.core.credentials import TokenCredential

from devtools.clock import ManualClock
from devtools.fake_graph import FakeGraph, hunting_results
from devtools.fake_loganalytics import FakeLogAnalytics
from devtools.identity import Reply
from shared.hunt import Hunt
from shared.retry import RetryPolicy
from shared.settings import SettingsError, load_settings
from shared.sources.base import QueryError
from shared.sources.defender import DefenderSource
from shared.sources.sentinel import SentinelSource
from shared.window import Window

WORKSPACE = "5e0c1b2a-0000-4000-8000-00000000beef"
WINDOW = Window(datetime(2026, 11, 20, 8, 0, tzinfo=UTC), datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
POLICY = RetryPolicy(max_attempts=4, max_total_seconds=120, base_delay=2, max_delay=30)
DEEP = "[" * 5000 + "]" * 5000
WEBHOOK = "https://prod-00.westeurope.logic.azure.com/workflows/abc/triggers/manual?sig=SECRET"


def hunt(source: str) -> Hunt:
    return Hunt(id="3f6c1a52-0000-4000-8000-000000000001", name="h", query="T | take 1",
                source=source, path=Path("h.yaml"))  # type: ignore[arg-type]


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    with FakeGraph() as server:
        yield server


@pytest.fixture
def logs() -> Iterator[FakeLogAnalytics]:
    with FakeLogAnalytics(WORKSPACE) as server:
        yield server


def defender(credential: TokenCredential, graph: FakeGraph, clock: ManualClock) -> DefenderSource:
    return DefenderSource(credential, graph.url, policy=POLICY, clock=clock,
                          rng=random.Random(3))


def sentinel(credential: TokenCredential, logs: FakeLogAnalytics,
             clock: ManualClock) -> SentinelSource:
    return SentinelSource(credential, WORKSPACE, logs.url, policy=POLICY, clock=clock,
                          rng=random.Random(3))


def test_a_graph_row_with_none_of_the_schema_columns_is_malformed_not_a_row_of_nulls(
        credential: TokenCredential, graph: FakeGraph) -> None:
    schema = [("Timestamp", "DateTime"), ("DeviceId", "String")]
    graph.handler = lambda request: Reply(200, hunting_results(
        schema, [{"Timestamp": "2026-11-20T09:00:00Z", "DeviceId": "d1"},
                 {"foo": 1, "bar": "x"}]))
    with pytest.raises(QueryError) as caught:
        defender(credential, graph, ManualClock()).run(hunt("defender"), WINDOW)
    assert caught.value.reason == "malformed"
    assert "row 2" in caught.value.message
    assert "none of the schema" in caught.value.message


def test_a_graph_row_missing_some_columns_still_reads_them_as_null(
        credential: TokenCredential, graph: FakeGraph) -> None:
    schema = [("Timestamp", "DateTime"), ("DeviceId", "String")]
    graph.script(Reply(200, hunting_results(schema, [{"deviceid": "d1"}])))
    result = defender(credential, graph, ManualClock()).run(hunt("defender"), WINDOW)
    assert result.rows == [{"Timestamp": None, "DeviceId": "d1"}]


@pytest.mark.parametrize("body", [
    '{"schema": [{"name": "A", "type": "String"}], "results": ' + DEEP + "}",
    DEEP,
], ids=["results", "whole-body"])
def test_graph_json_nested_5000_deep_is_a_clean_malformed_error(
        credential: TokenCredential, graph: FakeGraph, body: str) -> None:
    graph.handler = lambda request: Reply(200, body, {"Content-Type": "application/json"})
    with pytest.raises(QueryError) as caught:
        defender(credential, graph, ManualClock()).run(hunt("defender"), WINDOW)
    assert caught.value.reason == "malformed"


def test_a_dynamic_cell_nested_too_deep_to_parse_stays_text(
        credential: TokenCredential, graph: FakeGraph) -> None:
    body = '{"schema": [{"name": "A", "type": "Object"}], "results": [{"A": "' + DEEP + '"}]}'
    graph.handler = lambda request: Reply(200, body, {"Content-Type": "application/json"})
    result = defender(credential, graph, ManualClock()).run(hunt("defender"), WINDOW)
    assert result.rows == [{"A": DEEP}]


def test_log_analytics_json_nested_5000_deep_is_a_clean_malformed_error(
        credential: TokenCredential, logs: FakeLogAnalytics) -> None:
    body = '{"tables": [{"name": "PrimaryResult", "columns": [], "rows": ' + DEEP + "}]}"
    logs.handler = lambda request: Reply(200, body, {"Content-Type": "application/json"})
    with pytest.raises(QueryError) as caught:
        sentinel(credential, logs, ManualClock()).run(hunt("sentinel"), WINDOW)
    assert caught.value.reason == "malformed"
    assert "nested too deep" in caught.value.message


@pytest.mark.parametrize("body", [None, "upstream connect error", "<html>502</html>"])
def test_log_analytics_500_forever_backs_off_between_attempts(
        credential: TokenCredential, logs: FakeLogAnalytics, body: str | None) -> None:
    clock = ManualClock()
    logs.handler = lambda request: Reply(500, body, {"Content-Type": "text/plain"})
    with pytest.raises(QueryError) as caught:
        sentinel(credential, logs, clock).run(hunt("sentinel"), WINDOW)
    assert caught.value.status == 500
    assert caught.value.reason == "unavailable"
    assert "4 attempt" in caught.value.message
    assert len(logs.requests) == 4
    assert len(clock.sleeps) == 3
    assert all(pause >= 1.0 for pause in clock.sleeps)
    assert clock.sleeps[2] > clock.sleeps[0]  # exponential


def test_log_analytics_403_with_a_body_that_is_not_json_is_final(
        credential: TokenCredential, logs: FakeLogAnalytics) -> None:
    logs.handler = lambda request: Reply(403, "denied", {"Content-Type": "text/plain"})
    with pytest.raises(QueryError) as caught:
        sentinel(credential, logs, ManualClock()).run(hunt("sentinel"), WINDOW)
    assert (caught.value.status, caught.value.retryable) == (403, False)
    assert len(logs.requests) == 1


def test_a_webhook_with_a_space_in_its_host_is_refused_at_load_in_one_line(
        tmp_path: Path) -> None:
    env = {"HUNTWIRE_STORAGE": "UseDevelopmentStorage=true", "HUNTWIRE_HUNTS_DIR": str(tmp_path),
           "HUNTWIRE_TEAMS_WEBHOOK_URL": WEBHOOK.replace("prod-00.", "prod 00.")}
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    assert len(caught.value.problems) == 1
    problem = caught.value.problems[0]
    assert problem.startswith("HUNTWIRE_TEAMS_WEBHOOK_URL:")
    assert "\n" not in problem
    assert "SECRET" not in problem
    assert "prod 00" not in problem


@pytest.mark.parametrize("host", ["exa\tmple.com", "exa\x01mple.com", "ex_ample..com", "-x.com"])
def test_hosts_that_are_not_host_names_are_refused(tmp_path: Path, host: str) -> None:
    env = {"HUNTWIRE_STORAGE": "UseDevelopmentStorage=true", "HUNTWIRE_HUNTS_DIR": str(tmp_path),
           "HUNTWIRE_GRAPH_ENDPOINT": f"https://{host}"}
    with pytest.raises(SettingsError, match="HUNTWIRE_GRAPH_ENDPOINT"):
        load_settings(env)


def test_a_token_credential_over_plain_http_storage_is_a_configuration_error(
        tmp_path: Path) -> None:
    """The storage SDK refuses tokens over http even on loopback (it raised a ValueError
    traceback when the ledger was built); settings say so instead."""
    env = {"HUNTWIRE_STORAGE__tableServiceUri": "http://127.0.0.1:10002/devstoreaccount1",
           "HUNTWIRE_HUNTS_DIR": str(tmp_path)}
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    assert caught.value.problems == [caught.value.problems[0]]
    assert caught.value.problems[0].startswith("HUNTWIRE_STORAGE__tableServiceUri:")
    assert "https" in caught.value.problems[0]
