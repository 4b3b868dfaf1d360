"""Which incident each group of new findings goes to, and what kind of post it gets: pure
functions over the open incidents (the pipeline stores the result)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from .correlate import Evidence, Group, device_name
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


def new_incident(group: Group, now: datetime) -> Incident:
    row = next((e.row for e in group.evidence if e.row.get("DeviceId")), group.evidence[0].row)
    device = next((device_name(e.row) for e in group.evidence if device_name(e.row)), "")
    return Incident(id="", scope=group.scope, partition=partition_of(group.scope),
                    device=device, device_id=str(row.get("DeviceId") or ""),
                    first_event=group.start, last_event=group.end, updated_at=now)


def joins(mine: Incident, window: timedelta, other: Incident) -> bool:
    """Whether *other* (stored, perhaps by a concurrent run) is the incident *mine* would be."""
    return (other.scope == mine.scope
            and mine.first_event <= other.last_event + window
            and mine.last_event >= other.first_event - window)


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


def merger(snapshot: Incident, plan: Plan, waiting: set[str], now: datetime,
           lease: timedelta) -> Callable[[Incident], None]:
    """The change this run makes to the stored incident; sets ``plan.kind`` on the stored
    state. The incident is *opened* by exactly one post: when no post about it was accepted,
    none waits in the outbox (*waiting*) and no other run is posting its opening card now."""
    def apply(current: Incident) -> None:
        current.first_event = min(current.first_event, snapshot.first_event)
        current.last_event = max(current.last_event, snapshot.last_event)
        current.updated_at = max(current.updated_at, snapshot.updated_at)
        current.opened = current.opened or snapshot.opened
        for hunt_id, hunt in snapshot.hunts.items():
            current.hunts.setdefault(hunt_id, hunt)
        current.techniques = tuple(sorted({*current.techniques, *snapshot.techniques}))
        current.process_keys |= snapshot.process_keys
        current.event_keys |= snapshot.event_keys
        if not current.opened:
            plan.kind = "held"
            current.members |= {e.member for e in plan.evidence}
            return
        opening = current.opening_until is not None and current.opening_until > now
        first = current.announced == 0 and current.id not in waiting and not opening
        plan.kind = "opened" if first else "updated"
        if first:
            current.opening_until = now + lease
        current.posts += 1
    return apply
