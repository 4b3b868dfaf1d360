"""An HTTP proxy in front of Azurite that injects storage faults, for the reliability tests.

Each request is forwarded to the upstream Table endpoint, or answered with a fault drawn from a
seeded random generator, so a failing case can be replayed exactly:

``busy``
    answer 503 ServerBusy without forwarding (the service refused: nothing applied);
``reset``
    close the connection with a TCP reset without forwarding (nothing applied);
``lost``
    forward the request, let Azurite apply it, then reset the connection instead of replying
    ("applied but the reply was lost": the client cannot know the write happened).

    with Azurite() as azurite, FaultProxy(azurite.port, rate=0.1, seed=7) as proxy:
        connection_string = proxy.connection_string
        ...
        proxy.injected  # Counter of faults by kind

``delay`` (seconds, settable at any time) holds every request that long before it is forwarded
(slow storage); ``hang = True`` holds every new request until the proxy stops or ``hang`` is
cleared (a storage account that accepts connections and never answers).

``rate`` can be changed between runs; ``only`` limits faults to requests whose method and path
match (e.g. only writes). ``on_request`` (settable at any time) is called with each request's
method and path before it is forwarded, e.g. to delete a table in the middle of a run.
"""

from __future__ import annotations

import http.client
import random
import socket
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType

from devtools.azurite import ACCOUNT, ACCOUNT_KEY

FAULT_KINDS = ("busy", "reset", "lost")
HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "proxy-connection"})
BUSY_BODY = (b'{"odata.error":{"code":"ServerBusy","message":{"lang":"en-US",'
             b'"value":"The server is busy. (injected)"}}}')

RequestFilter = Callable[[str, str], bool]
"""(method, path) -> whether this request may receive a fault."""
RequestHook = Callable[[str, str], None]


class FaultProxy:
    def __init__(self, upstream_port: int, *, rate: float = 0.0, seed: int = 0,
                 kinds: Sequence[str] = FAULT_KINDS, only: RequestFilter | None = None):
        unknown = set(kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        self.upstream_port = upstream_port
        self.rate = rate
        self.kinds = tuple(kinds)
        self.only = only
        self.injected: Counter[str] = Counter()
        self.on_request: RequestHook | None = None
        self.forwarded = 0
        self.delay = 0.0
        self.hang = False
        self._stopping = threading.Event()
        self._random = random.Random(seed)
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler, self)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        port: int = self._server.server_address[1]
        return port

    @property
    def connection_string(self) -> str:
        return (f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
                f"TableEndpoint=http://127.0.0.1:{self.port}/{ACCOUNT};")

    def draw(self, method: str, path: str) -> str | None:
        """The fault for this request, or None to forward it untouched."""
        if self.only is not None and not self.only(method, path):
            return None
        with self._lock:
            if self._random.random() >= self.rate:
                return None
            kind = self._random.choice(self.kinds)
            self.injected[kind] += 1
            return kind

    @property
    def total_injected(self) -> int:
        with self._lock:
            return sum(self.injected.values())

    def start(self) -> FaultProxy:
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True,
                                        name="fault-proxy")
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def only_writes(method: str, path: str) -> bool:
    """Faults on writes only (inserts, merges, batches, deletes), where a lost reply hurts."""
    return method in ("POST", "PUT", "PATCH", "MERGE", "DELETE")


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler],
                 proxy: FaultProxy):
        self.proxy = proxy
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        proxy = self.server.proxy
        if proxy.hang:  # never answered, never applied: dropped once the hang ends
            while proxy.hang and not proxy._stopping.wait(0.05):
                pass
            self._reset()
            return
        if proxy.delay > 0:
            time.sleep(proxy.delay)
        hook = self.server.proxy.on_request
        if hook is not None:
            hook(self.command, self.path)
        fault = self.server.proxy.draw(self.command, self.path)
        if fault == "busy":
            self._answer(503, {"Content-Type": "application/json"}, BUSY_BODY)
            return
        if fault == "reset":
            self._reset()
            return
        status, headers, payload = self._forward(body)
        if fault == "lost":
            self._reset()
            return
        self._answer(status, headers, payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_MERGE = do_HEAD = _handle

    def _forward(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        upstream = http.client.HTTPConnection("127.0.0.1", self.server.proxy.upstream_port,
                                              timeout=30)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
            upstream.request(self.command, self.path, body=body, headers=headers)
            response = upstream.getresponse()
            payload = response.read()
            kept = {k: v for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP
                    and k.lower() != "content-length"}
            with self.server.proxy._lock:
                self.server.proxy.forwarded += 1
            return response.status, kept, payload
        finally:
            upstream.close()

    def _answer(self, status: int, headers: dict[str, str], payload: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        if self.command != "HEAD":
            try:
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up meanwhile
                self.close_connection = True

    def _reset(self) -> None:
        """Abort the connection with RST (SO_LINGER 0), as a dropped network path would."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()
