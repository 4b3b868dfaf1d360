"""The webhook message around a card: its shape, its size as sent and its exact bytes."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from .escape import escape_text

MAX_PAYLOAD_BYTES = 28_000
"""Teams Workflows webhooks accept about 28 KB per message; measured as compact UTF-8 JSON."""
CARD_VERSION = "1.4"
"""Teams Workflows render 1.4; 1.5 has been reported rejected."""
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
CARD_SCHEMA = "http://adaptivecards.io/schemas/adaptive-card.json"


def card_shell(body: list[dict[str, Any]]) -> dict[str, Any]:
    """An empty-handed Adaptive Card 1.4, full width, holding *body*."""
    return {"type": "AdaptiveCard", "$schema": CARD_SCHEMA, "version": CARD_VERSION,
            "msteams": {"width": "Full"}, "body": body}


def message(card: dict[str, Any]) -> dict[str, Any]:
    """The Workflows webhook message carrying *card*."""
    return {"type": "message",
            "attachments": [{"contentType": ADAPTIVE_CARD, "contentUrl": None, "content": card}]}


def payload_size(payload: Any) -> int:
    """Bytes of *payload* as sent: compact JSON, UTF-8, non-ASCII unescaped."""
    return len(serialize(payload))


def serialize(payload: Any) -> bytes:
    """The exact request body the Teams notifier posts."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


def card_of(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The Adaptive Card inside a webhook payload."""
    content: dict[str, Any] = payload["attachments"][0]["content"]
    return content


def with_held_back_note(payload: Mapping[str, Any], since: datetime) -> dict[str, Any]:
    """*payload* with "Held back since <time>" under its header.

    The note goes at the end of the header container (the card's first element), or first in
    the body; when it would push the card over the Teams limit the message goes without it.
    """
    noted = copy.deepcopy(dict(payload))
    moment = since.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    note = {"type": "TextBlock", "text": f"Held back since {moment}: Teams could not be "
            "reached; delivered now.", "wrap": True, "isSubtle": True, "spacing": "Small"}
    body = noted["attachments"][0]["content"]["body"]
    if body and body[0].get("type") == "Container":
        body[0].setdefault("items", []).append(note)
    else:
        body.insert(0, note)
    return dict(payload) if payload_size(noted) > MAX_PAYLOAD_BYTES else noted


def with_tenant(payload: Mapping[str, Any], tenant: str) -> dict[str, Any]:
    """*payload* with "Tenant: <name>" under its header's title and facts line (multi-tenant
    deployments only), or first in the body."""
    named = copy.deepcopy(dict(payload))
    line = {"type": "TextBlock", "text": f"Tenant: {escape_text(tenant, limit=64)}",
            "wrap": True, "weight": "Bolder", "spacing": "None"}
    body = named["attachments"][0]["content"]["body"]
    if body and body[0].get("type") == "Container":
        body[0].setdefault("items", []).insert(2, line)
    else:
        body.insert(0, line)
    return named
