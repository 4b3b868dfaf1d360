"""Incident cards: one Adaptive Card 1.4 per incident, a short update card, a storm summary.

Telemetry goes only into TextRuns, through :func:`shared.card.escape_text` (the digest's escaping
and element helpers are reused); every payload stays within ``MAX_PAYLOAD_BYTES``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ..cards.elements import labelled, link_run, rich, run
from ..cards.escape import escape_text
from ..cards.findings import COMPACT, FULL, MEDIUM, Limits, display_time
from ..cards.links import PortalLinks, technique_url
from ..cards.payload import ADAPTIVE_CARD, CARD_VERSION, MAX_PAYLOAD_BYTES, payload_size
from ..window import Window
from .correlate import Evidence
from .model import Incident
from .story import (
    Event,
    account,
    chain,
    decoded_scripts,
    events_of,
    process_ids,
    signals_by_hunt,
    techniques,
)

Element = dict[str, Any]
STYLE = {"High": "attention", "Medium": "warning", "Low": "accent", "Informational": "default"}
SCRIPT_START = 400
BLOB_START = 120
MAX_HUNTS_SHOWN = 20
MAX_TECHNIQUES_SHOWN = 16
MAX_STORM_ROWS = 60
_DEVICE_ID = re.compile(r"^[0-9a-f]{40}$")


def message(card: dict[str, Any]) -> dict[str, Any]:
    return {"type": "message",
            "attachments": [{"contentType": ADAPTIVE_CARD, "contentUrl": None, "content": card}]}


def _card(body: list[Element], actions: list[Element]) -> dict[str, Any]:
    card: dict[str, Any] = {"type": "AdaptiveCard",
                            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                            "version": CARD_VERSION, "msteams": {"width": "Full"}, "body": body}
    if actions:
        card["actions"] = actions
    return card


def _span(start: datetime, end: datetime) -> str:
    first = display_time(start)
    if end - start < timedelta(seconds=1):
        return first
    return f"{first} → {display_time(end)}"


def title_of(incident: Incident, evidence: Sequence[Evidence]) -> str:
    """What happened where: the most severe opening hunt's name, on the device."""
    openers = [e for e in evidence if not e.evidence_only] or list(evidence)
    order = {"High": 3, "Medium": 2, "Low": 1, "Informational": 0}
    what = max(openers, key=lambda e: order.get(e.severity, 2)).hunt_name if openers else "Evidence"
    return f"{what} on {incident.where}"


def _header(incident: Incident, evidence: Sequence[Evidence], events: Sequence[Event],
            label: str) -> Element:
    severity = incident.severity if incident.severity in STYLE else "Medium"
    who = account(events)
    facts = [run(f"{label} {incident.id}", weight="Bolder"),
             run(f"   ·   {_span(incident.first_event, incident.last_event)}", isSubtle=True)]
    if who:
        facts += [run("   ·   account ", isSubtle=True), run(escape_text(who, limit=128))]
    items = [rich(run(severity.upper(), weight="Bolder", color=STYLE[severity]), run("   "),
                  run(escape_text(title_of(incident, evidence), limit=240), weight="Bolder",
                      size="Large")),
             rich(*facts, spacing="Small")]
    return {"type": "Container", "style": STYLE[severity], "bleed": True, "items": items}


def _chain_element(events: Sequence[Event], limits: Limits) -> Element | None:
    nodes = chain(events)
    if not nodes:
        return None
    text = " → ".join(escape_text(node, limit=limits.field) for node in nodes[:24])
    return labelled("Chain", text, weight="Bolder", fontType="Monospace")


def _hunts_element(incident: Incident, evidence: Sequence[Evidence]) -> Element:
    signals = signals_by_hunt(evidence)
    found_now = {e.hunt_id for e in evidence}
    hunts = sorted(incident.hunts.values(), key=lambda h: (h.id not in found_now,
                                                           -_rank(h.severity), h.name))
    items: list[Element] = []
    for hunt in hunts[:MAX_HUNTS_SHOWN]:
        words = " ".join(signals.get(hunt.id, []))
        runs = [run(f"{hunt.severity.upper():<6} ", weight="Bolder",
                    color=STYLE.get(hunt.severity, "default")),
                run(escape_text(hunt.name, limit=200))]
        if hunt.evidence_only:
            runs.append(run("  (evidence only)", isSubtle=True))
        if words:
            runs += [run("  signals: ", isSubtle=True), run(escape_text(words, limit=200))]
        items.append(rich(*runs, spacing="None"))
    if len(hunts) > MAX_HUNTS_SHOWN:
        items.append(rich(run(f"…and {len(hunts) - MAX_HUNTS_SHOWN} more hunts", isSubtle=True)))
    return {"type": "Container", "spacing": "Medium",
            "items": [rich(run(f"Hunts that matched ({len(hunts)})", weight="Bolder")), *items]}


