"""DefenderSource against a local Graph runHuntingQuery server, with tokens from a local
managed-identity endpoint: azure-identity and requests run for real; only the services are local.

Also the retry policy, Retry-After parsing, the call pacer and make_credential they rely on.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import TokenCredential
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential

from devtools.clock import ManualClock
from devtools.fake_graph import HUNTING_PATH, FakeGraph, graph_error, hunting_results, throttled
from devtools.identity import IdentityServer, Reply, Request, token_audience
from shared.credentials import https_required, make_credential
from shared.hunt import Hunt
from shared.retry import (
    CallPacer,
    PacerTimeout,
    RetryPolicy,
    parse_retry_after,
)
from shared.sources.base import QueryError
from shared.sources.defender import ROW_LIMIT, DefenderSource
from shared.window import Window

WINDOW = Window(datetime(2026, 11, 20, 8, 0, tzinfo=UTC), datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
QUERY = "DeviceProcessEvents | where FileName =~ 'powershell.exe' | project Timestamp, DeviceId"
FAST = RetryPolicy(max_attempts=4, max_total_seconds=60, base_delay=0.5, max_delay=4)


def hunt(query: str = QUERY) -> Hunt:
    return Hunt(id="3f6c1a52-0000-4000-8000-000000000001", name="PowerShell", query=query,
                source="defender", path=Path("hunts/powershell.yaml"))


def ok(rows: int = 1) -> Reply:
    return Reply(200, hunting_results([("DeviceId", "String"), ("ReportId", "Int64")],
                                      [{"DeviceId": f"dev-{i}", "ReportId": i}
                                       for i in range(rows)]))


@pytest.fixture
def graph() -> Iterator[FakeGraph]:
    with FakeGraph() as server:
        yield server


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def source(credential: TokenCredential, graph: FakeGraph, clock: ManualClock | None = None,
           **options: Any) -> DefenderSource:
    options.setdefault("policy", FAST)
    if clock is not None:
        options["clock"] = clock
    return DefenderSource(credential, graph.url, rng=random.Random(7), **options)


# --- success and the wire format --------------------------------------------------------------

EVERY_TYPE = [("Timestamp", "DateTime"), ("DeviceName", "String"), ("ReportId", "Int64"),
              ("Port", "Int32"), ("IsElevated", "Boolean"), ("Score", "Double"),
              ("AdditionalFields", "Object"), ("DeviceGuid", "Guid"), ("Elapsed", "TimeSpan"),
              ("Flag", "SByte")]
FULL_ROW = {"Timestamp": "2026-11-20T09:39:50.7688641Z", "DeviceName": "pc-1",
            "ReportId": 9007199254740993, "Port": 443, "IsElevated": True, "Score": 0.25,
            "AdditionalFields": "{\"Command\": \"Invoke-Expression\", \"Count\": 2}",
            "DeviceGuid": "7c3e1c2a-1b7e-4d8a-9d33-0c4a6c1f2e11", "Elapsed": "00:05:00",
            "Flag": 1}
NULL_ROW = dict.fromkeys(FULL_ROW)


@pytest.mark.parametrize("key_case", ["lower", "pascal"])
def test_every_column_type_is_converted(credential: TokenCredential, graph: FakeGraph,
                                        key_case: str) -> None:
    graph.script(Reply(200, hunting_results(EVERY_TYPE, [FULL_ROW, NULL_ROW], key_case=key_case)))

    result = source(credential, graph).run(hunt(), WINDOW)

    assert [(c.name, c.type) for c in result.columns] == [
        ("Timestamp", "datetime"), ("DeviceName", "string"), ("ReportId", "long"),
        ("Port", "int"), ("IsElevated", "bool"), ("Score", "real"),
        ("AdditionalFields", "dynamic"), ("DeviceGuid", "guid"), ("Elapsed", "timespan"),
        ("Flag", "bool")]
    assert result.rows[0] == {
        "Timestamp": datetime(2026, 11, 20, 9, 39, 50, 768864, tzinfo=UTC),
        "DeviceName": "pc-1", "ReportId": 9007199254740993, "Port": 443, "IsElevated": True,
        "Score": 0.25, "AdditionalFields": {"Command": "Invoke-Expression", "Count": 2},
        "DeviceGuid": "7c3e1c2a-1b7e-4d8a-9d33-0c4a6c1f2e11", "Elapsed": "00:05:00",
        "Flag": True}
    assert result.rows[1] == NULL_ROW
    assert not result.truncated
    assert not result.partial


def test_request_matches_the_documented_wire_format(credential: TokenCredential,
                                                    graph: FakeGraph,
                                                    identity: IdentityServer) -> None:
    graph.script(ok())

    source(credential, graph).run(hunt("DeviceEvents | where AccountName == 'Jürgen'"), WINDOW)

    [request] = graph.requests
    assert (request.method, request.path) == ("POST", HUNTING_PATH)
    assert request.headers["content-type"] == "application/json; charset=utf-8"
    assert request.json() == {"Query": "DeviceEvents | where AccountName == 'Jürgen'",
                              "Timespan": "2026-11-20T08:00:00Z/2026-11-20T12:00:00Z"}
    assert "Jürgen".encode() in request.body, "non-ANSI text is sent as UTF-8, as the docs ask"
    assert token_audience(request.headers["authorization"]) == graph.url
    assert [grant.resource for grant in identity.grants] == [graph.url]


def test_user_assigned_identity_is_asked_for_by_client_id(monkeypatch: pytest.MonkeyPatch,
                                                          graph: FakeGraph) -> None:
    with IdentityServer(client_ids={"1b2c3d4e-0000-4000-8000-0000000000aa"}) as identity:
        for name, value in identity.env.items():
            monkeypatch.setenv(name, value)
        graph.script(ok())
        credential = make_credential("1b2c3d4e-0000-4000-8000-0000000000aa")

        source(credential, graph).run(hunt(), WINDOW)

        assert [g.client_id for g in identity.grants] == ["1b2c3d4e-0000-4000-8000-0000000000aa"]


def test_local_engine_answers_with_real_rows_inside_the_window(credential: TokenCredential,
                                                               tmp_path: Path) -> None:
    events = tmp_path / "DeviceProcessEvents.jsonl"
    lines = [{"Timestamp": when, "DeviceId": device, "ReportId": report,
              "FileName": "powershell.exe"}
             for when, device, report in [("2026-11-20T09:00:00Z", "dev-in", 1),
                                          ("2026-11-20T07:00:00Z", "dev-before", 2),
                                          ("2026-11-20T12:30:00Z", "dev-after", 3)]]
    events.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    with FakeGraph({"DeviceProcessEvents": events}) as graph:
        result = source(credential, graph).run(hunt(), WINDOW)

    assert result.rows == [{"Timestamp": datetime(2026, 11, 20, 9, 0, tzinfo=UTC),
                            "DeviceId": "dev-in"}]
    assert [(c.name, c.type) for c in result.columns] == [("Timestamp", "datetime"),
                                                          ("DeviceId", "string")]


# --- throttling, server errors, timeouts -------------------------------------------------------

def test_429_without_retry_after_backs_off_exponentially_with_jitter(
        credential: TokenCredential, graph: FakeGraph, clock: ManualClock) -> None:
    graph.script(throttled(retry_after=None), throttled(retry_after=None), ok())

    source(credential, graph, clock).run(hunt(), WINDOW)

    first, second = clock.sleeps
    assert 0.25 <= first <= 0.5
    assert 0.5 <= second <= 1.0


def test_retry_after_beyond_the_budget_gives_up_without_waiting(
        credential: TokenCredential, graph: FakeGraph, clock: ManualClock) -> None:
    graph.script(throttled(retry_after="900"))

    with pytest.raises(QueryError) as raised:
        source(credential, graph, clock, policy=RetryPolicy(max_total_seconds=120)).run(
            hunt(), WINDOW)

    assert raised.value.retryable
    assert raised.value.status == 429
    assert "budget" in raised.value.message
    assert clock.sleeps == []
    assert len(graph.requests) == 1


def test_total_time_is_bounded_across_retries(credential: TokenCredential, graph: FakeGraph,
                                              clock: ManualClock) -> None:
    graph.script(*[throttled(retry_after="40")] * 10)
    policy = RetryPolicy(max_attempts=10, max_total_seconds=100)

    with pytest.raises(QueryError):
        source(credential, graph, clock, policy=policy).run(hunt(), WINDOW)

    assert sum(clock.sleeps) <= 100
    assert len(graph.requests) == 3


def test_unreachable_graph_is_retryable(credential: TokenCredential) -> None:
    with FakeGraph() as graph:
        url = graph.url
    dead = DefenderSource(credential, url, policy=RetryPolicy(max_attempts=2, base_delay=0.01))

    with pytest.raises(QueryError) as raised:
        dead.run(hunt(), WINDOW)

    assert raised.value.retryable
    assert "cannot reach Graph" in raised.value.message


# --- answers that are final for this run --------------------------------------------------------

def test_json_without_schema_and_results_is_reported(credential: TokenCredential,
                                                     graph: FakeGraph) -> None:
    graph.script(Reply(200, {"value": []}))

    with pytest.raises(QueryError, match="without a schema and results"):
        source(credential, graph).run(hunt(), WINDOW)


def test_a_result_at_the_row_limit_is_flagged_truncated(credential: TokenCredential,
                                                        graph: FakeGraph) -> None:
    graph.script(ok(ROW_LIMIT), ok(3))
    defender = source(credential, graph)

    full, short = defender.run(hunt(), WINDOW), defender.run(hunt(), WINDOW)

    assert len(full.rows) == ROW_LIMIT
    assert full.truncated
    assert not short.truncated


# --- tokens and where they go -------------------------------------------------------------------

def test_tokens_are_never_sent_over_plain_http_off_loopback(credential: TokenCredential) -> None:
    with pytest.raises(ValueError, match="https"):
        DefenderSource(credential, "http://graph.example.com")
    assert https_required("https://graph.microsoft.us") is True
    assert https_required("http://127.0.0.1:8080") is False
    assert https_required("http://localhost:8080") is False


def test_make_credential_uses_managed_identity_in_functions(identity: IdentityServer) -> None:
    assert isinstance(make_credential("1b2c3d4e-0000-4000-8000-0000000000aa"),
                      ManagedIdentityCredential)


def test_make_credential_falls_back_to_the_default_chain() -> None:
    assert isinstance(make_credential(None), DefaultAzureCredential)


# --- pacing ----------------------------------------------------------------------------------

def test_many_hunts_stay_under_45_calls_a_minute(credential: TokenCredential, graph: FakeGraph,
                                                 clock: ManualClock) -> None:
    arrivals: list[float] = []

    def answer(request: Request) -> Reply:
        arrivals.append(clock.monotonic())
        return ok()

    graph.handler = answer
    defender = source(credential, graph, clock, pacer=CallPacer(45, 60.0, clock=clock))

    for _ in range(100):
        defender.run(hunt(), WINDOW)

    assert len(arrivals) == 100
    assert all(arrivals[i + 45] - arrivals[i] >= 60.0 for i in range(len(arrivals) - 45))
    assert arrivals[44] == 0.0, "the first 45 calls go at once"


def test_no_call_slot_within_the_budget_gives_up_without_calling(
        credential: TokenCredential, graph: FakeGraph, clock: ManualClock) -> None:
    graph.handler = lambda request: ok()
    defender = source(credential, graph, clock, pacer=CallPacer(1, 600.0, clock=clock),
                      policy=RetryPolicy(max_total_seconds=60))
    defender.run(hunt(), WINDOW)

    with pytest.raises(QueryError) as raised:
        defender.run(hunt(), WINDOW)

    assert raised.value.retryable
    assert "rate pacing" in raised.value.message
    assert len(graph.requests) == 1
    assert clock.sleeps == []


def test_pacer_reserves_distinct_slots_across_threads() -> None:
    frozen = ManualClock(frozen=True)
    pacer = CallPacer(calls=5, period_seconds=1.0, clock=frozen)

    threads = [threading.Thread(target=lambda: [pacer.acquire() for _ in range(10)])
               for _ in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    waits = sorted(frozen.sleeps)
    assert len(waits) == 45, "the first 5 calls need no wait"
    assert waits == sorted(float(second) for second in range(1, 10) for _ in range(5))


def test_pacer_hold_pauses_everyone_and_max_wait_reserves_nothing(clock: ManualClock) -> None:
    pacer = CallPacer(calls=2, period_seconds=10.0, clock=clock)
    pacer.hold(3.0)

    assert pacer.acquire() == 3.0
    assert pacer.acquire() == 0.0
    with pytest.raises(PacerTimeout):
        pacer.acquire(max_wait=5.0)
    assert pacer.acquire() == 10.0


def test_a_429_holds_the_shared_pacer(credential: TokenCredential, graph: FakeGraph,
                                      clock: ManualClock) -> None:
    pacer = CallPacer(45, 60.0, clock=clock)
    graph.script(throttled(retry_after="20"), ok())

    source(credential, graph, clock, pacer=pacer).run(hunt(), WINDOW)

    assert clock.now == 20.0
    other_caller_wait = pacer.acquire()
    assert other_caller_wait == 0.0, "the hold has passed once the retry went out"


# --- Retry-After and back-off --------------------------------------------------------------------

@pytest.mark.parametrize(("header", "seconds"), [
    ("120", 120.0), ("0", 0.0), (" 5 ", 5.0), ("-3", 0.0), ("1.5", 1.5),
    ("Fri, 20 Nov 2026 12:00:30 GMT", 30.0), ("Fri, 20 Nov 2026 11:00:00 GMT", 0.0),
    ("soon", None), ("", None), (None, None), ("inf", None),
])
def test_retry_after_is_read_as_seconds_or_http_date(header: str | None,
                                                     seconds: float | None) -> None:
    now = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert parse_retry_after(header, now) == seconds


def test_backoff_grows_exponentially_within_jitter_and_cap() -> None:
    policy = RetryPolicy(base_delay=2.0, max_delay=10.0)
    rng = random.Random(1)

    for retry, ceiling in [(1, 2.0), (2, 4.0), (3, 8.0), (4, 10.0), (9, 10.0)]:
        delays = [policy.backoff(retry, rng) for _ in range(50)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1, "jittered"


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="negative"):
        RetryPolicy(base_delay=-1)


def test_unknown_graph_type_passes_the_value_through(credential: TokenCredential,
                                                     graph: FakeGraph) -> None:
    graph.script(Reply(200, hunting_results([("Odd", "Int128")], [{"Odd": "12"}])))

    result = source(credential, graph).run(hunt(), WINDOW)

    assert result.columns[0].type == "string"
    assert result.rows == [{"Odd": "12"}]


def test_a_value_that_does_not_match_its_type_is_reported(credential: TokenCredential,
                                                          graph: FakeGraph) -> None:
    graph.script(Reply(200, hunting_results([("When", "DateTime")], [{"When": "yesterday"}])))

    with pytest.raises(QueryError, match="column When"):
        source(credential, graph).run(hunt(), WINDOW)


def test_window_end_is_what_graph_receives(credential: TokenCredential, graph: FakeGraph) -> None:
    graph.script(ok())
    window = Window(WINDOW.end - timedelta(days=30), WINDOW.end)

    source(credential, graph).run(hunt(), window)

    assert graph.requests[0].json()["Timespan"] == "2026-10-21T12:00:00Z/2026-11-20T12:00:00Z"


def test_tokens_and_the_identity_header_never_reach_the_logs(
        credential: TokenCredential, graph: FakeGraph, identity: IdentityServer,
        clock: ManualClock, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    graph.script(throttled(retry_after="1"), graph_error(401, "InvalidAuthenticationToken", "no"))

    with pytest.raises(QueryError) as raised:
        source(credential, graph, clock).run(hunt(), WINDOW)

    token = graph.requests[0].headers["authorization"].removeprefix("Bearer ")
    assert "attempt 1 failed" in caplog.text
    assert "X-IDENTITY-HEADER" in caplog.text, "the token requests were logged (redacted)"
    assert token not in caplog.text
    assert token not in str(raised.value)
    assert identity.identity_header not in caplog.text
