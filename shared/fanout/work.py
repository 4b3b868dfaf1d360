"""The fan-out's three steps, each the body of one function (``function_app.py``):

* :meth:`Fanout.start` (the timer, ``HUNTWIRE_FANOUT=queue``): open the (tenant, cycle) counter
  with the due hunts, enqueue one message per hunt, and schedule the cycle's deadline delivery;
* :meth:`Fanout.work` (``huntwire-hunts``): the runner's own per-hunt step (query, suppression,
  ledger, checkpoint, health) for one message, then count the hunt done; the worker that
  completes the count enqueues the delivery;
* :meth:`Fanout.deliver` (``huntwire-delivery``): the runner's own delivery step (incidents,
  Teams, mark notified) once per (tenant, cycle), under the counter's delivery lease;
* :meth:`Fanout.poison` (``<queue>-poison``): a notice and a health failure, never silence.

Every invocation of one (tenant, cycle) uses one ledger lease owner, so findings a worker claims
stay the cycle's until its delivery takes them, and a redelivered message finds them its own.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from ..app import build_runner
from ..delivery import HuntRun
from ..errors import ConfigurationError, HuntwireError
from ..health.notices import HEALTH_TAG
from ..health.runner_hooks import health_notifier, post_notice
from ..ledger import Ledger, oldest_first
from ..notify.base import Notice
from ..outcome import HuntOutcome, RunSummary
from ..runner import Runner, is_due
from ..settings import Settings
from ..sources.base import close_sources
from ..storage import open_storage
from ..storage.queues import Queues, open_queues
from ..window import iso
from .cycle import Cycle, CycleStore
from .hunt_cache import cached_hunts
from .messages import (
    DEFAULT_TENANT,
    DELIVERY_QUEUE,
    HUNTS_QUEUE,
    DeliveryMessage,
    HuntMessage,
    Message,
    MessageError,
    cycle_id,
    decode,
    encode,
)

log = logging.getLogger("huntwire.fanout")

FANOUT: Final = "HUNTWIRE_FANOUT"
CYCLE_DEADLINE: Final = timedelta(minutes=20)
"""When a cycle's delivery runs even if some hunts never finished (their findings go out with
the next cycle's delivery once they are recorded)."""
DELIVERY_LEASE: Final = timedelta(minutes=10)
"""How long one delivery holds its (tenant, cycle); a crashed one is taken over after it."""
CYCLE_LEASE: Final = CYCLE_DEADLINE + DELIVERY_LEASE
"""How long findings claimed in a cycle stay leased to that cycle (its delivery takes them)."""
MAX_DEQUEUE_COUNT: Final = 5
"""host.json ``extensions.queues.maxDequeueCount``: named in the poison notice."""


def queue_mode(env: Mapping[str, str]) -> bool:
    """``HUNTWIRE_FANOUT=queue`` fans hunts out on Storage queues; unset or ``in-process`` runs
    them in the timer's invocation (the default for small deployments)."""
    value = (env.get(FANOUT) or "in-process").strip().lower()
    if value in ("queue", "queues"):
        return True
    if value in ("in-process", "inprocess"):
        return False
    raise ConfigurationError(f"{FANOUT}={value[:20]!r}: use 'queue' or 'in-process'",
                             reason="configuration")


def lease_owner(tenant: str, cycle: str) -> str:
    return f"cycle-{tenant}-{cycle}"


