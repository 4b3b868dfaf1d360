"""Incident cards for Teams: one Adaptive Card 1.4 per incident, a short update, a storm summary.

:func:`build_incident_post` renders an :class:`~shared.incidents.model.IncidentPost`. Telemetry
goes only into TextRuns, through :func:`escape_text`; every payload stays within
``MAX_PAYLOAD_BYTES`` (events are shortened, then dropped, "...and N more").
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from ..incidents.correlate import Evidence
from ..incidents.lineage import chains, plain_signals
from ..incidents.model import Incident, IncidentPost
from ..incidents.story import (
    Event,
    account,
    decoded_scripts,
    events_of,
    headline_hunt,
    process_ids,
    signals_by_hunt,
    techniques,
)
from ..window import Window
from .elements import Element, labelled, link_run, open_url, rich, run
from .escape import escape_text
from .evidence import COMPACT, FULL, MEDIUM, Limits, Shown, display_time, event_element, one_line
from .links import PortalLinks, technique_url
from .payload import MAX_PAYLOAD_BYTES, card_shell, message, payload_size, with_held_back_note
from .storm import STYLE, storm_payload, suppressed_element
from .summary import HEADER_ID, HUNTS_ID

MAX_HUNTS_SHOWN = 20
MAX_TECHNIQUES_SHOWN = 16
UPDATE_EVENTS = 6
COMPACT_TEXT = 160
"""Characters of a command line (or key values) in the one-line list of the other events."""
SNOOZE_TITLE = "Snooze 7 days"
_DEVICE_ID = re.compile(r"^[0-9a-f]{40}$")
_TIERS = ((FULL, 12, True), (MEDIUM, 8, True), (COMPACT, 5, True), (COMPACT, 2, False),
          (COMPACT, 0, False))


def build_incident_post(post: IncidentPost, portal: PortalLinks | None = None
                        ) -> dict[str, Any]:
    """The Teams message for *post* (opened, updated or storm), within 28,000 bytes."""
    if post.kind == "storm":
        payload = storm_payload(post.storm, post.storm_limit, post.suppressed)
    else:
        assert post.incident is not None, "an incident post names its incident"
        payload = _fitted(post, portal or PortalLinks(), full=post.kind == "opened")
    if post.held_back_since is not None:
        payload = with_held_back_note(payload, post.held_back_since)
    return payload


def incident_payload(incident: Incident, evidence: Sequence[Evidence],
                     portal: PortalLinks | None = None) -> dict[str, Any]:
    """The card that opens *incident*: the whole story of *evidence*."""
    return build_incident_post(IncidentPost("opened", incident, tuple(evidence)), portal)


def update_payload(incident: Incident, evidence: Sequence[Evidence],
                   portal: PortalLinks | None = None) -> dict[str, Any]:
    """A short post naming *incident*: the new evidence only."""
    return build_incident_post(IncidentPost("updated", incident, tuple(evidence)), portal)


def _span(start: datetime, end: datetime) -> str:
    first = display_time(start)
    return first if end - start < timedelta(seconds=1) else f"{first} → {display_time(end)}"


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}{'' if count == 1 else 's'}"


def _header(post: IncidentPost, events: Sequence[Event], label: str) -> Element:
    incident = post.incident
    assert incident is not None
    severity = incident.severity if incident.severity in STYLE else "Medium"
    who = account(events)
    facts = [run(f"{label} {incident.id}", weight="Bolder"),
             run(f"   ·   {_plural(post.findings, 'new finding')}", isSubtle=True),
             run(f"   ·   {_span(incident.first_event, incident.last_event)}", isSubtle=True)]
    if who:
        facts += [run("   ·   account ", isSubtle=True), run(escape_text(who, limit=128))]
    title = [run(severity.upper(), weight="Bolder", color=STYLE[severity]), run("   "),
             run(escape_text(headline_hunt(post.evidence), limit=200), weight="Bolder",
                 size="Large"),
             run(" on ", size="Large"),
             run(escape_text(incident.where, limit=160), weight="Bolder", size="Large")]
    return {"type": "Container", "id": HEADER_ID, "style": STYLE[severity], "bleed": True,
            "items": [rich(*title), rich(*facts, spacing="Small")]}


def _chain_element(found: Sequence[Sequence[str]], limits: Limits) -> Element | None:
    """The process chains that rows of this post really form (*found*: ``lineage.chains``,
    joined by process id and creation time); none when the rows share no process."""
    if not found:
        return None
    lines = [" → ".join(escape_text(node, limit=limits.field) for node in nodes[:24])
             for nodes in found]
    return labelled("Chain", "\n".join(lines), weight="Bolder", fontType="Monospace")


def _hunts_element(post: IncidentPost, *, full: bool) -> Element:
    """Every hunt of the incident (opened) or of the new evidence (updated): severity, name,
    how many findings of this post, signals."""
    incident = post.incident
    assert incident is not None
    signals = signals_by_hunt(post.evidence)
    counts: dict[str, int] = {}
    for item in post.evidence:
        counts[item.hunt_id] = counts.get(item.hunt_id, 0) + 1
    hunts = [h for h in incident.hunts.values() if full or h.id in counts]
    hunts.sort(key=lambda h: (h.id not in counts, -_rank(h.severity), h.name))
    items: list[Element] = []
    for hunt in hunts[:MAX_HUNTS_SHOWN]:
        count = counts.get(hunt.id, 0)
        words = plain_signals(signals.get(hunt.id, []))
        runs = [run(f"{hunt.severity.upper():<6} ", weight="Bolder",
                    color=STYLE.get(hunt.severity, "default")),
                run(escape_text(hunt.name, limit=200)),
                run(f"  ·  {_plural(count, 'finding')}" if count else "  ·  earlier evidence",
                    isSubtle=True)]
        if hunt.evidence_only:
            runs.append(run("  (evidence only)", isSubtle=True))
        if words:
            runs += [run("  ·  what it saw: ", isSubtle=True),
                     run(escape_text(words, limit=300))]
        items.append(rich(*runs, spacing="None"))
    if len(hunts) > MAX_HUNTS_SHOWN:
        items.append(rich(run(f"…and {len(hunts) - MAX_HUNTS_SHOWN} more hunts", isSubtle=True)))
    heading = f"Hunts that matched ({len(hunts)})" if full else "New evidence from"
    return {"type": "Container", "id": HUNTS_ID, "spacing": "Medium",
            "items": [rich(run(heading, weight="Bolder")), *items]}


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


def _scripts_elements(scripts: Sequence[tuple[str, str]], limits: Limits,
                      shown: Shown) -> list[Element]:
    """Each distinct decoded script (*scripts*: ``story.decoded_scripts``) once, whole up to
    *limits.script*, then cut at a line boundary with how much more advanced hunting holds."""
    elements = []
    for number, (script, owner) in enumerate(scripts[:3], start=1):
        shown.scripts[script] = number
        head, more = cut_script(script, limits.script)
        title = f"Decoded script {number}" + (f" (run by {owner})" if owner else "")
        elements.append(rich(run(escape_text(title, limit=120), isSubtle=True, weight="Bolder"),
                             run(f"  {len(script):,} characters", isSubtle=True),
                             spacing="Small"))
        elements.append(rich(run(escape_text(head, limit=2 * limits.script, multiline=True),
                                 fontType="Monospace"), spacing="None"))
        if more:
            elements.append(rich(run(f"…{more:,} more characters in advanced hunting",
                                     isSubtle=True), spacing="None"))
    return elements


def cut_script(script: str, limit: int) -> tuple[str, int]:
    """(*script* up to *limit* characters, cut at the last line break before it when there is
    one in its second half; the count of characters left out)."""
    if len(script) <= limit:
        return script, 0
    end = script.rfind("\n", 0, limit)
    if end < limit // 2:
        end = limit
    return script[:end], len(script) - end


def _actions(post: IncidentPost, events: Sequence[Event], portal: PortalLinks) -> list[Element]:
    incident = post.incident
    assert incident is not None
    actions = []
    device_url = portal.device_page(incident.device_id)
    if device_url:
        actions.append(open_url("Device page", device_url))
    sentinel = all(e.source == "sentinel" for e in post.evidence)
    query = chain_query(incident, events, sentinel=sentinel)
    if query is not None:
        start = incident.first_event - timedelta(minutes=10)
        window = Window(start, max(incident.last_event + timedelta(minutes=10),
                                   start + timedelta(minutes=1)))
        if not sentinel:
            actions.append(open_url("Chain in advanced hunting", portal.advanced_hunting(query)))
        elif portal.sentinel_workspace_resource_id:
            actions.append(open_url("Chain in Sentinel Logs", portal.sentinel_logs(query, window)))
    for label, url in post.snooze[:3]:
        actions.append(open_url(f"{SNOOZE_TITLE}: {escape_text(label, limit=60)}", url))
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


def _fitted(post: IncidentPost, portal: PortalLinks, *, full: bool) -> dict[str, Any]:
    """The richest tier that shows every event (the first events in detail, the others one line
    each); when none can, the one that shows the most, then "...and N more"."""
    events = events_of(post.evidence)
    label = "Incident" if full else "Update to"
    footer = [e for e in (suppressed_element(post.suppressed),) if e]
    actions = _actions(post, events, portal)
    lines: dict[int, str] = {}  # event index -> its one line, made once for every tier
    found_chains = chains([event.row for event in events])  # the same for every tier
    scripts = decoded_scripts(events)
    best: tuple[int, dict[str, Any]] | None = None
    for limits, max_events, with_extras in _TIERS:
        shown = events[:max_events if full else min(max_events, UPDATE_EVENTS)]
        body = [_header(post, events, label)]
        body += _links_elements(post)
        seen = Shown()
        if with_extras:
            body += [e for e in (_chain_element(found_chains, limits),) if e]
            body.append(_hunts_element(post, full=full))
        if full and with_extras:
            body += [e for e in (_techniques_element(post.evidence),) if e]
        if with_extras:
            body += _scripts_elements(scripts, limits, seen)
        body += [event_element(event, limits, seen, post.incident.where if post.incident
                               else "") for event in shown]
        rest = events[len(shown):]
        offset = len(shown)

        def build(count: int, body: list[Element] = body, rest: list[Event] = rest,
                  total: int = len(events), offset: int = offset) -> dict[str, Any]:
            for index in range(offset, offset + count):
                if index not in lines:
                    lines[index] = escape_text(one_line(events[index]), limit=COMPACT_TEXT)
            listed = [lines[index] for index in range(offset, offset + count)]
            return message(_card(body + _listed(rest, listed, total) + footer, actions))

        if payload_size(build(0)) > MAX_PAYLOAD_BYTES:
            continue
        count = _most_that_fit(build, len(rest))
        if count == len(rest):
            return build(count)
        if best is None or len(shown) + count > best[0]:
            best = (len(shown) + count, build(count))
    return best[1] if best is not None else message(_card([_header(post, [], label)], []))


def _links_elements(post: IncidentPost) -> list[Element]:
    """Where this incident meets others: the incident whose process launched it, the devices
    where its account is also active (see ``IncidentPost.related``)."""
    return [rich(run("Related: ", isSubtle=True, weight="Bolder"),
                 run(escape_text(note, limit=300)), spacing="Small")
            for note in post.related[:5]]


def _listed(rest: Sequence[Event], texts: Sequence[str], total: int) -> list[Element]:
    """The first of the events not shown in detail, one line each (*texts*), then how many
    more (of *total*) the card leaves out."""
    count = len(texts)
    lines: list[Element] = []
    if count:
        lines.append(rich(run("Also in this post", isSubtle=True, weight="Bolder"),
                          spacing="Medium", separator=True))
    for event, line in zip(rest, texts, strict=False):
        lines.append(rich(run(escape_text(display_time(event.time), limit=64) + "  ",
                              isSubtle=True), run(line), spacing="None"))
    if len(rest) > count:
        lines.append({"type": "TextBlock", "wrap": True, "isSubtle": True,
                      "text": f"…and {len(rest) - count:,} more of {total:,} events (open the "
                              "chain in advanced hunting)."})
    return lines


def _most_that_fit(build: Callable[[int], dict[str, Any]], most: int) -> int:
    """The largest count in 0..*most* whose payload stays within the limit (0 fits)."""
    low, high = 0, most
    while low < high:
        middle = (low + high + 1) // 2
        if payload_size(build(middle)) <= MAX_PAYLOAD_BYTES:
            low = middle
        else:
            high = middle - 1
    return low


def _card(body: list[Element], actions: list[Element]) -> dict[str, Any]:
    card = card_shell(body)
    if actions:
        card["actions"] = actions
    return card


def is_incident_card(body: Sequence[Mapping[str, Any]]) -> bool:
    return bool(body) and body[0].get("id") == HEADER_ID
