"""What every remote query source promises, tested once over Defender (local Graph) and Sentinel
(local Log Analytics): retries, time bounds, faulty replies, refusals and their reasons.

Tokens come from a local managed-identity endpoint; requests, azure-identity and
azure-monitor-query run for real. Source-specific behaviour stays in test_source_<name>.py.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import TokenCredential

from devtools import fake_graph, fake_loganalytics
from devtools.fake_graph import FakeGraph, cut_short, dripping, empty_200, json_cut_short
from devtools.fake_loganalytics import FakeLogAnalytics
from devtools.identity import IdentityServer, Reply, ScriptedService
from shared.credentials import make_credential
from shared.hunt import Hunt
from shared.retry import RetryPolicy
from shared.sources.base import QueryError, QuerySource, Timeouts, close_sources
from shared.sources.base import cut_short as cut_short_json
from shared.sources.catalog import source_kind
from shared.sources.defender import DefenderSource
from shared.sources.sentinel import SentinelSource
from shared.window import Window

WORKSPACE = "5e0c1b2a-0000-4000-8000-00000000beef"
WINDOW = Window(datetime(2026, 11, 20, 8, 0, tzinfo=UTC), datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
FAST = RetryPolicy(max_attempts=4, max_total_seconds=60, base_delay=0.5, max_delay=4)
QUICK = RetryPolicy(base_delay=0.01, max_delay=0.01)


class ManualClock:
    """Time that moves only when someone sleeps: waits are recorded, never really taken."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


@dataclass
class Kind:
    """How to script one source's fake service and build the source against it."""

    name: str
    serve: Callable[[str | None], ScriptedService]
    """A fake service accepting tokens for this audience (None: its own URL)."""
    build: Callable[..., QuerySource]
    """(credential, server, read_timeout_seconds=None, **options) -> source"""
    ok: Callable[[int], Reply]
    error: Callable[..., Reply]
    """(status, code, message, headers=None) -> Reply"""
    bad_query: Callable[[str], tuple[Reply, str]]
    """A 400 for this message, and the text the error must show."""
    throttle_code: str
    denied_code: str
    no_answer: str
    no_token: str
    grant: str


def _graph_build(credential: TokenCredential, server: ScriptedService,
                 read_timeout_seconds: float | None = None, **options: Any) -> QuerySource:
    if read_timeout_seconds is not None:
        options["timeouts"] = Timeouts(connect_seconds=2, read_seconds=read_timeout_seconds)
    return DefenderSource(credential, server.url, rng=random.Random(7), **options)


def _logs_build(credential: TokenCredential, server: ScriptedService,
                read_timeout_seconds: float | None = None, **options: Any) -> QuerySource:
    return SentinelSource(credential, WORKSPACE, server.url, rng=random.Random(7),
                          read_timeout_seconds=read_timeout_seconds, **options)


def _graph_ok(rows: int) -> Reply:
    return Reply(200, fake_graph.hunting_results(
        [("DeviceId", "String"), ("ReportId", "Int64")],
        [{"DeviceId": f"dev-{i}", "ReportId": i} for i in range(rows)]))


def _logs_ok(rows: int) -> Reply:
    return Reply(200, fake_loganalytics.logs_tables([("DeviceId", "string"), ("ReportId", "long")],
                                                    [[f"dev-{i}", i] for i in range(rows)]))


def _graph_bad_query(message: str) -> tuple[Reply, str]:
    return fake_graph.graph_error(400, "BadRequest", message), f"BadRequest: {message}"


def _logs_bad_query(message: str) -> tuple[Reply, str]:
    reply = fake_loganalytics.logs_error(400, "BadArgumentError", "The request had some invalid "
                                         "properties", inner=("SyntaxError", message))
    return reply, f"BadArgumentError: {message}"


DEFENDER = Kind("defender", lambda audience: FakeGraph(audience=audience), _graph_build, _graph_ok,
                fake_graph.graph_error, _graph_bad_query, "TooManyRequests", "Invalid audience",
                "no answer from Graph within the timeout", "no token for",
                "ThreatHunting.Read.All")
