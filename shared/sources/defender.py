"""Defender XDR advanced hunting through Microsoft Graph ``POST /v1.0/security/runHuntingQuery``.

Request ``{"Query": kql, "Timespan": "start/end"}`` with a bearer token for ``{graph}/.default``;
the answer is ``{"schema": [{"name", "type"}], "results": [{column: value}]}`` (the docs show both
``name/type`` and ``Name/Type``: keys are read case-insensitively) and values are converted by the
schema's types. 429 and 5xx are retried within the policy's bounds, honouring ``Retry-After``;
other errors are reported with the service's message. Every call takes a slot from a pacer shared
per tenant (Graph allows about 45 hunting calls a minute). A reply, dripped or not, gets one
deadline as a whole; a reply cut short or a dropped connection is retried like a 5xx.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import requests
from azure.core.credentials import TokenCredential
from azure.core.exceptions import ClientAuthenticationError
from urllib3.exceptions import ProtocolError

from ..credentials import https_required
from ..hunt import Hunt
from ..hunt_time import render_query
from ..pacing import PROCESS_BOOK, RateBook
from ..retry import (
    RETRYABLE_STATUSES,
    SYSTEM_CLOCK,
    Attempt,
    CallPacer,
    Clock,
    Lane,
    Retryable,
    RetryPolicy,
    parse_retry_after,
)
from ..window import Window
from .base import (
    Column,
    QueryError,
    QueryResult,
    Timeouts,
    cut_short,
    forbidden_hint,
    run_with_retries,
)
from .deadline import ReplyDeadline, deadline_session

if TYPE_CHECKING:
    from ..settings import Settings

__all__ = ["DefenderSource", "Timeouts", "build", "hunting_result", "kql_value"]

LOG = logging.getLogger(__name__)

GRAPH_ENDPOINT = "https://graph.microsoft.com"
HUNTING_PATH = "/v1.0/security/runHuntingQuery"
ROW_LIMIT = 100_000
"""Graph returns at most this many rows; a result this long is flagged as truncated."""
GRANT = "the Microsoft Graph application permission ThreatHunting.Read.All"
CALLS_PER_MINUTE = 45
"""Graph allows about 45 runHuntingQuery calls a minute per tenant (429 beyond)."""
PACING_MARGIN_SECONDS = 2.0
"""Calls are spaced over 62 s rather than 60: requests reach the service a little earlier or
later than they left, and the service counts arrivals (43.5 calls a minute sustained)."""
CONCURRENT_QUERIES = 8
"""Hunting queries of one tenant running at once: at 45 calls a minute and 5-20 s a query about
4-15 are in flight; more only queues against the tenant's CPU quota."""

GRAPH_TYPES = {
    "datetime": "datetime", "system.datetime": "datetime",
    "string": "string", "system.string": "string",
    "int64": "long", "long": "long", "system.int64": "long",
    "int32": "int", "int": "int", "system.int32": "int",
    "boolean": "bool", "bool": "bool", "sbyte": "bool", "system.boolean": "bool",
    "system.sbyte": "bool",
    "double": "real", "real": "real", "single": "real", "system.double": "real",
    "decimal": "real", "system.decimal": "real",
    "object": "dynamic", "dynamic": "dynamic", "system.object": "dynamic",
    "guid": "guid", "system.guid": "guid",
    "timespan": "timespan", "system.timespan": "timespan",
}
"""Type names in Graph's ``schema`` (.NET style, e.g. "DateTime", or KQL style) -> KQL type."""


def build(settings: Settings, credential: TokenCredential, policy: RetryPolicy,
          timeouts: Timeouts, book: RateBook = PROCESS_BOOK) -> DefenderSource:
    """The registry's factory: one pacer per tenant and Graph endpoint from *book* (the
    process's by default: every runner built here, e.g. one per queue message, shares it; the
    deployment's in queue mode: every instance shares it), one lane per tenant."""
    tenant = settings.tenant_id or "default"
    pacer = graph_pacer(book, tenant, settings.graph_endpoint)
    return DefenderSource(credential, settings.graph_endpoint, policy=policy, pacer=pacer,
                          timeouts=timeouts,
                          lanes=tenant_lanes(tenant, pacer))


def graph_pacer(book: RateBook, tenant: str, endpoint: str) -> CallPacer:
    """*tenant*'s Graph pacer in *book*: 45 calls per 62 s, whoever sends them."""
    return book.pacer(f"graph:{tenant}@{endpoint}", CALLS_PER_MINUTE,
                      60 + PACING_MARGIN_SECONDS)


def tenant_pacer(clock: Clock = SYSTEM_CLOCK, record: list[float] | None = None) -> CallPacer:
    """A pacer for one tenant's Graph hunting calls: share it by every source of the tenant."""
    return CallPacer(calls=CALLS_PER_MINUTE, period_seconds=60 + PACING_MARGIN_SECONDS,
                     clock=clock, record=record)


