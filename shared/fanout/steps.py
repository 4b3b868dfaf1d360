"""Pieces of the fan-out's steps (``shared.fanout.work``) that need no queue or tenant: a
tenant's cycle opened with its due hunts, the messages sent for the opened cycles, what each
hunt came to for the delivery, and the late-hunts notice."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Final

from ..health.notices import HEALTH_TAG
from ..notify.base import Notice
from ..outcome import HuntOutcome
from ..runner import Runner, is_due
from ..schedule import most_overdue_first
from ..sources.base import close_sources
from ..storage.queues import Queues
from ..window import iso
from .cycle import Cycle, CycleStore
from .messages import DELIVERY_QUEUE, HUNTS_QUEUE, DeliveryMessage, HuntMessage, encode

log = logging.getLogger("huntwire.fanout")

CYCLE_DEADLINE: Final = timedelta(minutes=20)
"""When a cycle's delivery runs even if some hunts never finished (their findings go out with
the next cycle's delivery once they are recorded)."""


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


def late_notice(runner: Runner, cycle: Cycle) -> Notice:
    names = {h.id: h.name for h in runner.hunts}
    late = [names.get(h, h) for h in cycle.missing]
    return Notice("health", "Hunts did not finish by the cycle's deadline",
                  f"{len(late)} hunt(s) of cycle {cycle.cycle} had not finished "
                  f"{int(CYCLE_DEADLINE.total_seconds() // 60)} minutes after it started; "
                  "the findings of the others were delivered, theirs go out with the "
                  "next cycle once recorded.", severity="Medium",
                  facts=(("Tenant", cycle.tenant), ("Hunts", ", ".join(late[:20]))),
                  tag=HEALTH_TAG + "late")
