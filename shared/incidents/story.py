"""What an incident card tells: distinct events, the process chain, decoded scripts, signals.

Pure functions over :class:`~shared.incidents.correlate.Evidence`; no escaping here (the card does
that), no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .correlate import Evidence, highest_severity
from .lineage import encoded_blob


@dataclass
class Event:
    """One event as seen by every hunt that matched it (shown once)."""

    key: str
    row: dict[str, Any]
    evidence: list[Evidence] = field(default_factory=list)

    @property
    def time(self) -> Any:
        return self.evidence[0].event_time

    @property
    def hunt_names(self) -> list[str]:
        return list(dict.fromkeys(e.hunt_name for e in self.evidence))

    @property
    def severity(self) -> str:
        return highest_severity(e.severity for e in self.evidence)


def events_of(evidence: Sequence[Evidence]) -> list[Event]:
    """Distinct events in time order; rows of one event from several hunts merged."""
    events: dict[str, Event] = {}
    for item in sorted(evidence, key=lambda e: e.event_time):
        key = _event_identity(item)
        event = events.get(key)
        if event is None:
            event = events[key] = Event(key, {})
        event.evidence.append(item)
        for column, value in item.row.items():
            if value not in (None, "") and event.row.get(column) in (None, ""):
                event.row[column] = value
    return list(events.values())


def _event_identity(item: Evidence) -> str:
    row = item.row
    report = row.get("ReportId")
    device = row.get("DeviceId") or row.get("DeviceName") or row.get("Computer") or ""
    if report not in (None, ""):
        return f"{device}|{report}|{item.event_time.isoformat()}"
    return f"{item.hunt_id}|{item.finding_key}"


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def decoded_script(row: Mapping[str, Any]) -> str:
    """The decoded script of a row: the hunt's ``DecodedCommand``/``DecodedScript``, else an
    ``-EncodedCommand`` or ``FromBase64String`` blob of its command line decoded here."""
    given = _text(row.get("DecodedCommand") or row.get("DecodedScript"))
    if given:
        return given
    found = encoded_blob(_text(row.get("ProcessCommandLine") or row.get("CommandLine")))
    return found[1].strip() if found else ""


def decoded_scripts(events: Iterable[Event]) -> list[tuple[str, str]]:
    """Distinct decoded scripts, first seen first, each with the process that ran it."""
    scripts: dict[str, str] = {}
    for event in events:
        script = decoded_script(event.row)
        if script and script not in scripts:
            scripts[script] = _text(event.row.get("FileName")) or _text(
                event.row.get("InitiatingProcessFileName"))
    return list(scripts.items())


def signals_by_hunt(evidence: Iterable[Evidence]) -> dict[str, list[str]]:
    """Hunt id -> the distinct ``Signals`` words its rows reported."""
    signals: dict[str, list[str]] = {}
    for item in evidence:
        words = signals.setdefault(item.hunt_id, [])
        for word in _text(item.row.get("Signals")).split():
            if word not in words:
                words.append(word)
    return signals


def techniques(evidence: Iterable[Evidence]) -> list[str]:
    """The union of the hunts' MITRE techniques, sorted."""
    return sorted({t for item in evidence for t in item.techniques})


def account(events: Iterable[Event]) -> str:
    """The first account an event names (``domain\\name``)."""
    for event in events:
        row = event.row
        name = _text(row.get("AccountName") or row.get("InitiatingProcessAccountName"))
        if name:
            domain = _text(row.get("AccountDomain") or row.get("InitiatingProcessAccountDomain"))
            return f"{domain}\\{name}" if domain else name
        for column in ("AccountUpn", "UserPrincipalName", "Account", "TargetAccount"):
            if _text(row.get(column)):
                return _text(row.get(column))
    return ""


ENTITY_COLUMNS = ("AccountUpn", "UserPrincipalName", "Account", "TargetAccount", "AccountName",
                  "AccountDomain", "IPAddress", "IpAddress", "RemoteIP", "SourceIP", "ClientIP",
                  "DeviceName", "Computer", "HostName")
"""Columns that name an entity: shown for a finding without a process."""
TIME_COLUMNS = ("Timestamp", "TimeGenerated")


def key_values(event: Event, limit: int = 8) -> list[tuple[str, str]]:
    """(column, value) that identify *event* when it names no process: the hunts' key columns
    (``dedupBy``, summarize by-keys), then the entity columns it carries."""
    columns = [c for e in event.evidence for c in e.keys] + list(ENTITY_COLUMNS)
    values: list[tuple[str, str]] = []
    for column in dict.fromkeys(columns):
        value = _text(event.row.get(column))
        if value and column not in TIME_COLUMNS and len(values) < limit:
            values.append((column, value))
    return values


def process_ids(events: Iterable[Event]) -> list[int]:
    """Numeric process ids of the events (for the advanced hunting query of the chain)."""
    ids: list[int] = []
    for event in events:
        value = _text(event.row.get("ProcessId"))
        if value.isdigit() and int(value) not in ids:
            ids.append(int(value))
    return ids


def headline_hunt(evidence: Sequence[Evidence]) -> str:
    """The name of the most severe hunt that may open an incident (any hunt when none may)."""
    openers = [e for e in evidence if not e.evidence_only] or list(evidence)
    order = {"High": 3, "Medium": 2, "Low": 1, "Informational": 0}
    best = max(openers, key=lambda e: order.get(e.severity, 2), default=None)
    return best.hunt_name if best is not None else "Evidence"


def title_of(where: str, evidence: Sequence[Evidence]) -> str:
    """What happened where: ``<most severe opening hunt> on <device>``."""
    return f"{headline_hunt(evidence)} on {where}"
