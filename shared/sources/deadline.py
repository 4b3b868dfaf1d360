"""A deadline for a whole HTTP reply, not for each read.

``requests`` (and the Azure SDK over it) apply the read timeout to every socket read, so a server
that drips one byte every few seconds never trips it. :func:`deadline_session` gives a Session
whose connections note the sockets the calling thread uses; inside ``with ReplyDeadline(s):`` a
watchdog shuts those sockets down once *s* seconds have passed, which ends the blocked read at
once. ``expired`` then tells the caller the reply ran out of time.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from types import TracebackType
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

_THREAD = threading.local()


def _note(sock: Any) -> None:
    noted: list[Any] | None = getattr(_THREAD, "sockets", None)
    if noted is not None and sock is not None:
        noted.append(sock)


class _NotingHTTPConnection(HTTPConnection):
    def connect(self) -> None:
        super().connect()
        _note(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _note(self.sock)
        super().request(*args, **kwargs)


class _NotingHTTPSConnection(HTTPSConnection):
    def connect(self) -> None:
        super().connect()
        _note(self.sock)

    def request(self, *args: Any, **kwargs: Any) -> None:
        _note(self.sock)
        super().request(*args, **kwargs)


class _HTTPPool(HTTPConnectionPool):
    ConnectionCls = _NotingHTTPConnection


class _HTTPSPool(HTTPSConnectionPool):
    ConnectionCls = _NotingHTTPSConnection


class _NotingAdapter(HTTPAdapter):
    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}


def deadline_session() -> requests.Session:
    """A Session (no retries of its own) whose replies :class:`ReplyDeadline` can cut off."""
    session = requests.Session()
    adapter = _NotingAdapter()
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


class ReplyDeadline:
    """``with ReplyDeadline(seconds) as deadline:`` one call on a :func:`deadline_session`."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.expired = False
        self._sockets: list[Any] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> ReplyDeadline:
        _THREAD.sockets = self._sockets
        self._timer.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._timer.cancel()
        _THREAD.sockets = None
        with self._lock:
            self._sockets.clear()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                with contextlib.suppress(OSError):  # already closed: nothing left to stop
                    sock.shutdown(socket.SHUT_RDWR)
