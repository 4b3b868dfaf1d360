"""Where suppressions meet the app: settings, the run's Suppressor, the card's snooze link and
the channel's one-line announcement. Each piece is a small function other modules call."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..hunt import Hunt
from ..settings import Settings
from ..storage import Storage, open_storage, storage_configured
from .apply import Suppressor
from .loader import load_rule_files
from .rules import Rule
from .store import SnoozeStore, SnoozeStoreError
from .token import MAX_TOKEN_CHARS, TokenError, make_token

log = logging.getLogger("huntwire")

LINK_LIFETIME = timedelta(days=7)
SNOOZE_DAYS = 7
IDENTIFYING_COLUMNS = ("ProcessCommandLine", "InitiatingProcessFileName", "RemoteUrl",
                       "RemoteIP", "RemotePort", "CommandLine", "ParentCommandLine",
                       "InitiatingProcessCommandLine")
"""What makes findings 'similar': the exact values of the first of these a row has (up to
three), never the device, account or time."""
MAX_IDENTIFYING = 3


def snooze_key(settings: Settings | None) -> bytes | None:
    return settings.snooze_key.encode() if settings and settings.snooze_key else None


def public_url(settings: Settings | None) -> str | None:
    return settings.public_url.rstrip("/") if settings and settings.public_url else None


def snooze_store(settings: Settings, storage: Storage | None = None) -> SnoozeStore | None:
    """The snooze table of the run's storage account (*storage*, else the settings'), or None
    without storage."""
    if storage is None and not storage_configured(settings):
        return None
    return SnoozeStore(storage or open_storage(settings))


def load_rules(directory: Path, store: SnoozeStore | None, today: date) -> list[Rule]:
    """File rules then snoozes. Fail open: a broken file or an unreadable table is logged as
    an error and skipped; every other rule still applies."""
    loaded = load_rule_files(directory, today)
    for error in loaded.errors:
        log.error("huntwire.suppressions %s: its rules are not applied", error)
    rules = loaded.rules
    if store is not None:
        try:
            rules += store.rules()
        except (SnoozeStoreError, ValueError, KeyError) as exc:
            log.error("huntwire.suppressions snoozes not loaded: %s", exc)
    return rules


def build_suppressor(settings: Settings, *, with_snoozes: bool = True,
                     today: date | None = None, storage: Storage | None = None) -> Suppressor:
    """The Suppressor a run uses: ``suppressions/*.yaml`` plus the stored snoozes (on the
    run's *storage*)."""
    store = snooze_store(settings, storage) if with_snoozes else None
    today = today or datetime.now(UTC).date()
    return Suppressor(load_rules(settings.suppressions_dir, store, today))


def identifying_values(row: Mapping[str, Any]) -> dict[str, str]:
    values: dict[str, str] = {}
    for column in IDENTIFYING_COLUMNS:
        value = row.get(column)
        if value not in (None, "") and len(values) < MAX_IDENTIFYING:
            values[column] = str(value)
    return values


def snooze_url(settings: Settings | None, hunt: Hunt, row: Mapping[str, Any],
               now: datetime | None = None) -> str | None:
    """The card's "Snooze similar for 7 days" link, or None when snoozing is not set up (no
    key or public URL) or the row has nothing that identifies similar findings."""
    key, base = snooze_key(settings), public_url(settings)
    values = identifying_values(row)
    if not key or not base or not values:
        return None
    try:
        token = make_token(key, hunt.id, values, (now or datetime.now(UTC)) + LINK_LIFETIME)
    except TokenError as exc:
        log.error("huntwire.snooze no link: %s", exc)
        return None
    if len(token) > MAX_TOKEN_CHARS:
        return None
    return f"{base}/api/snooze?t={quote(token, safe='')}"
