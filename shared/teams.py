"""Deliver a payload to a Teams Workflows webhook: bounded retries, paced, and secret-safe.

Any 2xx is success (Workflows answer 202 and report card errors nowhere). 429 and 5xx, timeouts
and dropped connections are retried with back-off, honouring ``Retry-After``, within both
``max_attempts`` and ``max_total_seconds``; other answers fail at once. Requests are spaced at
least ``min_interval_seconds`` apart (Teams allows about 4 a second). On final failure
:class:`TeamsDeliveryError` is raised and the caller keeps the findings pending.

The webhook URL is a secret (its ``sig`` parameter authorises posting): it never appears in
exceptions, ``repr`` or logs, including urllib3's debug log of request lines.
"""

from __future__ import annotations

import email.utils
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

import requests

from .card import MAX_PAYLOAD_BYTES, serialize
from .errors import NotifyError

log = logging.getLogger("huntwire.teams")

_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
_URLLIB3_LOGGERS = ("urllib3.connectionpool", "urllib3.connection", "urllib3.util.retry")
BACKOFF_BASE_SECONDS = 1.0
BACKOFF_CAP_SECONDS = 16.0
CONNECT_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class DeliveryResult:
    status: int
    attempts: int
    payload_bytes: int
    elapsed_seconds: float


class TeamsDeliveryError(NotifyError):
    """The payload was not delivered. The message names the last outcome, never the URL."""

    def __init__(self, message: str, *, status: int | None = None, attempts: int = 0,
                 retryable: bool = True):
        self.status = status
        self.attempts = attempts
        self.retryable = retryable
        """Whether a later run may succeed (429, 5xx, network) or not (400, 401, 404, size)."""
        super().__init__(message, permanent=not retryable)


@dataclass(frozen=True)
class _Outcome:
    status: int | None
    reason: str
    retryable: bool
    retry_after: float | None = None

    @property
    def delivered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class TeamsWebhook:
    """``TeamsWebhook(url).post(payload)``; one instance paces all posts made through it."""

    def __init__(self, url: str, *, session: requests.Session | None = None,
                 timeout_seconds: float = 10, max_attempts: int = 4,
                 max_total_seconds: float = 60, min_interval_seconds: float = 0.25,
                 clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep):
        _check_url(url)
        if max_attempts < 1 or timeout_seconds <= 0 or max_total_seconds <= 0:
            raise ValueError("max_attempts, timeout_seconds and max_total_seconds must be positive")
        self._url = url
        self._owns_session = session is None
        self._session = session or requests.Session()
        self.timeout_seconds = timeout_seconds
        self.max_attempts = max_attempts
        self.max_total_seconds = max_total_seconds
        self.min_interval_seconds = min_interval_seconds
        self._clock = clock
        self._sleep = sleep
        self._pace_lock = threading.Lock()
        self._last_request_at: float | None = None
        _URL_REDACTOR.register(url)

    def __repr__(self) -> str:
        return "TeamsWebhook(url=<redacted>)"

    def post(self, payload: Mapping[str, Any]) -> DeliveryResult:
        """Send *payload*; return once a 2xx arrives, else raise :class:`TeamsDeliveryError`."""
        body = serialize(payload)
        if len(body) > MAX_PAYLOAD_BYTES:
            raise TeamsDeliveryError(f"payload is {len(body):,} bytes, over the "
                                     f"{MAX_PAYLOAD_BYTES:,}-byte Teams limit", retryable=False)
        started = self._clock()
        outcome = _Outcome(None, "not attempted", retryable=True)
        attempts = 0
        while attempts < self.max_attempts:
            remaining = self.max_total_seconds - (self._clock() - started)
            if remaining <= 0:
                break
            attempts += 1
            outcome = self._attempt(body, min(self.timeout_seconds, remaining))
            log.info("Teams webhook attempt %d: %s", attempts, outcome.reason)
            if outcome.delivered:
                return DeliveryResult(outcome.status or 0, attempts, len(body),
                                      self._clock() - started)
            if not outcome.retryable or not self._wait_before_retry(outcome, attempts, started):
                break
        raise _failure(outcome, attempts)

    def _attempt(self, body: bytes, timeout: float) -> _Outcome:
        self._pace()
        try:
            response = self._session.post(
                self._url, data=body, allow_redirects=False,
                headers={"Content-Type": "application/json; charset=utf-8"},
                timeout=(min(CONNECT_TIMEOUT_SECONDS, timeout), timeout))
        except requests.Timeout:
            return _Outcome(None, "timed out", retryable=True)
        except requests.ConnectionError:
            return _Outcome(None, "connection failed", retryable=True)
        except requests.RequestException as exc:
            return _Outcome(None, f"request failed ({type(exc).__name__})", retryable=False)
        with response:
            return _classify(response)

    def _wait_before_retry(self, outcome: _Outcome, attempts: int, started: float) -> bool:
        """Sleep before the next attempt; False when no attempt or time budget is left."""
        if attempts >= self.max_attempts:
            return False
        delay = outcome.retry_after if outcome.retry_after is not None else _backoff(attempts)
        if self._clock() - started + delay >= self.max_total_seconds:
            log.warning("Teams webhook: next attempt would pass the %.0f s budget",
                        self.max_total_seconds)
            return False
        self._sleep(delay)
        return True

    def _pace(self) -> None:
        with self._pace_lock:
            if self._last_request_at is not None:
                wait = self.min_interval_seconds - (self._clock() - self._last_request_at)
                if wait > 0:
                    self._sleep(wait)
            self._last_request_at = self._clock()

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def __enter__(self) -> TeamsWebhook:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _check_url(url: str) -> None:
    """Reject unusable URLs with messages that never quote the URL."""
    parts = None
    try:
        parts = urlsplit(url)
        requests.Request("POST", url).prepare()
    except (ValueError, requests.RequestException):
        parts = None  # raised below, outside this block, so no exception quoting it is chained
    if parts is None:
        raise ValueError("Teams webhook URL is not a valid URL")
    if not parts.hostname:
        raise ValueError("Teams webhook URL is not an absolute URL")
    if parts.scheme != "https" and not (parts.scheme == "http"
                                        and parts.hostname in _LOOPBACK_HOSTS):
        raise ValueError("Teams webhook URL must use https (http only for a loopback test server)")