def _rank(severity: str) -> int:
    return {"High": 3, "Medium": 2, "Low": 1, "Informational": 0}.get(severity, 2)


def _techniques_element(evidence: Sequence[Evidence]) -> Element | None:
    runs: list[Element] = []
    for technique in techniques(evidence)[:MAX_TECHNIQUES_SHOWN]:
        if runs:
            runs.append(run(", "))
        label = escape_text(technique, limit=16)
        url = technique_url(technique)
        runs.append(link_run(label, url) if url else run(label))
    return rich(run("MITRE ATT&CK  ", isSubtle=True), *runs, spacing="Small") if runs else None


def _scripts_elements(events: Sequence[Event]) -> list[Element]:
    elements = []
    for script in decoded_scripts(events)[:3]:
        start = escape_text(script, limit=SCRIPT_START, multiline=True)
        elements.append(rich(run("Decoded script ", isSubtle=True, weight="Bolder"),
                             run(f"({len(script):,} characters; the whole text in advanced "
                                 "hunting)", isSubtle=True), spacing="Small"))
        elements.append(rich(run(start, fontType="Monospace"), spacing="None"))
    return elements


def event_element(event: Event, limits: Limits, shown_commands: set[str] | None = None
                  ) -> Element:
    """One distinct event: when, parent → process, command line (a decoded blob only by its
    start and length), destination, and the hunts that found it."""
    row = event.row
    decoded = bool(row.get("DecodedCommand") or row.get("DecodedScript"))
    parent = escape_text(row.get("InitiatingProcessFileName"), limit=limits.field)
    process = escape_text(row.get("FileName"), limit=limits.field)
    items = [rich(run(escape_text(display_time(event.time), limit=64), weight="Bolder"),
                  run("  "), run(f"{parent or '?'} → {process or '?'}"),
                  run("  ·  " + escape_text(", ".join(event.hunt_names), limit=limits.field),
                      isSubtle=True))]
    command = str(row.get("ProcessCommandLine") or "")
    seen = shown_commands if shown_commands is not None else set()
    if command in seen:
        command = ""  # the same process's command line is already on the card
    seen.add(command)
    if command:
        limit = min(BLOB_START, limits.command_line) if decoded else limits.command_line
        shown = escape_text(command, limit=limit)
        if decoded and len(command) > limit:
            shown = f"{escape_text(command[:limit], limit=limit)}… ({len(command):,} characters)"
        items.append(labelled("Command line", shown, fontType="Monospace"))
    remote = escape_text(" ".join(str(row.get(c)) for c in ("RemoteIP", "RemotePort", "RemoteUrl")
                                  if row.get(c) not in (None, "")), limit=limits.field)
    if remote:
        items.append(labelled("Remote", remote))
    return {"type": "Container", "separator": True, "spacing": "Small", "items": items}


def _actions(incident: Incident, evidence: Sequence[Evidence], events: Sequence[Event],
             portal: PortalLinks) -> list[Element]:
    actions = []
    device_url = portal.device_page(incident.device_id)
    if device_url:
        actions.append({"type": "Action.OpenUrl", "title": "Device page", "url": device_url})
    query = chain_query(incident, events, sentinel=all(e.source == "sentinel" for e in evidence))
    if query is not None:
        start = incident.first_event - timedelta(minutes=10)
        window = Window(start, max(incident.last_event + timedelta(minutes=10),
                                   start + timedelta(minutes=1)))
        if all(e.source == "sentinel" for e in evidence):
            if portal.sentinel_workspace_resource_id:
                actions.append({"type": "Action.OpenUrl", "title": "Chain in Sentinel Logs",
                                "url": portal.sentinel_logs(query, window)})
        else:
            actions.append({"type": "Action.OpenUrl", "title": "Chain in advanced hunting",
                            "url": portal.advanced_hunting(query)})
    return actions


