"""The one way huntwire reaches Table Storage: a client with bounded timeouts and retries, tables
created on first use, every request counted and held to the run's deadline. Built once a run
(``shared.app``) and handed to every store (docs/reliability.md, "Storage")."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from typing import Any, Final

from azure.core.credentials import TokenCredential
from azure.core.exceptions import AzureError
from azure.core.pipeline.transport import HttpRequest, HttpResponse, RequestsTransport
from azure.data.tables import TableClient, TableServiceClient

from ..errors import ConfigurationError
from .deadline import Deadline
from .errors import DeadlinePassed, storage_errors


@dataclass(frozen=True)
class Bounds:
    """Timeouts (seconds) and retries of every Table Storage request."""

    connect_seconds: float = 10
    read_seconds: float = 30
    retries: int = 3
    backoff_factor: float = 0.8
    backoff_max: float = 10

    def client_options(self) -> dict[str, Any]:
        return {"retry_total": self.retries, "retry_backoff_factor": self.backoff_factor,
                "retry_backoff_max": self.backoff_max}

    @property
    def worst_call_seconds(self) -> float:
        """The longest one storage call can take without a deadline (every attempt hangs)."""
        attempts = self.retries + 1
        return (attempts * (self.connect_seconds + self.read_seconds)
                + self.retries * self.backoff_max)


BOUNDS: Final = Bounds()
_BOUND_NAMES: Final = {"connection_timeout": "connect_seconds", "read_timeout": "read_seconds",
                       "retry_total": "retries", "retry_backoff_factor": "backoff_factor",
                       "retry_backoff_max": "backoff_max"}


class Meter:
    """What one run's storage traffic is held to and has cost: the deadline and a count."""

    def __init__(self, bounds: Bounds) -> None:
        self.bounds = bounds
        self.deadline: Deadline | None = None
        self.requests = 0
        self._lock = threading.Lock()

    def start_request(self) -> tuple[float, float]:
        """Count a request about to be sent; its (connect, read) timeouts. Past the deadline:
        :class:`DeadlinePassed`, and nothing is sent."""
        connect, read = self.bounds.connect_seconds, self.bounds.read_seconds
        left = self.left()
        if left is not None:
            if left <= 0:
                raise self.passed()
            connect, read = min(connect, left), min(read, left)
        with self._lock:
            self.requests += 1
        return connect, read

    def left(self) -> float | None:
        return None if self.deadline is None else self.deadline.left()

    @staticmethod
    def passed() -> DeadlinePassed:
        return DeadlinePassed("storage: the run's time budget is spent; no new storage call "
                              "starts (the next run goes on from here)")


class BoundedTransport(RequestsTransport):  # type: ignore[misc]
    """The SDK's requests transport, each attempt held to the bounds and the run's deadline
    (a retry's back-off too); a passed deadline raises past the SDK's retries."""

    def __init__(self, meter: Meter, **kwargs: Any) -> None:
        super().__init__(connection_timeout=meter.bounds.connect_seconds,
                         read_timeout=meter.bounds.read_seconds, **kwargs)
        self.meter = meter

    def send(self, request: HttpRequest, **kwargs: Any) -> HttpResponse:
        connect, read = self.meter.start_request()
        kwargs["connection_timeout"] = min(kwargs.get("connection_timeout") or connect, connect)
        kwargs["read_timeout"] = min(kwargs.get("read_timeout") or read, read)
        try:
            response: HttpResponse = super().send(request, **kwargs)
        except AzureError as exc:
            left = self.meter.left()
            if left is not None and left <= 0:  # cut short by the deadline, not by the service
                raise self.meter.passed() from exc
            raise
        return response

    def sleep(self, duration: float) -> None:
        left = self.meter.left()
        time.sleep(max(0.0, min(duration, left)) if left is not None else duration)


class Storage:
    """One storage account, as every store reaches it. *prefix* starts every table name (a
    tenant's own tables, later); stores name tables without it."""

    def __init__(self, service: TableServiceClient, meter: Meter, *, prefix: str = "",
                 credential: TokenCredential | None = None) -> None:
        if prefix and not (prefix.isalnum() and prefix[0].isalpha()):
            raise ValueError(f"table prefix {prefix!r} must be letters and digits")
        self.service = service
        self.meter = meter
        self.prefix = prefix
        self.credential = credential
        self._tables: dict[str, TableClient] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_connection_string(cls, connection_string: str, *, bounds: Bounds = BOUNDS,
                               prefix: str = "", **sdk_options: Any) -> Storage:
        """The account of *connection_string* (Azurite's, locally). *sdk_options*: the
        ``TableServiceClient``'s own keywords; timeout and retry keywords set the bounds."""
        bounds, sdk_options = _split_bounds(bounds, sdk_options)
        meter = Meter(bounds)
        try:
            service = TableServiceClient.from_connection_string(
                connection_string, transport=_transport(meter, sdk_options),
                **bounds.client_options(), **sdk_options)
        except ValueError:
            raise ConfigurationError("the storage connection string is not valid",
                                     reason="configuration") from None
        return cls(service, meter, prefix=prefix)

    @classmethod
    def from_endpoint(cls, table_service_uri: str, credential: TokenCredential, *,
                      bounds: Bounds = BOUNDS, prefix: str = "",
                      **sdk_options: Any) -> Storage:
        """*table_service_uri* with *credential* (the managed identity in Azure)."""
        bounds, sdk_options = _split_bounds(bounds, sdk_options)
        meter = Meter(bounds)
        service = TableServiceClient(endpoint=table_service_uri, credential=credential,
                                     transport=_transport(meter, sdk_options),
                                     **bounds.client_options(), **sdk_options)
        return cls(service, meter, prefix=prefix, credential=credential)

    def for_tenant(self, prefix: str) -> Storage:
        """The same account and run budget, with *prefix* before every table name."""
        return Storage(self.service, self.meter, prefix=prefix, credential=self.credential)

    @property
    def requests(self) -> int:
        """HTTP requests sent so far (retries included)."""
        return self.meter.requests

    def limit(self, deadline: Deadline | None) -> None:
        """Hold every later storage call to *deadline* (None: the bounds alone)."""
        self.meter.deadline = deadline

    def name(self, table: str) -> str:
        return self.prefix + table

    def table(self, table: str) -> TableClient:
        """The client of *table* (named without the prefix), created on first use."""
        with self._lock:
            client = self._tables.get(table)
            if client is None:
                with storage_errors(f"creating table {table}"):
                    client = self.service.create_table_if_not_exists(self.name(table))
                self._tables[table] = client
            return client

    def tables_between(self, low: str, high: str) -> Iterator[str]:
        """Names (without the prefix) of the existing tables in [*low*, *high*)."""
        with storage_errors("listing tables"):
            found = list(self.service.query_tables(
                "TableName ge @low and TableName lt @high",
                parameters={"low": self.name(low), "high": self.name(high)}))
        return (table.name[len(self.prefix):] for table in found)

    def close(self) -> None:
        self.service.close()


def _transport(meter: Meter, sdk_options: dict[str, Any]) -> BoundedTransport:
    verify = sdk_options.pop("connection_verify", True)
    return BoundedTransport(meter, connection_verify=verify)


def _split_bounds(bounds: Bounds, options: dict[str, Any]) -> tuple[Bounds, dict[str, Any]]:
    """Timeout and retry keywords among *options* as Bounds; the rest for the SDK."""
    changes = {_BOUND_NAMES[name]: value for name, value in options.items()
               if name in _BOUND_NAMES}
    rest = {name: value for name, value in options.items() if name not in _BOUND_NAMES}
    return replace(bounds, **changes), rest
