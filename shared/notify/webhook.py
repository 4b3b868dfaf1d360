"""POST a JSON body to a secret webhook URL: paced, retried by ``shared.retry``, secret-safe.

Shared by every webhook notifier (Teams today; Slack or a generic JSON webhook would reuse it).
429, 408 and 5xx answers, timeouts and dropped connections are retried, honouring
``Retry-After``, within the policy's attempts and time budget; other answers fail at once. A
notifier adds its own check of a 2xx reply's body (:meth:`JsonWebhook.reply_problem`).

Failures raise :class:`WebhookError` (a ``NotifyError``): ``permanent`` when the webhook is gone
or refuses us (401, 403, 404, 410), or refuses the payload (400, 413, other 4xx); transient
otherwise. The URL never appears in exceptions, ``repr`` or logs.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import ClassVar
from urllib.parse import urlsplit

import requests

from ..errors import ConfigurationError, NotifyError
from ..retry import (
    SYSTEM_CLOCK,
    Attempt,
    CallPacer,
    Clock,
    RetriesExhausted,
    Retryable,
    RetryPolicy,
    call_with_retries,
    parse_retry_after,
)
from .base import Delivery
from .redact import URL_REDACTOR

log = logging.getLogger("huntwire.notify")

_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
CONNECT_TIMEOUT_SECONDS = 5.0
MAX_REPLY_BYTES = 64 * 1024
"""Only the start of a reply is read: enough to classify it, never a memory problem."""
DEAD_WEBHOOK = frozenset({401, 403, 404, 410})
RETRY_STATUSES = frozenset({408, 429})


class WebhookError(NotifyError):
    """The payload was not delivered. The message names the last outcome, never the URL."""

    def __init__(self, message: str, *, status: int | None = None, attempts: int = 0,
                 retryable: bool = True):
        self.status = status
        self.attempts = attempts
        self.retryable = retryable
        """Whether a later run may succeed (429, 5xx, network) or not (a dead webhook, size)."""
        super().__init__(message, permanent=not retryable)


class WebhookUrlError(ConfigurationError, ValueError):
    """The webhook URL setting is unusable; the message never quotes it."""


@dataclass(frozen=True)
class Reply:
    """What one attempt got: a status and the start of the body, or no answer (*status* None)."""

    status: int | None
    body: bytes = b""
    retry_after: float | None = None
    failure: str = ""
    """Why there is no usable answer (timed out, connection failed)."""


@dataclass(frozen=True)
class Problem:
    reason: str
    retryable: bool
    status: int | None = None
    retry_after: float | None = None


class JsonWebhook:
    """``JsonWebhook(url).post(body)``; one instance paces all posts made through it."""

    name: ClassVar[str] = "webhook"
    error_type: ClassVar[type[WebhookError]] = WebhookError
    max_bytes: ClassVar[int | None] = None

    def __init__(self, url: str, *, session: requests.Session | None = None,
                 timeout_seconds: float = 10, max_attempts: int = 4,
                 max_total_seconds: float = 60, min_interval_seconds: float = 0.25,
                 clock: Clock = SYSTEM_CLOCK):
        check_url(url, self.name)
        if max_attempts < 1 or timeout_seconds <= 0 or max_total_seconds <= 0:
            raise ValueError("max_attempts, timeout_seconds and max_total_seconds must be positive")
        self._url = url
        self._owns_session = session is None
        self._session = session or requests.Session()
        self.timeout_seconds = timeout_seconds
        self.policy = RetryPolicy(max_attempts=max_attempts, max_total_seconds=max_total_seconds,
                                  base_delay=1.0, max_delay=16.0)
        self._clock = clock
        self._pacer = (CallPacer(1, min_interval_seconds, clock=clock)
                       if min_interval_seconds > 0 else None)
        URL_REDACTOR.register(url)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(url=<redacted>)"

    def post(self, body: bytes) -> Delivery:
        """Send *body*; return once a 2xx without an error arrives, else raise ``error_type``."""
        if self.max_bytes is not None and len(body) > self.max_bytes:
            raise self.error_type(f"payload is {len(body):,} bytes, over the {self.max_bytes:,}-"
                                  f"byte {self.name} limit", retryable=False)
        started = self._clock.monotonic()
        try:
            done = call_with_retries(lambda attempt: self._attempt(body, attempt), self.policy,
                                     clock=self._clock, pacer=self._pacer,
                                     label=f"{self.name} webhook")
        except RetriesExhausted as exc:
            failure = self._failure(exc)
        else:
            return Delivery(self.name, done.value, done.attempts, len(body),
                            self._clock.monotonic() - started)
        raise failure  # outside the handler: nothing that could quote the URL is chained

    def _attempt(self, body: bytes, attempt: Attempt) -> int:
        reply = self._send(body, max(min(self.timeout_seconds, attempt.remaining_seconds), 0.1))
        problem = self._problem(reply)
        log.info("%s webhook attempt %d: %s", self.name, attempt.number,
                 problem.reason if problem else f"HTTP {reply.status}")
        if problem is None:
            assert reply.status is not None
            return reply.status
        if problem.retryable:
            raise Retryable(problem.reason, status=problem.status,
                            retry_after=problem.retry_after)
        raise self.error_type(f"{self.name} webhook delivery failed after {attempt.number} "
                              f"attempt(s): {problem.reason}", status=problem.status,
                              attempts=attempt.number, retryable=False)

    def _send(self, body: bytes, timeout: float) -> Reply:
        deadline = self._clock.monotonic() + timeout
        try:
            response = self._session.post(
                self._url, data=body, allow_redirects=False, stream=True,
                headers={"Content-Type": "application/json; charset=utf-8"},
                timeout=(min(CONNECT_TIMEOUT_SECONDS, timeout), timeout))
        except requests.Timeout:
            return Reply(None, failure="timed out")
        except requests.ConnectionError:
            return Reply(None, failure="connection failed")
        except requests.RequestException as exc:
            return Reply(None, failure=f"request failed ({type(exc).__name__})")
        with response:
            return self._read(response, deadline)

    def _read(self, response: requests.Response, deadline: float) -> Reply:
        """The status and up to :data:`MAX_REPLY_BYTES` of body, within the attempt's time."""
        chunks: list[bytes] = []
        size = 0
        try:
            while size < MAX_REPLY_BYTES:
                if self._clock.monotonic() > deadline:
                    return Reply(None, failure="timed out reading the reply")
                chunk = response.raw.read1(4096)
                if not chunk:
                    break
                chunks.append(chunk)
                size += len(chunk)
        except (requests.RequestException, OSError, ValueError) as exc:
            failure = f"reply cut short ({type(exc).__name__})"
            return Reply(None, failure=failure)
        retry_after = parse_retry_after(response.headers.get("Retry-After"))
        return Reply(response.status_code, b"".join(chunks), retry_after)

    def _problem(self, reply: Reply) -> Problem | None:
        if reply.status is None:
            return Problem(reply.failure, retryable=not reply.failure.startswith("request"))
        status = reply.status
        if 200 <= status < 300:
            return self.reply_problem(status, reply.body)
        reason = f"HTTP {status}" + (f" {code}" if (code := error_code(reply.body)) else "")
        if status in RETRY_STATUSES or status >= 500:
            return Problem(reason, True, status, reply.retry_after)
        if status in DEAD_WEBHOOK:
            reason += (f": the {self.name} webhook is gone or refuses us; set a new webhook URL")
        return Problem(reason, False, status)

    def reply_problem(self, status: int, body: bytes) -> Problem | None:
        """What is wrong with a 2xx reply, or None when it means delivered."""
        return None

    def _failure(self, exhausted: RetriesExhausted) -> WebhookError:
        last = exhausted.last
        return self.error_type(f"{self.name} webhook delivery failed after {exhausted.attempts} "
                               f"attempt(s): {last.message} ({exhausted.reason})",
                               status=last.status, attempts=exhausted.attempts, retryable=True)

    def close(self) -> None:
        if self._owns_session:
            self._session.close()


def check_url(url: str, name: str) -> None:
    """Reject unusable URLs with messages that never quote the URL."""
    label = f"{name[:1].upper()}{name[1:]} webhook URL"
    parts = None
    try:
        parts = urlsplit(url)
        requests.Request("POST", url).prepare()
    except (ValueError, requests.RequestException):
        parts = None  # raised below, outside this block, so no exception quoting it is chained
    if parts is None:
        raise WebhookUrlError(f"{label} is not a valid URL")
    if not parts.hostname:
        raise WebhookUrlError(f"{label} is not an absolute URL")
    if parts.scheme != "https" and not (parts.scheme == "http"
                                        and parts.hostname in _LOOPBACK_HOSTS):
        raise WebhookUrlError(f"{label} must use https (http only for a loopback test server)")


def error_code(body: bytes) -> str:
    """The service's ``error.code`` (e.g. ``TriggerInputSchemaMismatch``); never free text,
    which could echo the request URL."""
    try:
        document = json.loads(body)
    except ValueError:
        return ""
    error = document.get("error") if isinstance(document, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code[:80] if isinstance(code, str) and code.replace("_", "").isalnum() else ""
