"""Where suppressions meet the app: settings, the run's Suppressor, the card's snooze link and
the channel's one-line announcement. Each piece is a small function other modules call."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ..hunt import Hunt
from ..settings import Settings, snooze_key_problems
from ..storage import Storage, open_storage, storage_configured
from .apply import Suppressor
from .loader import load_rule_files
from .rules import Rule
from .scope import label, snooze_values, too_broad
from .store import TABLE, SnoozeStore, SnoozeStoreError
from .token import LINK_LIFETIME, MAX_TOKEN_CHARS, TokenError, finding_fingerprint, make_token

log = logging.getLogger("huntwire")

SNOOZE_DAYS = 7
"""The duration a card's link offers first (the page allows 1 to 30 days)."""
"""``snooze_url`` bound to the settings: a hunt and a row -> (label, url) or None."""


def snooze_key(settings: Settings | None) -> bytes | None:
    """The signing key, or None when snoozing is off: not set, or unusable (too short, an
    unresolved Key Vault reference; ``snooze_setup_problem`` says which)."""
    if not settings or not settings.snooze_key or snooze_key_problems(settings.snooze_key):
        return None
    return settings.snooze_key.encode()


def snooze_setup_problem(settings: Settings | None) -> str | None:
    """One line when HUNTWIRE_SNOOZE_KEY is set but unusable (never the key itself)."""
    if not settings or not settings.snooze_key:
        return None
    problems = snooze_key_problems(settings.snooze_key)
    return f"{problems[0]}: snoozing is off (no snooze links; the page answers 503)" \
        if problems else None


def public_url(settings: Settings | None) -> str | None:
    return settings.public_url.rstrip("/") if settings and settings.public_url else None


def snooze_store(settings: Settings, storage: Storage | None = None) -> SnoozeStore | None:
    """The snooze table of the run's storage account (*storage*, else the settings'), or None
    without storage."""
    if storage is None and not storage_configured(settings):
        return None
    return SnoozeStore(storage or open_storage(settings))


def load_rules(directory: Path, store: SnoozeStore | None, today: date) -> list[Rule]:
    """File rules then snoozes. Fail open: a broken file, a bad snooze row or an unreadable
    table is logged (one line each) and skipped; every other rule still applies."""
    loaded = load_rule_files(directory, today)
    for error in loaded.errors:
        log.error("huntwire.suppressions %s: its rules are not applied", error)
    return loaded.rules + (load_snoozes(store) if store is not None else [])


def load_snoozes(store: SnoozeStore) -> list[Rule]:
    try:
        rows = store.load()
    except SnoozeStoreError as exc:
        log.error("huntwire.suppressions snoozes not loaded: %s", exc)
        return []
    for row_key, why in rows.skipped:
        log.error("huntwire.suppressions snooze %r in table %s skipped: %s (remove it with "
                  "'huntwire suppressions remove')", row_key[:80], TABLE, why)
    return [s.as_rule() for s in rows.snoozes]


def build_suppressor(settings: Settings, *, with_snoozes: bool = True,
                     today: date | None = None, storage: Storage | None = None) -> Suppressor:
    """The Suppressor a run uses: ``suppressions/*.yaml`` plus the stored snoozes (on the
    run's *storage*)."""
    store = snooze_store(settings, storage) if with_snoozes else None
    problem = snooze_setup_problem(settings)
    if problem:
        log.warning("huntwire.snooze %s", problem)
    today = today or datetime.now(UTC).date()
    return Suppressor(load_rules(settings.suppressions_dir, store, today))


def snooze_group(hunt: Hunt, row: Mapping[str, Any]) -> str | None:
    """The snooze a link for *row* would create (``snooze-<16 hex>``), or None when the row is
    too broad to snooze: rows with the same group need one link between them."""
    values = snooze_values(row)
    return None if too_broad(values) else f"snooze-{finding_fingerprint(hunt.id, values)}"


def snooze_url(settings: Settings | None, hunt: Hunt, row: Mapping[str, Any],
               now: datetime | None = None, *, tenant: str | None = None,
               ) -> tuple[str, str] | None:
    """The card's snooze link, labelled with what it silences: (label, url). None when
    snoozing is not set up (no usable key or public URL), or the row's identity is too broad
    to snooze (no device, only a process name, only an address and port). *tenant*: the key
    of the card's tenant on a multi-tenant deployment (signed into the link: the page snoozes
    in that tenant's tables)."""
    key, base = snooze_key(settings), public_url(settings)
    values = snooze_values(row)
    if not key or not base or too_broad(values):
        return None
    try:
        token = make_token(key, hunt.id, values, (now or datetime.now(UTC)) + LINK_LIFETIME,
                           tenant=tenant)
    except TokenError as exc:
        log.error("huntwire.snooze no link: %s", exc)
        return None
    if len(token) > MAX_TOKEN_CHARS:
        return None
    return label(hunt.name, values), f"{base}/api/snooze?t={quote(token, safe='')}"
