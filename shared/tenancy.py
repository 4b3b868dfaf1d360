"""A run over every tenant of the deployment (an MSSP's customers), in one invocation.

Without a tenants file (``HUNTWIRE_TENANTS_FILE``) the run is ``shared.app.build_runner``'s, as
it always was: one tenant, today's table names. With one, each tenant gets its own Runner: its
sources (``shared.sources.tenant``), its stores on its own tables (``storage.for_tenant``: the
ledger, incidents, health and snoozes of one customer never mix with another's), its channel
(its webhook setting, else the shared one), its hunts and its extra suppression folders. One
credential and one storage layer serve the whole run; tenants run side by side, each in
isolation: one that fails (app not consented, workspace gone, webhook dead, a bug) is announced
once on the health channel, naming the tenant, and never holds back the others' findings.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from functools import partial

from azure.core.credentials import TokenCredential

from .app import (
    QUERY_POLICY,
    QUERY_TIMEOUTS,
    STORAGE_ALLOWANCE,
    WORST_CASE_HUNT,
    build_runner,
    load_valid_hunts,
)
from .cards import PortalLinks
from .credentials import make_credential
from .health.deployment import TenantHealth, deployment_heartbeat
from .health.policy import error_kind
from .health.records import HealthStore
from .health.runner_hooks import HealthConfig, RunnerHealth, health_notifier
from .hunt import Hunt
from .incidents import IncidentSettings, IncidentStore
from .ledger import Ledger
from .notify import build_notifier
from .notify.base import Notice, Notifier
from .outcome import RunSummary
from .runner import Runner
from .settings import Settings
from .sources.tenant import SharedLimits, defender_credential, tenant_sources
from .storage import Deadline, Storage, open_storage
from .suppress.apply import Suppressor
from .suppress.loader import load_rule_files
from .suppress.snooze_page import HOME_TENANT, TenantSnoozes
from .suppress.store import SnoozeStore
from .suppress.wiring import load_rules, snooze_url
from .tenancy_notices import TenantLabel, announce, announced
from .tenants import Tenant, load_tenants, single_tenant

log = logging.getLogger("huntwire")

TENANT_PARALLEL = 8
"""Tenants run at once; each runs its hunts on its own pool of ``workers``."""
GraphCredential = Callable[[Tenant, TokenCredential], TokenCredential]


def tenant_prefix(tenant: Tenant, *, multi: bool, home: str | None = None) -> str:
    """The tenant's table prefix: none for a single tenant and for the deployment's own tenant
    (*home*: ``HUNTWIRE_TENANT_ID``; so a deployment that adds a tenants file keeps its
    checkpoints, ledger, snoozes and incidents), else ``t`` and the tenant id's hex digits
    (stable, letters and digits only)."""
    if not multi or is_home(tenant, home):
        return ""
    return "t" + (tenant.tenant_id or tenant.key).replace("-", "").lower()


def is_home(tenant: Tenant, home: str | None) -> bool:
    """Whether *tenant* is the deployment's own tenant (tenant id *home*)."""
    return bool(home and tenant.tenant_id and tenant.tenant_id.lower() == home.lower())


def tenant_tables(storage: Storage, settings: Settings, tenant: Tenant) -> Storage:
    """*tenant*'s tables on a multi-tenant deployment (the home tenant's are today's)."""
    return storage.for_tenant(tenant_prefix(tenant, multi=True, home=settings.tenant_id))


@dataclass
class TenantResult:
    tenant: Tenant
    summary: RunSummary | None
    problems: dict[str, str] = field(default_factory=dict)
    """Tenant-wide problems of this run, by kind (``shared.tenancy_notices``)."""
    cleared: set[str] = field(default_factory=set)
    """Kinds of problem this run shows are over."""

    @property
    def ok(self) -> bool:
        return self.summary is not None and self.summary.ok and not self.problems


@dataclass
class TenancyRun:
    results: list[TenantResult]
    storage_requests: int = 0
    multi: bool = False

    @property
    def ok(self) -> bool:
        return all(result.ok for result in self.results)

    def incomplete(self) -> str:
        """What did not finish, per tenant (the timer fails its invocation with it)."""
        parts = []
        for result in self.results:
            failed = [o.hunt_id for o in (result.summary.outcomes if result.summary else [])
                      if o.status in ("failed", "skipped") or o.delivery_failed]
            what = [*sorted(result.problems), *(f"hunt {h}" for h in failed[:10])]
            if what or not result.ok:
                parts.append(f"{result.tenant.name}: {', '.join(what) or 'stopped early'}")
        return "; ".join(parts)


@dataclass
class TenancyContext:
    """What every tenant of one run shares."""

    settings: Settings
    hunts: list[Hunt]
    storage: Storage | None
    identity: TokenCredential
    limits: SharedLimits
    env: Mapping[str, str]
    graph_credential: GraphCredential = defender_credential
    workers: int = 4
    dry_run: bool = False


