"""Storage queues for the fan-out (``shared/fanout``): the same account, credential, bounds and
error translation as the tables. ``open_queues`` is the only code that reads the queue settings:
``HUNTWIRE_STORAGE`` (a connection string with a queue endpoint, Azurite's locally) wins; else
``HUNTWIRE_STORAGE__queueServiceUri`` with the run's credential (the managed identity), the
setting the Functions host also reads for the queue triggers' ``connection="HUNTWIRE_STORAGE"``.

Messages are base64 text, the Functions host's default ``messageEncoding``.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from azure.core.credentials import TokenCredential
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import (
    QueueClient,
    QueueServiceClient,
    TextBase64DecodePolicy,
    TextBase64EncodePolicy,
)

from ..errors import ConfigurationError, StorageError
from ..settings import STORAGE_QUEUE_URI
from .errors import storage_errors
from .layer import BOUNDS, BoundedTransport, Bounds, Meter

if TYPE_CHECKING:
    from ..settings import Settings

QUEUE_URI: Final = STORAGE_QUEUE_URI
MAX_DELAY_SECONDS: Final = 7 * 24 * 3600
"""The service's longest initial invisibility of a message."""


class QueueError(StorageError):
    """A queue request failed (translated from the SDK; never carries URLs, keys or tokens)."""


class Queues:
    """One storage account's queues, as the fan-out reaches them: created on first use, every
    request held to the bounds (and to a deadline, when the caller sets one on the meter)."""

    def __init__(self, service: QueueServiceClient, meter: Meter) -> None:
        self.service = service
        self.meter = meter
        self._queues: dict[str, QueueClient] = {}
        self._lock = threading.Lock()

    @classmethod
    def from_connection_string(cls, connection_string: str, *,
                               bounds: Bounds = BOUNDS) -> Queues:
        meter = Meter(bounds)
        try:
            service = QueueServiceClient.from_connection_string(
                connection_string, transport=BoundedTransport(meter),
                **bounds.client_options())
        except ValueError:
            raise ConfigurationError("the storage connection string is not valid for queues",
                                     reason="configuration") from None
        return cls(service, meter)

    @classmethod
    def from_endpoint(cls, queue_service_uri: str, credential: TokenCredential, *,
                      bounds: Bounds = BOUNDS) -> Queues:
        meter = Meter(bounds)
        service = QueueServiceClient(account_url=queue_service_uri, credential=credential,
                                     transport=BoundedTransport(meter),
                                     **bounds.client_options())
        return cls(service, meter)

    def queue(self, name: str) -> QueueClient:
        """The client of queue *name*, created on first use."""
        with self._lock:
            client = self._queues.get(name)
            if client is None:
                client = self.service.get_queue_client(
                    name, message_encode_policy=TextBase64EncodePolicy(),
                    message_decode_policy=TextBase64DecodePolicy())
                with storage_errors(f"creating queue {name}", QueueError), \
                        contextlib.suppress(ResourceExistsError):
                    client.create_queue()
                self._queues[name] = client
            return client

    def send(self, name: str, body: str, *, delay_seconds: int = 0) -> None:
        """Put *body* on queue *name*, invisible for *delay_seconds* (a scheduled message)."""
        delay = max(0, min(int(delay_seconds), MAX_DELAY_SECONDS))
        client = self.queue(name)
        with storage_errors(f"sending a message to queue {name}", QueueError):
            client.send_message(body, visibility_timeout=delay or None)

    @property
    def requests(self) -> int:
        return self.meter.requests

    def close(self) -> None:
        self.service.close()


def open_queues(settings: Settings, env: Mapping[str, str],
                credential: TokenCredential | None = None, **options: Any) -> Queues:
    """The queues of the run's storage account (see the module's docstring)."""
    if settings.storage_connection_string:
        return Queues.from_connection_string(settings.storage_connection_string, **options)
    uri = (env.get(QUEUE_URI) or "").strip()
    if not uri:
        raise ConfigurationError(f"no queue storage configured: set HUNTWIRE_STORAGE or "
                                 f"{QUEUE_URI} (HUNTWIRE_FANOUT=queue needs one)",
                                 reason="configuration")
    if credential is None:
        from ..credentials import make_credential

        credential = make_credential(settings.client_id)
    return Queues.from_endpoint(uri, credential, **options)
