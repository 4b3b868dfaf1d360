"""One translation of Azure SDK errors into huntwire's StorageError family, and one helper for
the optimistic-concurrency loops (ETag 412, insert 409) every store writes."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TypeVar

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceExistsError,
    ResourceModifiedError,
    ServiceRequestError,
    ServiceResponseError,
)

from ..errors import HuntwireError, StorageError

T = TypeVar("T")
CONFLICTS: tuple[type[Exception], ...] = (ResourceModifiedError, ResourceExistsError)
"""The SDK's answers to a lost ETag or insert race (412, 409)."""

_REASONS_BY_STATUS = {401: "unauthorized", 403: "forbidden", 404: "not-found", 409: "conflict",
                      412: "conflict", 413: "too-large", 429: "throttled", 503: "throttled"}
_TOO_LARGE_CODES = ("EntityTooLarge", "PropertyValueTooLarge", "RequestBodyTooLarge")


class Conflict(StorageError):
    """Another writer changed the entity first (an ETag or insert race): read again, retry."""

    reason = "conflict"


_RETRIED: tuple[type[Exception], ...] = (*CONFLICTS, Conflict)


class DeadlinePassed(StorageError):
    """The run's time budget is spent: no new storage call starts (the next run goes on)."""

    reason = "deadline"


def reason_of(exc: BaseException) -> str:
    """A short word for why a storage call failed (health and logs read it)."""
    if isinstance(exc, StorageError) and exc.reason:
        return exc.reason
    if isinstance(exc, HttpResponseError) and exc.status_code is not None:
        code = str(getattr(exc, "error_code", "") or "")
        if code in _TOO_LARGE_CODES or "TooLarge" in code:
            return "too-large"
        if exc.status_code in _REASONS_BY_STATUS:
            return _REASONS_BY_STATUS[exc.status_code]
        return "service" if exc.status_code >= 500 else "rejected"
    if isinstance(exc, ClientAuthenticationError):
        return "unauthorized"
    if isinstance(exc, ServiceResponseError | ServiceRequestError):
        return "timeout" if "Timeout" in type(exc).__name__ else "unreachable"
    return "failed"


@contextmanager
def storage_errors(action: str, error: type[StorageError] = StorageError,
                   *passing: type[BaseException], **details: Any) -> Iterator[None]:
    """SDK errors raised inside as *error* naming *action* (never URLs, keys or tokens);
    huntwire's own errors and the *passing* types go through unchanged. *details* are keyword
    arguments of *error* (e.g. a ``hunt_id``)."""
    try:
        yield
    except passing:
        raise
    except Conflict:
        raise
    except HuntwireError as exc:
        if isinstance(exc, error) or not isinstance(exc, StorageError):
            raise
        raise _as(error, f"{action} failed: {exc.message}", exc, details) from exc
    except HttpResponseError as exc:
        code = getattr(exc, "error_code", None)
        text = f"{action} failed: HTTP {exc.status_code}" + (f" {code}" if code else "")
        raise _as(error, text, exc, details) from exc
    except AzureError as exc:
        inner = getattr(exc, "inner_exception", None)
        cause = f" ({type(inner).__name__})" if inner is not None else ""
        raise _as(error, f"{action} failed: {type(exc).__name__}{cause}", exc, details) from exc


def _as(error: type[StorageError], text: str, cause: BaseException,
        details: dict[str, Any]) -> StorageError:
    status = getattr(cause, "status_code", None) or getattr(cause, "status", None)
    made = error(text, **details)
    made.reason = reason_of(cause)
    made.status = status if isinstance(status, int) else None
    return made


def retry_conflicts(attempt: Callable[[], T], *, attempts: int, gave_up: str,
                    error: type[StorageError] = StorageError,
                    pause: Callable[[int], None] | None = None, **details: Any) -> T:
    """Call *attempt* until it does not raise a conflict (a 412 on an ETag-conditional write,
    a 409 on an insert, or :class:`Conflict`); *attempt* reads the current state itself. After
    *attempts* conflicts: *error* with the message *gave_up*. *pause*: called with the number
    of conflicts so far before each new attempt (e.g. a random wait, when many writers race for
    one entity and retrying at once would collide again)."""
    for number in range(1, attempts + 1):
        try:
            return attempt()
        except _RETRIED:
            if pause is not None and number < attempts:
                pause(number)
    made = error(f"{gave_up} (gave up after {attempts} attempts)", **details)
    made.reason = "conflict"
    raise made
