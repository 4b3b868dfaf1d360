"""A local stand-in for a Teams Workflows webhook, for tests and the demo.

It listens on 127.0.0.1 (free port), accepts POSTs only on its own secret URL (shaped like a
Workflows trigger URL, with a random ``sig``), records every payload, and answers from a script
of replies: ``Reply(202)``, ``Reply(429, {"Retry-After": "2"})``, ``Reply(500)``,
``Reply(200, body=b"Microsoft Teams endpoint returned HTTP error 413")`` (an older connector's
error), ``Hang()`` (hold the connection without answering) and ``Drip(200, b"1" * 50, 0.2)``
(send the body one byte at a time). When the script runs out it answers ``default``.

    with WebhookReceiver([Reply(429, {"Retry-After": "1"}), Reply(202)]) as hook:
        TeamsWebhook(hook.url).post(payload)  # shared.notify.teams
        assert hook.payloads == [payload, payload]

``python -m devtools.webhook`` runs one until interrupted and prints each card's title.
"""

from __future__ import annotations

import argparse
import json
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_BODY_BYTES = 1_000_000


@dataclass(frozen=True)
class Reply:
    status: int = 202
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""


@dataclass(frozen=True)
class Hang:
    """Read the request, then hold the connection open without answering."""

    seconds: float = 30.0


@dataclass(frozen=True)
class Drip:
    """Answer *status* at once, then send *body* one byte every *interval* seconds."""

    status: int = 200
    body: bytes = b"1" * 100
    interval: float = 0.2


Answer = Reply | Hang | Drip


@dataclass(frozen=True)
class ReceivedPost:
    path: str
    headers: dict[str, str]
    body: bytes
    received_at: float
    """``time.monotonic()`` when the request was read."""
    answer: Answer

    def json(self) -> Any:
        return json.loads(self.body)


class WebhookReceiver:
    def __init__(self, answers: Iterable[Answer] = (), *, default: Answer = Reply(202),
                 port: int = 0):
        self._answers: deque[Answer] = deque(answers)
        self.default = default
        self.workflow = secrets.token_hex(16)
        self.sig = secrets.token_urlsafe(32)
        self._posts: list[ReceivedPost] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = _Server(("127.0.0.1", port), _Handler, self)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        port: int = self._server.server_address[1]
        return port

    @property
    def path(self) -> str:
        return f"/workflows/{self.workflow}/triggers/manual/paths/invoke"

    @property
    def url(self) -> str:
        """The secret URL, shaped like a Workflows trigger URL."""
        return (f"http://127.0.0.1:{self.port}{self.path}?api-version=1"
                f"&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig={self.sig}")

    def script(self, *answers: Answer) -> None:
        """Queue more answers."""
        with self._lock:
            self._answers.extend(answers)

    @property
    def posts(self) -> list[ReceivedPost]:
        with self._lock:
            return list(self._posts)

    @property
    def payloads(self) -> list[Any]:
        return [post.json() for post in self.posts]

    def start(self) -> WebhookReceiver:
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True,
                                        name=f"webhook-{self.port}")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> WebhookReceiver:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def _accepts(self, raw_path: str) -> bool:
        parts = urlsplit(raw_path)
        return (parts.path == self.path
                and parse_qs(parts.query).get("sig") == [self.sig])

    def _record(self, handler: BaseHTTPRequestHandler, body: bytes) -> Answer:
        with self._lock:
            answer = self._answers.popleft() if self._answers else self.default
            self._posts.append(ReceivedPost(handler.path, dict(handler.headers.items()), body,
                                            time.monotonic(), answer))
        return answer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 receiver: WebhookReceiver):
        self.receiver = receiver
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        receiver = self.server.receiver
        if not receiver._accepts(self.path):
            self._send(Reply(404, {"Content-Type": "application/json"},
                             b'{"error":{"code":"WorkflowTriggerNotFound"}}'))
            return
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            self._send(Reply(413))
            return
        body = self.rfile.read(length)
        if not _is_json(body):
            self._send(Reply(400, {"Content-Type": "application/json"},
                             b'{"error":{"code":"InvalidRequestContent"}}'))
            return
        answer = receiver._record(self, body)
        if isinstance(answer, Hang):
            receiver._stopping.wait(answer.seconds)
            self.close_connection = True
            return
        if isinstance(answer, Drip):
            self._drip(answer, receiver._stopping)
            return
        self._send(answer)

    def _drip(self, drip: Drip, stopping: threading.Event) -> None:
        self.send_response(drip.status)
        self.send_header("Content-Length", str(len(drip.body)))
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        for byte in drip.body:
            if stopping.wait(drip.interval):
                return
            try:
                self.wfile.write(bytes([byte]))
                self.wfile.flush()
            except OSError:  # the client gave up
                return

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the request line carries the secret URL."""


def _is_json(body: bytes) -> bool:
    try:
        json.loads(body)
    except ValueError:
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run a local Teams webhook receiver.")
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    with WebhookReceiver(port=args.port) as receiver:
        print(f"HUNTWIRE_TEAMS_WEBHOOK_URL={receiver.url}", flush=True)
        seen = 0
        try:
            while True:
                time.sleep(0.5)
                posts = receiver.posts
                for post in posts[seen:]:
                    print(f"received {len(post.body):,} bytes: {_title(post.json())}",
                          flush=True)
                seen = len(posts)
        except KeyboardInterrupt:
            return 0


def _title(payload: Any) -> str:
    from shared.cards import summarize_digest

    try:
        digest = summarize_digest(payload)
    except (KeyError, IndexError, TypeError, ValueError):
        return "(not a huntwire card)"
    return (f"{digest.severity} {digest.hunt_name}: {digest.total_new} new, "
            f"{digest.findings_shown} shown")


if __name__ == "__main__":
    raise SystemExit(main())
