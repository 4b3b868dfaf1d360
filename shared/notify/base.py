"""The notification seam: what the runner hands a notifier, and what it gets back.

A notifier turns an :class:`~shared.incidents.model.IncidentPost` (an incident opened or
updated, or a storm summary) or a :class:`Notice` (a health, delivery or coverage problem, or any
short message) into a post on its channel. It returns a :class:`Delivery` once the channel
accepted it, and raises :class:`NotifyError` (or a subclass) otherwise, with ``permanent`` set
when retrying later cannot help (a deleted or rejected webhook, a payload the channel refuses).
The runner catches only ``NotifyError``.

Incident posts come in two steps so that each is delivered exactly once: the incident pipeline
asks the notifier to *render* the post (its own message format, within its channel's size
limit), records that message in its outbox, then has the notifier *post* it; a run that finds
the message still in the outbox after a crash or a failed delivery posts the same message again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

from ..errors import NotifyError
from ..incidents.model import IncidentPost

NoticeKind = Literal["health", "delivery", "coverage", "incident", "info"]
Severity = Literal["High", "Medium", "Low", "Informational"]


@dataclass(frozen=True)
class Notice:
    """A short message that is not a hunt's findings. Text may quote services or hunt files:
    notifiers escape it like telemetry."""

    kind: NoticeKind
    title: str
    summary: str = ""
    severity: Severity = "Medium"
    facts: tuple[tuple[str, str], ...] = field(default=())
    """(label, value) pairs, e.g. ``("Hunt", name)``, ``("Failing since", iso time)``."""
    link: tuple[str, str] | None = None
    """(title, url) of one of our own pages (a portal link), never a URL from telemetry."""
    tag: str | None = None
    """A machine-readable name (e.g. ``health-failing``) a notifier may carry along, so tools
    can tell notices apart without reading their text."""


@dataclass(frozen=True)
class Delivery:
    """The channel accepted the post."""

    notifier: str
    status: int
    attempts: int
    payload_bytes: int
    elapsed_seconds: float


class Notifier(Protocol):
    """Posts incidents and notices to one channel. Built from settings by ``shared.notify``."""

    name: str

    def post_notice(self, notice: Notice) -> Delivery:
        """Deliver *notice* or raise :class:`NotifyError`."""
        ...

    def render_incident(self, post: IncidentPost) -> dict[str, Any]:
        """This channel's message for *post* (JSON-serialisable, within the channel's limit)."""
        ...

    def post_incident(self, message: Mapping[str, Any],
                      held_back_since: datetime | None = None) -> Delivery:
        """Deliver a message made by :meth:`render_incident` (with a "held back since" note
        when given) or raise :class:`NotifyError`."""
        ...

    def close(self) -> None: ...


__all__ = ["Delivery", "IncidentPost", "Notice", "NoticeKind", "Notifier",
           "NotifyError", "Severity"]