def tenants_of(settings: Settings, hunts: list[Hunt] | None,
               env: Mapping[str, str] | None = None) -> list[Tenant]:
    """The tenants file's tenants (hunt ids checked against *hunts* unless None); the
    settings' one tenant without a file."""
    if settings.tenants_file is None:
        return [single_tenant(settings)]
    return load_tenants(settings.tenants_file, os.environ if env is None else env,
                        known_hunts=None if hunts is None else {hunt.id for hunt in hunts})


def run_tenants(settings: Settings, now: datetime, *, dry_run: bool = False,
                since: datetime | None = None, identity: TokenCredential | None = None,
                graph_credential: GraphCredential = defender_credential, workers: int = 4,
                env: Mapping[str, str] | None = None,
                time_budget: timedelta = timedelta(minutes=28)) -> TenancyRun:
    """One pass of the hourly job over every tenant (the timer's one call)."""
    if settings.tenants_file is None:
        runner = build_runner(settings, dry_run=dry_run, since=since, time_budget=time_budget)
        summary = runner.run_once(now)
        return TenancyRun([TenantResult(single_tenant(settings), summary)],
                          summary.storage_requests)
    started = time.monotonic()
    hunts = load_valid_hunts(settings.hunts_dir)
    tenants = tenants_of(settings, hunts, env)
    identity = identity or make_credential(settings.client_id)
    storage = None if dry_run else open_storage(settings, identity)
    if storage is not None:
        storage.limit(Deadline(started + time_budget.total_seconds()))
    context = TenancyContext(settings, hunts, storage, identity, SharedLimits(),
                             os.environ if env is None else env, graph_credential,
                             workers, dry_run)
    before = storage.requests if storage is not None else 0

    def one(tenant: Tenant) -> TenantResult:
        left = time_budget - timedelta(seconds=time.monotonic() - started)
        return run_tenant(context, tenant, now, since=since, time_budget=left)

    with ThreadPoolExecutor(max_workers=min(len(tenants), TENANT_PARALLEL),
                            thread_name_prefix="tenant") as pool:
        results = list(pool.map(one, tenants))
    shared_channel = None if dry_run else health_notifier(settings)
    for result in results:
        if storage is not None:
            announce(result.tenant, result.problems, result.cleared, shared_channel,
                     tenant_tables(storage, settings, result.tenant), now)
    if storage is not None:
        deployment_beat(settings, storage, tenants, shared_channel, now)
    requests = storage.requests - before if storage is not None else 0
    return TenancyRun(results, requests, multi=True)


def tenant_health_config(settings: Settings) -> HealthConfig:
    """A tenant's health settings: it tallies its runs, the deployment posts the heartbeat."""
    return replace(HealthConfig.from_settings(settings), heartbeat_hour=None)


def deployment_beat(settings: Settings, storage: Storage, tenants: list[Tenant],
                    channel: Notifier | None, now: datetime) -> bool:
    """The deployment's one daily heartbeat over every tenant's tally (docs/health.md), not
    one per tenant; True when this call posted it."""
    return deployment_heartbeat(
        [TenantHealth(tenant.name, HealthStore(tenant_tables(storage, settings, tenant)))
         for tenant in tenants], channel, HealthStore(storage), now, settings.heartbeat_hour)


def run_tenant(context: TenancyContext, tenant: Tenant, now: datetime, *,
               since: datetime | None, time_budget: timedelta) -> TenantResult:
    """*tenant*'s run in isolation: whatever fails is the tenant's problem, not the run's."""
    try:
        runner = build_tenant_runner(context, tenant, since=since, time_budget=time_budget)
        summary = runner.run_once(now)
    except Exception as exc:  # one tenant's failure never stops the others
        log.exception("huntwire.tenant %s failed", tenant.name)
        return TenantResult(tenant, None, {"tenant": f"{type(exc).__name__}: {exc}"})
    problems, cleared = problems_of(runner, summary)
    return TenantResult(tenant, summary, problems, cleared)


def build_tenant_runner(context: TenancyContext, tenant: Tenant, *,
                        since: datetime | None = None,
                        time_budget: timedelta = timedelta(minutes=28)) -> Runner:
    """*tenant*'s Runner: its hunts, sources, stores, suppressions and channel."""
    settings = context.settings
    view = None if context.storage is None else tenant_tables(context.storage, settings, tenant)
    sources = tenant_sources(tenant, settings, context.identity, QUERY_POLICY, QUERY_TIMEOUTS,
                             context.limits,
                             graph_credential=context.graph_credential(tenant, context.identity))
    notifier = None if context.dry_run else tenant_notifier(context, tenant)
    hunts = [hunt for hunt in context.hunts if tenant.runs(hunt.id)]
    known = announced(view) if view is not None else set()
    quiet = frozenset(hunt.id for hunt in hunts if hunt.source in known)
    return Runner(
        hunts=hunts,
        sources=sources,
        ledger=None if view is None else Ledger(view),
        notifier=notifier,
        dry_run=context.dry_run,
        since=since,
        time_budget=time_budget,
        min_time_per_hunt=WORST_CASE_HUNT,
        storage_allowance=STORAGE_ALLOWANCE,
        suppressor=tenant_suppressor(settings, tenant, view, datetime.now(UTC).date()),
        health=None if view is None else RunnerHealth(
            HealthStore(view), TenantLabel.wrap(health_notifier(settings), tenant,
                                                drop_tags=frozenset({"health-access"}),
                                                quiet_hunts=quiet),
            tenant_health_config(settings), findings_notifier=notifier is not None),
        incidents=None if view is None else IncidentStore(view),
        incident_settings=IncidentSettings.from_settings(settings),
        snooze=partial(snooze_url, settings, tenant=tenant.key),  # links name the tenant
        workers=context.workers,
        storage=view,
    )


