"""What a snooze silences: one hunt, one device, and the values that identify one finding.

A snooze's conditions are the row's device columns plus, per *facet* (what ran, its parent, the
destination, the file, the registry key), the most specific column the row has. An identity
that could silence a lot (only a process name, only an address and port, no device) is refused:
it needs one specific value (a command line with arguments, a URL, a hash, a registry key) or
two different facets (a process name and its destination). The same check runs when a link is
made, when the page is opened, and when the stored snooze is loaded.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

DEVICE_COLUMNS = ("DeviceId", "DeviceName", "Computer", "DvcHostname")
"""Every one a row has becomes a condition; the first readable one names the device."""
DEVICE_NAMES = ("DeviceName", "Computer", "DvcHostname", "DeviceId")


@dataclass(frozen=True)
class Facet:
    name: str
    columns: tuple[str, ...]
    """In order of preference: the first one the row has is the facet's condition."""
    kind: str
    """How the value reads: command, name, url, address, port, hash or registry."""


FACETS = (
    Facet("process", ("ProcessCommandLine", "CommandLine", "TargetProcessCommandLine"),
          "command"),
    Facet("process", ("FileName", "NewProcessName", "TargetProcessName", "Process"), "name"),
    Facet("parent", ("InitiatingProcessCommandLine", "ParentCommandLine",
                     "ActingProcessCommandLine"), "command"),
    Facet("parent", ("InitiatingProcessFileName", "ParentProcessName", "ActingProcessName"),
          "name"),
    Facet("destination", ("RemoteUrl", "Url"), "url"),
    Facet("destination", ("RemoteIP", "DstIpAddr", "DestinationIp"), "address"),
    Facet("destination", ("RemotePort", "DstPortNumber", "DestinationPort"), "port"),
    Facet("file", ("SHA256", "SHA1", "MD5"), "hash"),
    Facet("registry", ("RegistryKey",), "registry"),
)
SPECIFIC_KINDS = frozenset({"url", "hash", "registry"})
MIN_FACETS = 2
"""Without one specific value, an identity needs this many different facets."""
LABEL_WIDTH = 48
_COLUMN_KIND = {c: f.kind for f in FACETS for c in f.columns}
_COLUMN_FACET = {c: f.name for f in FACETS for c in f.columns}
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def snooze_values(row: Mapping[str, Any]) -> dict[str, str]:
    """The device columns and, per facet, the first identifying column the row has: the
    conditions of a snooze of this row. A facet that has a command line skips the bare name
    (the command line names the program)."""
    values = {c: text for c in DEVICE_COLUMNS if (text := _text(row.get(c))) is not None}
    taken: set[str] = set()
    for facet in FACETS:
        key = f"{facet.name}/{'name' if facet.kind in ('command', 'name') else facet.kind}"
        if key in taken:
            continue
        column = next((c for c in facet.columns if _text(row.get(c)) is not None), None)
        if column is not None:
            values[column] = str(_text(row.get(column)))
            taken.add(key)
    return values


def too_broad(values: Mapping[str, str]) -> str | None:
    """Why a snooze with these conditions would silence too much, or None when it is scoped
    to one device and one finding's identity."""
    if not any(c in values for c in DEVICE_COLUMNS):
        return "it names no device (DeviceId, DeviceName or Computer)"
    facets = {_COLUMN_FACET[c] for c in values if c in _COLUMN_FACET}
    if not facets:
        return "it names nothing that identifies the finding"
    if any(_specific(c, v) for c, v in values.items()) or len(facets) >= MIN_FACETS:
        return None
    shown = ", ".join(c for c in values if c in _COLUMN_FACET)
    return (f"its only identifying value ({shown}) is shared by many unrelated events; "
            "snooze it with a reviewed rule in suppressions/ instead")


def device_of(values: Mapping[str, str]) -> str | None:
    return next((values[c] for c in DEVICE_NAMES if c in values), None)


def label(hunt_name: str, values: Mapping[str, str]) -> str:
    """Plain words for what a snooze of *values* silences, for the link's title:
    ``Outbound connection hunt on ws-fin-014: rundll32.exe -> 203.0.113.66:443``."""
    process = _first(values, "process")
    parent = _first(values, "parent")
    what = _process_words(process) if process else ""
    if parent:
        name = program(parent[1])
        what = f"{what} launched by {name}" if what else name
    destination = _destination(values)
    if destination:
        what = f"{what} -> {destination}" if what else f"to {destination}"
    for column in ("SHA256", "SHA1", "MD5", "RegistryKey"):
        if column in values and not what:
            what = f"{column} {_short(values[column], 24)}"
    device = device_of(values) or "?"
    return plain(f"{_short(hunt_name, LABEL_WIDTH)} on {_short(device, 40)}: "
                 f"{_short(what, 2 * LABEL_WIDTH)}")


def plain(text: str) -> str:
    """One line, no control characters (a label is plain text; the card escapes it)."""
    return " ".join(_CONTROL.sub(" ", text).split())


def program(command: str) -> str:
    """The program a command line or path names: ``"C:\\x\\cmd.exe" /c`` -> ``cmd.exe``."""
    text = command.strip()
    if text.startswith('"'):
        head = text[1:].split('"', 1)[0]
    else:
        head = text.split(maxsplit=1)[0] if text else ""
    return re.split(r"[\\/]", head)[-1] or head


def _specific(column: str, value: str) -> bool:
    kind = _COLUMN_KIND.get(column)
    if kind == "command":
        return _has_arguments(value)
    return kind in SPECIFIC_KINDS


def _has_arguments(command: str) -> bool:
    text = command.strip()
    if text.startswith('"') and text.count('"') >= 2:
        return bool(text[1:].split('"', 1)[1].strip())
    return len(text.split(maxsplit=1)) > 1


def _first(values: Mapping[str, str], facet: str) -> tuple[str, str] | None:
    return next(((c, v) for c, v in values.items() if _COLUMN_FACET.get(c) == facet
                 and _COLUMN_KIND[c] in ("command", "name")), None)


def _process_words(process: tuple[str, str]) -> str:
    column, value = process
    name = program(value)
    if _COLUMN_KIND[column] == "command" and _has_arguments(value):
        return f"this {name} command line"
    return name


def _destination(values: Mapping[str, str]) -> str:
    url = next((values[c] for c in ("RemoteUrl", "Url") if c in values), None)
    address = next((values[c] for c in ("RemoteIP", "DstIpAddr", "DestinationIp")
                    if c in values), None)
    port = next((values[c] for c in ("RemotePort", "DstPortNumber", "DestinationPort")
                 if c in values), None)
    if address and ":" in address and port:
        address = f"[{address}]"
    endpoint = f"{address}:{port}" if address and port else address or (f"port {port}"
                                                                        if port else "")
    if url and endpoint:
        return f"{endpoint} ({_short(url, 40)})"
    return _short(url, 60) if url else endpoint


def _text(value: Any) -> str | None:
    """The value as the rule compares it, or None when it cannot identify anything (null,
    empty, a list or bag from ``summarize``, a boolean or a float)."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        return None
    text = str(value)
    return text if text.strip() else None


def _short(text: str, width: int) -> str:
    text = plain(text)
    return text if len(text) <= width else text[: width - 1] + "…"
