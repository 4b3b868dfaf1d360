"""A local Microsoft Graph ``runHuntingQuery`` endpoint for tests and the demo.

Wire format (Microsoft Graph v1.0, ``security: runHuntingQuery``)::

    POST /v1.0/security/runHuntingQuery
    Authorization: Bearer {token with aud = the Graph resource}
    Content-Type: application/json
    {"Query": "DeviceProcessEvents | ...", "Timespan": "2024-02-01T08:00:00Z/2024-02-15T08:00:00Z"}

    200 {"@odata.context": "...", "schema": [{"name": "Timestamp", "type": "DateTime"}, ...],
         "results": [{"Timestamp": "2024-03-26T09:39:50.7688641Z", ...}, ...]}
    4xx/5xx {"error": {"code": "...", "message": "...", "innerError": {...}}}

Each request is checked like the service does (token audience, path, JSON body with ``Query``)
and then answered from a script (:meth:`FakeGraph.script`: replies or callables, first in first
out), else from :attr:`FakeGraph.handler`, else by running the query with duckdb-kql
(:class:`shared.sources.local.LocalSource`) over the JSON-lines events given, capped at the
service's 100,000 rows. Every request is kept in :attr:`FakeGraph.requests`. :func:`dripping`,
:func:`cut_short`, :func:`json_cut_short` and :func:`empty_200` script faulty replies.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shared.hunt import Hunt
from shared.schemas import Flavour
from shared.sources.base import QueryResult
from shared.window import Window

from .identity import Reply, Request, ScriptedService, token_audience
from .service_model import ServiceModel, token_tenant

HUNTING_PATH = "/v1.0/security/runHuntingQuery"
ROW_LIMIT = 100_000
DEFAULT_TIMESPAN = timedelta(days=30)
GRAPH_TYPE_NAMES = {"datetime": "DateTime", "string": "String", "long": "Int64", "int": "Int32",
                    "real": "Double", "bool": "Boolean", "dynamic": "Object", "guid": "Guid",
                    "timespan": "TimeSpan", "decimal": "Decimal"}
"""KQL type -> the .NET-style name Graph puts in ``schema[].type`` (docs show "DateTime")."""



class FakeGraph(ScriptedService):
    """``with FakeGraph({"DeviceProcessEvents": path}) as graph: DefenderSource(cred, graph.url)``

    *audience*: the token audience accepted; default the server's own URL, which is what a
    client configured with ``endpoint=graph.url`` asks for (``{endpoint}/.default``).
    *model*: latency and the per-tenant rate limit (:mod:`.service_model`; the tenant is the
    token's ``tid``): Graph allows about 45 calls a minute per tenant, 429 beyond.
    """

    def __init__(self, events: Mapping[str, Path | str] | None = None, *,
                 audience: str | None = None, row_limit: int = ROW_LIMIT,
                 clock: Callable[[], datetime] | None = None, model: ServiceModel | None = None):
        super().__init__()
        self.model = model
        self.engine = LocalEngine(events) if events else None
        self.audience = audience
        self.row_limit = row_limit
        self._clock = clock or (lambda: datetime.now(UTC))

    def handle(self, request: Request) -> Reply:
        if self.model is None or self._refusal(request) is not None:
            return super().handle(request)
        reply: Reply = self.model.run(token_tenant(request.headers.get("authorization")),
                                      lambda: super(FakeGraph, self).handle(request),
                                      throttled, self._stall)
        return reply

    def _refusal(self, request: Request) -> Reply | None:
        if request.path != HUNTING_PATH:
            return graph_error(404, "ResourceNotFound", f"Resource not found: {request.path}")
        if request.method != "POST":
            return graph_error(405, "MethodNotAllowed", "runHuntingQuery is an action: use POST")
        audience = token_audience(request.headers.get("authorization"))
        if audience is None:
            return graph_error(401, "InvalidAuthenticationToken", "Access token is empty.")
        if audience.rstrip("/") != (self.audience or self.url).rstrip("/"):
            return graph_error(401, "InvalidAuthenticationToken",
                               "Access token validation failure. Invalid audience.")
        if not request.headers.get("content-type", "").startswith("application/json"):
            return graph_error(415, "UnsupportedMediaType", "Content-Type must be application/json")
        return _body_refusal(request)

    def _run_locally(self, request: Request) -> Reply:
        parameters = _casefold_keys(request.json())
        window = _window(parameters.get("timespan"), self._clock())
        if window is None:
            return graph_error(400, "BadRequest", "The fake Graph takes Timespan as start/end only")
        if self.engine is None:
            return Reply(200, hunting_results([], []))
        try:
            result = self.engine.run(parameters["query"], window, "defender")
        except ValueError as exc:
            return graph_error(400, "BadRequest", str(exc))
        return Reply(200, _results_document(result, self.row_limit))


class LocalEngine:
    """Runs KQL with duckdb-kql over JSON-lines events, one query at a time (thread-safe)."""

    def __init__(self, events: Mapping[str, Path | str]):
        from shared.sources.local import LocalSource

        self._source = LocalSource(events)
        self._lock = threading.Lock()

    def run(self, query: str, window: Window, flavour: Flavour) -> QueryResult:
        """Raises ValueError with the engine's message when the query cannot run."""
        from shared.sources.base import QueryError

        hunt = Hunt(id="fake-service", name="request", query=query, source=flavour,
                    path=Path("<request>"))
        try:
            with self._lock:
                return self._source.run(hunt, window)
        except QueryError as exc:
            raise ValueError(exc.message) from exc


def graph_error(status: int, code: str, message: str,
                headers: Mapping[str, str] | None = None) -> Reply:
    """An error reply in Graph's format."""
    inner = {"date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S"),
             "request-id": str(uuid.uuid4()), "client-request-id": str(uuid.uuid4())}
    return Reply(status, {"error": {"code": code, "message": message, "innerError": inner}},
                 dict(headers or {}))


