"""Microsoft Sentinel hunts through Log Analytics (``azure-monitor-query`` ``LogsQueryClient``).

The SDK posts ``{"query", "timespan": "start/end"}`` to ``/v1/workspaces/{id}/query`` with
``Prefer: wait={server_timeout}``. A 200 that carries an ``error`` beside its tables comes back as
``LogsQueryPartialResult``: it is returned with ``partial=True`` and the error text, never dropped.
The SDK's own retries are switched off so that one policy (:mod:`.retry`) bounds attempts and
time for both sources; 429 and 5xx are retried, honouring ``Retry-After``. A 200 without a
``PrimaryResult`` table (seen during outages) is a transient error, never an empty result; a reply
gets one deadline as a whole, and one cut short is retried.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from azure.core.credentials import TokenCredential
from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    IncompleteReadError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.core.pipeline.policies import RetryPolicy as SdkRetryPolicy
from azure.core.pipeline.transport import RequestsTransport
from azure.monitor.query import LogsQueryClient, LogsQueryPartialResult, LogsQueryResult, LogsTable

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
from .defender import kql_value

if TYPE_CHECKING:
    from ..settings import Settings

LOG = logging.getLogger(__name__)

LOGS_ENDPOINT = "https://api.loganalytics.io"
ROW_LIMIT = 500_000
"""Log Analytics returns at most this many rows; a result this long is flagged as truncated."""
MAX_SERVER_TIMEOUT = 600
"""The service accepts ``Prefer: wait=`` up to 10 minutes."""
TOO_LARGE_CODE = "E_QUERY_RESULT_SET_TOO_LARGE"
"""In a partial error: the service cut the result at its row or size limit."""
READ_MARGIN_SECONDS = 30.0
"""The client waits this much longer than the server so the server's own timeout error arrives."""
PRIMARY_TABLE = "PrimaryResult"
GRANT = "the Log Analytics Reader role on the workspace"
CALLS_PER_PERIOD = (200, 30.0)
"""Log Analytics' query API allows about 200 requests per 30 s per user (429 beyond)."""
CONCURRENT_QUERIES = 4
"""The service runs about 5 queries of one user at once and queues the rest: stay under."""

QueryResponse = LogsQueryResult | LogsQueryPartialResult


def build(settings: Settings, credential: TokenCredential, policy: RetryPolicy,
          timeouts: Timeouts, book: RateBook = PROCESS_BOOK) -> SentinelSource | None:
    """The registry's factory; None (with a warning) when no workspace is configured."""
    if not settings.sentinel_workspace_id:
        LOG.warning("HUNTWIRE_SENTINEL_WORKSPACE_ID is not set: Sentinel hunts are skipped")
        return None
    pacer = logs_pacer(book, settings.client_id, settings.logs_endpoint)
    return SentinelSource(credential, settings.sentinel_workspace_id, settings.logs_endpoint,
                          server_timeout_seconds=180, policy=policy,
                          connect_timeout_seconds=timeouts.connect_seconds,
                          read_timeout_seconds=timeouts.read_seconds,
                          pacer=pacer, lanes=identity_lanes(pacer=pacer))


def logs_pacer(book: RateBook, identity: str | None, endpoint: str) -> CallPacer:
    """The identity's Log Analytics pacer in *book* (its limits are per user)."""
    calls, period = CALLS_PER_PERIOD
    return book.pacer(f"logs:{identity or 'function'}@{endpoint}", calls, period)


def identity_pacer(clock: Clock = SYSTEM_CLOCK) -> CallPacer:
    """A pacer for one identity's Log Analytics queries (the limits are per user): share it by
    every workspace the identity queries, Lighthouse-delegated ones included."""
    calls, period = CALLS_PER_PERIOD
    return CallPacer(calls=calls, period_seconds=period, clock=clock)


def identity_lanes(identity: str = "function", pacer: CallPacer | None = None,
                   concurrent: int = CONCURRENT_QUERIES) -> tuple[Lane, ...]:
    """The pool's lane for the identity's Log Analytics queries, paced by *pacer*."""
    return (Lane(f"logs:{identity}", concurrent, pacer),)


