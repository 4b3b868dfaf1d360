"""Reading what a posted card says, for assertions: every element, and every text in it."""

from __future__ import annotations

from typing import Any

from shared.cards import card_of


def elements(node: Any) -> list[dict[str, Any]]:
    """Every element (JSON object) of a card, depth first."""
    found: list[dict[str, Any]] = []
    if isinstance(node, dict):
        found.append(node)
        for value in node.values():
            found += elements(value)
    elif isinstance(node, list):
        for value in node:
            found += elements(value)
    return found


def texts(payload: Any) -> list[str]:
    """Every ``text`` and ``title`` string of the card a webhook payload carries, in order."""
    return [value for element in elements(card_of(payload))
            for key, value in element.items()
            if key in ("text", "title") and isinstance(value, str)]


def title(payload: Any) -> str:
    """An incident card's title: what happened where."""
    inlines = card_of(payload)["body"][0]["items"][0]["inlines"]
    return "".join(str(inline["text"]) for inline in inlines[2:])
