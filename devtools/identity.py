"""A local managed-identity endpoint (App Service / Azure Functions, api-version 2019-08-01).

Azure Functions serves the app's managed identity at ``IDENTITY_ENDPOINT`` and expects the header
``X-IDENTITY-HEADER: $IDENTITY_HEADER``; ``ManagedIdentityCredential`` calls::

    GET {IDENTITY_ENDPOINT}?api-version=2019-08-01&resource={resource}[&client_id={id}]
    X-IDENTITY-HEADER: {IDENTITY_HEADER}

    200 {"access_token": "...", "expires_on": "1700000000", "resource": "...",
         "token_type": "Bearer", "client_id": "..."}

:class:`IdentityServer` speaks that protocol on 127.0.0.1 so the real azure-identity code runs in
tests and the demo. Its tokens are unsigned JWT-shaped strings whose payload carries ``aud`` (the
requested resource); the local Graph and Log Analytics servers read it with
:func:`token_audience` and reject a wrong audience with 401, as the real services do.

This module also holds :class:`LoopbackServer`, the small threaded ``http.server`` base the local
stand-ins share.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self
from urllib.parse import parse_qs, urlsplit

API_VERSION = "2019-08-01"
TENANT_ID = "00000000-0000-0000-0000-000000000001"
"""Tenant named in the tokens' issuer."""
SYSTEM_ASSIGNED_CLIENT_ID = "00000000-0000-0000-0000-00000000a55e"
"""client_id reported for the system-assigned identity (any stable GUID would do)."""


@dataclass(frozen=True)
class Request:
    """One request a local server received, for assertions."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    """Header names in lower case."""
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    status: int = 200
    body: Any = None
    """dict or list: sent as JSON; str or bytes: sent as is; None: empty."""
    headers: Mapping[str, str] = field(default_factory=dict)
    delay_seconds: float = 0.0
    """Stall this long before answering (to exercise client timeouts); cut short by stop()."""
    drip_seconds: float = 0.0
    """Send the body one byte at a time, this long apart (a reply that never trips a read
    timeout)."""
    cut_after_bytes: int | None = None
    """Announce the whole body's length but send only this many bytes, then close."""
    reset: bool = False
    """With cut_after_bytes: end with a TCP reset instead of a clean close."""

    def encoded(self) -> tuple[bytes, str]:
        if isinstance(self.body, bytes):
            return self.body, "application/octet-stream"
        if isinstance(self.body, str):
            return self.body.encode(), "text/plain; charset=utf-8"
        if self.body is None:
            return b"", "application/json"
        return json.dumps(self.body).encode(), "application/json; charset=utf-8"


class LoopbackServer:
    """A threaded HTTP server on a free 127.0.0.1 port; subclasses implement :meth:`handle`."""

    def __init__(self) -> None:
        self.requests: list[Request] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def handle(self, request: Request) -> Reply:
        raise NotImplementedError

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("server is not running")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> Self:
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        server.daemon_threads = True
        server.block_on_close = False
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,),
                                        name=type(self).__name__, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._server = None
        self._thread = None

    def _record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def _stall(self, seconds: float) -> None:
        self._stopping.wait(seconds)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()



class ScriptedService(LoopbackServer):
    """A stand-in for a query service: each request is first checked like the service does
    (:meth:`_refusal`), then answered from the script (:meth:`script`: replies or callables,
    first in first out), else from :attr:`handler`, else by :meth:`_run_locally`."""

    def __init__(self) -> None:
        super().__init__()
        self.handler: Callable[[Request], Reply] | None = None
        self._script: deque[Reply | Callable[[Request], Reply]] = deque()

    def script(self, *replies: Reply | Callable[[Request], Reply]) -> None:
        """Answer the next requests with these, in order, before falling back."""
        with self._lock:
            self._script.extend(replies)

    def handle(self, request: Request) -> Reply:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        with self._lock:
            scripted = self._script.popleft() if self._script else None
        if scripted is not None:
            return scripted if isinstance(scripted, Reply) else scripted(request)
        if self.handler is not None:
            return self.handler(request)
        return self._run_locally(request)

    def _refusal(self, request: Request) -> Reply | None:
        raise NotImplementedError

    def _run_locally(self, request: Request) -> Reply:
        raise NotImplementedError