def tenant_lanes(tenant: str, pacer: CallPacer | None = None,
                 concurrent: int = CONCURRENT_QUERIES) -> tuple[Lane, ...]:
    """The pool's lane for *tenant*'s Graph queries, paced by the source's own *pacer*."""
    return (Lane(f"graph:{tenant}", concurrent, pacer),)


class DefenderSource:
    """A QuerySource over Defender XDR advanced hunting (Microsoft Graph).

    *credential*: any azure-identity credential. *endpoint*: Graph's base URL (sovereign clouds,
    local test servers). *audience*: the token resource, by default the endpoint. *pacer*: share
    one per tenant across sources and threads.
    """

    name = "defender"

    def __init__(self, credential: TokenCredential, endpoint: str = GRAPH_ENDPOINT, *,
                 session: requests.Session | None = None, policy: RetryPolicy | None = None,
                 pacer: CallPacer | None = None, audience: str | None = None,
                 timeouts: Timeouts | None = None, clock: Clock = SYSTEM_CLOCK,
                 rng: random.Random | None = None, lanes: Sequence[Lane] = ()):
        https_required(endpoint)
        self.lanes = tuple(lanes)
        """Concurrency limits the runner's pool keeps (:mod:`shared.schedule`)."""
        self._credential = credential
        self._url = endpoint.rstrip("/") + HUNTING_PATH
        self._scope = (audience or endpoint).rstrip("/") + "/.default"
        self._session = session or deadline_session()
        self._policy = policy or RetryPolicy()
        self._clock = clock
        self._pacer = pacer or CallPacer(clock=clock)
        self._timeouts = timeouts or Timeouts()
        self._rng = rng or random.Random()

    def run(self, hunt: Hunt, window: Window) -> QueryResult:
        body = {"Query": render_query(hunt.query, window), "Timespan": window.iso_interval()}
        outcome = run_with_retries(hunt.id, "Graph runHuntingQuery",
                                   lambda attempt: self._post(hunt.id, body, attempt),
                                   policy=self._policy, clock=self._clock, rng=self._rng,
                                   pacer=self._pacer, label="Defender")
        result = hunting_result(hunt.id, outcome.value)
        result.stats["attempts"] = outcome.attempts
        return result

    def close(self) -> None:
        self._session.close()

    def _post(self, hunt_id: str, body: dict[str, str], attempt: Attempt) -> Any:
        headers = {"Authorization": f"Bearer {self._token(hunt_id)}",
                   "Content-Type": "application/json; charset=utf-8",
                   "Accept": "application/json"}
        read_timeout = max(min(self._timeouts.read_seconds, attempt.remaining_seconds), 0.001)
        deadline = ReplyDeadline(self._timeouts.reply_deadline(attempt))
        try:
            with deadline:
                response = self._session.post(
                    self._url, data=json.dumps(body, ensure_ascii=False).encode("utf-8"),
                    headers=headers, timeout=(self._timeouts.connect_seconds, read_timeout))
        except requests.RequestException as exc:
            raise _transport_failure(exc, deadline) from exc
        return _payload(hunt_id, response)

    def _token(self, hunt_id: str) -> str:
        try:
            return self._credential.get_token(self._scope).token
        except ClientAuthenticationError as exc:
            raise QueryError(hunt_id, f"no token for {self._scope}: {_first_line(exc.message)}",
                             retryable=True, reason="no-token") from exc


def _transport_failure(exc: requests.RequestException, deadline: ReplyDeadline) -> Retryable:
    kind = type(exc).__name__
    if deadline.expired or isinstance(exc, requests.Timeout):
        why = f"the whole reply took over {deadline.seconds:.1f} s" if deadline.expired else kind
        return Retryable(f"no answer from Graph within the timeout ({why})", reason="timeout")
    if isinstance(exc, requests.exceptions.ChunkedEncodingError) or (
            exc.args and isinstance(exc.args[0], ProtocolError)):
        return Retryable(f"Graph's reply was cut short or the connection dropped ({kind})",
                         reason="unavailable")
    return Retryable(f"cannot reach Graph ({kind})", reason="unavailable")


def _payload(hunt_id: str, response: requests.Response) -> Any:
    status = response.status_code
    if status == 200:
        try:
            return response.json()
        except json.JSONDecodeError as exc:
            if cut_short(exc):
                raise Retryable("Graph answered 200 with JSON cut short", status=200,
                                reason="malformed") from exc
            raise QueryError(hunt_id, "Graph answered 200 with a body that is not JSON",
                             status=status, retryable=True) from exc
        except ValueError as exc:
            raise QueryError(hunt_id, "Graph answered 200 with a body that is not JSON",
                             status=status, retryable=True) from exc
        except RecursionError:  # hostile or broken: JSON nested thousands deep
            raise QueryError(hunt_id, "Graph answered 200 with JSON nested too deep to read",
                             status=status, retryable=True, reason="malformed") from None
    message = _error_message(response)
    if status in RETRYABLE_STATUSES:
        raise Retryable(f"HTTP {status}: {message}", status=status,
                        retry_after=parse_retry_after(response.headers.get("Retry-After")))
    raise QueryError(hunt_id, f"Graph runHuntingQuery refused the query: {message}"
                     f"{forbidden_hint(status, GRANT)}", status=status, retryable=False)