def tenant_notifier(context: TenancyContext, tenant: Tenant) -> Notifier | None:
    """The tenant's channel: its webhook setting's, else the shared webhook; cards and notices
    name the tenant."""
    settings = context.settings
    url = tenant.webhook_url(context.env, settings.teams_webhook_url)
    if url is None:
        log.warning("huntwire.tenant %s has no Teams webhook: its findings stay pending",
                    tenant.name)
        return None
    resource = next((w.resource_id for w in tenant.workspaces if w.resource_id), None)
    portal = PortalLinks.from_ids(tenant_id=tenant.tenant_id,
                                  sentinel_workspace_resource_id=resource)
    return TenantLabel.wrap(build_notifier(replace(settings, teams_webhook_url=url), portal),
                            tenant)


def tenant_suppressor(settings: Settings, tenant: Tenant, view: Storage | None,
                      today: date) -> Suppressor:
    """The deployment's rules, the tenant's extra folders' rules and the tenant's snoozes."""
    store = SnoozeStore(view) if view is not None else None
    rules = load_rules(settings.suppressions_dir, store, today)
    for folder in tenant.suppressions:
        loaded = load_rule_files(folder, today)
        for error in loaded.errors:
            log.error("huntwire.suppressions tenant %s: %s: its rules are not applied",
                      tenant.name, error)
        rules += loaded.rules
    return Suppressor(rules)


ACCESS_KINDS = frozenset({"forbidden", "not-found", "no-token"})
"""Errors no hunt file causes: when every hunt of a source fails with one, the tenant's access
to that source is broken (app not consented, workspace deleted, delegation removed)."""


def problems_of(runner: Runner, summary: RunSummary) -> tuple[dict[str, str], set[str]]:
    """The tenant-wide problems a run shows (a source none of whose hunts got through for an
    access reason; a channel that refused the run's posts), and the kinds it shows are over (a
    hunt of that source succeeded; a post was delivered; the run itself ran)."""
    source_of = {hunt.id: hunt.source for hunt in runner.hunts}
    ran: dict[str, list[tuple[bool, str]]] = {}
    problems: dict[str, str] = {}
    cleared = {"tenant"}
    for outcome in summary.outcomes:
        if outcome.delivery_failed and "teams" not in problems:
            problems["teams"] = outcome.error or "findings not delivered"
        if outcome.posted:
            cleared.add("teams")
        if outcome.status not in ("ok", "failed") or outcome.hunt_id not in source_of:
            continue
        kind = error_kind(outcome.error_kind, outcome.error_status, outcome.error_permanent,
                          outcome.error or "") if outcome.status == "failed" else "ok"
        access = outcome.status == "failed" and kind in ACCESS_KINDS \
            and not outcome.delivery_failed
        ran.setdefault(source_of[outcome.hunt_id], []).append((access, outcome.error or ""))
    for source, results in ran.items():
        if all(access for access, _ in results):
            problems[source] = results[0][1]
        elif any(error == "" for _, error in results):
            cleared.add(source)
    return problems, cleared - set(problems)


def snooze_tenants(settings: Settings, storage: Storage,
                   env: Mapping[str, str] | None = None) -> dict[str, TenantSnoozes]:
    """The snooze page's tenants: by the tenant key a link carries, the tenant's name, snooze
    table (on the tables its runs read) and channel. Raises TenantsError for a bad file."""
    env = os.environ if env is None else env
    snoozes: dict[str, TenantSnoozes] = {}
    for tenant in tenants_of(settings, None, env):
        snoozes[tenant.key] = TenantSnoozes(
            tenant.name, SnoozeStore(tenant_tables(storage, settings, tenant)),
            partial(_announce_snooze, settings, tenant, env))
        if is_home(tenant, settings.tenant_id):
            snoozes[HOME_TENANT] = snoozes[tenant.key]  # its links from before the file
    return snoozes


def _announce_snooze(settings: Settings, tenant: Tenant, env: Mapping[str, str],
                     line: str) -> None:
    """Post a snooze's one line on the tenant's channel, naming the tenant (built on use: a
    page request snoozes for one tenant of many)."""
    url = tenant.webhook_url(env, settings.teams_webhook_url)
    notifier = TenantLabel.wrap(None if url is None else build_notifier(
        replace(settings, teams_webhook_url=url)), tenant)
    if notifier is not None:
        try:
            notifier.post_notice(Notice("info", "Snoozed", line))
        finally:
            notifier.close()
