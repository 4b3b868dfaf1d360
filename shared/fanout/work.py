"""The fan-out's three steps, each the body of one function (``function_app.py``):

* :meth:`Fanout.start` (the timer, ``HUNTWIRE_FANOUT=queue``): for every tenant, open its
  (tenant, cycle) counter with its due hunts (most overdue first); enqueue one message per hunt,
  the tenants interleaved, and schedule each tenant's deadline delivery;
* :meth:`Fanout.work` (``huntwire-hunts``): the runner's own per-hunt step (query, suppression,
  ledger, checkpoint, health) for one message, then count the hunt done with what it came to;
  the worker that completes the count enqueues the tenant's delivery;
* :meth:`Fanout.deliver` (``huntwire-delivery``): the runner's own delivery step (incidents,
  Teams, mark notified) once per (tenant, cycle), under the counter's delivery lease, then the
  heartbeat tally and (with a tenants file) the tenant's problems, announced once;
* :meth:`Fanout.poison` (``<queue>-poison``): a notice and a health failure, never silence.

Every invocation of one (tenant, cycle) uses one ledger lease owner, so findings a worker claims
stay the cycle's until its delivery takes them, and a redelivered message finds them its own.
A tenant's counter, ledger and health live on its own tables (``shared.tenancy``).
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Final

from azure.core.credentials import TokenCredential

from ..app import build_runner, rate_book
from ..delivery import HuntRun
from ..errors import HuntwireError
from ..health.runner_hooks import RunnerHealth, health_notifier, post_notice
from ..ledger import Ledger, oldest_first
from ..notify.base import Notice
from ..outcome import HuntOutcome, RunSummary
from ..runner import Runner
from ..settings import FANOUT, Settings
from ..sources.base import close_sources
from ..sources.tenant import defender_credential
from ..storage import Storage, open_storage
from ..storage.queues import Queues, open_queues
from ..tenancy import (
    TENANT_PARALLEL,
    GraphCredential,
    TenancyContext,
    build_tenant_runner,
    deployment_beat,
    problems_of,
    tenant_tables,
)
from ..tenancy_notices import announce
from ..tenants import Tenant
from ..window import iso
from .cycle import Cycle, CycleStore
from .hunt_cache import cached_hunts
from .messages import (
    DEFAULT_TENANT,
    DELIVERY_QUEUE,
    HUNTS_QUEUE,
    DeliveryMessage,
    HuntMessage,
    MessageError,
    cycle_id,
    decode,
    encode,
)
from .poison import MAX_DEQUEUE_COUNT, poison_notice
from .results import HuntResult
from .served import Served, process_identity, process_limits, served
from .steps import (
    CYCLE_DEADLINE,
    hunt_outcome,
    late_notice,
    lease_owner,
    open_cycle,
    queue_mode,
    send_cycles,
)

log = logging.getLogger("huntwire.fanout")

DELIVERY_LEASE: Final = timedelta(minutes=10)
"""How long one delivery holds its (tenant, cycle); a crashed one is taken over after it."""
CYCLE_LEASE: Final = CYCLE_DEADLINE + DELIVERY_LEASE
"""How long findings claimed in a cycle stay leased to that cycle (its delivery takes them)."""
__all__ = ["CYCLE_DEADLINE", "CYCLE_LEASE", "DELIVERY_LEASE", "FANOUT", "MAX_DEQUEUE_COUNT",
           "Fanout", "lease_owner", "poison_notice", "queue_mode"]


@dataclass
class Fanout:
    """The fan-out of one deployment: its settings, queues and tenants. *tenant*: the message
    key of a deployment without a tenants file; *identity* and *graph_credential*: how the
    tenants' sources sign in (default: the process's managed identity, and the multi-tenant
    app's federated credential over it)."""

    settings: Settings
    queues: Queues
    time_budget: timedelta = timedelta(minutes=28)
    tenant: str = DEFAULT_TENANT
    wall: Callable[[], datetime] = field(default=lambda: datetime.now(UTC))
    env: Mapping[str, str] = field(default_factory=lambda: os.environ)
    identity: TokenCredential | None = None
    graph_credential: GraphCredential = defender_credential
    _storage: Storage | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings, env: Mapping[str, str],
                      time_budget: timedelta) -> Fanout:
        return cls(settings, open_queues(settings, env), time_budget, env=env)

    # -- tenants -----------------------------------------------------------------------------

    def served(self) -> Served:
        """The tenants this deployment serves, by message key."""
        found = served(self.settings, self.env, cached_hunts(self.settings.hunts_dir))
        return found if found.multi else Served({self.tenant: found.tenants[DEFAULT_TENANT]},
                                                multi=False)

    def _tenant(self, key: str) -> tuple[Served, Tenant]:
        """The tenant of message key *key*; MessageError when this deployment does not serve it
        (tenants have their own ledgers)."""
        tenants = self.served()
        tenant = tenants.get(key)
        if tenant is None:
            serves = "its tenants file's tenants" if tenants.multi else repr(self.tenant)
            raise MessageError(f"message for tenant {key[:40]!r}, which this deployment does "
                               f"not serve (it serves {serves})")
        return tenants, tenant

    def _shared_storage(self) -> Storage:
        if self._storage is None:
            self._storage = open_storage(self.settings, self._identity())
        return self._storage

    def _identity(self) -> TokenCredential:
        return self.identity or process_identity(self.settings.client_id,
                                                 os.environ.get("IDENTITY_ENDPOINT"))

    def tables(self, key: str) -> Storage:
        """The tables of tenant *key* (its counter, ledger, health, problems)."""
        tenants, tenant = self._tenant(key)
        if not tenants.multi:
            return open_storage(self.settings)
        return tenant_tables(self._shared_storage(), self.settings, tenant)

    def runner(self, cycle: str, key: str | None = None) -> Runner:
        """The runner of tenant *key*'s *cycle*: the same wiring as the in-process run (one
        tenant: ``build_runner``; a tenants file: ``build_tenant_runner``), with the cycle's
        ledger lease owner."""
        key = key or self.tenant
        tenants, tenant = self._tenant(key)
        hunts = cached_hunts(self.settings.hunts_dir)
        if tenants.multi:
            identity = self._identity()
            limits = process_limits(rate_book(self.settings, identity))
            context = TenancyContext(self.settings, hunts, self._shared_storage(),
                                     identity, limits, self.env,
                                     self.graph_credential, workers=1)
            runner = build_tenant_runner(context, tenant, time_budget=self.time_budget)
        else:
            runner = build_runner(self.settings, time_budget=self.time_budget, hunts=hunts,
                                  shared_pacing=True, credential=self._identity())
        assert runner.storage is not None
        runner.ledger = Ledger(runner.storage, lease_owner=lease_owner(key, cycle),
                               claim_lease=CYCLE_LEASE)
        return runner

    # -- the timer ---------------------------------------------------------------------------

    def start(self, now: datetime) -> list[Cycle]:
        """Open every tenant's cycle and enqueue their due hunts, the tenants interleaved so
        instances spread over them; the cycles opened (none when no hunt is due). One tenant
        failing is logged (and announced, with a tenants file) and never stops the others'
        messages; the timer then fails, naming it."""
        cycle = cycle_id(now)
        tenants = self.served()
        keys = list(tenants.tenants)
        failed: list[str] = []

        def one(key: str) -> Cycle | None:
            try:
                return open_cycle(self.runner(cycle, key), key, cycle, now)
            except Exception as exc:
                if not tenants.multi:
                    raise
                log.exception("huntwire.fanout tenant %s: cycle %s not started",
                              tenants.tenants[key].name, cycle)
                failed.append(tenants.tenants[key].name)
                self._announce(key, {"tenant": f"{type(exc).__name__}: {exc}"}, set(), now)
                return None

        if tenants.multi:
            self._shared_storage()  # one storage layer for the tenants opened side by side
        with ThreadPoolExecutor(max_workers=min(len(keys), TENANT_PARALLEL),
                                thread_name_prefix="tenant") as pool:
            opened = [c for c in pool.map(one, keys) if c is not None]
        send_cycles(self.queues, opened)
        if tenants.multi:  # one daily heartbeat for the deployment, quiet hours included
            deployment_beat(self.settings, self._shared_storage(), list(tenants.tenants.values()),
                            health_notifier(self.settings), now)
        if failed:
            raise RuntimeError(f"huntwire.fanout cycle {cycle} not started for tenant(s) "
                               f"{', '.join(sorted(failed))}; the others' hunts were sent")
        return opened

    # -- one hunt ----------------------------------------------------------------------------

    def work(self, body: str | bytes) -> HuntOutcome:
        """Run the hunt of one message; raises only when the message must be retried (then
        it reaches the poison queue after ``maxDequeueCount`` attempts)."""
        message = decode(body)
        if not isinstance(message, HuntMessage):
            raise MessageError(f"{HUNTS_QUEUE} received a {message.kind} message")
        runner = self.runner(message.cycle, message.tenant)
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
        self._count_done(CycleStore(runner.storage), message, HuntResult.of(outcome))
        return outcome

    def _count_done(self, store: CycleStore, message: HuntMessage, result: HuntResult) -> None:
        cycle = store.mark_done(message.tenant, message.cycle, message.hunt, result=result)
        if cycle is None:
            log.warning("huntwire.fanout cycle %s does not list hunt %s", message.cycle,
                        message.hunt)
        elif cycle.complete and cycle.delivered_at is None:
            self.queues.send(DELIVERY_QUEUE,
                             encode(DeliveryMessage(message.tenant, cycle.cycle)))

    # -- delivery ----------------------------------------------------------------------------

    def deliver(self, body: str | bytes) -> RunSummary | None:
        """Deliver one (tenant, cycle) once; None when there was nothing to do now."""
        message = decode(body)
        if not isinstance(message, DeliveryMessage):
            raise MessageError(f"{DELIVERY_QUEUE} received a {message.kind} message")
        runner = self.runner(message.cycle, message.tenant)
        close_sources(runner.sources.values())  # delivery queries nothing
        assert runner.storage is not None
        store = CycleStore(runner.storage, clock=self.wall)
        owner = uuid.uuid4().hex
        claim, cycle = store.claim_delivery(message.tenant, message.cycle, DELIVERY_LEASE, owner)
        retry_at = self._retry_at(claim, cycle, message)
        if retry_at is not None:  # come back when the lease ends or the deadline is reached
            wait = (retry_at - self.wall()).total_seconds()
            self.queues.send(DELIVERY_QUEUE, encode(message), delay_seconds=max(1, int(wait) + 1))
        if claim != "claimed" or cycle is None:
            log.info("huntwire.fanout delivery of cycle %s: %s", message.cycle, claim)
            return None
        summary = self._deliver_cycle(runner, cycle)
        store.delivered(message.tenant, cycle.cycle, owner)
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
            run = HuntRun(hunt, hunt_outcome(cycle, hunt_id, hunt.name))
            try:
                run.held = oldest_first(runner.ledger.take_pending(hunt, cycle.now))
            except HuntwireError as exc:  # this hunt's findings stay pending; the rest go
                run.outcome.delivery_failed, run.outcome.error = True, exc.message
            runs.append(run)
        summary = RunSummary(started=iso(cycle.now), outcomes=[r.outcome for r in runs])
        summary.incidents = runner.deliver_runs(runs, cycle.now)
        if cycle.missing:
            self._announce_late(runner, cycle)
        if isinstance(runner.health, RunnerHealth):  # the workers' runs, in the heartbeat
            runner.health.count_runs(result.heartbeat(cycle.hunts[index])
                                     for index, result in sorted(cycle.results.items()))
            runner.health.after_run(summary, cycle.now)
        if self.served().multi:
            problems, cleared = problems_of(runner, summary)
            self._announce(cycle.tenant, problems, cleared, cycle.now)
        log.info("huntwire.fanout delivered tenant %s cycle %s: %s", cycle.tenant, cycle.cycle,
                 summary.totals())
        return summary

    def _announce(self, key: str, problems: dict[str, str], cleared: set[str],
                  now: datetime) -> None:
        """The tenant's problems, each announced once (``shared.tenancy_notices``); never
        raises (the next cycle announces what this one could not)."""
        try:
            _, tenant = self._tenant(key)
            announce(tenant, problems, cleared, health_notifier(self.settings),
                     self.tables(key), now)
        except Exception:
            log.exception("huntwire.fanout tenant %s: problems not announced", key)

    def _announce_late(self, runner: Runner, cycle: Cycle) -> None:
        tenants, tenant = self._tenant(cycle.tenant)
        notice = late_notice(runner, cycle, tenant if tenants.multi else None)
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
        tenants, tenant = self._served_of(message)
        if message is None or tenant is None:
            self._notify(notice)  # no counter of ours to record it on
            return
        if tenants is not None and tenants.multi:
            _, notice = poison_notice(body, queue, tenant)
        hunt_id = message.hunt if isinstance(message, HuntMessage) else None
        self._announce_once(message.tenant, message.cycle, hunt_id, notice)
        if isinstance(message, HuntMessage):
            self._record_poisoned_hunt(message)

    def _served_of(self, message: HuntMessage | DeliveryMessage | None
                   ) -> tuple[Served | None, Tenant | None]:
        """The served tenants and *message*'s tenant (None: not ours, or the tenants file
        cannot be read now: the notice then goes out without the tenant's counter)."""
        if message is None:
            return None, None
        try:
            return self._tenant(message.tenant)
        except (MessageError, HuntwireError) as exc:
            log.warning("huntwire.fanout poison message's tenant: %s", exc)
        return None, None

    def _announce_once(self, key: str, cycle: str, hunt_id: str | None, notice: Notice) -> None:
        """Post *notice* unless the cycle's counter says it was posted. Never skipped: an
        unreadable counter posts it; a notice posted but not recorded may be posted again."""
        store: CycleStore | None = None
        try:
            store = CycleStore(self.tables(key))
            if store.announced(key, cycle, hunt_id):
                log.info("huntwire.fanout poison notice for cycle %s (%s) posted before",
                         cycle, hunt_id or "delivery")
                return
        except HuntwireError as exc:
            log.warning("huntwire.fanout poison notice: %s", exc.message)
        self._notify(notice)
        try:
            if store is not None:
                store.mark_announced(key, cycle, hunt_id)
        except HuntwireError as exc:  # posted: failing now would post it again
            log.warning("huntwire.fanout poison notice not recorded: %s", exc.message)

    def _record_poisoned_hunt(self, message: HuntMessage) -> None:
        runner = self.runner(message.cycle, message.tenant)
        close_sources(runner.sources.values())
        assert runner.storage is not None
        store = CycleStore(runner.storage)
        current = store.get(message.tenant, message.cycle)
        if current is not None and message.hunt in current.done_ids:
            return  # counted (a copy ran, or this message came before): health has it
        hunt = next((h for h in runner.hunts if h.id == message.hunt), None)
        outcome = HuntOutcome(message.hunt, hunt.name if hunt else message.hunt, "failed",
                              error_kind="poison",
                              error=f"queue message failed {MAX_DEQUEUE_COUNT} times")
        if hunt is not None and runner.health is not None:
            runner.health.after_hunt(hunt, outcome, message.started)
        self._count_done(store, message, HuntResult.of(outcome))

    def _notify(self, notice: Notice) -> None:
        error = post_notice(health_notifier(self.settings), notice)
        if error is not None:
            raise RuntimeError(f"huntwire.fanout notice not delivered: {error}")