class SentinelSource:
    """A QuerySource over a Sentinel (Log Analytics) workspace.

    *server_timeout_seconds* goes to the service as ``Prefer: wait=N`` (1..600); the client's
    read timeout (*read_timeout_seconds*) defaults to that plus a margin, and is never more than
    the policy's remaining time budget, which also bounds each whole reply.
    """

    name = "sentinel"

    def __init__(self, credential: TokenCredential, workspace_id: str,
                 endpoint: str = LOGS_ENDPOINT, *, server_timeout_seconds: int = 180,
                 policy: RetryPolicy | None = None, pacer: CallPacer | None = None,
                 audience: str | None = None, connect_timeout_seconds: float = 10.0,
                 read_timeout_seconds: float | None = None, clock: Clock = SYSTEM_CLOCK,
                 rng: random.Random | None = None, lanes: Sequence[Lane] = (),
                 additional_workspaces: Sequence[str] = ()):
        if not 1 <= server_timeout_seconds <= MAX_SERVER_TIMEOUT:
            raise ValueError(f"server_timeout_seconds must be 1..{MAX_SERVER_TIMEOUT}")
        self._enforce_https = https_required(endpoint)
        self.lanes = tuple(lanes)
        """Concurrency limits the runner's pool keeps (:mod:`shared.schedule`)."""
        self._workspace_id = workspace_id
        self._additional = list(additional_workspaces)
        """Queried with the first in one request (a tenant's workspaces, via Lighthouse)."""
        self._server_timeout = server_timeout_seconds
        self._timeouts = Timeouts(connect_timeout_seconds,
                                  read_timeout_seconds or server_timeout_seconds
                                  + READ_MARGIN_SECONDS)
        self._policy = policy or RetryPolicy()
        self._pacer = pacer
        self._clock = clock
        self._rng = rng or random.Random()
        self._session = deadline_session()
        self._client = LogsQueryClient(
            credential, endpoint=endpoint, audience=audience or endpoint,
            retry_policy=SdkRetryPolicy.no_retries(),
            transport=RequestsTransport(session=self._session, session_owner=False))

    def run(self, hunt: Hunt, window: Window) -> QueryResult:
        outcome = run_with_retries(hunt.id, "Log Analytics query",
                                   lambda attempt: self._query(hunt, window, attempt),
                                   policy=self._policy, clock=self._clock, rng=self._rng,
                                   pacer=self._pacer, label="Sentinel")
        result = logs_result(hunt.id, outcome.value)
        result.stats["attempts"] = outcome.attempts
        return result

    def close(self) -> None:
        self._client.close()
        self._session.close()

    def _query(self, hunt: Hunt, window: Window, attempt: Attempt) -> QueryResponse:
        read_timeout = max(min(self._timeouts.read_seconds, attempt.remaining_seconds), 0.001)
        deadline = ReplyDeadline(self._timeouts.reply_deadline(attempt))
        answer: dict[str, Any] = {}
        try:
            with deadline:
                return self._client.query_workspace(
                    self._workspace_id, render_query(hunt.query, window),
                    timespan=(window.start, window.end),
                    server_timeout=self._server_timeout, enforce_https=self._enforce_https,
                    connection_timeout=self._timeouts.connect_seconds, read_timeout=read_timeout,
                    additional_workspaces=self._additional or None,
                    raw_response_hook=lambda response: _note_answer(answer, response))
        except RecursionError:  # hostile or broken: JSON nested thousands deep
            raise _unreadable(hunt.id, answer, "JSON nested too deep to read") from None
        except json.JSONDecodeError as exc:
            if answer.get("status", 200) != 200:  # an error reply whose body is not JSON
                raise _unreadable(hunt.id, answer, "a body that is not JSON") from exc
            raise _failure(hunt.id, exc, deadline) from exc
        except (HttpResponseError, ServiceRequestError, ServiceResponseError) as exc:
            raise _failure(hunt.id, exc, deadline) from exc


def _note_answer(answer: dict[str, Any], response: Any) -> None:
    """Keep the HTTP status and Retry-After of the reply (the SDK may fail to decode it)."""
    reply = response.http_response
    answer["status"] = reply.status_code
    answer["retry_after"] = reply.headers.get("Retry-After")


def _unreadable(hunt_id: str, answer: Mapping[str, Any], what: str) -> Exception:
    """A reply whose body could not be read: judged by its status (5xx and 429 are retried)."""
    status = answer.get("status")
    if status in RETRYABLE_STATUSES:
        return Retryable(f"HTTP {status}: Log Analytics answered with {what}", status=status,
                         retry_after=parse_retry_after(answer.get("retry_after")))
    if status is None or status == 200:
        return QueryError(hunt_id, f"Log Analytics answered 200 with {what}", status=200,
                          retryable=True, reason="malformed")
    return QueryError(hunt_id, f"Log Analytics refused the query with {what}"
                      f"{forbidden_hint(status, GRANT)}", status=status, retryable=False)


def _failure(hunt_id: str, exc: Exception, deadline: ReplyDeadline) -> Exception:
    """What one failed attempt means: Retryable (try again now) or QueryError (stop)."""
    if isinstance(exc, HttpResponseError) and exc.response is None \
            and isinstance(exc.__context__, AzureError):
        exc = exc.__context__  # the SDK re-raised it as a bare HttpResponseError
    kind = type(exc).__name__
    if isinstance(exc, ClientAuthenticationError):
        return QueryError(hunt_id, f"no token for Log Analytics: {_first_line(exc.message)}",
                          retryable=True, reason="no-token")
    if deadline.expired:
        return Retryable(f"no answer from Log Analytics within the timeout (the whole reply "
                         f"took over {deadline.seconds:.1f} s)", reason="timeout")
    if isinstance(exc, IncompleteReadError) or (isinstance(exc, HttpResponseError)
                                                and exc.response is None):
        return Retryable(f"Log Analytics' reply was cut short or the connection dropped "
                         f"({kind})", reason="unavailable")
    if isinstance(exc, ServiceRequestError | ServiceResponseError):
        timeout = "Timeout" in kind
        return Retryable(f"no answer from Log Analytics ({kind})",
                         reason="timeout" if timeout else "unavailable")
    decode_error = _json_decode_error(exc)
    if decode_error is not None:
        if cut_short(decode_error):
            return Retryable("Log Analytics answered 200 with JSON cut short", status=200,
                             reason="malformed")
        return QueryError(hunt_id, "Log Analytics answered with a body that is not JSON",
                          status=200, retryable=True)
    if isinstance(exc, HttpResponseError):
        return _response_error(hunt_id, exc)
    return Retryable(f"Log Analytics failed: {_first_line(str(exc))}", reason="unavailable")