SENTINEL = Kind("sentinel", lambda audience: FakeLogAnalytics(WORKSPACE, audience=audience),
                _logs_build, _logs_ok, fake_loganalytics.logs_error, _logs_bad_query,
                "ThrottledError", "InvalidTokenError", "no answer from Log Analytics",
                "no token for Log Analytics", "Log Analytics Reader")


def hunt(kind: Kind) -> Hunt:
    return Hunt(id="3f6c1a52-0000-4000-8000-000000000001", name="Contract hunt",
                query="DeviceProcessEvents | project DeviceId, ReportId", source=kind.name,
                path=Path("hunts/contract.yaml"))


@pytest.fixture(params=[DEFENDER, SENTINEL], ids=lambda kind: kind.name)
def kind(request: pytest.FixtureRequest) -> Kind:
    value: Kind = request.param
    return value


@pytest.fixture
def server(kind: Kind) -> Iterator[ScriptedService]:
    with kind.serve(None) as service:
        yield service


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def source(kind: Kind, credential: TokenCredential, server: ScriptedService,
           clock: ManualClock | None = None, **options: Any) -> QuerySource:
    options.setdefault("policy", FAST)
    if clock is not None:
        options["clock"] = clock
    return kind.build(credential, server, **options)


def throttled(kind: Kind, retry_after: str | None) -> Reply:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return kind.error(429, kind.throttle_code, "Too many requests", headers=headers)


# --- throttling and server errors ---------------------------------------------------------------

def test_429_then_success_waits_as_retry_after_says(kind: Kind, credential: TokenCredential,
                                                    server: ScriptedService,
                                                    clock: ManualClock) -> None:
    server.script(throttled(kind, "7"), kind.ok(1))

    result = source(kind, credential, server, clock).run(hunt(kind), WINDOW)

    assert result.rows == [{"DeviceId": "dev-0", "ReportId": 0}]
    assert result.stats["attempts"] == 2
    assert clock.sleeps == [7.0]
    assert len(server.requests) == 2


def test_429_forever_gives_up_after_max_attempts(kind: Kind, credential: TokenCredential,
                                                 server: ScriptedService,
                                                 clock: ManualClock) -> None:
    server.script(*[throttled(kind, "2")] * 10)

    with pytest.raises(QueryError) as raised:
        source(kind, credential, server, clock, policy=RetryPolicy(max_attempts=3)).run(
            hunt(kind), WINDOW)

    assert raised.value.status == 429
    assert raised.value.retryable
    assert raised.value.reason == "throttled"
    assert "3 attempt" in raised.value.message
    assert kind.throttle_code in raised.value.message
    assert len(server.requests) == 3
    assert clock.sleeps == [2.0, 2.0]


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_server_errors_are_retried(kind: Kind, credential: TokenCredential,
                                   server: ScriptedService, clock: ManualClock,
                                   status: int) -> None:
    server.script(kind.error(status, "ServiceUnavailable", "Try again later"), kind.ok(1))

    result = source(kind, credential, server, clock).run(hunt(kind), WINDOW)

    assert result.stats["attempts"] == 2
    assert len(server.requests) == 2
    assert len(clock.sleeps) == 1


@pytest.mark.parametrize(("status", "code"), [(500, "InternalServerError"),
                                              (503, "ServiceUnavailableError")])
def test_server_errors_forever_are_retryable_with_the_service_message(
        kind: Kind, credential: TokenCredential, server: ScriptedService, clock: ManualClock,
        status: int, code: str) -> None:
    server.script(*[kind.error(status, code, "Something broke")] * 4)

    with pytest.raises(QueryError) as raised:
        source(kind, credential, server, clock).run(hunt(kind), WINDOW)

    assert raised.value.status == status
    assert raised.value.retryable
    assert not raised.value.permanent
    assert raised.value.reason == "unavailable"
    assert f"{code}: Something broke" in raised.value.message
    assert len(server.requests) == FAST.max_attempts


# --- time bounds -----------------------------------------------------------------------------

def test_a_stalled_answer_times_out_and_is_retried(kind: Kind, credential: TokenCredential,
                                                   server: ScriptedService) -> None:
    server.script(Reply(200, {}, delay_seconds=30), kind.ok(1))

    result = source(kind, credential, server, read_timeout_seconds=0.2, policy=QUICK).run(
        hunt(kind), WINDOW)

    assert result.stats["attempts"] == 2
    assert len(server.requests) == 2


