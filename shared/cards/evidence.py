"""The evidence of one event on an incident card: what ran (command line, decoded once), under
what parent, as whom, to where; then the hunt's own columns by role (``roles``): by-keys,
aggregates (lists as lists), files, hashes, registry, cloud entities and every other column as
``name: value``. Every value goes through :func:`escape_text`; :class:`Limits` bounds each kind.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ..incidents.lineage import (
    Proc,
    account,
    blob_as_length,
    encoded_blob,
    endpoint,
    is_process_row,
    lineage,
    text,
)
from ..incidents.story import Event, decoded_script
from . import roles as r
from .elements import Element, labelled, rich, run
from .escape import escape_text, to_text


@dataclass(frozen=True)
class Limits:
    """Longest value, in characters, shown for each kind of field."""

    command_line: int
    script: int
    field: int
    columns: int
    list_items: int


FULL = Limits(command_line=1200, script=6000, field=256, columns=16, list_items=12)
MEDIUM = Limits(command_line=500, script=2000, field=128, columns=10, list_items=6)
COMPACT = Limits(command_line=200, script=600, field=64, columns=6, list_items=3)
LINE_COLUMNS = frozenset({
    "FileName", "ProcessCommandLine", "ProcessId", "CommandLine", "NewProcessName",
    "NewProcessId", "TargetProcessName", "TargetProcessCommandLine", "TargetProcessId",
    "InitiatingProcessFileName", "InitiatingProcessCommandLine", "InitiatingProcessId",
    "ParentProcessName", "ParentCommandLine", "ParentProcessId", "ActingProcessName",
    "ActingProcessCommandLine", "ActingProcessId", "InitiatingProcessParentFileName",
    "InitiatingProcessParentId", "RemoteIP", "RemotePort", "RemoteUrl", "DstIpAddr",
    "DstPortNumber", "Url", "DstDomain", "DstHostname", "AccountName", "AccountDomain",
    "InitiatingProcessAccountName", "InitiatingProcessAccountDomain", "DeviceId"})
"""Columns the evidence lines show by name (a ``teams.columns`` entry among them is not
repeated as ``name: value``)."""
SAME_MIN = 24
"""A command line shorter than this is not worth a "same script" cross-reference."""


def display_time(value: Any) -> str:
    """``2026-11-27 22:14:03 UTC`` for datetimes and ISO strings; anything else as text."""
    moment = value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return to_text(value)
    if isinstance(moment, datetime):
        aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return to_text(value)


@dataclass
class Shown:
    """What the card already shows: a command line or script repeated by a parent and its
    child is printed once, the other marked "same script"."""

    commands: dict[str, str] = field(default_factory=dict)
    """Command line (whitespace folded) -> the process that showed it."""
    scripts: dict[str, int] = field(default_factory=dict)
    """Decoded script -> its number in the card's "Decoded script" section."""

    def command(self, command: str, owner: str) -> str:
        folded = " ".join(command.split())
        if not folded:
            return ""
        if folded in self.commands:
            return f"‹same command line as {self.commands[folded]} above›"
        result = folded
        for earlier, who in self.commands.items():
            if len(earlier) >= SAME_MIN and earlier in result:
                result = result.replace(earlier, f"‹same script as {who} above›")
            elif len(result) >= SAME_MIN and result in earlier:
                return f"‹same script as {who} above, inside its command line›"
        self.commands[folded] = owner or "another process"
        return result


def event_element(event: Event, limits: Limits, shown: Shown, where: str = "") -> Element:
    """One distinct event: when and which hunts, then its evidence lines and columns."""
    row = event.row
    names = ", ".join(event.hunt_names)
    items: list[Element] = [rich(run(escape_text(display_time(event.time), limit=64),
                                     weight="Bolder"),
                                 run("  ·  " + escape_text(names, limit=limits.field),
                                     isSubtle=True))]
    device = text(row.get("DeviceName") or row.get("Computer"))
    keyed = {c for e in event.evidence for c in (*e.keys, *e.listed)}
    if device and where and device.lower() != where.lower() and not keyed & {"DeviceName",
                                                                             "Computer"}:
        items.append(labelled("Device", escape_text(device, limit=limits.field)))
    parent_only = any(e.process_events for e in event.evidence)
    items += _process_lines(row, limits, shown, parent_only)
    who = account(row)
    if who:
        items.append(labelled("Account", escape_text(who, limit=limits.field)))
    target = endpoint(row)
    if target:
        items.append(labelled("Endpoint", escape_text(target, limit=limits.field)))
    items += column_lines(event, limits)
    return {"type": "Container", "separator": True, "spacing": "Small", "items": items}


