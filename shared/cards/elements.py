"""Adaptive Card building blocks as plain dicts. Telemetry goes only into ``TextRun`` text, which
the schema renders as plain text (no markdown, no HTML); ``TextBlock`` carries only our text."""

from __future__ import annotations

from typing import Any

Element = dict[str, Any]


def run(text: str, **style: Any) -> Element:
    """A TextRun: plain text, never markdown."""
    return {"type": "TextRun", "text": text, **style}


def link_run(text: str, url: str, **style: Any) -> Element:
    """A TextRun that opens *url*, one of our own portal links."""
    return run(text, selectAction={"type": "Action.OpenUrl", "url": url}, **style)


def rich(*runs: Element, **props: Any) -> Element:
    """A RichTextBlock of the non-empty *runs*."""
    return {"type": "RichTextBlock", "inlines": [r for r in runs if r["text"]], **props}


def labelled(label: str, value: str, **value_style: Any) -> Element:
    """``Label: value`` with a subtle bold label."""
    return rich(run(f"{label}: ", isSubtle=True, weight="Bolder"), run(value, **value_style),
                spacing="Small")


def open_url(title: str, url: str) -> Element:
    """A card action that opens one of our own URLs."""
    return {"type": "Action.OpenUrl", "title": title, "url": url}


SEVERITY_STYLE = {"High": "attention", "Medium": "warning", "Low": "accent",
                  "Informational": "default"}
"""Container style (and title colour) per hunt severity; unknown severities read as Medium."""


def severity_of(value: str) -> str:
    return value if value in SEVERITY_STYLE else "Medium"
