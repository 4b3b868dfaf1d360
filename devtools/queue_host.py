"""What the Functions host does with Storage queue triggers, for tests and benches (there is no
Functions host on this machine): receive a message with the real SDK, hand it to the function
as a ``func.QueueMessage``, delete it when the function returns; when the function raises, make
the message visible again after ``visibility_timeout`` (host.json); a message that failed on
its ``max_dequeue_count``-th dequeue, or comes back more often than that (its workers crashed),
goes to ``<queue>-poison``.

    host = QueueHost(connection_string, {"huntwire-hunts": worker, ...})
    host.drain()      # until every queue is empty (messages scheduled later are left)
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

import azure.functions as func
from azure.core.exceptions import ResourceExistsError
from azure.storage.queue import (
    QueueClient,
    QueueMessage,
    QueueServiceClient,
    TextBase64DecodePolicy,
    TextBase64EncodePolicy,
)

log = logging.getLogger("devtools.queue_host")
QueueFunction = Callable[[func.QueueMessage], None]
POISON_SUFFIX = "-poison"


@dataclass
class QueueHost:
    connection_string: str
    functions: Mapping[str, QueueFunction]
    """Queue name -> the function's user code (its ``get_user_function()``)."""
    max_dequeue_count: int = 5
    visibility_timeout: int = 0
    """Seconds before a failed message is visible again (host.json ``visibilityTimeout``)."""
    lease_seconds: int = 60
    """How long a received message stays invisible while its function runs."""
    failures: list[tuple[str, BaseException]] = field(default_factory=list)
    invocations: int = 0

    def __post_init__(self) -> None:
        self._service = QueueServiceClient.from_connection_string(self.connection_string)
        self._clients: dict[str, QueueClient] = {}

    def client(self, name: str) -> QueueClient:
        if name not in self._clients:
            client = self._service.get_queue_client(
                name, message_encode_policy=TextBase64EncodePolicy(),
                message_decode_policy=TextBase64DecodePolicy())
            with contextlib.suppress(ResourceExistsError):
                client.create_queue()
            self._clients[name] = client
        return self._clients[name]

    def receive(self, name: str, lease_seconds: int | None = None) -> QueueMessage | None:
        """The next visible message of *name*, now invisible for *lease_seconds*."""
        return self.client(name).receive_message(
            visibility_timeout=lease_seconds or self.lease_seconds)

    def receive_visible(self, name: str, lease_seconds: int | None = None,
                        max_messages: int = 32) -> list[QueueMessage]:
        """Every visible message of *name* (up to *max_messages*) in one receive, each now
        invisible for *lease_seconds* (each one's dequeue count goes up by one)."""
        return list(self.client(name).receive_messages(
            max_messages=max_messages, messages_per_page=max_messages,
            visibility_timeout=lease_seconds or self.lease_seconds))

    def release(self, name: str, messages: Iterable[QueueMessage]) -> None:
        """Make received messages visible again at once (a test put them back untouched)."""
        for message in messages:
            self.client(name).update_message(message, visibility_timeout=0)

    def visible_ids(self, name: str) -> set[str]:
        """The ids of the visible messages of *name* (a peek: no dequeue is counted)."""
        return {m.id for m in self.client(name).peek_messages(max_messages=32)}

    def invoke(self, name: str, message: QueueMessage) -> bool:
        """Run the function of *name* on *message* as the host does; whether it succeeded."""
        if (message.dequeue_count or 0) > self.max_dequeue_count:  # gave up (e.g. crashes)
            self.poison(name, message)
            return False
        self.invocations += 1
        body = message.content.encode() if isinstance(message.content, str) else message.content
        try:
            self.functions[name](func.QueueMessage(id=message.id, body=body,
                                                   pop_receipt=message.pop_receipt))
        except Exception as exc:  # the host logs the failed invocation and retries
            log.warning("queue host: %s failed (dequeue %s): %s", name, message.dequeue_count,
                        exc)
            self.failures.append((name, exc))
            self.fail(name, message)
            return False
        self.client(name).delete_message(message)
        return True

    def fail(self, name: str, message: QueueMessage) -> None:
        """After a failed invocation: poison it, or let it come back after the timeout."""
        if (message.dequeue_count or 0) >= self.max_dequeue_count:
            self.poison(name, message)
        else:
            self.client(name).update_message(message, visibility_timeout=self.visibility_timeout)

    def poison(self, name: str, message: QueueMessage) -> None:
        self.client(name + POISON_SUFFIX).send_message(message.content)
        self.client(name).delete_message(message)

    def drain(self, max_invocations: int = 1000) -> int:
        """Process every visible message of every queue until all are empty; returns how many
        invocations ran."""
        ran = 0
        while ran < max_invocations:
            busy = False
            for name in self.functions:
                message = self.receive(name)
                if message is not None:
                    busy = True
                    ran += 1
                    self.invoke(name, message)
            if not busy:
                return ran
        raise RuntimeError(f"queues still busy after {max_invocations} invocations")

    def depth(self, name: str) -> int:
        """Messages in *name*, visible or not (approximate, as the service counts)."""
        count = self.client(name).get_queue_properties().approximate_message_count
        return int(count or 0)

    def clear(self) -> None:
        for name in [*self.functions, *(n + POISON_SUFFIX for n in self.functions)]:
            self.client(name).clear_messages()
