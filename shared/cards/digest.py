"""The Teams digest: one Adaptive Card 1.4 message per hunt per run, under the payload limit.

The header names severity, hunt, count, window, ATT&CK techniques and tactics; then up to
``hunt.teams.max_findings`` findings, each as rich as its fair share of the bytes allows, and an
"and K more" line for the rest.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ..hunt import Hunt
from ..window import Window
from .elements import SEVERITY_STYLE, Element, link_run, open_url, rich, run, severity_of
from .escape import escape_text
from .findings import TIERS, finding_element
from .links import PortalLinks, technique_url
from .payload import MAX_PAYLOAD_BYTES, card_shell, message, payload_size

MAX_TECHNIQUES = 12


def build_digest(hunt: Hunt, window: Window, rows: Sequence[Mapping[str, Any]], *,
                 total_new: int, portal: PortalLinks | None = None) -> dict[str, Any]:
    """The whole webhook payload for one hunt's new findings, under :data:`MAX_PAYLOAD_BYTES`.

    Up to ``hunt.teams.max_findings`` rows are shown in full; values are shortened so more
    findings fit, findings that do not fit are dropped, and the card says how many are not shown.
    """
    links = portal or PortalLinks()
    total = max(total_new, len(rows))
    card = _card(hunt, window, total, links)
    budget = MAX_PAYLOAD_BYTES - payload_size(message(card)) - _more_size(total)
    wanted = min(len(rows), max(1, hunt.teams.max_findings))
    findings: list[Element] = []
    for index, row in enumerate(rows[:wanted]):
        share = budget // (wanted - index)
        element, size = _fitting_finding(row, hunt, links, share, budget)
        if element is None:
            break
        findings.append(element)
        budget -= size
    return _assemble(card, findings, total)


def _assemble(card: dict[str, Any], findings: list[Element], total: int) -> dict[str, Any]:
    """The message with *findings* and an "and K more" line; drops findings while it is too
    big (sizes are additive, so this normally succeeds at once)."""
    header = card["body"][0]
    while True:
        more = [_more_element(total - len(findings), total)] if total > len(findings) else []
        card["body"] = [header, *findings, *more]
        payload = message(card)
        if payload_size(payload) <= MAX_PAYLOAD_BYTES or not findings:
            return payload
        findings = findings[:-1]


def _fitting_finding(row: Mapping[str, Any], hunt: Hunt, links: PortalLinks, share: int,
                     budget: int) -> tuple[Element | None, int]:
    """The richest rendering of *row* within its fair *share*, else the smallest that fits."""
    element: Element = {}
    size = 0
    for limits in TIERS:
        element = finding_element(row, hunt, links, limits)
        size = _element_size(element)
        if size <= share:
            return element, size
    return (element, size) if size <= budget else (None, 0)


def _element_size(element: Element) -> int:
    """Bytes *element* adds to a JSON array: itself plus a separating comma."""
    return payload_size(element) + 1


def _more_element(hidden: int, total: int) -> Element:
    return {"type": "TextBlock", "wrap": True, "isSubtle": True, "separator": True,
            "text": f"…and {hidden:,} more of {total:,} new findings not shown here."}


def _more_size(total: int) -> int:
    return _element_size(_more_element(total, total))


def _card(hunt: Hunt, window: Window, total: int, links: PortalLinks) -> dict[str, Any]:
    card = card_shell([_header(hunt, window, total)])
    query = links.query_link(hunt, window)
    if query:
        card["actions"] = [open_url(*query)]
    return card


def _header(hunt: Hunt, window: Window, total: int) -> Element:
    severity = severity_of(hunt.severity)
    items: list[Element] = [
        rich(run(severity.upper(), weight="Bolder", color=SEVERITY_STYLE[severity]),
             run("   "), run(escape_text(hunt.name, limit=200), weight="Bolder", size="Large")),
        rich(run(f"{total:,} new finding{'' if total == 1 else 's'}", weight="Bolder"),
             run(f"   ·   {window_text(window)}", isSubtle=True), spacing="Small"),
    ]
    techniques = _technique_runs(hunt.techniques[:MAX_TECHNIQUES])
    if techniques:
        items.append(rich(run("MITRE ATT&CK  ", isSubtle=True), *techniques, spacing="Small"))
    if hunt.tactics:
        tactics = escape_text(", ".join(hunt.tactics), limit=200)
        items.append(rich(run("Tactics  ", isSubtle=True), run(tactics), spacing="None"))
    if hunt.description:
        summary = " ".join(hunt.description.split())  # YAML block folds are not line breaks
        items.append(rich(run(escape_text(summary, limit=300), isSubtle=True),
                          spacing="Small"))
    return {"type": "Container", "style": SEVERITY_STYLE[severity], "bleed": True,
            "items": items}


def _technique_runs(techniques: Sequence[str]) -> list[Element]:
    runs: list[Element] = []
    for technique in techniques:
        if runs:
            runs.append(run(", "))
        label = escape_text(technique, limit=16)
        url = technique_url(technique)
        runs.append(link_run(label, url) if url else run(label))
    return runs


def window_text(window: Window) -> str:
    """``2026-11-27 19:00 → 23:00 UTC`` (the end's date only when it differs)."""
    start = window.start.astimezone(UTC)
    end = window.end.astimezone(UTC)
    end_format = "%H:%M" if start.date() == end.date() else "%Y-%m-%d %H:%M"
    return f"{start:%Y-%m-%d %H:%M} → {end.strftime(end_format)} UTC"


def with_held_back_note(payload: Mapping[str, Any], since: datetime) -> dict[str, Any]:
    """*payload* (a findings digest) with "Held back since <time>" under its header.

    The note goes at the end of the header container (the card's first element), or first in
    the body; when it would push the card over the Teams limit the digest is sent without it.
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
