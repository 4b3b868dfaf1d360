"""The runner's one entry point into hunt health.

    health = build_health(settings, storage) # None for dry runs
    reason = health.before_hunt(hunt, now)   # not None: skip, outcome status "disabled"
    ...run the hunt into outcome...
    health.after_hunt(hunt, outcome, now)    # update its record, post its notices
    health.after_run(summary, now)           # heartbeat, notifier state

Health never breaks a run: a storage or Teams failure here is logged and the run goes on.
Notices are posted before the record that says they were sent is saved (at least once).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import TYPE_CHECKING

from ..errors import HuntwireError
from ..storage import Storage, open_storage, retry_conflicts
from .heartbeat import HuntRun, after_heartbeat, heartbeat_due, tally_run
from .model import HeartbeatTally, HuntHealth, Notice, NotifierHealth, SourceHealth
from .notices import health_notice, heartbeat_notice, when
from .policy import (
    Limits,
    RunFacts,
    after_run,
    notifier_after_run,
    reenable,
    should_skip,
    source_after_run,
)
from .records import HealthStore, HealthStoreError

if TYPE_CHECKING:
    from ..hunt import Hunt
    from ..notify.base import Notice as ChannelNotice
    from ..notify.base import Notifier
    from ..outcome import HuntOutcome, RunSummary
    from ..settings import Settings

log = logging.getLogger("huntwire.health")
ATTEMPTS = 5


@dataclass(frozen=True)
class HealthConfig:
    heartbeat_hour: int | None = 8
    """UTC hour of the daily heartbeat; None turns it off."""
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_settings(cls, settings: Settings) -> HealthConfig:
        return cls(heartbeat_hour=settings.heartbeat_hour)


def post_notice(notifier: Notifier | None, notice: ChannelNotice) -> str | None:
    """Post one health notice; None when delivered, else why not (never raises)."""
    if notifier is None:
        return "no notifier configured"
    try:
        notifier.post_notice(notice)
    except HuntwireError as exc:
        return exc.message
    return None


def file_hash(hunt: Hunt) -> str:
    """sha256 of the hunt file's bytes (its query when the file cannot be read)."""
    try:
        data = hunt.path.read_bytes()
    except OSError:
        data = hunt.query.encode()
    return hashlib.sha256(data).hexdigest()


