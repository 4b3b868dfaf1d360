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
from devtools.fake_loganalytics import FakeLogAnalytics, logs_tables, no_tables, partial_error
from devtools.identity import IdentityServer, Reply, token_audience
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

# --- answers that are final for this run --------------------------------------------------------

def test_unknown_workspace_is_refused(credential: TokenCredential,
                                      logs: FakeLogAnalytics) -> None:
    other = SentinelSource(credential, "00000000-0000-0000-0000-000000000000", logs.url)

    with pytest.raises(QueryError) as raised:
        other.run(hunt(), WINDOW)

    assert raised.value.status == 404
    assert "WorkspaceNotFoundError" in raised.value.message


# --- tokens and where they go -------------------------------------------------------------------

def test_settings_that_cannot_work_are_refused(credential: TokenCredential) -> None:
    with pytest.raises(ValueError, match="https"):
        SentinelSource(credential, WORKSPACE, "http://logs.example.com")
    with pytest.raises(ValueError, match="server_timeout_seconds"):
        SentinelSource(credential, WORKSPACE, server_timeout_seconds=601)


# --- outage answers ----------------------------------------------------------------------------

@pytest.mark.parametrize("tables", [True, False], ids=["empty tables", "no tables key"])
def test_a_200_without_a_result_table_is_an_error_not_an_empty_result(
        credential: TokenCredential, logs: FakeLogAnalytics, tables: bool) -> None:
    logs.script(no_tables(tables=tables))

    with pytest.raises(QueryError) as raised:
        source(credential, logs).run(hunt(), WINDOW)

    assert raised.value.retryable
    assert raised.value.reason == "malformed"
    assert "PrimaryResult" in raised.value.message
