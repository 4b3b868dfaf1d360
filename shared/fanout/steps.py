"""Pieces of the fan-out's steps (``shared.fanout.work``) that need no Fanout of their own:
the mode setting, a tenant's cycle opened with its due hunts, the messages sent for the opened
cycles, what each hunt came to for the delivery, and the late-hunts notice."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Final

from ..errors import ConfigurationError
from ..health.notices import HEALTH_TAG
from ..notify.base import Notice
from ..outcome import HuntOutcome
from ..runner import Runner, is_due
from ..schedule import most_overdue_first
from ..settings import FANOUT
from ..sources.base import close_sources
from ..storage.queues import Queues
from ..tenancy_notices import named
from ..tenants import Tenant
from ..window import iso
from .cycle import Cycle, CycleStore
from .messages import DELIVERY_QUEUE, HUNTS_QUEUE, DeliveryMessage, HuntMessage, encode

log = logging.getLogger("huntwire.fanout")

CYCLE_DEADLINE: Final = timedelta(minutes=20)
"""When a cycle's delivery runs even if some hunts never finished (their findings go out with
the next cycle's delivery once they are recorded)."""


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


def open_cycle(runner: Runner, key: str, cycle: str, now: datetime) -> Cycle | None:
    """Tenant *key*'s counter for *cycle*, listing its due hunts most overdue first (a retried
    timer gets the stored one); None when no hunt is due. Closes the runner's sources."""
    try:
        assert runner.ledger is not None
        assert runner.storage is not None
        enabled = [h for h in runner.hunts if h.enabled]
        checkpoints = {h.id: runner.ledger.checkpoint(h.id) for h in enabled}
        due = [h.id for h in most_overdue_first(enabled, checkpoints)
               if is_due(h, checkpoints[h.id], now)]
        if not due:
            log.info("huntwire.fanout tenant %s cycle %s: no hunt due", key, cycle)
            return None
        return CycleStore(runner.storage).open(key, cycle, now, now + CYCLE_DEADLINE, due)
    finally:
        close_sources(runner.sources.values())


def send_cycles(queues: Queues, opened: list[Cycle]) -> None:
    """Deadlines first (if sending stops half way, the hunts already sent are delivered),
    then the hunts round-robin across tenants, each tenant's most overdue first, so more
    instances spread over tenants rather than pile onto one."""
    for cycle in opened:
        queues.send(DELIVERY_QUEUE, encode(DeliveryMessage(cycle.tenant, cycle.cycle, "deadline")),
                    delay_seconds=int(CYCLE_DEADLINE.total_seconds()))
    longest = max((len(c.hunts) for c in opened), default=0)
    for n in range(longest):  # a retried timer sends again: copies are harmless
        for cycle in opened:
            if n < len(cycle.hunts):
                queues.send(HUNTS_QUEUE, encode(HuntMessage(cycle.tenant, cycle.cycle,
                                                            cycle.hunts[n], iso(cycle.now))))
    for cycle in opened:
        log.info("huntwire.fanout tenant %s cycle %s: %d hunt message(s) sent", cycle.tenant,
                 cycle.cycle, len(cycle.hunts))


def hunt_outcome(cycle: Cycle, hunt_id: str, name: str) -> HuntOutcome:
    """What *hunt_id* came to in *cycle*, as its worker recorded it; a hunt not counted done
    by the deadline is "skipped" (its findings go out with a later cycle)."""
    result = cycle.result(hunt_id)
    if result is not None:
        return result.outcome(hunt_id, name)
    if hunt_id in cycle.done_ids:  # counted by a worker that recorded no result
        return HuntOutcome(hunt_id, name, "ok")
    return HuntOutcome(hunt_id, name, "skipped", error="did not finish by the cycle's deadline")


def late_notice(runner: Runner, cycle: Cycle, tenant: Tenant | None = None) -> Notice:
    """The notice naming *cycle*'s hunts not done by its deadline; with *tenant* (a
    multi-tenant deployment's), it names the tenant."""
    names = {h.id: h.name for h in runner.hunts}
    late = [names.get(h, h) for h in cycle.missing]
    notice = Notice("health", "Hunts did not finish by the cycle's deadline",
                    f"{len(late)} hunt(s) of cycle {cycle.cycle} had not finished "
                    f"{int(CYCLE_DEADLINE.total_seconds() // 60)} minutes after it started; "
                    "the findings of the others were delivered, theirs go out with the "
                    "next cycle once recorded.", severity="Medium",
                    facts=(("Tenant id" if tenant else "Tenant", cycle.tenant),
                           ("Hunts", ", ".join(late[:20]))), tag=HEALTH_TAG + "late")
    return notice if tenant is None else named(notice, tenant)