def test_timeouts_forever_give_up_as_retryable(kind: Kind, credential: TokenCredential,
                                               server: ScriptedService) -> None:
    server.script(*[Reply(200, {}, delay_seconds=30)] * 2)
    policy = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.01)

    with pytest.raises(QueryError) as raised:
        source(kind, credential, server, read_timeout_seconds=0.2, policy=policy).run(
            hunt(kind), WINDOW)

    assert raised.value.retryable
    assert raised.value.status is None
    assert raised.value.reason == "timeout"
    assert kind.no_answer in raised.value.message


def test_a_dripping_reply_is_cut_off_at_the_budget_not_per_read(
        kind: Kind, credential: TokenCredential, server: ScriptedService) -> None:
    server.script(dripping(kind.ok(20), seconds_per_byte=0.1), kind.ok(1))
    policy = RetryPolicy(max_attempts=3, max_total_seconds=1.5, base_delay=0.01, max_delay=0.01)
    started = time.monotonic()

    with pytest.raises(QueryError) as raised:
        source(kind, credential, server, read_timeout_seconds=1.0, policy=policy).run(
            hunt(kind), WINDOW)

    elapsed = time.monotonic() - started
    assert elapsed < 3.0, f"a reply dripping for ~{len(kind.ok(20).encoded()[0]) / 10:.0f} s " \
                          f"held the hunt {elapsed:.1f} s"
    assert raised.value.retryable
    assert raised.value.reason == "timeout"
    assert "whole reply" in raised.value.message
    assert len(server.requests) == 1, "no time was left for another try"


@pytest.mark.parametrize("fault", ["cut short", "reset mid-reply", "JSON cut short", "empty"])
def test_a_reply_broken_in_transit_is_retried(kind: Kind, credential: TokenCredential,
                                              server: ScriptedService, clock: ManualClock,
                                              fault: str) -> None:
    whole = kind.ok(50)
    broken = {"cut short": cut_short(whole), "reset mid-reply": cut_short(whole, reset=True),
              "JSON cut short": json_cut_short(whole), "empty": empty_200()}[fault]
    server.script(broken, kind.ok(2))

    result = source(kind, credential, server, clock).run(hunt(kind), WINDOW)

    assert result.stats["attempts"] == 2
    assert len(result.rows) == 2
    assert len(server.requests) == 2


def test_a_reply_broken_every_time_gives_up_as_transient(kind: Kind, credential: TokenCredential,
                                                         server: ScriptedService,
                                                         clock: ManualClock) -> None:
    server.script(*[cut_short(kind.ok(50), reset=True)] * 4)

    with pytest.raises(QueryError) as raised:
        source(kind, credential, server, clock).run(hunt(kind), WINDOW)

    assert raised.value.retryable
    assert raised.value.reason == "unavailable"
    assert len(server.requests) == FAST.max_attempts


# --- answers that are final for this run --------------------------------------------------------

