"""After all hunts of a run: new findings -> incidents -> at most ``storm_limit + 1`` posts.

The runner calls :func:`process_run` once per run with the new (pending) findings of every hunt,
then marks notified exactly the findings listed in ``IncidentOutcome.delivered``.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial
from typing import Any, Protocol

from ..cards import PortalLinks
from ..errors import NotifyError
from ..hunt import Hunt
from ..ledger import Finding
from .card import StormLine, incident_payload, storm_payload, title_of, update_payload
from .correlate import DEFAULT_WINDOW, Evidence, Group, correlate, device_name
from .model import HuntRef, Incident
from .store import IncidentStore, OutboxItem, partition_of, short_hash
from .story import events_of

DEFAULT_STORM_LIMIT = 10
DEFAULT_CLOSE_AFTER = timedelta(hours=24)


class Notifier(Protocol):
    def post(self, payload: dict[str, Any]) -> object: ...


@dataclass(frozen=True)
class IncidentSettings:
    window: timedelta = DEFAULT_WINDOW
    """Time proximity that groups findings of one device (and joins an open incident)."""
    storm_limit: int = DEFAULT_STORM_LIMIT
    close_after: timedelta = DEFAULT_CLOSE_AFTER
    """An incident with no new evidence (by event time and by update) for this long is closed."""

    @classmethod
    def from_settings(cls, settings: object) -> IncidentSettings:
        """From the app settings' ``incident_window``/``incident_storm_limit`` when present."""
        return cls(window=getattr(settings, "incident_window", DEFAULT_WINDOW),
                   storm_limit=getattr(settings, "incident_storm_limit", DEFAULT_STORM_LIMIT))


@dataclass
class Post:
    kind: str
    """``opened``, ``updated``, ``storm`` or ``recovered`` (an intent a crashed run left)."""
    incidents: list[str]
    payload: dict[str, Any]
    delivered: bool = False
    error: str | None = None


@dataclass
class IncidentOutcome:
    posts: list[Post] = field(default_factory=list)
    opened: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    held: list[str] = field(default_factory=list)
    """Incidents with evidence-only findings alone: recorded, not posted."""
    delivered: dict[str, list[str]] = field(default_factory=dict)
    """Hunt id -> finding keys the runner may mark notified now."""
    pending: dict[str, list[str]] = field(default_factory=dict)
    """Hunt id -> finding keys whose post is not done yet (they stay pending in the ledger)."""
    warnings: list[str] = field(default_factory=list)

    @property
    def posted(self) -> int:
        return sum(1 for post in self.posts if post.delivered)


def evidence_of(findings: Mapping[str, Sequence[Finding]], hunts: Sequence[Hunt],
                now: datetime) -> list[Evidence]:
    """Ledger findings as correlator input (a finding without event time counts at first sight)."""
    by_id = {hunt.id: hunt for hunt in hunts}
    evidence = []
    for hunt_id, items in findings.items():
        hunt = by_id.get(hunt_id)
        if hunt is None:
            continue
        for finding in items:
            evidence.append(Evidence(
                hunt.id, hunt.name, hunt.severity, hunt.techniques,
                bool(getattr(hunt, "evidence_only", False)), finding.row,
                finding.event_time or finding.first_seen or now, finding.key, hunt.source))
    return evidence


def process_run(findings: Mapping[str, Sequence[Finding]], hunts: Sequence[Hunt],
                store: IncidentStore, notifier: Notifier | None, now: datetime,
                settings: IncidentSettings | None = None, *,
                portal: PortalLinks | None = None) -> IncidentOutcome:
    """Correlate this run's new findings into incidents, record and post them exactly once."""
    return _Run(store, notifier, now, settings or IncidentSettings(), portal or PortalLinks()
                ).process(evidence_of(findings, hunts, now))


@dataclass
class _Plan:
    incident: Incident
    evidence: list[Evidence]
    new: bool
    kind: str = "held"