def _process_lines(row: Mapping[str, Any], limits: Limits, shown: Shown,
                   parent_only: bool) -> list[Element]:
    """Process, parent, grandparent with their command lines. *parent_only*: a row of a
    process-creation hunt without a process of its own (a summarize by parent)."""
    procs = lineage(row)
    if is_process_row(row):
        titles = ["Grandparent", "Parent", "Process"]
    else:
        titles = ["Grandparent", "Parent"] if parent_only else ["Parent", "Process"]
    lines: list[Element] = []
    for title, proc in reversed(list(zip(titles, procs, strict=True))):
        if not proc:
            continue
        lines.append(labelled(title, escape_text(_name(proc), limit=limits.field),
                              weight="Bolder" if title == "Process" else "Default"))
        command = _command(row, proc, limits, shown)
        if command:
            lines.append(labelled("Command line" if title == "Process"
                                  else f"{title} command line", command, fontType="Monospace"))
    return lines


def _name(proc: Proc) -> str:
    name = proc.name or "?"
    return f"{name}  (pid {proc.pid})" if proc.pid else name


def _command(row: Mapping[str, Any], proc: Proc, limits: Limits, shown: Shown) -> str:
    command = proc.command_line
    if not command:
        return ""
    found = encoded_blob(command)
    if found is not None:
        blob, decoded = found
        script = decoded_script(row) if proc.command_line == text(
            row.get("ProcessCommandLine")) else decoded.strip()
        command = blob_as_length(command, blob)
        number = shown.scripts.get(script)
        if number:
            command = command.replace("decoded below", f"decoded script {number} above")
    folded = shown.command(command, proc.name)
    return escape_text(folded, limit=limits.command_line) if folded else ""


def column_lines(event: Event, limits: Limits) -> list[Element]:
    """The row's columns the lines above do not show: the hunt's ``teams.columns`` and key
    columns first, then aggregates, files, hashes, registry, cloud and other columns; lists as
    lists. Process and network details no one reads first are named, not dropped."""
    row = event.row
    listed = [c for e in event.evidence for c in e.listed]
    keys = [c for e in event.evidence for c in (*e.keys, *e.entities)]
    kinds = r.roles(row)
    first = [c for c in dict.fromkeys(listed + keys) if c in row and c not in LINE_COLUMNS
             and (c in listed or kinds.get(c) not in (r.TIME, r.NOISE, r.DECODED))]
    order = (r.ADDRESS, r.COUNT, r.FILE, r.HASH, r.REGISTRY, r.CLOUD, r.OTHER)
    rest = [c for kind in order for c, k in kinds.items() if k == kind and c not in first]
    lines: list[Element] = []
    shown = 0
    hidden: list[str] = []
    for column in r.present(row, first + rest):
        if shown >= limits.columns and column not in listed:
            hidden.append(column)
            continue
        shown += 1
        lines.append(_value_line(column, row[column], limits))
    details = [c for c in r.present(row, kinds) if kinds[c] == r.DETAIL and c not in first]
    details += hidden
    if details:
        names = ", ".join(details[:12]) + (f" and {len(details) - 12} more" if len(details) > 12
                                           else "")
        lines.append(rich(run("Also in the row: ", isSubtle=True),
                          run(escape_text(names, limit=limits.field * 2), isSubtle=True),
                          spacing="Small"))
    return lines


def _value_line(column: str, value: Any, limits: Limits) -> Element:
    items = as_list(value)
    label = escape_text(column, limit=64)
    if items is None:
        return labelled(label, escape_text(value, limit=limits.field))
    shown = [f"• {escape_text(item, limit=limits.field)}" for item in items[:limits.list_items]]
    if len(items) > limits.list_items:
        shown.append(f"…and {len(items) - limits.list_items:,} more")
    return rich(run(f"{label} ({len(items):,}):\n", isSubtle=True, weight="Bolder"),
                run("\n".join(shown) or "(empty)", fontType="Monospace"), spacing="Small")


def as_list(value: Any) -> list[Any] | None:
    """A list value (a ``make_list``/``make_set`` aggregate, also as JSON text), else None."""
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, str) and value.startswith("[") and value.endswith("]"):
        try:
            parsed = json.loads(value)
        except ValueError:
            return None
        return parsed if isinstance(parsed, list) else None
    return None


def one_line(event: Event) -> str:
    """An event in one line (events beyond the detailed ones): process and command line, else
    the parent's, then the endpoint; else its key values."""
    row = event.row
    procs = [p for p in lineage(row) if p]
    parts = []
    if procs:
        proc = procs[-1]
        command = proc.command_line
        found = encoded_blob(command) if command else None
        if found:
            command = blob_as_length(command, found[0]).replace(", decoded below", "")
        parts.append(f"{proc.name}  {' '.join(command.split())}".strip())
    target = endpoint(row)
    if target:
        parts.append(f"→ {target}")
    if parts:
        return "  ".join(parts)
    return "  ".join(f"{c}: {to_text(row.get(c))}" for c in _keys(event))


def _keys(event: Event) -> Sequence[str]:
    columns = [c for e in event.evidence for c in (*e.listed, *e.keys, *e.entities)]
    kinds = r.roles(event.row)
    columns += [c for c, k in kinds.items() if k not in (r.TIME, r.NOISE, r.DETAIL)]
    return r.present(event.row, [c for c in dict.fromkeys(columns) if kinds.get(c) != r.TIME])[:6]
