"""A local Log Analytics query endpoint (``api.loganalytics.io`` v1) for tests and the demo.

Wire format (Azure Monitor Log Analytics REST API, "Query - Execute")::

    POST /v1/workspaces/{workspaceId}/query
    Authorization: Bearer {token with aud = the Log Analytics resource}
    Prefer: wait=180
    {"query": "DeviceProcessEvents | ...", "timespan": "2024-01-01T00:00:00.000Z/2024-01-01T04:..."}

    200 {"tables": [{"name": "PrimaryResult", "columns": [{"name": "...", "type": "datetime"}],
                     "rows": [["2024-01-01T00:00:00Z", ...]]}]}
    200 with "error" {"code": "PartialError", ...} beside "tables": a partial result
    4xx/5xx {"error": {"code": "BadArgumentError", "message": "...", "innererror": {...}}}

Requests are checked like the service does (token audience, workspace, JSON body with
``query``), then answered from a script, a handler, or by running the query with duckdb-kql over
the JSON-lines events given (Sentinel flavour: ``TimeGenerated``). Past *row_limit* rows the answer
is a partial result with the service's "result set too large" error. :func:`no_tables` scripts
the 200 without tables seen during outages; the faulty replies of :mod:`.fake_graph` work here too.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shared.sources.base import QueryResult

from .fake_graph import LocalEngine, kusto_timespan, parse_interval
from .identity import Reply, Request, ScriptedService, token_audience
from .service_model import ServiceModel, token_claims

QUERY_PATH = re.compile(r"^/v1/workspaces/(?P<workspace>[^/]+)/query$")
METADATA_PATH = re.compile(r"^/v1/workspaces/(?P<workspace>[^/]+)/metadata$")
ROW_LIMIT = 500_000
PARTIAL_MESSAGE = "There were some errors when processing your query."
TOO_LARGE = ("Query result set has exceeded the internal record count limit {limit} "
             "(E_QUERY_RESULT_SET_TOO_LARGE; see https://aka.ms/kustoquerylimits)")



class FakeLogAnalytics(ScriptedService):
    """``with FakeLogAnalytics(workspace_id, events) as logs: SentinelSource(cred, id, logs.url)``

    *audience*: the token audience accepted; default the server's own URL, which is what
    ``LogsQueryClient(endpoint=logs.url)`` asks for.
    *model*: latency, the rate limit and concurrent queries per caller (the token's subject;
    :mod:`.service_model`): about 200 queries per 30 s and 5 at once per user, 429 beyond.
    """

    def __init__(self, workspace_id: str, events: Mapping[str, Path | str] | None = None, *,
                 audience: str | None = None, row_limit: int = ROW_LIMIT,
                 metadata: Mapping[str, Mapping[str, str]] | None = None,
                 model: ServiceModel | None = None):
        super().__init__()
        self.model = model
        self.metadata = dict(metadata or {})
        """``GET .../metadata`` answers these tables (``{table: {column: type}}``)."""
        self.workspace_id = workspace_id
        self.engine = LocalEngine(events) if events else None
        self.audience = audience
        self.row_limit = row_limit

    def handle(self, request: Request) -> Reply:
        if self.model is None or self._refusal(request) is not None:
            return super().handle(request)
        caller = str(token_claims(request.headers.get("authorization")).get("sub") or "unknown")
        reply: Reply = self.model.run(caller, lambda: super(FakeLogAnalytics, self).handle(request),
                                      throttled, self._stall)
        return reply

    def _refusal(self, request: Request) -> Reply | None:
        metadata = METADATA_PATH.match(request.path) if request.method == "GET" else None
        match = metadata or QUERY_PATH.match(request.path)
        if match is None or (metadata is None and request.method != "POST"):
            return logs_error(404, "PathNotFoundError", f"The requested path does not exist: "
                              f"{request.method} {request.path}")
        audience = token_audience(request.headers.get("authorization"))
        if audience is None or audience.rstrip("/") != (self.audience or self.url).rstrip("/"):
            return logs_error(401, "InvalidTokenError",
                              "The provided authentication is not valid for this resource")
        if match.group("workspace") != self.workspace_id:
            return logs_error(404, "WorkspaceNotFoundError", "The workspace could not be found")
        return None if metadata else _body_refusal(request)

    def _run_locally(self, request: Request) -> Reply:
        if METADATA_PATH.match(request.path):
            return Reply(200, metadata_document(self.metadata))
        body = request.json()
        window = parse_interval(body.get("timespan"))
        if window is None:
            return logs_error(400, "BadArgumentError", "The fake takes timespan as start/end only")
        if self.engine is None:
            return Reply(200, logs_tables([], []))
        try:
            result = self.engine.run(body["query"], window, "sentinel")
        except ValueError as exc:
            return logs_error(400, "BadArgumentError", "The request had some invalid properties",
                              inner=("SemanticError", str(exc)))
        return Reply(200, self._document(result))

    def _document(self, result: QueryResult) -> dict[str, Any]:
        columns = [(c.name, c.type) for c in result.columns]
        rows = [[_logs_value(row.get(c.name), c.type) for c in result.columns]
                for row in result.rows[:self.row_limit]]
        if len(result.rows) <= self.row_limit:
            return logs_tables(columns, rows)
        return logs_tables(columns, rows, error=partial_error(
            TOO_LARGE.format(limit=self.row_limit)))


def metadata_document(tables: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """The workspace metadata API's reply (its ``tables`` part: id, name, columns)."""
    return {"tables": [{"id": f"t_{name}", "name": name, "timespanColumn": "TimeGenerated",
                        "columns": [{"name": c, "type": t} for c, t in columns.items()]}
                       for name, columns in tables.items()]}


