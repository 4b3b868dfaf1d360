"""SentinelSource against a local Log Analytics query endpoint, with tokens from a local
managed-identity endpoint: azure-identity and azure-monitor-query run for real.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import TokenCredential

from devtools.clock import ManualClock
from devtools.fake_loganalytics import FakeLogAnalytics, logs_error, logs_tables, partial_error
from devtools.identity import IdentityServer, Reply, token_audience
from shared.credentials import make_credential
from shared.hunt import Hunt
from shared.retry import RetryPolicy
from shared.sources.base import QueryError
from shared.sources.sentinel import SentinelSource
from shared.window import Window

WORKSPACE = "5e0c1b2a-0000-4000-8000-00000000beef"
WINDOW = Window(datetime(2026, 11, 20, 8, 0, tzinfo=UTC), datetime(2026, 11, 20, 12, 0, tzinfo=UTC))
QUERY = "DeviceProcessEvents | project TimeGenerated, DeviceId, ReportId"
FAST = RetryPolicy(max_attempts=4, max_total_seconds=60, base_delay=0.5, max_delay=4)


def hunt(query: str = QUERY) -> Hunt:
    return Hunt(id="7d1e2f30-0000-4000-8000-000000000002", name="Sentinel hunt", query=query,
                source="sentinel", path=Path("hunts/sentinel.yaml"))


def ok(rows: int = 1) -> Reply:
    return Reply(200, logs_tables([("DeviceId", "string"), ("ReportId", "long")],
                                  [[f"dev-{i}", i] for i in range(rows)]))


@pytest.fixture
def identity(monkeypatch: pytest.MonkeyPatch) -> Iterator[IdentityServer]:
    with IdentityServer() as server:
        for name, value in server.env.items():
            monkeypatch.setenv(name, value)
        yield server


@pytest.fixture
def credential(identity: IdentityServer) -> TokenCredential:
    return make_credential(None)


@pytest.fixture
def logs() -> Iterator[FakeLogAnalytics]:
    with FakeLogAnalytics(WORKSPACE) as server:
        yield server


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


def source(credential: TokenCredential, logs: FakeLogAnalytics,
           clock: ManualClock | None = None, **options: Any) -> SentinelSource:
    options.setdefault("policy", FAST)
    if clock is not None:
        options["clock"] = clock
    return SentinelSource(credential, WORKSPACE, logs.url, rng=random.Random(7), **options)


# --- success and the wire format --------------------------------------------------------------

EVERY_TYPE = [("TimeGenerated", "datetime"), ("DeviceName", "string"), ("ReportId", "long"),
              ("Port", "int"), ("Score", "real"), ("IsElevated", "bool"),
              ("AdditionalFields", "dynamic"), ("DeviceGuid", "guid"), ("Elapsed", "timespan"),
              ("Amount", "decimal")]
FULL_ROW = ["2026-11-20T09:39:50.7688641Z", "pc-1", 9007199254740993, 443, 0.25, True,
            "{\"Command\":\"Invoke-Expression\",\"Count\":2}",
            "7c3e1c2a-1b7e-4d8a-9d33-0c4a6c1f2e11", "00:05:00", "12.5"]


def test_every_column_type_is_converted(credential: TokenCredential,
                                        logs: FakeLogAnalytics) -> None:
    logs.script(Reply(200, logs_tables(EVERY_TYPE, [FULL_ROW, [None] * len(EVERY_TYPE)])))

    result = source(credential, logs).run(hunt(), WINDOW)

    assert [(c.name, c.type) for c in result.columns] == EVERY_TYPE
    assert result.rows[0] == {
        "TimeGenerated": datetime(2026, 11, 20, 9, 39, 50, 768864, tzinfo=UTC),
        "DeviceName": "pc-1", "ReportId": 9007199254740993, "Port": 443, "Score": 0.25,
        "IsElevated": True, "AdditionalFields": {"Command": "Invoke-Expression", "Count": 2},
        "DeviceGuid": "7c3e1c2a-1b7e-4d8a-9d33-0c4a6c1f2e11", "Elapsed": "00:05:00",
        "Amount": 12.5}
    assert result.rows[1] == {name: None for name, _ in EVERY_TYPE}
    assert not result.partial
    assert not result.truncated


def test_request_matches_the_documented_wire_format(credential: TokenCredential,
                                                    logs: FakeLogAnalytics,
                                                    identity: IdentityServer) -> None:
    logs.script(ok())

    source(credential, logs, server_timeout_seconds=120).run(hunt(), WINDOW)

    [request] = logs.requests
    assert (request.method, request.path) == ("POST", f"/v1/workspaces/{WORKSPACE}/query")
    assert request.headers["prefer"] == "wait=120"
    body = request.json()
    assert body["query"] == QUERY
    start, end = (datetime.fromisoformat(part) for part in body["timespan"].split("/"))
    assert (start, end) == (WINDOW.start, WINDOW.end)
    assert token_audience(request.headers["authorization"]) == logs.url
    assert [grant.resource for grant in identity.grants] == [logs.url]


def test_local_engine_answers_with_rows_inside_the_window(credential: TokenCredential,
                                                          tmp_path: Path) -> None:
    events = tmp_path / "DeviceProcessEvents.jsonl"
    lines = [{"Timestamp": when, "DeviceId": device, "ReportId": report,
              "AdditionalFields": {"Source": "sensor"}}
             for when, device, report in [("2026-11-20T09:00:00Z", "dev-in", 1),
                                          ("2026-11-20T07:59:59Z", "dev-before", 2)]]
    events.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    query = "DeviceProcessEvents | project TimeGenerated, DeviceId, ReportId, AdditionalFields"
    with FakeLogAnalytics(WORKSPACE, {"DeviceProcessEvents": events}) as logs:
        result = source(credential, logs).run(hunt(query), WINDOW)

    assert result.rows == [{"TimeGenerated": datetime(2026, 11, 20, 9, 0, tzinfo=UTC),
                            "DeviceId": "dev-in", "ReportId": 1,
                            "AdditionalFields": {"Source": "sensor"}}]


# --- partial and truncated results ------------------------------------------------------------

def test_partial_result_is_reported_with_its_error_and_rows(credential: TokenCredential,
                                                            logs: FakeLogAnalytics) -> None:
    logs.script(Reply(200, logs_tables([("DeviceId", "string")], [["dev-1"]],
                                       error=partial_error("Query exceeded memory budget"))))

    result = source(credential, logs).run(hunt(), WINDOW)

    assert result.partial
    assert result.partial_error is not None
    assert result.partial_error.startswith("PartialError: ")
    assert "Query exceeded memory budget" in result.partial_error
    assert result.rows == [{"DeviceId": "dev-1"}]
    assert not result.truncated


def test_a_result_cut_at_the_service_limit_is_partial_and_truncated(
        credential: TokenCredential, tmp_path: Path) -> None:
    events = tmp_path / "DeviceProcessEvents.jsonl"
    events.write_text("".join(json.dumps({"Timestamp": "2026-11-20T09:00:00Z",
                                          "DeviceId": f"dev-{i}", "ReportId": i}) + "\n"
                              for i in range(3)))
    with FakeLogAnalytics(WORKSPACE, {"DeviceProcessEvents": events}, row_limit=2) as logs:
        result = source(credential, logs).run(hunt(), WINDOW)

    assert len(result.rows) == 2
    assert result.partial
    assert result.truncated
    assert "E_QUERY_RESULT_SET_TOO_LARGE" in (result.partial_error or "")


# --- throttling, server errors, timeouts -------------------------------------------------------

def test_429_then_success_waits_as_retry_after_says(credential: TokenCredential,
                                                    logs: FakeLogAnalytics,
                                                    clock: ManualClock) -> None:
    logs.script(logs_error(429, "ThrottledError", "Slow down", headers={"Retry-After": "3"}), ok())

    result = source(credential, logs, clock).run(hunt(), WINDOW)

    assert result.rows == [{"DeviceId": "dev-0", "ReportId": 0}]
    assert result.stats["attempts"] == 2
    assert clock.sleeps == [3.0]


def test_429_forever_gives_up_after_max_attempts(credential: TokenCredential,
                                                 logs: FakeLogAnalytics,
                                                 clock: ManualClock) -> None:
    throttled = logs_error(429, "ThrottledError", "Too many requests", headers={"Retry-After": "1"})
    logs.script(*[throttled] * 10)

    with pytest.raises(QueryError) as raised:
        source(credential, logs, clock, policy=RetryPolicy(max_attempts=3)).run(hunt(), WINDOW)

    assert raised.value.status == 429
    assert raised.value.retryable
    assert "ThrottledError" in raised.value.message
    assert len(logs.requests) == 3
    assert clock.sleeps == [1.0, 1.0]


def test_500_then_success_is_retried(credential: TokenCredential, logs: FakeLogAnalytics,
                                     clock: ManualClock) -> None:
    logs.script(logs_error(500, "InternalServerError", "Something went wrong"), ok())

    result = source(credential, logs, clock).run(hunt(), WINDOW)

    assert result.stats["attempts"] == 2
    assert len(clock.sleeps) == 1


def test_503_forever_is_retryable_with_the_service_message(credential: TokenCredential,
                                                           logs: FakeLogAnalytics,
                                                           clock: ManualClock) -> None:
    logs.script(*[logs_error(503, "ServiceUnavailableError", "Try again later")] * 4)

    with pytest.raises(QueryError) as raised:
        source(credential, logs, clock).run(hunt(), WINDOW)

    assert raised.value.status == 503
    assert raised.value.retryable
    assert "ServiceUnavailableError" in raised.value.message
    assert len(logs.requests) == FAST.max_attempts


def test_a_stalled_answer_times_out_and_is_retried(credential: TokenCredential,
                                                   logs: FakeLogAnalytics) -> None:
    logs.script(Reply(200, logs_tables([], []), delay_seconds=30), ok())
    policy = RetryPolicy(base_delay=0.01, max_delay=0.01)

    result = source(credential, logs, read_timeout_seconds=0.2, policy=policy).run(hunt(), WINDOW)

    assert result.stats["attempts"] == 2
    assert len(logs.requests) == 2


def test_timeouts_forever_give_up_as_retryable(credential: TokenCredential,
                                               logs: FakeLogAnalytics) -> None:
    logs.script(*[Reply(200, {}, delay_seconds=30)] * 2)
    policy = RetryPolicy(max_attempts=2, base_delay=0.01, max_delay=0.01)

    with pytest.raises(QueryError) as raised:
        source(credential, logs, read_timeout_seconds=0.2, policy=policy).run(hunt(), WINDOW)

    assert raised.value.retryable
    assert "no answer from Log Analytics" in raised.value.message


# --- answers that are final for this run --------------------------------------------------------

@pytest.mark.parametrize("content_type", ["application/json", "text/html"])
def test_malformed_json_is_reported_and_not_retried(credential: TokenCredential,
                                                    logs: FakeLogAnalytics,
                                                    content_type: str) -> None:
    logs.script(Reply(200, "<html>gateway</html>", {"Content-Type": content_type}))

    with pytest.raises(QueryError) as raised:
        source(credential, logs).run(hunt(), WINDOW)

    assert raised.value.status == 200
    assert raised.value.retryable
    assert "not JSON" in raised.value.message
    assert len(logs.requests) == 1


def test_400_reports_the_service_message_without_retrying(credential: TokenCredential,
                                                          logs: FakeLogAnalytics) -> None:
    logs.script(logs_error(400, "BadArgumentError", "The request had some invalid properties",
                           inner=("SyntaxError", "Query could not be parsed at 'whre' on line "
                                                 "[1,22]")))

    with pytest.raises(QueryError) as raised:
        source(credential, logs).run(hunt(), WINDOW)

    assert raised.value.status == 400
    assert not raised.value.retryable
    assert "BadArgumentError: Query could not be parsed at 'whre'" in raised.value.message
    assert len(logs.requests) == 1


def test_unknown_workspace_is_refused(credential: TokenCredential,
                                      logs: FakeLogAnalytics) -> None:
    other = SentinelSource(credential, "00000000-0000-0000-0000-000000000000", logs.url)

    with pytest.raises(QueryError) as raised:
        other.run(hunt(), WINDOW)

    assert raised.value.status == 404
    assert "WorkspaceNotFoundError" in raised.value.message


# --- tokens and where they go -------------------------------------------------------------------

def test_wrong_token_audience_is_refused_with_401(credential: TokenCredential) -> None:
    with FakeLogAnalytics(WORKSPACE, audience="https://api.loganalytics.io") as logs:
        with pytest.raises(QueryError) as raised:
            source(credential, logs).run(hunt(), WINDOW)
        token = logs.requests[0].headers["authorization"].removeprefix("Bearer ")

    assert raised.value.status == 401
    assert not raised.value.retryable
    assert "InvalidTokenError" in raised.value.message
    assert token not in str(raised.value)


def test_audience_option_asks_for_the_named_resource(credential: TokenCredential,
                                                     identity: IdentityServer) -> None:
    with FakeLogAnalytics(WORKSPACE, audience="https://api.loganalytics.io") as logs:
        logs.script(ok())
        result = source(credential, logs, audience="https://api.loganalytics.io").run(hunt(),
                                                                                     WINDOW)

    assert len(result.rows) == 1
    assert [g.resource for g in identity.grants] == ["https://api.loganalytics.io"]


def test_no_token_is_a_retryable_error(identity: IdentityServer, logs: FakeLogAnalytics,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IDENTITY_HEADER", "wrong-header")

    with pytest.raises(QueryError) as raised:
        source(make_credential(None), logs).run(hunt(), WINDOW)

    assert raised.value.retryable
    assert "no token for Log Analytics" in raised.value.message
    assert identity.identity_header not in str(raised.value)
    assert logs.requests == []


def test_settings_that_cannot_work_are_refused(credential: TokenCredential) -> None:
    with pytest.raises(ValueError, match="https"):
        SentinelSource(credential, WORKSPACE, "http://logs.example.com")
    with pytest.raises(ValueError, match="server_timeout_seconds"):
        SentinelSource(credential, WORKSPACE, server_timeout_seconds=601)