def _json_decode_error(exc: BaseException | None) -> json.JSONDecodeError | None:
    """The JSON error behind *exc* (the SDK wraps it, then re-raises the wrapper)."""
    for _ in range(4):
        if exc is None or isinstance(exc, json.JSONDecodeError):
            return exc
        exc = exc.__context__
    return None


def _response_error(hunt_id: str, exc: HttpResponseError) -> Exception:
    """The service's refusal (the SDK puts the service's error in the model)."""
    status = exc.status_code
    if status == 200:  # the body could not be decoded
        return QueryError(hunt_id, "Log Analytics answered 200 with a body that is not JSON",
                          status=200, retryable=True)
    message = _service_message(exc)
    if status in RETRYABLE_STATUSES:
        headers: Mapping[str, str] = getattr(exc.response, "headers", None) or {}
        return Retryable(f"HTTP {status}: {message}", status=status,
                         retry_after=parse_retry_after(headers.get("Retry-After")))
    return QueryError(hunt_id, f"Log Analytics refused the query: {message}"
                      f"{forbidden_hint(status, GRANT)}", status=status, retryable=False)


def _service_message(exc: HttpResponseError) -> str:
    """``code: message`` from the error body; the SDK puts the innermost message in its model."""
    model = exc.model
    code = getattr(model, "code", None) or getattr(exc.error, "code", None)
    message = getattr(model, "message", None) or _first_line(exc.message)
    return f"{code}: {message}" if code else str(message)


def logs_result(hunt_id: str, response: QueryResponse) -> QueryResult:
    """Typed rows of the first (primary) table; a partial answer keeps its error."""
    if isinstance(response, LogsQueryPartialResult):
        tables = list(response.partial_data or [])
        error = response.partial_error
        partial_error = describe_error(getattr(error, "code", None),
                                       getattr(error, "message", None),
                                       getattr(error, "details", None))
    else:
        tables, partial_error = list(response.tables), None
    primary = _primary(tables)
    if primary is None and partial_error is None:
        raise QueryError(hunt_id, "Log Analytics answered 200 without a PrimaryResult table "
                         "(an outage answer, not an empty result)", status=200, retryable=True)
    columns, rows = _table(hunt_id, primary) if primary is not None else ([], [])
    truncated = len(rows) >= ROW_LIMIT or TOO_LARGE_CODE in (partial_error or "")
    return QueryResult(columns=columns, rows=rows, truncated=truncated,
                       partial=partial_error is not None, partial_error=partial_error,
                       stats={"rows": len(rows), "tables": len(tables)})


def _primary(tables: list[LogsTable]) -> LogsTable | None:
    """The query's result table, named PrimaryResult; None when the answer has none."""
    return next((t for t in tables if t.name == PRIMARY_TABLE), None)


def describe_error(code: str | None, message: str | None,
                   details: Iterable[Mapping[str, Any]] | None) -> str:
    """``code: message`` followed by the innermost message of each detail, so the real reason
    (e.g. E_QUERY_RESULT_SET_TOO_LARGE) is visible rather than "There were some errors"."""
    parts = [f"{code}: {message}" if code else str(message or "partial result")]
    for detail in details or ():
        inner: Mapping[str, Any] = detail
        while isinstance(inner.get("innererror"), Mapping):
            inner = inner["innererror"]
        if inner.get("message"):
            parts.append(str(inner["message"]))
    return " | ".join(parts)


def _table(hunt_id: str, table: LogsTable) -> tuple[list[Column], list[dict[str, Any]]]:
    columns = [Column(name, kind) for name, kind in zip(table.columns, table.columns_types,
                                                        strict=True)]
    rows: list[dict[str, Any]] = []
    for row in table.rows:
        try:
            rows.append({c.name: kql_value(_sdk_null(v, c.type), c.type)
                         for c, v in zip(columns, row, strict=True)})
        except (TypeError, ValueError, RecursionError) as exc:
            raise QueryError(hunt_id, f"Log Analytics row {row.index}: {exc}", status=200,
                             retryable=False) from exc
    return columns, rows


def _sdk_null(value: Any, kql_type: str) -> Any:
    """azure-monitor-query 2.0 turns null guid and timespan cells into the text "None"; no real
    guid or timespan reads like that, so it is null again."""
    return None if kql_type in ("guid", "timespan") and value == "None" else value


def _first_line(text: str | None) -> str:
    return (text or "no detail").strip().splitlines()[0][:300]
