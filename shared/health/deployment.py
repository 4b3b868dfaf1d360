"""One daily heartbeat for a multi-tenant deployment (an MSSP's), instead of one per tenant.

    tenants = [TenantHealth(tenant.name, HealthStore(storage.for_tenant(prefix))), ...]
    deployment_heartbeat(tenants, health_notifier(settings), HealthStore(storage), now, hour)

Each tenant's ``RunnerHealth`` keeps tallying its runs into its own ``heartbeat/latest`` row and,
built with ``heartbeat_hour=None``, posts no heartbeat itself. Once a UTC day from *hour*, this
posts one notice on the shared health channel: a total line and a line per tenant, worst first.

Once, with instances racing: the caller first *claims* the day in the deployment's record
(``heartbeat/deployment`` in the unprefixed health table) with an ETag-conditional write (an
insert when there is no record): of callers that read the same record, one write wins and the
others get a conflict and post nothing. Only the claimant reads the tallies and posts. Then:

* posted: the day is recorded as sent, and what was reported is deducted from each tenant's
  tally (a run tallied meanwhile stays for tomorrow);
* the post failed: the claim is released and nothing reset, so the next call tries again;
* the claimant died before either: its claim expires after ``CLAIM_TTL`` and a later call posts
  (at least once, like every health notice: a post Teams took but whose answer was lost may
  repeat).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from ..errors import HuntwireError
from .heartbeat import deduct, deployment_due
from .model import DeploymentBeat, HeartbeatTally, TenantTally
from .notices import deployment_notice
from .records import ConflictError, HealthStore
from .runner_hooks import post_notice

if TYPE_CHECKING:
    from ..notify.base import Notifier

log = logging.getLogger("huntwire.health")
PARALLEL = 8
"""Tenants' records read (and reset) at once."""
T = TypeVar("T")
U = TypeVar("U")


@dataclass(frozen=True)
class TenantHealth:
    """A tenant as the deployment heartbeat sees it: its name and its own health table."""

    name: str
    store: HealthStore


def deployment_heartbeat(tenants: Sequence[TenantHealth], channel: Notifier | None,
                         deployment: HealthStore, now: datetime, hour: int | None) -> bool:
    """Post the deployment's heartbeat when due and not claimed by another caller; True when
    this call posted it. Never raises for a storage or channel failure (logged; a later call
    tries again)."""
    if channel is None:
        return False  # nobody to tell: claim nothing, read nothing
    try:
        claim = _claim(deployment, now, hour)
    except HuntwireError as exc:
        log.warning("huntwire.health deployment heartbeat not claimed: %s", exc.message)
        return False
    if claim is None:
        return False
    read = _each(_read, tenants)
    error = post_notice(channel, deployment_notice(read, now))
    if error is not None:
        log.warning("huntwire.health deployment heartbeat not delivered: %s", error)
        _save(deployment, replace(claim, claimed_day=None, claimed_at=None), "released")
        return False
    _save(deployment, replace(claim, last_sent_day=now.date().isoformat(), claimed_day=None,
                              claimed_at=None), "recorded as sent")
    _each(lambda pair: _reset(*pair, now),
          [(tenant, seen.tally) for tenant, seen in zip(tenants, read, strict=True)
           if seen.tally is not None])
    return True


def _claim(deployment: HealthStore, now: datetime, hour: int | None) -> DeploymentBeat | None:
    """Today's claim, written; None when not due, already claimed or another caller won."""
    if hour is None:
        return None
    record = deployment.deployment_beat()
    if not deployment_due(record, now, hour):
        return None
    try:
        return deployment.save_deployment_beat(replace(
            record or DeploymentBeat(), claimed_day=now.date().isoformat(), claimed_at=now))
    except ConflictError:
        return None  # another instance claimed it first: it posts


def _read(tenant: TenantHealth) -> TenantTally:
    """The tenant's tally, hunts and channel; unreadable (with why) on any storage or record
    error."""
    try:
        store = tenant.store
        return TenantTally(tenant.name, store.heartbeat(), store.hunts(), store.notifier())
    except HuntwireError as exc:
        error = exc.message
    except (ValueError, TypeError, KeyError) as exc:  # a record that does not decode
        error = f"a health record does not decode ({type(exc).__name__})"
    log.warning("huntwire.health tenant %s unreadable for the heartbeat: %s", tenant.name, error)
    return TenantTally(tenant.name, error=error)


def _reset(tenant: TenantHealth, sent: HeartbeatTally, now: datetime) -> None:
    store = tenant.store
    try:
        store.modify(store.heartbeat, lambda current: deduct(current, sent, now),
                     store.save_heartbeat)
    except HuntwireError as exc:
        log.warning("huntwire.health tenant %s tally not reset (counted again tomorrow): %s",
                    tenant.name, exc.message)


def _save(deployment: HealthStore, record: DeploymentBeat, what: str) -> None:
    try:
        deployment.save_deployment_beat(record)
    except HuntwireError as exc:  # the claim then expires by itself
        log.warning("huntwire.health deployment heartbeat not %s: %s", what, exc.message)


def _each(work: Callable[[T], U], items: Sequence[T]) -> list[U]:
    if len(items) <= 1:
        return [work(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(len(items), PARALLEL),
                            thread_name_prefix="heartbeat") as pool:
        return list(pool.map(work, items))


__all__ = ["TenantHealth", "deployment_heartbeat"]