class _Run:
    def __init__(self, store: IncidentStore, notifier: Notifier | None, now: datetime,
                 settings: IncidentSettings, portal: PortalLinks):
        self.store, self.notifier, self.now = store, notifier, now
        self.settings, self.portal = settings, portal
        self.run_id = uuid.uuid4().hex[:8]
        self.outcome = IncidentOutcome()
        self.budget = settings.storm_limit + 1
        self.sequence = 0

    def process(self, evidence: list[Evidence]) -> IncidentOutcome:
        waiting = self._recover()
        incidents = self.store.open_incidents(self.now, self.settings.close_after)
        members = {m for incident in incidents for m in incident.members}
        fresh = []
        for item in evidence:
            if item.member in waiting:
                self._note(self.outcome.pending, item)
            elif item.member in members:
                self._note(self.outcome.delivered, item)
            else:
                fresh.append(item)
        plans = self._plan(correlate(fresh, self.settings.window), incidents)
        pending_ids = {incident_id for ids in waiting.values() for incident_id in ids}
        self._save(plans, pending_ids)
        self._announce([plan for plan in plans if plan.kind != "held"])
        return self.outcome

    # ----------------------------------------------------------------------------- recovery

    def _recover(self) -> dict[str, set[str]]:
        """Post intents left by earlier runs; returns finding id -> incident ids still waiting."""
        waiting: dict[str, set[str]] = {}
        for item in self.store.outbox():
            if self.budget > 0 and self.store.lease(item, self.run_id, self.now):
                post = Post("recovered", [i for _, i in item.incidents], item.payload)
                if self._deliver(item, post):
                    continue
            for index, member in item.members:
                waiting.setdefault(member, set()).add(item.incidents[index][1])
        return waiting

    # ----------------------------------------------------------------------------- planning

    def _plan(self, groups: list[Group], incidents: list[Incident]) -> list[_Plan]:
        by_scope: dict[str, list[Incident]] = {}
        for incident in incidents:
            by_scope.setdefault(incident.scope, []).append(incident)
        plans: dict[str, _Plan] = {}
        for group in groups:
            matched = self._match(group, by_scope.get(group.scope, []))
            if matched is None:
                incident = self._new_incident(group)
                by_scope.setdefault(group.scope, []).append(incident)
                plans[f"new:{id(incident)}"] = _Plan(incident, [], True)
            else:
                incident = matched
            key = incident.id if incident.id else f"new:{id(incident)}"
            plan = plans.setdefault(key, _Plan(incident, [], False))
            _absorb(incident, group)
            incident.updated_at = max(incident.updated_at, self.now)
            plan.evidence += group.evidence
        return list(plans.values())

    def _match(self, group: Group, candidates: list[Incident]) -> Incident | None:
        keys = {short_hash(k) for k in group.process_keys | group.event_keys}
        window = self.settings.window
        matching = [incident for incident in candidates
                    if keys & (incident.process_keys | incident.event_keys)
                    or (group.start <= incident.last_event + window
                        and group.end >= incident.first_event - window)]
        return max(matching, key=lambda i: i.last_event, default=None)

    def _new_incident(self, group: Group) -> Incident:
        row = next((e.row for e in group.evidence if e.row.get("DeviceId")), group.evidence[0].row)
        device = next((device_name(e.row) for e in group.evidence if device_name(e.row)), "")
        return Incident(id="", scope=group.scope, partition=partition_of(group.scope),
                        device=device, device_id=str(row.get("DeviceId") or ""),
                        first_event=group.start, last_event=group.end, updated_at=self.now)

    # ----------------------------------------------------------------------------- storage

    def _save(self, plans: list[_Plan], pending_ids: set[str]) -> None:
        """Write each plan's incident; the kind of post is decided on the stored state."""
        for plan in plans:
            snapshot = plan.incident
            if plan.new:
                blank = replace(snapshot, members=set(), posts=0, announced=0, opened=False)
                stored = self.store.create(blank, partial(self._joins, snapshot))
            else:
                stored = self.store.get(snapshot.partition, snapshot.id) or snapshot
            plan.incident = self.store.change(stored, _merger(snapshot, plan, pending_ids))
            if plan.kind == "held":
                self.outcome.held.append(plan.incident.id)
                for item in plan.evidence:
                    self._note(self.outcome.delivered, item)

    def _joins(self, mine: Incident, other: Incident) -> bool:
        """Whether an incident another run just created under our id is the same incident."""
        return (other.scope == mine.scope
                and mine.first_event <= other.last_event + self.settings.window
                and mine.last_event >= other.first_event - self.settings.window)

    # ----------------------------------------------------------------------------- posting

    def _announce(self, plans: list[_Plan]) -> None:
        if not plans:
            return
        if len(plans) > self.settings.storm_limit:
            lines = [StormLine(p.incident, p.kind, title_of(p.incident, p.evidence),
                               len(events_of(p.evidence))) for p in plans]
            self._intent("storm", plans, storm_payload(lines, self.settings.storm_limit))
        else:
            for plan in plans:
                build = incident_payload if plan.kind == "opened" else update_payload
                self._intent(plan.kind, [plan], build(plan.incident, plan.evidence, self.portal))
        for plan in plans:
            (self.outcome.opened if plan.kind == "opened" else self.outcome.updated).append(
                plan.incident.id)

    def _intent(self, kind: str, plans: list[_Plan], payload: dict[str, Any]) -> None:
        self.sequence += 1
        item = OutboxItem(
            f"{self.now:%Y%m%dT%H%M%S}-{self.run_id}-{self.sequence:04d}", payload,
            [(p.incident.partition, p.incident.id) for p in plans],
            [(index, e.member) for index, p in enumerate(plans) for e in p.evidence],
            self.now + self.store.lease_time, self.run_id)
        self.store.add_outbox(item)
        post = Post(kind, [p.incident.id for p in plans], payload)
        delivered = self.budget > 0 and self._deliver(item, post)
        for plan in plans:
            for evidence in plan.evidence:
                self._note(self.outcome.delivered if delivered else self.outcome.pending,
                           evidence)

    def _deliver(self, item: OutboxItem, post: Post) -> bool:
        self.outcome.posts.append(post)
        if self.notifier is None:
            post.error = "no Teams webhook configured: the post stays pending"
            self.outcome.warnings.append(post.error)
            return False
        self.budget -= 1
        try:
            self.notifier.post(item.payload)
        except NotifyError as exc:
            post.error = f"Teams post failed, it stays pending: {exc.message}"
            self.outcome.warnings.append(post.error)
            self.budget = 0  # the webhook is failing: leave the rest for the next run
            return False
        post.delivered = True
        self.store.complete(item, self.now)
        return True

    @staticmethod
    def _note(target: dict[str, list[str]], item: Evidence) -> None:
        keys = target.setdefault(item.hunt_id, [])
        if item.finding_key not in keys:
            keys.append(item.finding_key)


def _absorb(incident: Incident, group: Group) -> None:
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


def _merger(snapshot: Incident, plan: _Plan, pending_ids: set[str]) -> Any:
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
        first = current.announced == 0 and current.id not in pending_ids
        plan.kind = "opened" if first else "updated"
        current.posts += 1
    return apply