def chain_query(incident: Incident, events: Sequence[Event], *, sentinel: bool) -> str | None:
    """KQL for the chain's processes and connections on the device, around the incident's
    time span. Only validated values enter it (a 40-hex DeviceId, numeric process ids)."""
    device_id = incident.device_id.lower()
    pids = process_ids(events)
    if not _DEVICE_ID.match(device_id) or not pids:
        return None
    column = "TimeGenerated" if sentinel else "Timestamp"
    start = (incident.first_event - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    end = (incident.last_event + timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    ids = ", ".join(str(pid) for pid in pids[:50])
    return (f"union DeviceProcessEvents, DeviceNetworkEvents\n"
            f"| where {column} between (datetime({start}) .. datetime({end}))\n"
            f"| where DeviceId == \"{device_id}\"\n"
            f"| where ProcessId in ({ids}) or InitiatingProcessId in ({ids})\n"
            f"| order by {column} asc")


def incident_payload(incident: Incident, evidence: Sequence[Evidence],
                     portal: PortalLinks | None = None) -> dict[str, Any]:
    """The card that opens *incident*: the whole story of *evidence*, within 28,000 bytes."""
    return _fitted(incident, evidence, portal or PortalLinks(), "Incident", full=True)


def update_payload(incident: Incident, evidence: Sequence[Evidence],
                   portal: PortalLinks | None = None) -> dict[str, Any]:
    """A short post naming *incident*: the new evidence only."""
    return _fitted(incident, evidence, portal or PortalLinks(), "Update to", full=False)


def _fitted(incident: Incident, evidence: Sequence[Evidence], portal: PortalLinks, label: str,
            *, full: bool) -> dict[str, Any]:
    events = events_of(evidence)
    for limits, max_events, with_extras in ((FULL, 12, True), (MEDIUM, 8, True),
                                            (COMPACT, 5, True), (COMPACT, 2, False),
                                            (COMPACT, 0, False)):
        shown = events[:max_events if full else min(max_events, 3)]
        body = [_header(incident, evidence, events, label)]
        if full or with_extras:
            body += [e for e in (_chain_element(events, limits),) if e]
        if full and with_extras:
            body.append(_hunts_element(incident, evidence))
            body += [e for e in (_techniques_element(evidence),) if e]
            body += _scripts_elements(events)
        elif not full:
            names = ", ".join(dict.fromkeys(e.hunt_name for e in evidence))
            body.append(labelled("New evidence", escape_text(
                f"{len(events)} event(s) from {names}", limit=400)))
        commands: set[str] = set()
        body += [event_element(event, limits, commands) for event in shown]
        if len(events) > len(shown):
            body.append({"type": "TextBlock", "wrap": True, "isSubtle": True,
                         "text": f"…and {len(events) - len(shown):,} more of {len(events):,} "
                                 "events (open the chain in advanced hunting)."})
        payload = message(_card(body, _actions(incident, evidence, events, portal)))
        if payload_size(payload) <= MAX_PAYLOAD_BYTES:
            return payload
    return message(_card([_header(incident, evidence, [], label)], []))


@dataclass(frozen=True)
class StormLine:
    incident: Incident
    kind: str
    """``opened`` or ``updated``."""
    title: str
    events: int


def storm_payload(lines: Sequence[StormLine], limit: int) -> dict[str, Any]:
    """One summary card for a run that opened or updated more incidents than *limit*."""
    opened = sum(1 for line in lines if line.kind == "opened")
    updated = len(lines) - opened
    severity = "High" if any(line.incident.severity == "High" for line in lines) else "Medium"
    header = {"type": "Container", "style": STYLE[severity], "bleed": True, "items": [
        rich(run(severity.upper(), weight="Bolder", color=STYLE[severity]), run("   "),
             run(f"{opened:,} incidents opened, {updated:,} updated in one run", weight="Bolder",
                 size="Large")),
        rich(run(f"Storm guard: more than {limit} posts in one run, so one summary instead. Each "
                 "incident keeps its id; later evidence is posted as updates.", isSubtle=True),
             spacing="Small")]}
    rows = [rich(run(f"{line.incident.severity.upper():<6} ", weight="Bolder",
                     color=STYLE.get(line.incident.severity, "default")),
                 run(f"{line.incident.id} ({line.kind})  "),
                 run(escape_text(line.title, limit=160)),
                 run(f"  ·  {line.events} event(s)", isSubtle=True), spacing="None")
            for line in lines[:MAX_STORM_ROWS]]
    while True:
        more = len(lines) - len(rows)
        tail = ([{"type": "TextBlock", "wrap": True, "isSubtle": True,
                  "text": f"…and {more:,} more incidents."}] if more else [])
        payload = message(_card([header, *rows, *tail], []))
        if payload_size(payload) <= MAX_PAYLOAD_BYTES or not rows:
            return payload
        rows = rows[: len(rows) * 3 // 4]
