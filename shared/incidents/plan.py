"""Which incident each group of new findings goes to, and what kind of post it gets: pure
functions over the open incidents (the pipeline stores the result)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .correlate import Evidence, Group, _time_text, correlate, device_name, process_key
from .lineage import account
from .model import HuntRef, Incident
from .store import partition_of, short_hash


@dataclass
class Plan:
    """One incident of this run and the new evidence that goes to it."""

    incident: Incident
    evidence: list[Evidence] = field(default_factory=list)
    new: bool = False
    kind: str = "held"
    """``opened``, ``updated`` or ``held`` (evidence-only findings alone: recorded, no post)."""
    related: tuple[str, ...] = ()
    """Notes naming incidents on other devices (see :func:`related`), set once ids are known."""


@dataclass
class RunPlan:
    """Everything one run decides before it writes anything."""

    plans: list[Plan]
    waiting: list[Evidence] = field(default_factory=list)
    """Findings an earlier post intent still holds (they stay pending)."""
    absorbed: list[Evidence] = field(default_factory=list)
    """Findings already members of an incident (an earlier post delivered them)."""


def plan_run(evidence: Iterable[Evidence], incidents: list[Incident], waiting: set[str],
             credited: set[str], now: datetime, window: timedelta) -> RunPlan:
    """The whole plan of a run, pure: which findings are new, how they group, which incident
    each group joins or opens. *waiting*: member ids held by outbox intents; *credited*: member
    ids this run already delivered (a recovered post)."""
    members = {m for incident in incidents for m in incident.members}
    result = RunPlan([])
    fresh = []
    for item in evidence:
        if item.member in credited:
            continue
        if item.member in waiting:
            result.waiting.append(item)
        elif item.member in members:
            result.absorbed.append(item)
        else:
            fresh.append(item)
    result.plans = plan_groups(correlate(fresh, window), incidents, now, window)
    return result


def plan_groups(groups: list[Group], incidents: list[Incident], now: datetime,
                window: timedelta) -> list[Plan]:
    """Each group joins the open incident of its scope it shares a process or event with, or
    falls within *window* of; else a new incident. Several groups may join one incident."""
    by_scope: dict[str, list[Incident]] = {}
    for incident in incidents:
        by_scope.setdefault(incident.scope, []).append(incident)
    plans: dict[int, Plan] = {}
    for group in groups:
        matched = match(group, by_scope.get(group.scope, []), window)
        incident = matched if matched is not None else new_incident(group, now)
        if matched is None:
            by_scope.setdefault(group.scope, []).append(incident)
            plans[id(incident)] = Plan(incident, new=True)
        plan = plans.setdefault(id(incident), Plan(incident))
        launcher = launched_by(group, matched) if matched is not None and matched.id else ""
        if launcher and launcher not in plan.related:
            plan.related += (launcher,)
        absorb(incident, group)
        incident.updated_at = max(incident.updated_at, now)
        plan.evidence += group.evidence
    return list(plans.values())


def match(group: Group, candidates: list[Incident], window: timedelta) -> Incident | None:
    keys = {short_hash(k) for k in group.process_keys | group.event_keys}
    matching = [incident for incident in candidates
                if keys & (incident.process_keys | incident.event_keys)
                or (group.start <= incident.last_event + window
                    and group.end >= incident.first_event - window)]
    return max(matching, key=lambda i: i.last_event, default=None)


def launched_by(group: Group, incident: Incident) -> str:
    """``launched by powershell.exe (pid 19324), a process of HW-...`` when a process of
    *group* was started by a process *incident* already holds; else ''."""
    for item in group.evidence:
        row = item.row
        pid = str(row.get("InitiatingProcessId") or "").strip()
        created = _time_text(row.get("InitiatingProcessCreationTime"))
        if pid and created and short_hash(process_key(group.scope, pid, created)) in \
                incident.process_keys:
            name = str(row.get("InitiatingProcessFileName") or "a process").strip()
            return f"launched by {name} (pid {pid}), a process of {incident.id}"
    return ""


def new_incident(group: Group, now: datetime) -> Incident:
    row = next((e.row for e in group.evidence if e.row.get("DeviceId")), group.evidence[0].row)
    device = next((device_name(e.row) for e in group.evidence if device_name(e.row)), "")
    return Incident(id="", scope=group.scope, partition=partition_of(group.scope),
                    device=device, device_id=str(row.get("DeviceId") or ""),
                    first_event=group.start, last_event=group.end, updated_at=now)


def absorb(incident: Incident, group: Group) -> None:
    """Add *group*'s facts (not its members: those follow the post) to *incident*."""
    incident.first_event = min(incident.first_event, group.start)
    incident.last_event = max(incident.last_event, group.end)
    incident.opened = incident.opened or group.opens
    for item in group.evidence:
        incident.hunts.setdefault(item.hunt_id, HuntRef(item.hunt_id, item.hunt_name,
                                                        item.severity, item.evidence_only,
                                                        item.source))
    incident.techniques = tuple(sorted({*incident.techniques,
                                        *(t for e in group.evidence for t in e.techniques)}))
    incident.process_keys |= {short_hash(k) for k in group.process_keys}
    incident.event_keys |= {short_hash(k) for k in group.event_keys}
    incident.accounts |= accounts_of(group.evidence)


SERVICE_ACCOUNTS = frozenset({"system", "local service", "network service", "localsystem",
                              "nt authority\\system", "nt authority\\local service",
                              "nt authority\\network service"})


def accounts_of(evidence: Iterable[Evidence]) -> set[str]:
    """The accounts *evidence* ran as, lower case, without service and machine accounts."""
    found = set()
    for item in evidence:
        name = account(item.row).lower()[:200]
        if name and name not in SERVICE_ACCOUNTS and not name.endswith("$"):
            found.add(name)
    return found


def related(plan: Plan, others: Iterable[Incident], window: timedelta,
            limit: int = 3) -> tuple[str, ...]:
    """Notes naming the incidents on other devices where *plan*'s accounts were active within
    *window* of its evidence (lateral movement: WMI, PsExec, WinRM, RDP)."""
    mine = plan.incident
    accounts = accounts_of(plan.evidence)
    start = min((e.event_time for e in plan.evidence), default=mine.first_event)
    end = max((e.event_time for e in plan.evidence), default=mine.last_event)
    notes: list[str] = []
    for other in sorted(others, key=lambda i: i.first_event):
        if other.scope == mine.scope or not other.id or len(notes) == limit:
            continue
        if other.last_event < start - window or other.first_event > end + window:
            continue
        for name in sorted(accounts & other.accounts):
            note = f"account {name} also active in {other.id} on {other.where}"
            if note not in notes and len(notes) < limit:
                notes.append(note)
    return tuple(notes)
