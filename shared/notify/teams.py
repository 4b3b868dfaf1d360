"""The Teams notifier: builds the Adaptive Cards and posts them to a Workflows webhook.

Workflows answer 202 with an empty body and report card errors nowhere; older Office 365
connectors answer 200 with ``1`` on success and 200 with an error text (``Microsoft Teams
endpoint returned HTTP error 413``) or a JSON error object on failure, so a 2xx counts as
delivered only when its body is not an error. Posts are spaced about 4 a second (Teams' limit)
and bounded in total time (:mod:`shared.notify.webhook`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import requests

from ..cards import MAX_PAYLOAD_BYTES, PortalLinks, build_notice, serialize
from ..cards.incident import build_incident_post
from ..cards.payload import with_held_back_note
from ..retry import SYSTEM_CLOCK, Clock
from ..settings import Settings
from .base import Delivery, IncidentPost, Notice
from .webhook import RETRY_STATUSES, JsonWebhook, Problem, WebhookError, error_code

_EMBEDDED_STATUS = re.compile(r"(?i)\bHTTP(?:\s+error)?\s+(\d{3})\b")
_ERROR_WORDS = re.compile(r"(?i)\b(error|fail(?:ed|ure)?|exception|denied|invalid|throttl\w*|"
                          r"too\s+many|not\s+found|forbidden|unauthori[sz]ed)\b")


class TeamsDeliveryError(WebhookError):
    """A Teams post was not delivered; ``permanent`` when the webhook is dead or refuses it."""


class TeamsWebhook(JsonWebhook):
    """``TeamsWebhook(url).post(payload)``: posts one webhook message (a dict)."""

    name = "Teams"
    error_type = TeamsDeliveryError
    max_bytes = MAX_PAYLOAD_BYTES

    def post(self, payload: Mapping[str, Any] | bytes) -> Delivery:
        """Send *payload*; return once Teams accepted it, else raise TeamsDeliveryError."""
        return super().post(payload if isinstance(payload, bytes) else serialize(payload))

    def reply_problem(self, status: int, body: bytes) -> Problem | None:
        return body_problem(status, body)


def body_problem(status: int, body: bytes) -> Problem | None:
    """Why a 2xx reply is not a delivery, or None. The reason never quotes the body (it may
    echo the URL); an HTTP status inside the error text decides whether to retry."""
    text = body.decode("utf-8", "replace").strip()
    if not text or text == "1":
        return None
    code = ""
    try:
        document = json.loads(text)
    except ValueError:
        if not _ERROR_WORDS.search(text):
            return None
    else:
        if not _is_error_document(document):
            return None
        code = error_code(body)
    embedded = _EMBEDDED_STATUS.search(text)
    inner = int(embedded.group(1)) if embedded else None
    reason = (f"HTTP {status} with an error in the body" + (f" {code}" if code else "")
              + (f" (HTTP error {inner})" if inner else ""))
    if inner is None or inner in RETRY_STATUSES or inner >= 500:
        return Problem(reason, True, status)
    return Problem(reason, False, status)


def _is_error_document(document: Any) -> bool:
    if not isinstance(document, dict):
        return isinstance(document, str) and bool(_ERROR_WORDS.search(document))
    return bool(document.get("error") or document.get("errors")
                or str(document.get("status", "")).lower() in ("error", "failed", "failure"))


class TeamsNotifier:
    """Posts incident cards and notice cards to one Teams Workflows webhook."""

    name = "teams"

    def __init__(self, url: str, *, portal: PortalLinks | None = None,
                 session: requests.Session | None = None, timeout_seconds: float = 10,
                 max_attempts: int = 4, max_total_seconds: float = 60,
                 min_interval_seconds: float = 0.25, clock: Clock = SYSTEM_CLOCK):
        self.portal = portal or PortalLinks()
        self.webhook = TeamsWebhook(url, session=session, timeout_seconds=timeout_seconds,
                                    max_attempts=max_attempts,
                                    max_total_seconds=max_total_seconds,
                                    min_interval_seconds=min_interval_seconds, clock=clock)

    def __repr__(self) -> str:
        return f"TeamsNotifier(url=<redacted>, portal={self.portal!r})"

    def post_notice(self, notice: Notice) -> Delivery:
        payload = build_notice(notice.title, notice.summary, severity=notice.severity,
                               facts=notice.facts, link=notice.link, tag=notice.tag)
        return self.webhook.post(payload)

    def render_incident(self, post: IncidentPost) -> dict[str, Any]:
        return build_incident_post(post, self.portal)

    def post_incident(self, message: Mapping[str, Any],
                      held_back_since: datetime | None = None) -> Delivery:
        payload = dict(message)
        if held_back_since is not None:
            payload = with_held_back_note(payload, held_back_since)
        return self.webhook.post(payload)

    def close(self) -> None:
        self.webhook.close()


def from_settings(settings: Settings, portal: PortalLinks) -> TeamsNotifier | None:
    """The Teams notifier when ``HUNTWIRE_TEAMS_WEBHOOK_URL`` is set, else None."""
    if not settings.teams_webhook_url:
        return None
    return TeamsNotifier(settings.teams_webhook_url, portal=portal)
