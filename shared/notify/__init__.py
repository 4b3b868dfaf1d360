"""Notifiers: where incident posts and notices go. ``base`` is the seam the runner uses, ``webhook``
the shared JSON webhook transport, ``teams`` the Teams notifier (cards, posting, errors).

A new notifier (Slack, e-mail, a generic JSON webhook) is one module with a
``from_settings(settings, portal) -> Notifier | None`` factory plus one line in
:data:`NOTIFIERS`.
"""

from __future__ import annotations

from collections.abc import Callable

from ..cards import PortalLinks
from ..errors import ConfigurationError
from ..settings import Settings
from . import teams
from .base import Delivery, IncidentPost, Notice, Notifier, NotifyError

NotifierFactory = Callable[[Settings, PortalLinks], Notifier | None]

NOTIFIERS: dict[str, NotifierFactory] = {
    "teams": teams.from_settings,
}
"""Every notifier, by name; each factory returns None when its settings are absent."""


def build_notifier(settings: Settings, portal: PortalLinks | None = None) -> Notifier | None:
    """The one configured notifier, or None when none is. Two at once is a configuration error
    (each would need its own pending state)."""
    links = portal or PortalLinks()
    built = {name: notifier for name, factory in NOTIFIERS.items()
             if (notifier := factory(settings, links)) is not None}
    if len(built) > 1:
        raise ConfigurationError(f"more than one notifier is configured ({', '.join(built)}); "
                                 "set one")
    return next(iter(built.values()), None)


__all__ = ["NOTIFIERS", "Delivery", "IncidentPost", "Notice", "Notifier",
           "NotifyError", "build_notifier"]