def _classify(response: requests.Response) -> _Outcome:
    status = response.status_code
    if 200 <= status < 300:
        return _Outcome(status, f"HTTP {status}", retryable=False)
    code = _error_code(response)
    reason = f"HTTP {status}" + (f" {code}" if code else "")
    if status == 429 or status >= 500:
        return _Outcome(status, reason, retryable=True,
                        retry_after=parse_retry_after(response.headers.get("Retry-After")))
    return _Outcome(status, reason, retryable=False)


def _error_code(response: requests.Response) -> str:
    """The service's ``error.code`` (e.g. ``TriggerInputSchemaMismatch``); never free text,
    which could echo the request URL."""
    try:
        document = response.json()
    except ValueError:
        return ""
    error = document.get("error") if isinstance(document, dict) else None
    code = error.get("code") if isinstance(error, dict) else None
    return code[:80] if isinstance(code, str) and code.replace("_", "").isalnum() else ""


def parse_retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - (now or datetime.now(UTC))).total_seconds())


def _backoff(attempt: int) -> float:
    delay: float = min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (attempt - 1))
    return delay * random.uniform(0.8, 1.2)


def _failure(outcome: _Outcome, attempts: int) -> TeamsDeliveryError:
    return TeamsDeliveryError(
        f"Teams webhook delivery failed after {attempts} attempt(s): {outcome.reason}",
        status=outcome.status, attempts=attempts, retryable=outcome.retryable)


class _UrlRedactor(logging.Filter):
    """Rewrites library log records (urllib3 logs request lines at DEBUG) that contain a
    registered webhook path or query."""

    def __init__(self) -> None:
        super().__init__()
        self._secrets: set[str] = set()
        self._lock = threading.Lock()
        self._installed = False

    def register(self, url: str) -> None:
        sent = requests.Request("POST", url).prepare().url or url
        fragments = {f for u in (url, sent) for f in (urlsplit(u).path, urlsplit(u).query)
                     if len(f) > 1}
        with self._lock:
            self._secrets |= fragments
            if not self._installed:
                for name in _URLLIB3_LOGGERS:
                    logging.getLogger(name).addFilter(self)
                self._installed = True

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = message
        for secret in self._secrets:
            redacted = redacted.replace(secret, "<redacted>")
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


_URL_REDACTOR = _UrlRedactor()