@dataclass
class Fanout:
    """The fan-out of one deployment: its settings, queues and the runner the steps share."""

    settings: Settings
    queues: Queues
    time_budget: timedelta = timedelta(minutes=28)
    tenant: str = DEFAULT_TENANT
    wall: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))

    @classmethod
    def from_settings(cls, settings: Settings, env: Mapping[str, str],
                      time_budget: timedelta) -> Fanout:
        return cls(settings, open_queues(settings, env), time_budget)

    def runner(self, cycle: str) -> Runner:
        """The runner of *cycle*: the same wiring as the in-process run, with the cycle's
        ledger lease owner."""
        runner = build_runner(self.settings, time_budget=self.time_budget,
                              hunts=cached_hunts(self.settings.hunts_dir))
        assert runner.storage is not None
        runner.ledger = Ledger(runner.storage, lease_owner=lease_owner(self.tenant, cycle),
                               claim_lease=CYCLE_LEASE)
        return runner

    # -- the timer ---------------------------------------------------------------------------

    def start(self, now: datetime) -> Cycle | None:
        """Open the cycle and enqueue its due hunts; None when no hunt is due."""
        cycle = cycle_id(now)
        runner = self.runner(cycle)
        try:
            assert runner.ledger is not None
            assert runner.storage is not None
            due = [h.id for h in runner.hunts
                   if h.enabled and is_due(h, runner.ledger.checkpoint(h.id), now)]
            if not due:
                log.info("huntwire.fanout cycle %s: no hunt due", cycle)
                return None
            opened = CycleStore(runner.storage).open(self.tenant, cycle, now,
                                                     now + CYCLE_DEADLINE, due)
        finally:
            close_sources(runner.sources.values())
        # The deadline first: if sending stops half way, the hunts already sent are delivered.
        self.queues.send(DELIVERY_QUEUE, encode(DeliveryMessage(self.tenant, cycle, "deadline")),
                         delay_seconds=int(CYCLE_DEADLINE.total_seconds()))
        for hunt_id in opened.hunts:  # a retried timer sends again: copies are harmless
            self.queues.send(HUNTS_QUEUE, encode(HuntMessage(self.tenant, cycle, hunt_id,
                                                             iso(opened.now))))
        log.info("huntwire.fanout cycle %s: %d hunt message(s) sent", cycle, len(opened.hunts))
        return opened

    # -- one hunt ----------------------------------------------------------------------------

    def work(self, body: str | bytes) -> HuntOutcome:
        """Run the hunt of one message; raises only when the message must be retried (then
        it reaches the poison queue after ``maxDequeueCount`` attempts)."""
        message = self._ours(decode(body))
        if not isinstance(message, HuntMessage):
            raise MessageError(f"{HUNTS_QUEUE} received a {message.kind} message")
        runner = self.runner(message.cycle)
        try:
            hunt = next((h for h in runner.hunts if h.id == message.hunt), None)
            if hunt is None:
                outcome = HuntOutcome(message.hunt, message.hunt, "failed",
                                      error="hunt file not found (removed or invalid since the "
                                            "cycle started)")
                log.error("huntwire.fanout hunt %s: %s", message.hunt, outcome.error)
            else:
                outcome = runner.run_hunt(hunt, message.started).outcome
        finally:
            close_sources(runner.sources.values())
        assert runner.storage is not None
        self._count_done(CycleStore(runner.storage), message, outcome.status == "failed")
        return outcome

    def _ours(self, message: Message) -> Message:
        """*message*, if it names this deployment's tenant (tenants have their own ledgers)."""
        if message.tenant != self.tenant:
            raise MessageError(f"message for tenant {message.tenant[:40]!r}, which this "
                               f"deployment does not serve (it serves {self.tenant!r})")
        return message

    def _count_done(self, store: CycleStore, message: HuntMessage, failed: bool) -> None:
        cycle = store.mark_done(self.tenant, message.cycle, message.hunt, failed=failed)
        if cycle is None:
            log.warning("huntwire.fanout cycle %s does not list hunt %s", message.cycle,
                        message.hunt)
        elif cycle.complete and cycle.delivered_at is None:
            self.queues.send(DELIVERY_QUEUE, encode(DeliveryMessage(self.tenant, cycle.cycle)))

    # -- delivery ----------------------------------------------------------------------------

    def deliver(self, body: str | bytes) -> RunSummary | None:
        """Deliver one (tenant, cycle) once; None when there was nothing to do now."""
        message = self._ours(decode(body))
        if not isinstance(message, DeliveryMessage):
            raise MessageError(f"{DELIVERY_QUEUE} received a {message.kind} message")
        runner = self.runner(message.cycle)
        close_sources(runner.sources.values())  # delivery queries nothing
        assert runner.storage is not None
        assert runner.ledger is not None
        store = CycleStore(runner.storage, clock=self.wall)
        owner = uuid.uuid4().hex
        claim, cycle = store.claim_delivery(self.tenant, message.cycle, DELIVERY_LEASE, owner)
        retry_at = self._retry_at(claim, cycle, message)
        if retry_at is not None:  # come back when the lease ends or the deadline is reached
            wait = (retry_at - self.wall()).total_seconds()
            self.queues.send(DELIVERY_QUEUE, encode(message), delay_seconds=max(1, int(wait) + 1))
        if claim != "claimed" or cycle is None:
            log.info("huntwire.fanout delivery of cycle %s: %s", message.cycle, claim)
            return None
        summary = self._deliver_cycle(runner, cycle)
        store.delivered(self.tenant, cycle.cycle, owner)
        return summary

    @staticmethod
    def _retry_at(claim: str, cycle: Cycle | None,
                  message: DeliveryMessage) -> datetime | None:
        """When a delivery that cannot run now must be tried again: a held lease's end, or
        the deadline when the deadline message came early (clocks differ); else None."""
        if cycle is None:
            return None
        if claim == "held":
            return cycle.delivery_until
        if claim == "not-due" and message.reason == "deadline":
            return cycle.deadline
        return None

    def _deliver_cycle(self, runner: Runner, cycle: Cycle) -> RunSummary:
        assert runner.ledger is not None
        by_id = {h.id: h for h in runner.hunts}
        runs: list[HuntRun] = []
        for hunt_id in cycle.hunts:
            hunt = by_id.get(hunt_id)
            if hunt is None:
                continue
            run = HuntRun(hunt, HuntOutcome(hunt.id, hunt.name, "ok"))
            try:
                run.held = oldest_first(runner.ledger.take_pending(hunt, cycle.now))
            except HuntwireError as exc:  # this hunt's findings stay pending; the rest go
                run.outcome.delivery_failed, run.outcome.error = True, exc.message
            runs.append(run)
        summary = RunSummary(started=iso(cycle.now), outcomes=[r.outcome for r in runs])
        summary.incidents = runner.deliver_runs(runs, cycle.now)
        if cycle.missing:
            self._announce_late(runner, cycle)
        if runner.health is not None:
            runner.health.after_run(summary, cycle.now)
        log.info("huntwire.fanout delivered cycle %s: %s", cycle.cycle, summary.totals())
        return summary

    def _announce_late(self, runner: Runner, cycle: Cycle) -> None:
        names = {h.id: h.name for h in runner.hunts}
        late = [names.get(h, h) for h in cycle.missing]
        notice = Notice("health", "Hunts did not finish by the cycle's deadline",
                        f"{len(late)} hunt(s) of cycle {cycle.cycle} had not finished "
                        f"{int(CYCLE_DEADLINE.total_seconds() // 60)} minutes after it started; "
                        "the findings of the others were delivered, theirs go out with the "
                        "next cycle once recorded.", severity="Medium",
                        facts=(("Tenant", cycle.tenant), ("Hunts", ", ".join(late[:20]))),
                        tag=HEALTH_TAG + "late")
        error = post_notice(health_notifier(self.settings), notice)
        if error is not None:  # the delivery itself went out: do not fail (and repeat) it
            log.error("huntwire.fanout late notice for cycle %s not delivered: %s",
                      cycle.cycle, error)

    # -- poison ------------------------------------------------------------------------------

    def poison(self, body: str | bytes, queue: str) -> None:
        """A message the host gave up on: announce it (once per hunt or delivery of a cycle:
        the counter records the notice, so a copy or a retry does not post it again), record
        the hunt's failure in health and count it done, so the cycle's delivery still runs.
        Raises if the notice could not be posted (the host logs the failed invocation and
        retries it)."""
        message, notice = poison_notice(body, queue)
        if message is None or message.tenant != self.tenant:
            self._notify(notice)  # no counter of ours to record it on
            return
        hunt_id = message.hunt if isinstance(message, HuntMessage) else None
        self._announce_once(message.cycle, hunt_id, notice)
        if isinstance(message, HuntMessage):
            self._record_poisoned_hunt(message)

    def _announce_once(self, cycle: str, hunt_id: str | None, notice: Notice) -> None:
        """Post *notice* unless the cycle's counter says it was posted. Never skipped: an
        unreadable counter posts it; a notice posted but not recorded may be posted again."""
        store: CycleStore | None = None
        try:
            store = CycleStore(open_storage(self.settings))
            if store.announced(self.tenant, cycle, hunt_id):
                log.info("huntwire.fanout poison notice for cycle %s (%s) posted before",
                         cycle, hunt_id or "delivery")
                return
        except HuntwireError as exc:
            log.warning("huntwire.fanout poison notice: %s", exc.message)
        self._notify(notice)
        try:
            if store is not None:
                store.mark_announced(self.tenant, cycle, hunt_id)
        except HuntwireError as exc:  # posted: failing now would post it again
            log.warning("huntwire.fanout poison notice not recorded: %s", exc.message)

    def _record_poisoned_hunt(self, message: HuntMessage) -> None:
        runner = self.runner(message.cycle)
        close_sources(runner.sources.values())
        assert runner.storage is not None
        store = CycleStore(runner.storage)
        current = store.get(self.tenant, message.cycle)
        if current is not None and message.hunt in current.done_ids:
            return  # counted (a copy ran, or this message came before): health has it
        hunt = next((h for h in runner.hunts if h.id == message.hunt), None)
        if hunt is not None and runner.health is not None:
            outcome = HuntOutcome(hunt.id, hunt.name, "failed", error_kind="poison",
                                  error=f"queue message failed {MAX_DEQUEUE_COUNT} times")
            runner.health.after_hunt(hunt, outcome, message.started)
        self._count_done(store, message, failed=True)

    def _notify(self, notice: Notice) -> None:
        error = post_notice(health_notifier(self.settings), notice)
        if error is not None:
            raise RuntimeError(f"huntwire.fanout notice not delivered: {error}")