def _error_message(response: requests.Response) -> str:
    """The service's ``error.message`` (and code), else the HTTP reason."""
    try:
        error = _casefold_keys(response.json()).get("error")
    except (ValueError, RecursionError):
        error = None
    if isinstance(error, Mapping):
        fields = _casefold_keys(error)
        code, message = fields.get("code"), fields.get("message")
        if message:
            return f"{code}: {message}" if code else str(message)
    return response.reason or f"HTTP {response.status_code}"


def hunting_result(hunt_id: str, payload: Any) -> QueryResult:
    """Typed rows from a runHuntingQuery 200 body (keys read case-insensitively)."""
    fields = _casefold_keys(payload)
    schema, results = fields.get("schema"), fields.get("results")
    if not isinstance(schema, list) or not isinstance(results, list):
        raise QueryError(hunt_id, "Graph answered 200 without a schema and results list",
                         status=200, retryable=True)
    columns = [_column(hunt_id, entry) for entry in schema]
    rows = [_row(hunt_id, row, columns) for row in results]
    _check_rows_match_schema(hunt_id, results, columns)
    return QueryResult(columns=columns, rows=rows, truncated=len(rows) >= ROW_LIMIT,
                       stats={"rows": len(rows)})


def _check_rows_match_schema(hunt_id: str, results: list[Any], columns: list[Column]) -> None:
    """A row that carries none of the schema's columns is not an answer to this query (it would
    become a row of nulls): the reply is malformed. Rows may leave some columns out (null)."""
    names = {column.name.casefold() for column in columns}
    for number, row in enumerate(results, 1):
        if names and not names & {str(key).casefold() for key in row}:
            raise QueryError(hunt_id, f"Graph answered 200 with result row {number} carrying "
                             "none of the schema's columns", status=200, retryable=True,
                             reason="malformed")


def _column(hunt_id: str, entry: Any) -> Column:
    fields = _casefold_keys(entry)
    name, graph_type = fields.get("name"), fields.get("type")
    if not isinstance(name, str):
        raise QueryError(hunt_id, f"Graph schema entry without a name: {entry!r:.200}",
                         status=200, retryable=True)
    return Column(name, GRAPH_TYPES.get(str(graph_type).casefold(), "string"))


def _row(hunt_id: str, row: Any, columns: list[Column]) -> dict[str, Any]:
    if not isinstance(row, Mapping):
        raise QueryError(hunt_id, "Graph result row is not an object", status=200, retryable=True)
    folded: dict[str, Any] | None = None
    typed: dict[str, Any] = {}
    for column in columns:
        if column.name in row:
            value = row[column.name]
        else:
            folded = folded if folded is not None else _casefold_keys(row)
            value = folded.get(column.name.casefold())
        try:
            typed[column.name] = kql_value(value, column.type)
        except (TypeError, ValueError, RecursionError) as exc:
            raise QueryError(hunt_id, f"column {column.name}: {exc}", status=200,
                             retryable=False) from exc
    return typed


def kql_value(value: Any, kql_type: str) -> Any:
    """A JSON value of KQL type *kql_type* as Python: aware UTC datetime, int, bool, float,
    parsed dynamic; strings for guid, timespan and string. None stays None."""
    if value is None:
        return None
    converter = _CONVERTERS.get(kql_type)
    return converter(value) if converter else value


def _datetime(value: Any) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str):
        moment = datetime.fromisoformat(value)
    else:
        raise TypeError(f"{type(value).__name__} is not a datetime")
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _integer(value: Any) -> int:
    if isinstance(value, bool):
        raise TypeError("a boolean is not an integer")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"{value} is not an integer")
        return int(value)
    return int(value)


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.casefold() in ("true", "false", "1", "0"):
        return value.casefold() in ("true", "1")
    raise ValueError(f"{value!r:.50} is not a boolean")


def _real(value: Any) -> float:
    if isinstance(value, bool):
        raise TypeError("a boolean is not a number")
    return float(value)


def _dynamic(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return json.loads(value)
        except (ValueError, RecursionError):  # not JSON, or nested too deep: keep the text
            return value
    return value


_CONVERTERS: dict[str, Callable[[Any], Any]] = {
    "datetime": _datetime, "long": _integer, "int": _integer, "bool": _boolean, "real": _real,
    "decimal": _real, "dynamic": _dynamic, "string": str, "guid": str, "timespan": str,
}


def _casefold_keys(document: Any) -> dict[str, Any]:
    if not isinstance(document, Mapping):
        return {}
    return {str(key).casefold(): value for key, value in document.items()}


def _first_line(text: str | None) -> str:
    return (text or "authentication failed").strip().splitlines()[0][:300]