@pytest.mark.parametrize("content_type", [None, "application/json", "text/html"])
def test_malformed_json_is_reported_and_not_retried(kind: Kind, credential: TokenCredential,
                                                    server: ScriptedService,
                                                    content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    server.script(Reply(200, "<html>upstream proxy error</html>", headers))

    with pytest.raises(QueryError) as raised:
        source(kind, credential, server).run(hunt(kind), WINDOW)

    assert raised.value.status == 200
    assert raised.value.retryable
    assert raised.value.reason == "malformed"
    assert "not JSON" in raised.value.message
    assert len(server.requests) == 1


@pytest.mark.parametrize("message", [
    "Query could not be parsed at 'whre' on line [1,22]",
    "Query execution has exceeded the allowed result size. Optimize your query by limiting the "
    "number of results and try again.",
])
def test_400_reports_the_service_message_without_retrying(kind: Kind, credential: TokenCredential,
                                                          server: ScriptedService,
                                                          message: str) -> None:
    reply, shown = kind.bad_query(message)
    server.script(reply)

    with pytest.raises(QueryError) as raised:
        source(kind, credential, server).run(hunt(kind), WINDOW)

    assert raised.value.status == 400
    assert not raised.value.retryable
    assert raised.value.permanent
    assert raised.value.reason == "bad-query"
    assert shown in raised.value.message
    assert len(server.requests) == 1


def test_an_unknown_table_is_a_permanent_failure(kind: Kind, credential: TokenCredential,
                                                 server: ScriptedService) -> None:
    reply, _ = kind.bad_query("'where' operator: Failed to resolve table expression named "
                              "'DeviceNopeEvents'")
    server.script(reply)

    with pytest.raises(QueryError) as raised:
        source(kind, credential, server).run(hunt(kind), WINDOW)

    assert raised.value.permanent
    assert raised.value.reason == "unknown-table"


# --- tokens and permissions -----------------------------------------------------------------------

def test_wrong_token_audience_is_refused_with_401(kind: Kind, credential: TokenCredential) -> None:
    with kind.serve("https://service.example") as server:
        with pytest.raises(QueryError) as raised:
            source(kind, credential, server).run(hunt(kind), WINDOW)
        token = server.requests[0].headers["authorization"].removeprefix("Bearer ")

    assert raised.value.status == 401
    assert not raised.value.retryable
    assert raised.value.reason == "forbidden"
    assert kind.denied_code in raised.value.message
    assert kind.grant in raised.value.message, "says what to grant the identity"
    assert token not in str(raised.value)


def test_403_names_the_permission_to_grant(kind: Kind, credential: TokenCredential,
                                           server: ScriptedService) -> None:
    server.script(kind.error(403, "Forbidden", "Insufficient privileges"))

    with pytest.raises(QueryError) as raised:
        source(kind, credential, server).run(hunt(kind), WINDOW)

    assert raised.value.permanent
    assert raised.value.reason == "forbidden"
    assert kind.grant in raised.value.message
    assert "Insufficient privileges" in raised.value.message


def test_audience_option_asks_for_the_named_resource(kind: Kind, credential: TokenCredential,
                                                     identity: IdentityServer) -> None:
    with kind.serve("https://service.example") as server:
        server.script(kind.ok(1))
        result = source(kind, credential, server, audience="https://service.example").run(
            hunt(kind), WINDOW)

    assert len(result.rows) == 1
    assert [g.resource for g in identity.grants] == ["https://service.example"]


def test_no_token_is_a_retryable_error_that_hides_the_identity_header(
        kind: Kind, identity: IdentityServer, server: ScriptedService,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDENTITY_HEADER", "not-the-secret-header")

    with pytest.raises(QueryError) as raised:
        source(kind, make_credential(None), server).run(hunt(kind), WINDOW)

    assert raised.value.retryable
    assert raised.value.reason == "no-token"
    assert kind.no_token in raised.value.message
    assert "not-the-secret-header" not in str(raised.value)
    assert identity.identity_header not in str(raised.value)
    assert server.requests == []


# --- the registry and closing -------------------------------------------------------------------

def test_each_source_is_registered_under_its_name(kind: Kind, credential: TokenCredential,
                                                  server: ScriptedService) -> None:
    built = source(kind, credential, server)
    registered = source_kind(kind.name)

    assert built.name == registered.name == kind.name
    assert registered.time_column in ("Timestamp", "TimeGenerated")


def test_a_closed_source_releases_its_connections_and_can_run_again(
        kind: Kind, credential: TokenCredential, server: ScriptedService) -> None:
    server.script(kind.ok(1), kind.ok(1))
    built = source(kind, credential, server)
    built.run(hunt(kind), WINDOW)

    close_sources([built, built])
    result = built.run(hunt(kind), WINDOW)

    assert len(result.rows) == 1
    assert len(server.requests) == 2


def test_json_cut_at_any_point_is_told_from_text_that_is_not_json() -> None:
    import json

    document = json.dumps({"tables": [{"name": "Primary\u00e9", "rows": [
        ["dev-1", -1.5e3, None, True, False, {"k": "v\\\""}]]}]})
    for end in range(len(document)):
        with pytest.raises(json.JSONDecodeError) as raised:
            json.loads(document[:end])
        assert cut_short_json(raised.value), f"cut at {end}: {document[:end]!r}"
    for text in ("<html>gateway</html>", "{\"a\": 1} trailing", "nope"):
        with pytest.raises(json.JSONDecodeError) as raised:
            json.loads(text)
        assert not cut_short_json(raised.value), text
