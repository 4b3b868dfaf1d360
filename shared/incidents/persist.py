"""Writing a run's plan: each planned incident created or changed once in the store, the kind
of post decided on the stored state (another run may have posted or opened it meanwhile).

The pipeline calls :func:`save` once per run, after planning (``plan.plan_run``) and before
posting; the functions here only describe changes, the store applies them under ETags.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from functools import partial

from .model import Incident
from .plan import Plan
from .store import IncidentStore


def save(store: IncidentStore, plans: list[Plan], waiting: set[str], now: datetime,
         window: timedelta) -> None:
    """Write each plan's incident (create, joining one a concurrent run just created, or
    change); sets ``plan.incident`` to the stored incident and ``plan.kind``."""
    for plan in plans:
        snapshot = plan.incident
        if plan.new:
            blank = replace(snapshot, members=set(), posts=0, announced=0, opened=False)
            stored = store.create(blank, partial(joins, snapshot, window))
        else:
            stored = store.get(snapshot.partition, snapshot.id) or snapshot
        plan.incident = store.change(stored, merger(snapshot, plan, waiting, now,
                                                    store.lease_time))


def joins(mine: Incident, window: timedelta, other: Incident) -> bool:
    """Whether *other* (stored, perhaps by a concurrent run) is the incident *mine* would be."""
    return (other.scope == mine.scope
            and mine.first_event <= other.last_event + window
            and mine.last_event >= other.first_event - window)


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
        current.accounts |= snapshot.accounts
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

