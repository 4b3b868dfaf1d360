"""The notice for a message the host set aside in a poison queue (never silence)."""

from __future__ import annotations

from typing import Final

from ..health.notices import HEALTH_TAG
from ..notify.base import Notice
from ..tenancy_notices import named
from ..tenants import Tenant
from .messages import DeliveryMessage, HuntMessage, MessageError, decode

MAX_DEQUEUE_COUNT: Final = 5
"""host.json ``extensions.queues.maxDequeueCount``: named in the poison notice."""


def poison_notice(body: str | bytes, queue: str,
                  tenant: Tenant | None = None) -> tuple[HuntMessage | DeliveryMessage | None,
                                                         Notice]:
    """The message in a poison queue's *body* (None when unreadable) and its notice; with
    *tenant* (a multi-tenant deployment's), the notice names the tenant."""
    try:
        message: HuntMessage | DeliveryMessage | None = decode(body)
    except MessageError as exc:
        message, problem = None, str(exc)
    else:
        problem = ""
    facts: list[tuple[str, str]] = [("Queue", queue)]
    if message is not None:
        facts += [("Tenant id" if tenant is not None else "Tenant", message.tenant),
                  ("Cycle", message.cycle)]
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
    notice = Notice("health", "Queue message set aside (poison queue)", lead,
                    severity="High", facts=tuple(facts), tag=HEALTH_TAG + "poison")
    return message, notice if tenant is None else named(notice, tenant)