def _handler_for(owner: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            request = self._read()
            owner._record(request)
            reply = owner.handle(request)
            if reply.delay_seconds:
                owner._stall(reply.delay_seconds)
            body, content_type = reply.encoded()
            try:
                self.send_response(reply.status)
                self.send_header("Content-Type", reply.headers.get("Content-Type", content_type))
                self.send_header("Content-Length", str(len(body)))
                for name, value in reply.headers.items():
                    if name.lower() != "content-type":
                        self.send_header(name, value)
                self.end_headers()
                self._write(reply, body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (its timeout); nothing left to tell it

        def _write(self, reply: Reply, body: bytes) -> None:
            if reply.cut_after_bytes is not None:
                body = body[:reply.cut_after_bytes]
            if not reply.drip_seconds:
                self.wfile.write(body)
            for index in range(len(body) if reply.drip_seconds else 0):
                if owner._stopping.is_set():
                    break
                self.wfile.write(body[index:index + 1])
                self.wfile.flush()
                owner._stall(reply.drip_seconds)
            if reply.cut_after_bytes is not None:
                self.wfile.flush()
                self.close_connection = True
                if reply.reset:  # SO_LINGER 0: close() sends RST
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                               struct.pack("ii", 1, 0))
                    self.connection.close()

        def _read(self) -> Request:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            return Request(
                method=self.command,
                path=parts.path,
                query={k: v[0] for k, v in parse_qs(parts.query).items()},
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
            )

        def log_message(self, format: str, *args: Any) -> None:
            return

    return Handler


def make_token(audience: str, subject: str, lifetime_seconds: int = 3600) -> str:
    """An unsigned JWT-shaped token: ``header.payload.`` with ``aud``, ``iss``, ``sub``, ``iat``,
    ``nbf``, ``exp`` (Azurite's ``--oauth basic`` checks issuer and lifetime, not signatures)."""
    now = int(time.time())
    header = {"alg": "none", "typ": "JWT"}
    payload = {"aud": audience, "iss": f"https://sts.windows.net/{TENANT_ID}/", "sub": subject,
               "appid": subject, "iat": now, "nbf": now - 60, "exp": now + lifetime_seconds}
    return f"{_b64(header)}.{_b64(payload)}."


def token_audience(authorization: str | None) -> str | None:
    """The ``aud`` of a ``Bearer`` header made by :func:`make_token`; None if unreadable."""
    if not authorization or not authorization.startswith("Bearer "):
        return None
    parts = authorization.removeprefix("Bearer ").split(".")
    if len(parts) != 3:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        payload = json.loads(base64.urlsafe_b64decode(padded))
    except (binascii.Error, ValueError):
        return None
    audience = payload.get("aud") if isinstance(payload, dict) else None
    return audience if isinstance(audience, str) else None


def _b64(document: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(document).encode()).decode().rstrip("=")


@dataclass(frozen=True)
class TokenGrant:
    resource: str
    client_id: str


class IdentityServer(LoopbackServer):
    """``with IdentityServer() as identity: monkeypatch env from identity.env``.

    *client_ids* lists the user-assigned identities it knows (a request naming another is
    refused with 400, as App Service does); the system-assigned identity is always available.
    """

    def __init__(self, *, client_ids: Collection[str] = (), token_lifetime_seconds: int = 3600,
                 path: str = "/msi/token", audience: str | None = None):
        super().__init__()
        self.audience = audience
        """When set, every token names this audience whatever was asked (a misconfigured
        identity), to check that a service refuses a token meant for another."""
        self.identity_header = secrets.token_urlsafe(16)
        self.client_ids = frozenset(client_ids)
        self.token_lifetime_seconds = token_lifetime_seconds
        self.path = path
        self.grants: list[TokenGrant] = []

    @property
    def env(self) -> dict[str, str]:
        return {"IDENTITY_ENDPOINT": self.url + self.path, "IDENTITY_HEADER": self.identity_header}

    def handle(self, request: Request) -> Reply:
        refusal = self._refusal(request)
        if refusal is not None:
            return refusal
        resource = request.query["resource"]
        client_id = request.query.get("client_id") or SYSTEM_ASSIGNED_CLIENT_ID
        with self._lock:
            self.grants.append(TokenGrant(resource, client_id))
        return Reply(200, {
            "access_token": make_token(self.audience or resource, client_id,
                                       self.token_lifetime_seconds),
            "expires_on": str(int(time.time()) + self.token_lifetime_seconds),
            "resource": resource,
            "token_type": "Bearer",
            "client_id": client_id,
        })

    def _refusal(self, request: Request) -> Reply | None:
        if request.method != "GET" or request.path != self.path:
            return _msi_error(404, "Not found")
        if request.headers.get("x-identity-header") != self.identity_header:
            return _msi_error(401, "X-IDENTITY-HEADER is missing or wrong")
        if request.query.get("api-version") != API_VERSION:
            return _msi_error(400, f"api-version must be {API_VERSION}")
        if not request.query.get("resource"):
            return _msi_error(400, "resource is required")
        client_id = request.query.get("client_id")
        if client_id and client_id not in self.client_ids:
            return _msi_error(400, "No User Assigned or Delegated Managed Identity found for "
                              "specified ClientId/ResourceId/PrincipalId.")
        return None


def _msi_error(status: int, message: str) -> Reply:
    return Reply(status, {"statusCode": status, "message": message})
