"""Where suppressions meet the app: settings, the run's Suppressor, the card's snooze link and
the channel's one-line announcement. Each piece is a small function other modules call."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..hunt import Hunt
from .apply import Suppressor
from .loader import load_rule_files
from .rules import Rule
from .store import SnoozeStore, SnoozeStoreError
from .token import MAX_TOKEN_CHARS, TokenError, make_token

log = logging.getLogger("huntwire")

SUPPRESSIONS_DIR = "HUNTWIRE_SUPPRESSIONS_DIR"
SNOOZE_KEY = "HUNTWIRE_SNOOZE_KEY"
PUBLIC_URL = "HUNTWIRE_PUBLIC_URL"
DEFAULT_SUPPRESSIONS_DIR = Path(__file__).resolve().parents[2] / "suppressions"
LINK_LIFETIME = timedelta(days=7)
SNOOZE_DAYS = 7
IDENTIFYING_COLUMNS = ("ProcessCommandLine", "InitiatingProcessFileName", "RemoteUrl",
                       "RemoteIP", "RemotePort", "CommandLine", "ParentCommandLine",
                       "InitiatingProcessCommandLine")
"""What makes findings 'similar': the exact values of the first of these a row has (up to
three), never the device, account or time."""
MAX_IDENTIFYING = 3


def _setting(settings: object | None, attr: str, name: str,
             env: Mapping[str, str] | None) -> str | None:
    """A setting from the Settings object when it has the field, else from the environment."""
    value = getattr(settings, attr, None) if settings is not None else None
    if value:
        return str(value)
    return ((env if env is not None else os.environ).get(name) or "").strip() or None


def suppressions_dir(settings: object | None = None,
                     env: Mapping[str, str] | None = None) -> Path:
    return Path(_setting(settings, "suppressions_dir", SUPPRESSIONS_DIR, env)
                or DEFAULT_SUPPRESSIONS_DIR)


def snooze_key(settings: object | None = None,
               env: Mapping[str, str] | None = None) -> bytes | None:
    value = _setting(settings, "snooze_key", SNOOZE_KEY, env)
    return value.encode() if value else None


def public_url(settings: object | None = None,
               env: Mapping[str, str] | None = None) -> str | None:
    value = _setting(settings, "public_url", PUBLIC_URL, env)
    return value.rstrip("/") if value else None


def snooze_store(settings: Any) -> SnoozeStore | None:
    """The snooze table of the run's storage account, or None without storage."""
    if getattr(settings, "storage_connection_string", None):
        return SnoozeStore.from_connection_string(settings.storage_connection_string)
    if getattr(settings, "table_service_uri", None):
        from ..credentials import make_credential

        return SnoozeStore.from_endpoint(settings.table_service_uri,
                                         make_credential(settings.client_id))
    return None


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


def build_suppressor(settings: Any, *, with_snoozes: bool = True,
                     today: date | None = None) -> Suppressor:
    """The Suppressor a run uses: ``suppressions/*.yaml`` plus the stored snoozes."""
    store = snooze_store(settings) if with_snoozes else None
    today = today or datetime.now(UTC).date()
    return Suppressor(load_rules(suppressions_dir(settings), store, today))


def identifying_values(row: Mapping[str, Any]) -> dict[str, str]:
    values: dict[str, str] = {}
    for column in IDENTIFYING_COLUMNS:
        value = row.get(column)
        if value not in (None, "") and len(values) < MAX_IDENTIFYING:
            values[column] = str(value)
    return values


def snooze_url(settings: Any, hunt: Hunt, row: Mapping[str, Any],
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


def announcement(text: str) -> dict[str, Any]:
    """A Workflows webhook payload carrying one short line (an Adaptive Card, one TextBlock)."""
    return {"type": "message", "attachments": [{
        "contentType": "application/vnd.microsoft.card.adaptive", "content": {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard", "version": "1.4",
            "body": [{"type": "TextBlock", "text": text, "wrap": True}]}}]}