def poison_notice(body: str | bytes,
                  queue: str) -> tuple[HuntMessage | DeliveryMessage | None, Notice]:
    """The message in a poison queue's *body* (None when unreadable) and its notice."""
    try:
        message: HuntMessage | DeliveryMessage | None = decode(body)
    except MessageError as exc:
        message, problem = None, str(exc)
    else:
        problem = ""
    facts: list[tuple[str, str]] = [("Queue", queue)]
    if message is not None:
        facts += [("Tenant", message.tenant), ("Cycle", message.cycle)]
    if isinstance(message, HuntMessage):
        facts.append(("Hunt id", message.hunt))
        lead = (f"The hunt's queue message failed {MAX_DEQUEUE_COUNT} times and was set aside: "
                "the hunt did not run this cycle; it runs again next cycle from its last "
                "checkpoint, so no data is skipped.")
    elif isinstance(message, DeliveryMessage):
        lead = (f"The cycle's delivery failed {MAX_DEQUEUE_COUNT} times: its findings stay "
                "pending and the next cycle delivers them.")
    else:
        lead = f"An unreadable message was set aside ({problem[:200]})."
    return message, Notice("health", "Queue message set aside (poison queue)", lead,
                           severity="High", facts=tuple(facts), tag=HEALTH_TAG + "poison")
