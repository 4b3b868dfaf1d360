"""After all hunts of a run: new findings -> incidents -> at most ``storm_limit + 1`` posts.

The runner calls :func:`process_run` once per run with the findings it holds (leased) for every
hunt, then marks notified exactly the findings in ``IncidentOutcome.delivered`` and
``IncidentOutcome.absorbed``; the others stay pending. The notifier renders each post
(:class:`~shared.incidents.model.IncidentPost`) and posts it; see ``docs/incidents.md``.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Protocol

from ..errors import HuntwireError, NotifyError
from ..hunt import Hunt
from ..ledger import Finding
from ..ledger.keys import identity_columns
from .correlate import DEFAULT_WINDOW, SEVERE, Evidence, member_id, severity_rank
from .lineage import reads_process_events
from .model import IncidentPost, PostKind, StormLine
from .persist import save
from .plan import Plan, plan_run, related
from .store import IncidentStore, OutboxItem
from .story import events_of, title_of

DEFAULT_STORM_LIMIT = 10
DEFAULT_CLOSE_AFTER = timedelta(hours=24)
MAX_FINDINGS_PER_RUN = 5_000
"""Findings one run turns into posts (oldest first); the rest wait for the next run. Bounds
the outbox entity (1 MiB) that lists the findings a post delivers."""

log = logging.getLogger("huntwire")


SnoozeLink = tuple[str, str] | str | None
Snoozer = Callable[[Hunt, Mapping[str, Any]], SnoozeLink]
"""``shared.suppress.wiring.snooze_url`` bound to the settings: a hunt and row -> a labelled link
``(what it silences, url)``, or None (a bare URL is labelled with the hunt's name)."""
MAX_SNOOZE_LINKS = 3


class IncidentNotifier(Protocol):
    """The part of ``shared.notify.base.Notifier`` incidents use."""

    def render_incident(self, post: IncidentPost) -> dict[str, Any]: ...

    def post_incident(self, message: Mapping[str, Any],
                      held_back_since: datetime | None = None) -> object: ...


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
    """``opened``, ``updated``, ``storm`` or ``recovered`` (an intent an earlier run left)."""
    incidents: list[str]
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
    """Hunt id -> ledger keys of findings in a post this run delivered (mark notified, count
    as posted); may include findings of a recovered post that another run holds."""
    absorbed: dict[str, list[str]] = field(default_factory=dict)
    """Hunt id -> keys notified without a post of this run: kept on a held incident, or
    already delivered by an earlier post (mark notified, not posted)."""
    pending: dict[str, list[str]] = field(default_factory=dict)
    """Hunt id -> keys whose post is not done (they stay pending in the ledger)."""
    incidents: dict[str, set[str]] = field(default_factory=dict)
    """Hunt id -> incidents its findings went to this run."""
    warnings: list[str] = field(default_factory=list)
    failure: NotifyError | None = None
    """The delivery error of this run, if a post failed (the rest then waits)."""
    error: str | None = None
    """Why the incidents step stopped early (storage, or a bug): what it did not finish stays
    pending."""
    unrecorded: dict[str, list[str]] = field(default_factory=dict)
    """Hunt id -> keys of findings in a post Teams accepted but the store could not record as
    done: the post may be repeated by the next run."""

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
        process_events = reads_process_events(hunt.query)  # a fact of the hunt, not the row
        for finding in items:
            evidence.append(Evidence(
                hunt.id, hunt.name, hunt.severity, hunt.techniques, hunt.evidence_only,
                finding.row, finding.event_time or finding.first_seen or now, finding.key,
                hunt.source, finding.first_seen, key_columns(hunt, finding.row),
                hunt.teams.columns, hunt.entity_columns, process_events))
    return sorted(evidence, key=lambda e: (e.first_seen or now, e.event_time))


def key_columns(hunt: Hunt, row: Mapping[str, Any]) -> tuple[str, ...]:
    """The hunt's identity columns present in *row* (none when they cannot be told)."""
    try:
        columns = identity_columns(hunt, list(row))
    except Exception:  # a card detail only: never let it stop the delivery
        return ()
    return tuple(column for column in columns if column in row)


def process_run(findings: Mapping[str, Sequence[Finding]], hunts: Sequence[Hunt],
                store: IncidentStore, notifier: IncidentNotifier | None, now: datetime,
                settings: IncidentSettings | None = None, *,
                suppressed: Mapping[str, Mapping[str, int]] | None = None,
                snooze: Snoozer | None = None) -> IncidentOutcome:
    """Correlate this run's findings into incidents, record them and post each post once.

    *suppressed*: hunt id -> {rule id: rows} silenced this run (the cards' footer); *snooze*
    makes the cards' "Snooze 7 days: <what it silences>" links."""
    run = _Run(store, notifier, now, settings or IncidentSettings(), suppressed or {},
               snooze, {hunt.id: hunt for hunt in hunts})
    return run.process(evidence_of(findings, hunts, now))


class _Run:
    def __init__(self, store: IncidentStore, notifier: IncidentNotifier | None, now: datetime,
                 settings: IncidentSettings, suppressed: Mapping[str, Mapping[str, int]],
                 snooze: Snoozer | None, hunts: Mapping[str, Hunt]):
        self.store, self.notifier, self.now, self.settings = store, notifier, now, settings
        self.suppressed, self.snooze, self.hunts = suppressed, snooze, hunts
        self.run_id = uuid.uuid4().hex[:8]
        self.outcome = IncidentOutcome()
        self.budget = settings.storm_limit + 1
        self.sequence = 0
        self.credited: set[str] = set()
        self.noted: set[tuple[int, str, str]] = set()

    def process(self, evidence: list[Evidence]) -> IncidentOutcome:
        """Never raises: a failure stops the step and is reported in ``outcome.error``; every
        finding not delivered or kept by then stays pending."""
        try:
            return self._process(evidence)
        except Exception as exc:
            log.exception("huntwire.incidents stopped")
            self.outcome.error = (exc.message if isinstance(exc, HuntwireError)
                                  else f"{type(exc).__name__}: {exc}")
            return self.outcome

    def _process(self, evidence: list[Evidence]) -> IncidentOutcome:
        if self.notifier is None:
            self.outcome.warnings.append("no Teams webhook (or other notifier) configured: "
                                         "findings stay pending")
            for item in evidence:
                self._note(self.outcome.pending, item)
            return self.outcome
        for item in evidence[MAX_FINDINGS_PER_RUN:]:
            self._note(self.outcome.pending, item)
        if len(evidence) > MAX_FINDINGS_PER_RUN:
            self.outcome.warnings.append(
                f"{len(evidence) - MAX_FINDINGS_PER_RUN:,} finding(s) over the "
                f"{MAX_FINDINGS_PER_RUN:,} one run posts wait for the next run")
        waiting = self._recover()  # read: earlier intents, then the open incidents
        incidents = self.store.open_incidents(self.now, self.settings.close_after)
        run = plan_run(evidence[:MAX_FINDINGS_PER_RUN], incidents, set(waiting),
                       self.credited, self.now, self.settings.window)  # plan (pure)
        for item in run.waiting:
            self._note(self.outcome.pending, item)
        for item in run.absorbed:
            self._note(self.outcome.absorbed, item)
        self._save(run.plans, {i for ids in waiting.values() for i in ids})  # store
        others = incidents + [plan.incident for plan in run.plans]
        for plan in run.plans:
            plan.related += related(plan, others, self.settings.window)
        self._announce([plan for plan in run.plans if plan.kind != "held"])
        return self.outcome

    def _recover(self) -> dict[str, set[str]]:
        """Post intents earlier runs left; returns member id -> incident ids still waiting."""
        waiting: dict[str, set[str]] = {}
        for item in self.store.outbox():
            if (self.budget > 0 and self.outcome.failure is None
                    and self.store.lease(item, self.run_id, self.now)):
                post = Post("recovered", [i for _, i in item.incidents])
                if self._deliver(item, post, item.oldest_claim if item.failed else None):
                    continue
            for index, member in item.members:
                waiting.setdefault(member, set()).add(item.incidents[index][1])
        return waiting

    def _save(self, plans: list[Plan], waiting: set[str]) -> None:
        """Write each plan's incident; the kind of post is decided on the stored state."""
        save(self.store, plans, waiting, self.now, self.settings.window)
        for plan in plans:
            for item in plan.evidence:
                self.outcome.incidents.setdefault(item.hunt_id, set()).add(plan.incident.id)
            if plan.kind == "held":
                self.outcome.held.append(plan.incident.id)
                for item in plan.evidence:
                    self._note(self.outcome.absorbed, item)

    def _announce(self, plans: list[Plan]) -> None:
        if not plans:
            return
        if len(plans) > self.settings.storm_limit:
            lines = tuple(StormLine(p.incident, p.kind, title_of(p.incident.where, p.evidence),
                                    len(events_of(p.evidence))) for p in plans)
            self._intent(plans, IncidentPost(
                "storm", storm=lines, storm_limit=self.settings.storm_limit,
                evidence=tuple(e for p in plans for e in p.evidence),
                suppressed=self._suppressed(p.evidence for p in plans)))
            # A flood never hides a High or Critical incident: the summary names each first,
            # then each is posted on its own (this run, or the next when the run's posts are
            # used up).
            severe = sorted((p for p in plans if severity_rank(p.incident.severity) >= SEVERE),
                            key=lambda p: -severity_rank(p.incident.severity))
            for plan in severe:
                kind: PostKind = "opened" if plan.kind == "opened" else "updated"
                self._intent([plan], self._post(kind, plan))
        else:
            for plan in plans:
                single: PostKind = "opened" if plan.kind == "opened" else "updated"
                self._intent([plan], self._post(single, plan))
        for plan in plans:
            (self.outcome.opened if plan.kind == "opened" else self.outcome.updated).append(
                plan.incident.id)

    def _post(self, kind: PostKind, plan: Plan) -> IncidentPost:
        claims = [e.first_seen for e in plan.evidence if e.first_seen and e.first_seen < self.now]
        return IncidentPost(kind, plan.incident, tuple(plan.evidence),
                            suppressed=self._suppressed([plan.evidence]),
                            snooze=self._snooze_links(plan.evidence), related=plan.related,
                            held_back_since=min(claims, default=None))

    def _suppressed(self, groups: Any) -> tuple[tuple[str, int], ...]:
        hunt_ids = {e.hunt_id for evidence in groups for e in evidence}
        rows: dict[str, int] = {}
        for hunt_id in sorted(hunt_ids):
            for rule, count in self.suppressed.get(hunt_id, {}).items():
                rows[rule] = rows.get(rule, 0) + count
        return tuple(sorted(rows.items(), key=lambda pair: (-pair[1], pair[0])))

    def _snooze_links(self, evidence: Sequence[Evidence]) -> tuple[tuple[str, str], ...]:
        """One link per hunt and distinct finding identity (the hunt's identity columns), most
        severe hunt first, every hunt before a second identity of any, at most
        :data:`MAX_SNOOZE_LINKS`; the snoozer is asked once per group."""
        if self.snooze is None:
            return ()
        groups: dict[tuple[str, tuple[tuple[str, str], ...]], Evidence] = {}
        for item in sorted(evidence, key=lambda e: (e.evidence_only, -severity_rank(e.severity))):
            identity = tuple((c, str(item.row.get(c))) for c in item.keys if c in item.row)
            groups.setdefault((item.hunt_id, identity or (("", item.finding_key),)), item)
        # Every hunt gets its first identity's link before any hunt gets a second one.
        seen: dict[str, int] = {}
        ranked = []
        for position, ((hunt_id, _identity), item) in enumerate(groups.items()):
            seen[hunt_id] = seen.get(hunt_id, -1) + 1
            ranked.append((seen[hunt_id], position, hunt_id, item))
        ranked.sort(key=lambda entry: (entry[0], entry[1]))
        links: list[tuple[str, str]] = []
        for _, _, hunt_id, item in ranked:
            hunt = self.hunts.get(hunt_id)
            if hunt is None or len(links) == MAX_SNOOZE_LINKS:
                continue
            link = self.snooze(hunt, item.row)
            if not link:
                continue
            labelled = link if isinstance(link, tuple) else (hunt.name, link)
            if labelled not in links:
                links.append(labelled)
        return tuple(links)

    def _intent(self, plans: list[Plan], post: IncidentPost) -> None:
        assert self.notifier is not None
        self.sequence += 1
        claims = [e.first_seen for e in post.evidence if e.first_seen]
        item = OutboxItem(
            f"{self.now:%Y%m%dT%H%M%S}-{self.run_id}-{self.sequence:04d}",
            self.notifier.render_incident(post),
            [(p.incident.partition, p.incident.id) for p in plans],
            [(index, e.hunt_id, e.finding_key) for index, p in enumerate(plans)
             for e in p.evidence],
            self.now + self.store.lease_time, self.run_id, oldest_claim=min(claims, default=None))
        self.store.add_outbox(item)
        record = Post(post.kind, [p.incident.id for p in plans])
        if self.budget > 0 and self.outcome.failure is None:
            if self._deliver(item, record, None):
                return
        else:
            self.outcome.posts.append(record)
            self.store.release(item, failed=False)  # the next run posts it
            if self.outcome.failure is None:
                self.outcome.warnings.append(
                    f"more than {self.settings.storm_limit + 1} posts in one run: "
                    f"{len(post.evidence)} finding(s) wait for the next run")
        for plan in plans:
            for evidence in plan.evidence:
                self._note(self.outcome.pending, evidence)

    def _deliver(self, item: OutboxItem, post: Post, held_back_since: datetime | None) -> bool:
        assert self.notifier is not None
        self.outcome.posts.append(post)
        self.budget -= 1
        try:
            self.notifier.post_incident(item.payload, held_back_since)
        except NotifyError as exc:
            post.error = f"incident post failed, it stays pending: {exc.message}"
            self.outcome.warnings.append(post.error)
            self.outcome.failure = exc  # the channel is failing: the rest waits for next run
            self.store.release(item, failed=True)
            return False
        post.delivered = True
        for _, hunt_id, key in item.findings:
            self._add(self.outcome.delivered, hunt_id, key)
            self.credited.add(member_id(hunt_id, key))
        try:
            self.store.complete(item, self.now)
        except Exception:
            for _, hunt_id, key in item.findings:
                self._add(self.outcome.unrecorded, hunt_id, key)
            raise
        return True

    def _note(self, target: dict[str, list[str]], item: Evidence) -> None:
        self._add(target, item.hunt_id, item.finding_key)

    def _add(self, target: dict[str, list[str]], hunt_id: str, key: str) -> None:
        if (id(target), hunt_id, key) not in self.noted:
            self.noted.add((id(target), hunt_id, key))
            target.setdefault(hunt_id, []).append(key)
