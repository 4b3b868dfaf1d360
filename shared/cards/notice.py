"""A short notice card (health, delivery or coverage problems): a title, a paragraph, a few facts
and at most one link of our own. Every string is escaped like telemetry: it may quote a service's
error message or a hunt file."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .elements import SEVERITY_STYLE, Element, labelled, open_url, rich, run, severity_of
from .escape import escape_text
from .payload import card_shell, message

MAX_FACTS = 12


def build_notice(title: str, summary: str, *, severity: str = "Medium",
                 facts: Sequence[tuple[str, str]] = (),
                 link: tuple[str, str] | None = None, tag: str | None = None) -> dict[str, Any]:
    """The webhook payload of one notice; *link* is ``(title, url)`` and must be our own URL;
    *tag* becomes the header's element id, ``huntwire-<tag>``."""
    level = severity_of(severity)
    header: Element = {"type": "Container", "style": SEVERITY_STYLE[level], "bleed": True,
                       "items": [rich(run(level.upper(), weight="Bolder",
                                          color=SEVERITY_STYLE[level]), run("   "),
                                      run(escape_text(title, limit=200), weight="Bolder",
                                          size="Large"))]}
    if tag:
        header["id"] = f"huntwire-{tag}"
    body: list[Element] = [header]
    if summary:
        body.append(rich(run(escape_text(summary, limit=2000, multiline=True)), spacing="Small"))
    body += [labelled(escape_text(name, limit=64), escape_text(value, limit=500))
             for name, value in facts[:MAX_FACTS]]
    card = card_shell(body)
    if link:
        card["actions"] = [open_url(escape_text(link[0], limit=64), link[1])]
    return message(card)
