"""Wire the runner from settings: one credential and one storage layer for the run, handed to the
sources and to every store (ledger, incidents, health, snoozes), and Teams."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

from azure.core.credentials import TokenCredential

from .cards import PortalLinks
from .credentials import make_credential
from .health.runner_hooks import build_health
from .hunt import Hunt, load_hunts
from .incidents import IncidentSettings, IncidentStore
from .ledger import Ledger
from .manifest import default_manifest_path, validated_hunts
from .notify import Notifier
from .notify import build_notifier as build_configured_notifier
from .pacing import BOUNDS as PACING_BOUNDS
from .pacing import PROCESS_BOOK, RateBook, deployment_book
from .retry import RetryPolicy
from .runner import Runner
from .settings import Settings
from .sources.base import QuerySource, Timeouts
from .sources.catalog import factory, source_names
from .sources.local import LocalSource
from .storage import Deadline, needs_credential, open_storage
from .suppress.wiring import build_suppressor, snooze_url

log = logging.getLogger("huntwire")

QUERY_POLICY = RetryPolicy(max_attempts=4, max_total_seconds=180)
QUERY_TIMEOUTS = Timeouts(connect_seconds=10, read_seconds=210)
STORAGE_ALLOWANCE = timedelta(minutes=2)
"""How long one hunt's ledger recording may keep starting new chunks of 500 findings (about
30,000 findings at the measured 280 a second); the rest is recorded by the next run, and the
checkpoint stays before it (docs/reliability.md)."""
WORST_CASE_HUNT = timedelta(seconds=QUERY_POLICY.max_total_seconds
                            + QUERY_TIMEOUTS.connect_seconds + QUERY_TIMEOUTS.read_seconds
                            + STORAGE_ALLOWANCE.total_seconds() + 30)
"""The longest one hunt can take (retries, then a last call that runs to Graph's 3-minute limit,
then the storage allowance, then a last chunk, pending leases and Teams); the runner starts no
hunt with less time than this left."""


def load_valid_hunts(hunts_dir: Path) -> list[Hunt]:
    """Hunts that load; a broken file is logged with its reason and skipped, never fatal."""
    loaded = load_hunts(hunts_dir)
    for error in loaded.errors:
        log.error("huntwire.hunt_file %s", error)
    for warning in loaded.warnings:
        log.warning("huntwire.hunt_file %s", warning)
    return validated_hunts(loaded.hunts, default_manifest_path(hunts_dir))


def build_sources(settings: Settings, local_events: Mapping[str, Path] | None = None,
                  credential: TokenCredential | None = None,
                  book: RateBook = PROCESS_BOOK) -> dict[str, QuerySource]:
    """Every registered source that the settings configure (see shared/sources/catalog.py),
    paced by *book*'s pacers."""
    if local_events:
        local = LocalSource(local_events)
        return dict.fromkeys(source_names(), local)
    credential = credential or make_credential(settings.client_id)
    built = {name: factory(name)(settings, credential, QUERY_POLICY, QUERY_TIMEOUTS, book)
             for name in source_names()}
    return {name: source for name, source in built.items() if source is not None}


def build_notifier(settings: Settings) -> Notifier | None:
    portal = PortalLinks.from_ids(
        tenant_id=settings.tenant_id,
        sentinel_workspace_resource_id=settings.sentinel_workspace_resource_id)
    notifier = build_configured_notifier(settings, portal)
    if notifier is None:
        log.warning("HUNTWIRE_TEAMS_WEBHOOK_URL is not set: findings stay pending")
    return notifier


def rate_book(settings: Settings, credential: TokenCredential | None) -> RateBook:
    """The deployment's rate book: pacers every instance shares through the storage account
    (``shared.pacing``), opened once per process."""
    account = settings.storage_connection_string or settings.table_service_uri or ""
    return deployment_book(account, partial(open_storage, settings, credential,
                                            bounds=PACING_BOUNDS))


def build_runner(settings: Settings, *, dry_run: bool = False,
                 local_events: Mapping[str, Path] | None = None,
                 since: datetime | None = None,
                 time_budget: timedelta = timedelta(minutes=28),
                 hunts: Sequence[Hunt] | None = None,
                 shared_pacing: bool = False,
                 credential: TokenCredential | None = None) -> Runner:
    """The run: one credential (only when something needs it) and one storage layer, held to
    the run's deadline from here on (the snoozes are read while building), then by the runner
    to what is left of *time_budget*. *hunts*: already loaded from ``settings.hunts_dir`` (the
    queue functions keep them between messages). *shared_pacing*: book the services' rate
    limits in the storage account, shared by every instance (queue mode). *credential*: the
    one already made (the CLI checked it; a queue worker keeps one per process)."""
    started = time.monotonic()
    remote = not local_events or needs_credential(settings)
    if credential is None and remote:
        credential = make_credential(settings.client_id)
    storage = None if dry_run else open_storage(settings, credential)
    if storage is not None:
        storage.limit(Deadline(started + time_budget.total_seconds()))
    suppressor = build_suppressor(settings, with_snoozes=not dry_run, storage=storage)
    return Runner(
        hunts=list(hunts) if hunts is not None else load_valid_hunts(settings.hunts_dir),
        sources=build_sources(settings, local_events, credential,
                              rate_book(settings, credential) if shared_pacing and storage
                              else PROCESS_BOOK),
        ledger=None if storage is None else Ledger(storage),
        notifier=None if dry_run else build_notifier(settings),
        dry_run=dry_run,
        since=since,
        time_budget=time_budget - timedelta(seconds=time.monotonic() - started),
        min_time_per_hunt=WORST_CASE_HUNT,
        storage_allowance=STORAGE_ALLOWANCE,
        suppressor=suppressor,
        health=None if storage is None else build_health(settings, storage),
        incidents=None if storage is None else IncidentStore(storage),
        incident_settings=IncidentSettings.from_settings(settings),
        snooze=partial(snooze_url, settings),
        storage=storage,
        workers=settings.workers,
    )
