"""Short Adaptive Card 1.4 notices for the channel: plain TextBlocks, every external string
(hunt names, error texts) escaped so it cannot link, mention or format anything.

Each card's first TextBlock has ``id`` ``huntwire-health-<kind>`` so tools and tests can tell a
health notice from a findings digest.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..cards import ADAPTIVE_CARD, CARD_VERSION, escape_text
from .model import HeartbeatTally, Notice

log = logging.getLogger("huntwire.health")

HEALTH_ID_PREFIX = "huntwire-health-"
_TITLES = {
    "failing": "Hunt failing",
    "auto-disabled": "Hunt auto-disabled",
    "recovered": "Hunt recovered",
    "re-enabled": "Hunt re-enabled",
    "incomplete": "Hunt saw less than its window",
    "access": "huntwire lacks access",
}
_STYLE = {"failing": "attention", "auto-disabled": "attention", "access": "attention",
          "incomplete": "warning", "recovered": "good", "re-enabled": "good"}


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "unknown"


def notice_card(notice: Notice) -> dict[str, Any]:
    """The webhook payload announcing *notice*."""
    name = escape_text(notice.hunt_name or notice.hunt_id, limit=200)
    lines = [_lead(notice, name)]
    if notice.error:
        lines.append("Error: " + escape_text(notice.error, limit=600))
    if notice.advice:
        lines.append("What to do: " + escape_text(notice.advice, limit=600))
    lines.append(f"Hunt id: {escape_text(notice.hunt_id, limit=80)}")
    return message(notice.kind, _TITLES[notice.kind], lines, _STYLE[notice.kind])


def _lead(notice: Notice, name: str) -> str:
    if notice.kind == "failing":
        return (f"{name} has failed {notice.failures} runs in a row, since "
                f"{when(notice.since)}.")
    if notice.kind == "auto-disabled":
        return (f"{name} was disabled after {notice.failures} failed runs in a row (since "
                f"{when(notice.since)}); the error will not go away by itself.")
    if notice.kind == "recovered":
        return f"{name} runs again: it succeeded at {when(notice.at)}."
    if notice.kind == "re-enabled":
        return f"{name} was re-enabled when its file changed and succeeded at {when(notice.at)}."
    if notice.kind == "incomplete":
        return f"{name} saw less than its window at {when(notice.at)}."
    source = escape_text(notice.source or "a source", limit=40)
    return (f"{source} refused access since {when(notice.since)} (first seen on "
            f"hunt {name}).")


def heartbeat_card(tally: HeartbeatTally, now: datetime) -> dict[str, Any]:
    """The daily "still alive" card: runs, hunts, failures, findings, suppressions."""
    hunts = len(tally.hunt_runs)
    times = sum(tally.hunt_runs.values())
    lines = [
        f"Since {when(tally.since)}: {tally.runs} run(s), {hunts} hunt(s) ran {times} time(s), "
        f"{tally.failures} failure(s).",
        f"{tally.findings} new finding(s) in {tally.incidents} incident(s); "
        f"{tally.suppressed} row(s) suppressed.",
        f"Sent {when(now)}; huntwire status shows each hunt.",
    ]
    return message("heartbeat", "huntwire is running", lines, "accent")


def message(kind: str, title: str, lines: list[str], style: str) -> dict[str, Any]:
    """A Teams message holding one Adaptive Card of a title and plain text lines."""
    body: list[dict[str, Any]] = [{"type": "TextBlock", "id": HEALTH_ID_PREFIX + kind,
                                   "text": title, "weight": "Bolder", "size": "Medium",
                                   "color": style, "wrap": True}]
    body += [{"type": "TextBlock", "text": line, "wrap": True, "spacing": "Small"}
             for line in lines]
    card = {"type": "AdaptiveCard", "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "version": CARD_VERSION, "body": body}
    return {"type": "message",
            "attachments": [{"contentType": ADAPTIVE_CARD, "contentUrl": None, "content": card}]}


def health_kind(payload: Mapping[str, Any]) -> str | None:
    """``failing``, ``heartbeat``, ... for a health notice; None for any other payload."""
    try:
        first = payload["attachments"][0]["content"]["body"][0]
    except (KeyError, IndexError, TypeError):
        return None
    ident = first.get("id") if isinstance(first, Mapping) else None
    if isinstance(ident, str) and ident.startswith(HEALTH_ID_PREFIX):
        return ident[len(HEALTH_ID_PREFIX):]
    return None
