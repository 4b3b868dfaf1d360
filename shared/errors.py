"""One error hierarchy for huntwire.

Every error the product raises on purpose derives from :class:`HuntwireError`, which says whether
trying again later may help (``transient``: throttling, 5xx, timeouts, a storage hiccup) or not
(``permanent``: a bad query, a missing permission, an unknown table, a broken file). The runner
catches ``HuntwireError`` once per hunt, and hunt health uses ``permanent`` to decide whether a
failing hunt should be auto-disabled, and ``reason`` (a short word the raiser sets:
``unknown-table``, ``forbidden``, ``throttled``, ``deadline`` ...) to say why it failed.
"""

from __future__ import annotations


class HuntwireError(Exception):
    """Base of every huntwire error. Subclasses set ``permanent`` by default or per instance."""

    permanent: bool = False
    reason: str | None = None
    """Why it failed, in a word health and logs can read; None: not known."""
    status: int | None = None
    """The HTTP status behind it, when a service answered."""

    def __init__(self, message: str, *, permanent: bool | None = None,
                 reason: str | None = None):
        super().__init__(message)
        self.message = message
        if permanent is not None:
            self.permanent = permanent
        if reason is not None:
            self.reason = reason

    @property
    def transient(self) -> bool:
        return not self.permanent


class ConfigurationError(HuntwireError):
    """A setting or a file the operator controls is wrong; fixing it is the only cure."""

    permanent = True


class SourceError(HuntwireError):
    """A query source could not run a hunt's query (the service said no, or did not answer)."""


class StorageError(HuntwireError):
    """Table Storage failed; findings are never dropped because of it."""


class NotifyError(HuntwireError):
    """A notifier could not deliver; the findings stay pending for the next run."""
