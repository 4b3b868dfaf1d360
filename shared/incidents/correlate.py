"""Group the new findings of a run into incidents: pure functions, no I/O.

Two findings belong to the same incident when they share a *scope* (the device: ``DeviceId``, or
``DeviceName``/``Computer`` for Sentinel tables; without a device column the entity: account, then
IP address; without any, the finding stays alone) and at least one of:

* the same event: equal ``ReportId`` and event time on the scope (several hunts matched one event);
* the same process: equal ``(ProcessId, ProcessCreationTime)`` in any lineage column pair
  (``ProcessId``/``InitiatingProcessId``/``InitiatingProcessParentId`` with their creation
  times). The creation time makes a PID unambiguous (Windows reuses PIDs), so such a link holds
  whatever the time gap: a shell that connects out again hours later is the same incident;
* time proximity: their event times are at most ``window`` apart (single linkage along the sorted
  times of the scope). Default 2 h: an interactive intrusion (foothold, shell, discovery, download
  of a second stage) typically unfolds within minutes to an hour, and two hourly runs with a
  4-hour lookback always see both ends of a 2-hour gap; a longer window starts merging an
  admin's unrelated morning and afternoon work on the same device.

A PID without a creation time adds nothing beyond proximity (it may have been reused), so it is
not a link. The algorithm sorts by (scope, time) and sweeps once, then joins lineage and event
keys with a union-find: O(n log n) for n findings.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from typing import Any

DEFAULT_WINDOW = timedelta(hours=2)
SEVERITY_ORDER = {"Informational": 0, "Low": 1, "Medium": 2, "High": 3, "Critical": 4}
SEVERE = SEVERITY_ORDER["High"]
"""High and Critical incidents are posted on their own even in a storm, and always named."""


def severity_rank(severity: str) -> int:
    """*severity*'s place in :data:`SEVERITY_ORDER`; an unknown one ranks as Medium."""
    return SEVERITY_ORDER.get(severity, 2)

LINEAGE_COLUMNS = (
    ("ProcessId", "ProcessCreationTime"),
    ("InitiatingProcessId", "InitiatingProcessCreationTime"),
    ("InitiatingProcessParentId", "InitiatingProcessParentCreationTime"),
)
DEVICE_ID_COLUMNS = ("DeviceId",)
DEVICE_NAME_COLUMNS = ("DeviceName", "Computer")
ACCOUNT_COLUMNS = ("AccountUpn", "UserPrincipalName", "InitiatingProcessAccountUpn")
ACCOUNT_NAME_COLUMNS = (("AccountName", "AccountDomain"),
                        ("InitiatingProcessAccountName", "InitiatingProcessAccountDomain"))
IP_COLUMNS = ("IPAddress", "RemoteIP", "SourceIP", "ClientIP")


@dataclass(frozen=True)
class Evidence:
    """One new finding of a run, as the correlator needs it."""

    hunt_id: str
    hunt_name: str
    severity: str
    techniques: tuple[str, ...]
    evidence_only: bool
    row: Mapping[str, Any]
    event_time: datetime
    finding_key: str
    source: str = "defender"
    first_seen: datetime | None = None
    """When the ledger first claimed the finding (the held-back note)."""
    keys: tuple[str, ...] = ()
    """The columns that identify the hunt's findings (``dedupBy``, the summarize by-keys): what
    a card shows of a finding that names no process."""
    listed: tuple[str, ...] = ()
    """The hunt's ``teams.columns``: always shown on the card."""
    entities: tuple[str, ...] = ()
    """The columns the hunt's ``entityMappings`` name."""
    process_events: bool = False
    """The hunt reads a process-creation table: a row without a process of its own (a
    ``summarize``) names the parent in its ``InitiatingProcess*`` columns."""

    @property
    def member(self) -> str:
        """A short, stable id of this finding (hunt and ledger key) for incident membership."""
        return member_id(self.hunt_id, self.finding_key)


@dataclass
class Group:
    """Findings of one run that belong together, with the keys that tie them together."""

    scope: str
    evidence: list[Evidence]
    process_keys: set[str] = field(default_factory=set)
    event_keys: set[str] = field(default_factory=set)

    @property
    def start(self) -> datetime:
        return min(e.event_time for e in self.evidence)

    @property
    def end(self) -> datetime:
        return max(e.event_time for e in self.evidence)

    @property
    def opens(self) -> bool:
        """Whether a hunt that may open an incident matched (not only evidence-only hunts)."""
        return any(not e.evidence_only for e in self.evidence)

    @property
    def severity(self) -> str:
        return highest_severity(e.severity for e in self.evidence)


def member_id(hunt_id: str, finding_key: str) -> str:
    return hashlib.sha256(f"{hunt_id}|{finding_key}".encode()).hexdigest()[:16]


