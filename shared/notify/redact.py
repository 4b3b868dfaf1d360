"""Keep webhook URLs (secrets: their ``sig`` or token authorises posting) out of library logs.

urllib3 logs request lines at DEBUG; :data:`URL_REDACTOR` rewrites any log record of those
loggers that contains a registered URL's path or query.
"""

from __future__ import annotations

import logging
import threading
from urllib.parse import urlsplit

import requests

_URLLIB3_LOGGERS = ("urllib3.connectionpool", "urllib3.connection", "urllib3.util.retry")


class UrlRedactor(logging.Filter):
    """Rewrites library log records that contain a registered webhook path or query."""

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


URL_REDACTOR = UrlRedactor()