def throttled(retry_after: str | None = "1") -> Reply:
    """429 as Graph sends it when a hunting quota is hit."""
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return graph_error(429, "TooManyRequests", "Too many requests: the tenant's advanced hunting "
                       "quota was reached; try again later.", headers)


def hunting_results(schema: Sequence[tuple[str, str]], rows: Sequence[Mapping[str, Any]],
                    *, key_case: str = "lower") -> dict[str, Any]:
    """A runHuntingQuery 200 body; *schema* is ``(name, GraphType)`` pairs.

    *key_case* "lower" gives ``schema/results, name/type``; "pascal" gives the
    ``Schema/Results, Name/Type`` casing also seen in Microsoft's examples.
    """
    pascal = key_case == "pascal"
    name, kind = ("Name", "Type") if pascal else ("name", "type")
    return {
        "@odata.context": "https://graph.microsoft.com/v1.0/$metadata#microsoft.graph.security."
                          "huntingQueryResults",
        "Schema" if pascal else "schema": [{name: n, kind: t} for n, t in schema],
        "Results" if pascal else "results": [dict(row) for row in rows],
    }


def kusto_timespan(value: timedelta) -> str:
    """Kusto's text for a timespan: ``[d.]hh:mm:ss[.fffffff]``."""
    sign = "-" if value < timedelta(0) else ""
    value = abs(value)
    hours, rest = divmod(value.seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    days = f"{value.days}." if value.days else ""
    fraction = f".{value.microseconds:06d}0" if value.microseconds else ""
    return f"{sign}{days}{hours:02d}:{minutes:02d}:{seconds:02d}{fraction}"


def kusto_datetime(value: datetime) -> str:
    """Kusto's text for a datetime: UTC with seven fractional digits and ``Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "0Z"


def _results_document(result: QueryResult, row_limit: int) -> dict[str, Any]:
    schema = [(c.name, GRAPH_TYPE_NAMES.get(c.type, "String")) for c in result.columns]
    rows = [{c.name: _graph_value(row.get(c.name)) for c in result.columns}
            for row in result.rows[:row_limit]]
    return hunting_results(schema, rows)


def _graph_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return kusto_datetime(value)
    if isinstance(value, timedelta):
        return kusto_timespan(value)
    return value


def _body_refusal(request: Request) -> Reply | None:
    try:
        body = request.json()
    except ValueError:
        return graph_error(400, "BadRequest", "The request body is not valid JSON.")
    query = _casefold_keys(body).get("query") if isinstance(body, dict) else None
    if not isinstance(query, str) or not query.strip():
        return graph_error(400, "BadRequest", "The 'Query' parameter is required.")
    return None


def _window(timespan: Any, now: datetime) -> Window | None:
    if timespan is None:
        return Window(now - DEFAULT_TIMESPAN, now)
    return parse_interval(timespan)


def parse_interval(timespan: Any) -> Window | None:
    """An ISO 8601 ``start/end`` interval as both services take it; None when it is not one."""
    if not isinstance(timespan, str) or timespan.count("/") != 1:
        return None
    try:
        start, end = (datetime.fromisoformat(part) for part in timespan.split("/"))
        return Window(start, end)
    except ValueError:
        return None


def _casefold_keys(document: Any) -> dict[str, Any]:
    if not isinstance(document, dict):
        return {}
    return {str(key).casefold(): value for key, value in document.items()}



# --- faulty replies (for reliability tests; any scripted Reply can be made faulty) -------------

def dripping(reply: Reply, seconds_per_byte: float = 1.0) -> Reply:
    """*reply*'s body sent one byte at a time: no single read ever waits long."""
    return replace(reply, drip_seconds=seconds_per_byte)


def cut_short(reply: Reply, keep: float = 0.5, *, reset: bool = False) -> Reply:
    """*reply* announcing its full length but ending after *keep* of its body (a clean close,
    or a TCP reset with *reset*)."""
    return replace(reply, cut_after_bytes=int(len(reply.encoded()[0]) * keep), reset=reset)


def json_cut_short(reply: Reply, keep: float = 0.5) -> Reply:
    """A complete HTTP reply whose JSON text stops part-way (as a broken proxy may send)."""
    text = reply.encoded()[0].decode()
    return replace(reply, body=text[:int(len(text) * keep)],
                   headers={**reply.headers, "Content-Type": "application/json; charset=utf-8"})


def empty_200() -> Reply:
    """200 with no body at all."""
    return Reply(200, b"", {"Content-Type": "application/json; charset=utf-8"})