def logs_tables(columns: Sequence[tuple[str, str]], rows: Sequence[Sequence[Any]], *,
                error: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A 200 body: one ``PrimaryResult`` table; with *error* it is a partial result."""
    document: dict[str, Any] = {"tables": [{
        "name": "PrimaryResult",
        "columns": [{"name": name, "type": kind} for name, kind in columns],
        "rows": [list(row) for row in rows],
    }]}
    if error is not None:
        document["error"] = dict(error)
    return document


def partial_error(message: str) -> dict[str, Any]:
    """The ``error`` member of a partial result, as the service nests it."""
    return {"code": "PartialError", "message": PARTIAL_MESSAGE, "details": [{
        "code": "EngineError",
        "message": "Something went wrong processing your query on the server.",
        "innererror": {"code": "-2133196797", "message": message, "severity": 2,
                       "severityName": "Error"},
    }]}


def logs_error(status: int, code: str, message: str, *, inner: tuple[str, str] | None = None,
               headers: Mapping[str, str] | None = None) -> Reply:
    """An error reply in Log Analytics' format."""
    error: dict[str, Any] = {"message": message, "code": code,
                             "correlationId": str(uuid.uuid4())}
    if inner is not None:
        error["innererror"] = {"code": inner[0], "message": inner[1]}
    return Reply(status, {"error": error}, dict(headers or {}))


def _logs_value(value: Any, kql_type: str) -> Any:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, timedelta):
        return kusto_timespan(value)
    if kql_type == "dynamic":
        return json.dumps(value)
    return value


def _body_refusal(request: Request) -> Reply | None:
    try:
        body = request.json()
    except ValueError:
        return logs_error(400, "BadArgumentError", "The request body is not valid JSON")
    if not isinstance(body, dict) or not isinstance(body.get("query"), str):
        return logs_error(400, "BadArgumentError", "The request had some invalid properties",
                          inner=("QueryValidationError", "The query is missing"))
    return None


def throttled(retry_after: str | None = "1") -> Reply:
    """429 as Log Analytics sends it past its per-user rate or concurrency limit."""
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return logs_error(429, "ThrottledError", "Too many requests: the user's query rate or "
                      "concurrent-query limit was reached; retry later.", headers=headers)


def no_tables(*, tables: bool = True) -> Reply:
    """200 with an empty ``tables`` list (or, with *tables* False, no ``tables`` at all)."""
    return Reply(200, {"tables": []} if tables else {})