class RunnerHealth:
    """Hooks the runner calls around each hunt and once at the end of a run."""

    def __init__(self, store: HealthStore, notifier: Notifier | None, config: HealthConfig,
                 *, findings_notifier: bool = True) -> None:
        self.store = store
        self.notifier = notifier
        self.config = config
        self.findings_notifier = findings_notifier
        """Whether a Teams webhook for findings is configured (the notifier's state)."""
        self._runs: list[HuntRun] = []
        self._posted = 0
        self._failed: list[str] = []

    def before_hunt(self, hunt: Hunt, now: datetime) -> str | None:
        """None to run *hunt*; the reason to skip it when it is auto-disabled."""
        try:
            record = self.store.hunt(hunt.id)
            digest = file_hash(hunt)
            if record is None or not record.disabled:
                return None
            if should_skip(record, digest):
                return (f"auto-disabled since {when(record.disabled_since)}: "
                        f"{record.last_error or 'repeated permanent failure'}; fix its file "
                        "to run it again")
            self.store.save_hunt(reenable(record))
            log.warning("huntwire.health hunt %s re-enabled: its file changed", hunt.id)
        except HuntwireError as exc:
            log.warning("huntwire.health before %s: %s", hunt.id, exc.message)
        return None

    def after_hunt(self, hunt: Hunt, outcome: HuntOutcome, now: datetime) -> None:
        self._runs.append(HuntRun(hunt.id, outcome.status, outcome.new,
                                  sum(outcome.suppressed.values()), rows=outcome.rows))
        if outcome.status not in ("ok", "failed"):
            return
        facts = facts_of(hunt, outcome, now)
        try:
            self._update_hunt(facts)
            self._update_source(facts)
        except HuntwireError as exc:
            log.warning("huntwire.health after %s: %s", hunt.id, exc.message)

    def count_runs(self, runs: Iterable[HuntRun]) -> None:
        """Count hunt runs another process ran (the queue fan-out's workers) in the next
        :meth:`after_run`'s heartbeat tally."""
        self._runs.extend(runs)

    def after_run(self, summary: RunSummary, now: datetime) -> None:
        try:
            self._heartbeat(now, summary.incidents.get("opened", 0))
        except HuntwireError as exc:
            log.warning("huntwire.health heartbeat: %s", exc.message)
        try:
            self._update_notifier(summary, now)
        except HuntwireError as exc:
            log.warning("huntwire.health notifier: %s", exc.message)

    # -- steps ------------------------------------------------------------------------------

    def _update_hunt(self, facts: RunFacts) -> None:
        posted: set[str] = set()

        def attempt() -> None:
            record, notices = after_run(self.store.hunt(facts.hunt_id), facts,
                                        self.config.limits)
            unsent: set[str] = {n.kind for n in notices
                                if n.kind not in posted and not self._send(n)}
            posted.update({n.kind for n in notices} - unsent)
            self.store.save_hunt(record.without_notices(unsent))

        retry_conflicts(attempt, attempts=ATTEMPTS, error=HealthStoreError,
                        gave_up=f"health of hunt {facts.hunt_id} kept changing")

    def _update_source(self, facts: RunFacts) -> None:
        def attempt() -> None:
            previous = self.store.source(facts.source)
            record, notice = source_after_run(previous, facts)
            if record == previous:
                return
            if notice is not None and not self._send(notice):
                return  # not announced: try again next run
            self.store.save_source(record)

        retry_conflicts(attempt, attempts=ATTEMPTS, error=HealthStoreError,
                        gave_up=f"health of source {facts.source} kept changing")

    def _heartbeat(self, now: datetime, opened: int) -> None:
        def change(tally: HeartbeatTally | None) -> HeartbeatTally:
            return tally_run(tally, self._runs, now, opened)

        tally = self.store.modify(self.store.heartbeat, change, self.store.save_heartbeat)
        if not heartbeat_due(tally, now, self.config.heartbeat_hour):
            return
        if self._deliver(heartbeat_notice(tally, now, self.store.hunts(),
                                          self.store.notifier())):
            self.store.save_heartbeat(after_heartbeat(tally, now))

    def _update_notifier(self, summary: RunSummary, now: datetime) -> None:
        failed = [o.error or "findings not delivered"
                  for o in summary.outcomes if o.delivery_failed] + self._failed
        delivered = sum(o.posted > 0 for o in summary.outcomes) + self._posted
        hunts = self.store.hunts().values()
        waiting = [h for h in hunts if h.pending]
        since = min((h.pending_since for h in waiting if h.pending_since), default=None)

        def change(previous: NotifierHealth | None) -> NotifierHealth:
            return notifier_after_run(
                previous, configured=self.findings_notifier, delivered=delivered,
                failed=failed, pending=sum(h.pending for h in waiting), held_back_since=since,
                now=now)

        self.store.modify(self.store.notifier, change, self.store.save_notifier)

    def _send(self, notice: Notice) -> bool:
        log.warning("huntwire.health notice %s for hunt %s", notice.kind, notice.hunt_id)
        return self._deliver(health_notice(notice))

    def _deliver(self, notice: ChannelNotice) -> bool:
        error = post_notice(self.notifier, notice)
        if error is not None:
            log.warning("huntwire.health notice not delivered: %s", error)
            self._failed.append(error)
            return False
        self._posted += 1
        return True


def facts_of(hunt: Hunt, outcome: HuntOutcome, now: datetime) -> RunFacts:
    """What health needs from a hunt's outcome."""
    pending_since = outcome.pending_since
    return RunFacts(
        hunt_id=hunt.id, name=hunt.name, source=hunt.source, file=hunt.path.name,
        file_hash=file_hash(hunt), now=now, status=outcome.status, error=outcome.error,
        error_permanent=outcome.error_permanent, error_kind=outcome.error_kind,
        error_status=outcome.error_status, rows=outcome.rows, truncated=outcome.truncated,
        partial=outcome.partial,
        partial_error=next((w for w in outcome.warnings if w.startswith("partial")), None),
        pending=outcome.pending,
        pending_since=datetime.fromisoformat(pending_since) if pending_since else None)


def health_notifier(settings: Settings) -> Notifier | None:
    """The run's notifier, or the same kind of notifier on ``HUNTWIRE_HEALTH_WEBHOOK_URL``
    when that is set (a channel of its own for health)."""
    from ..notify import build_notifier

    if settings.health_webhook_url:
        settings = replace(settings, teams_webhook_url=settings.health_webhook_url)
    return build_notifier(settings)


def build_health(settings: Settings, storage: Storage) -> RunnerHealth:
    """Hooks on the run's storage account, posting to the health (or Teams) webhook."""
    config = HealthConfig.from_settings(settings)
    return RunnerHealth(HealthStore(storage), health_notifier(settings), config,
                        findings_notifier=bool(settings.teams_webhook_url))


def store_from_settings(settings: Settings) -> HealthStore:
    """The health table on the same storage settings as ``run`` (``huntwire status``)."""
    return HealthStore(open_storage(settings))


__all__ = ["HealthConfig", "HuntHealth", "RunnerHealth", "SourceHealth", "build_health",
           "facts_of", "file_hash", "post_notice", "store_from_settings"]
