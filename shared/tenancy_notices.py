"""Naming the tenant on a multi-tenant deployment's posts, and announcing a failing tenant once.

:class:`TenantLabel` wraps a tenant's notifier: incident cards get a "Tenant: <name>" line in
their header, notices a "<name>: " title prefix and a Tenant fact. :func:`announce` posts one
notice per tenant-wide problem (its app not consented, its workspace gone, its webhook dead, its
run failing) on the shared health channel, and remembers it in the tenant's own table so the
next runs stay quiet until the problem ends (then one "works again" notice).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from .cards.payload import with_tenant
from .errors import HuntwireError
from .incidents.model import IncidentPost
from .notify.base import Delivery, Notice, Notifier
from .storage import Storage, storage_errors
from .tenants import Tenant

log = logging.getLogger("huntwire")

TABLE = "tenantProblems"
"""One row per tenant-wide problem announced and not yet over; only in a tenant's own tables
(``t<tenant id>tenantProblems``, created on first use like every tenant table)."""
PARTITION = "problem"

_TITLES = {"defender": "Defender XDR access refused", "sentinel": "Sentinel workspace unreachable",
           "teams": "Teams webhook not accepting posts", "tenant": "run failed"}


def advice(kind: str, tenant: Tenant) -> str:
    if kind == "defender":
        return (f"Have an administrator of tenant {tenant.tenant_id} grant admin consent to the "
                f"huntwire app {tenant.defender_client_id or ''} (Microsoft Graph "
                "ThreatHunting.Read.All); its Defender hunts run again by themselves.")
    if kind == "sentinel":
        return ("Check that the tenant's Sentinel workspaces still exist and are delegated to "
                "the function's identity (Azure Lighthouse, Log Analytics Reader).")
    if kind == "teams":
        return (f"Re-create the tenant's Teams Workflows webhook and update the app setting "
                f"{tenant.webhook_setting or 'HUNTWIRE_TEAMS_WEBHOOK_URL'}; findings stay "
                "pending and are posted once it works.")
    return "See the function's log for this tenant; the other tenants are not affected."


@dataclass
class TenantLabel:
    """A tenant's notifier whose posts name the tenant. Dropped (announced per tenant by
    :func:`announce` instead): notices tagged with one of *drop_tags*, and health notices
    about one of *quiet_hunts* (hunts of a source with a tenant problem already announced)."""

    inner: Notifier
    tenant: Tenant
    drop_tags: frozenset[str] = frozenset()
    quiet_hunts: frozenset[str] = frozenset()
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.name = self.inner.name

    @classmethod
    def wrap(cls, inner: Notifier | None, tenant: Tenant,
             drop_tags: frozenset[str] = frozenset(),
             quiet_hunts: frozenset[str] = frozenset()) -> Notifier | None:
        return None if inner is None else cls(inner, tenant, drop_tags, quiet_hunts)

    def post_notice(self, notice: Notice) -> Delivery:
        hunt = dict(notice.facts).get("Hunt id")
        if notice.tag in self.drop_tags or (hunt is not None and hunt in self.quiet_hunts):
            return Delivery(self.inner.name, 0, 0, 0, 0.0)
        return self.inner.post_notice(named(notice, self.tenant))

    def render_incident(self, post: IncidentPost) -> dict[str, Any]:
        return with_tenant(self.inner.render_incident(post), self.tenant.name)

    def post_incident(self, message: Mapping[str, Any],
                      held_back_since: datetime | None = None) -> Delivery:
        return self.inner.post_incident(message, held_back_since)

    def close(self) -> None:
        self.inner.close()


def named(notice: Notice, tenant: Tenant) -> Notice:
    """*notice* with the tenant's name in its title and facts."""
    return replace(notice, title=f"{tenant.name}: {notice.title}",
                   facts=(("Tenant", tenant.name), *notice.facts))


def tenant_notice(tenant: Tenant, kind: str, error: str) -> Notice:
    facts = [("Tenant", tenant.name), ("Tenant id", tenant.tenant_id or "this tenant"),
             ("Error", error), ("What to do", advice(kind, tenant))]
    return Notice("health", f"{tenant.name}: {_TITLES.get(kind, kind)}",
                  f"{_TITLES.get(kind, kind)} for tenant {tenant.name}. The other "
                  "tenants' hunts run and post as usual.", severity="High", facts=tuple(facts),
                  tag=f"tenant-{kind}")


def recovered_notice(tenant: Tenant, kinds: list[str]) -> Notice:
    what = "; ".join(_TITLES.get(kind, kind) for kind in kinds)
    return Notice("health", f"{tenant.name}: works again",
                  f"Over for tenant {tenant.name}: {what}.", severity="Informational",
                  facts=(("Tenant", tenant.name),), tag="tenant-recovered")


def announced(storage: Storage) -> set[str]:
    """The kinds of problem announced for the tenant of *storage* and not over yet (empty when
    they cannot be read: health's own notices then go out as usual)."""
    try:
        with storage_errors("reading tenant problems"):
            rows = storage.table(TABLE).query_entities(f"PartitionKey eq '{PARTITION}'")
            return {row["RowKey"] for row in rows}
    except HuntwireError as exc:
        log.warning("huntwire.tenant problems not read: %s", exc.message)
    return set()


def announce(tenant: Tenant, problems: Mapping[str, str], cleared: set[str],
             channel: Notifier | None, storage: Storage, now: datetime) -> list[str]:
    """Post one notice per problem not announced yet, one "works again" for those over;
    the kinds posted. Never raises (a failure is logged and retried next run)."""
    try:
        return _announce(tenant, problems, cleared, channel, storage, now)
    except HuntwireError as exc:
        log.warning("huntwire.tenant %s: problems not announced: %s", tenant.name, exc.message)
    return []


def _announce(tenant: Tenant, problems: Mapping[str, str], cleared: set[str],
              channel: Notifier | None, storage: Storage, now: datetime) -> list[str]:
    for kind, error in problems.items():
        log.error("huntwire.tenant %s %s: %s", tenant.name, kind, error)
    table = storage.table(TABLE)
    with storage_errors("reading tenant problems"):
        known = {row["RowKey"] for row in table.query_entities(f"PartitionKey eq '{PARTITION}'")}
    posted = []
    for kind in sorted(set(problems) - known):
        if not _post(channel, tenant_notice(tenant, kind, problems[kind])):
            continue
        with storage_errors("saving a tenant problem"):
            table.upsert_entity({"PartitionKey": PARTITION, "RowKey": kind,
                                 "Since": now, "Error": problems[kind][:1000]})
        posted.append(kind)
    over = sorted(known & cleared)
    if over and _post(channel, recovered_notice(tenant, over)):
        with storage_errors("clearing tenant problems"):
            for kind in over:
                table.delete_entity(PARTITION, kind)
        posted.append("recovered")
    return posted


def _post(channel: Notifier | None, notice: Notice) -> bool:
    if channel is None:
        log.warning("huntwire.tenant notice not posted (no health channel): %s", notice.title)
        return False
    try:
        channel.post_notice(notice)
    except HuntwireError as exc:
        log.warning("huntwire.tenant notice not delivered: %s", exc.message)
        return False
    return True