def highest_severity(severities: Iterable[str]) -> str:
    best = "Informational"
    for severity in severities:
        if SEVERITY_ORDER.get(severity, 2) > SEVERITY_ORDER.get(best, 0):
            best = severity if severity in SEVERITY_ORDER else "Medium"
    return best


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def _time_text(value: Any) -> str:
    """A creation or event time as canonical UTC ISO text ('' when absent or unparseable)."""
    moment = value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            return ""
    if not isinstance(moment, datetime):
        return ""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="microseconds")


def device_name(row: Mapping[str, Any]) -> str:
    for column in DEVICE_NAME_COLUMNS:
        name = _text(row.get(column)).lower()
        if name:
            return name
    return ""


def entity_scope(row: Mapping[str, Any]) -> str | None:
    """``account:...`` or ``ip:...`` for a row without a device column; None when it has none."""
    for column in ACCOUNT_COLUMNS:
        upn = _text(row.get(column)).lower()
        if upn:
            return f"account:{upn}"
    for name_column, domain_column in ACCOUNT_NAME_COLUMNS:
        name = _text(row.get(name_column)).lower()
        if name:
            domain = _text(row.get(domain_column)).lower()
            return f"account:{domain}\\{name}" if domain else f"account:{name}"
    for column in IP_COLUMNS:
        address = _text(row.get(column)).lower()
        if address:
            return f"ip:{address}"
    return None


def scope_of(evidence: Evidence, aliases: Mapping[str, str]) -> str:
    """The grouping scope of one finding (see the module docstring)."""
    row = evidence.row
    device_id = _text(row.get("DeviceId")).lower()
    if device_id:
        return f"device:{device_id}"
    name = device_name(row)
    if name:
        return aliases.get(name) or f"device:{name}"
    entity = entity_scope(row)
    if entity:
        return entity
    return f"finding:{evidence.member}"


def device_aliases(evidence: Iterable[Evidence]) -> dict[str, str]:
    """Device name -> ``device:<DeviceId>`` learnt from rows that carry both."""
    aliases: dict[str, str] = {}
    for item in evidence:
        device_id = _text(item.row.get("DeviceId")).lower()
        name = device_name(item.row)
        if device_id and name:
            aliases.setdefault(name, f"device:{device_id}")
    return aliases


def process_keys(scope: str, row: Mapping[str, Any]) -> set[str]:
    """``scope|pid|creation time`` for every lineage column pair with both values present."""
    keys = set()
    for pid_column, time_column in LINEAGE_COLUMNS:
        pid = _text(row.get(pid_column))
        created = _time_text(row.get(time_column))
        if pid and created:
            keys.add(process_key(scope, pid, created))
    return keys


def process_key(scope: str, pid: str, created: str) -> str:
    """One process of *scope*: its id with its creation time (ids are reused)."""
    return f"{scope}|p|{pid}|{created}"


def event_key(scope: str, row: Mapping[str, Any], event_time: datetime) -> str | None:
    """``scope|ReportId|time``: Defender's ReportId identifies an event only with its time."""
    report = _text(row.get("ReportId"))
    if not report:
        return None
    return f"{scope}|e|{report}|{_time_text(event_time)}"


class _UnionFind:
    def __init__(self, size: int):
        self.parent = list(range(size))
        self.size = [1] * size

    def find(self, item: int) -> int:
        root = item
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[item] != root:
            self.parent[item], item = root, self.parent[item]
        return root

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]


def correlate(evidence: Sequence[Evidence], window: timedelta = DEFAULT_WINDOW) -> list[Group]:
    """Group *evidence* into incidents; groups and their evidence in time order."""
    aliases = device_aliases(evidence)
    scopes = [scope_of(item, aliases) for item in evidence]
    order = sorted(range(len(evidence)), key=lambda i: (scopes[i], evidence[i].event_time))
    sets = _UnionFind(len(evidence))
    for previous, current in pairwise(order):
        if (scopes[previous] == scopes[current] and not scopes[current].startswith("finding:")
                and evidence[current].event_time - evidence[previous].event_time <= window):
            sets.union(previous, current)
    keys_of: list[tuple[set[str], set[str]]] = []
    first_with: dict[str, int] = {}
    for index, item in enumerate(evidence):
        processes = process_keys(scopes[index], item.row)
        event = event_key(scopes[index], item.row, item.event_time)
        events = {event} if event else set()
        keys_of.append((processes, events))
        for key in processes | events:
            sets.union(first_with.setdefault(key, index), index)
    return _groups(evidence, scopes, order, sets, keys_of)


def _groups(evidence: Sequence[Evidence], scopes: list[str], order: list[int],
            sets: _UnionFind, keys_of: list[tuple[set[str], set[str]]]) -> list[Group]:
    groups: dict[int, Group] = {}
    for index in sorted(order, key=lambda i: evidence[i].event_time):
        root = sets.find(index)
        group = groups.get(root)
        if group is None:
            group = groups[root] = Group(scopes[index], [])
        group.evidence.append(evidence[index])
        group.process_keys |= keys_of[index][0]
        group.event_keys |= keys_of[index][1]
    return sorted(groups.values(), key=lambda g: (g.start, g.scope))
