"""Wire the runner from settings: credential, sources, ledger and Teams, each from one setting."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path

from .credentials import make_credential
from .health.runner_hooks import build_health
from .hunt import Hunt, load_hunts
from .ledger import Ledger
from .retry import CallPacer, RetryPolicy
from .runner import Notifier, Runner
from .settings import Settings
from .sources.base import QuerySource
from .sources.defender import DefenderSource, Timeouts
from .sources.local import LocalSource
from .sources.sentinel import SentinelSource
from .teams import TeamsWebhook

log = logging.getLogger("huntwire")

QUERY_POLICY = RetryPolicy(max_attempts=4, max_total_seconds=180)
QUERY_TIMEOUTS = Timeouts(connect_seconds=10, read_seconds=210)
WORST_CASE_HUNT = timedelta(seconds=QUERY_POLICY.max_total_seconds
                            + QUERY_TIMEOUTS.connect_seconds + QUERY_TIMEOUTS.read_seconds + 30)
"""The longest one hunt can take (retries, then a last call that runs to Graph's 3-minute limit,
then ledger and Teams); the runner starts no hunt with less time than this left."""


def load_valid_hunts(hunts_dir: Path) -> list[Hunt]:
    """Hunts that load; a broken file is logged with its reason and skipped, never fatal."""
    loaded = load_hunts(hunts_dir)
    for error in loaded.errors:
        log.error("huntwire.hunt_file %s", error)
    for warning in loaded.warnings:
        log.warning("huntwire.hunt_file %s", warning)
    return loaded.hunts


def build_sources(settings: Settings,
                  local_events: Mapping[str, Path] | None = None) -> dict[str, QuerySource]:
    if local_events:
        local = LocalSource(local_events)
        return {"defender": local, "sentinel": local}
    credential = make_credential(settings.client_id)
    pacer = CallPacer(calls=45, period_seconds=60)  # Graph: about 45 calls a minute per tenant
    sources: dict[str, QuerySource] = {
        "defender": DefenderSource(credential, settings.graph_endpoint, policy=QUERY_POLICY,
                                   pacer=pacer, timeouts=QUERY_TIMEOUTS)}
    if settings.sentinel_workspace_id:
        sources["sentinel"] = SentinelSource(
            credential, settings.sentinel_workspace_id, settings.logs_endpoint,
            server_timeout_seconds=180, policy=QUERY_POLICY,
            read_timeout_seconds=QUERY_TIMEOUTS.read_seconds)
    else:
        log.warning("HUNTWIRE_SENTINEL_WORKSPACE_ID is not set: Sentinel hunts are skipped")
    return sources


def build_ledger(settings: Settings) -> Ledger:
    if settings.storage_connection_string:
        return Ledger.from_connection_string(settings.storage_connection_string)
    assert settings.table_service_uri, "load_settings(require_storage=True) guarantees storage"
    return Ledger.from_endpoint(settings.table_service_uri, make_credential(settings.client_id))


def build_notifier(settings: Settings) -> Notifier | None:
    if not settings.teams_webhook_url:
        log.warning("HUNTWIRE_TEAMS_WEBHOOK_URL is not set: findings stay pending")
        return None
    return TeamsWebhook(settings.teams_webhook_url)


def build_runner(settings: Settings, *, dry_run: bool = False,
                 local_events: Mapping[str, Path] | None = None,
                 since: datetime | None = None,
                 time_budget: timedelta = timedelta(minutes=28)) -> Runner:
    return Runner(
        hunts=load_valid_hunts(settings.hunts_dir),
        sources=build_sources(settings, local_events),
        ledger=None if dry_run else build_ledger(settings),
        notifier=None if dry_run else build_notifier(settings),
        dry_run=dry_run,
        since=since,
        time_budget=time_budget,
        min_time_per_hunt=WORST_CASE_HUNT,
        health=None if dry_run else build_health(settings),
    )
