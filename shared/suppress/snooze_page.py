"""The snooze page behind the card's link: GET shows what would be suppressed and asks for a
reason and a name; only a POST from that form (carrying the token again) creates the snooze.
Teams and mail scanners open links with GET, so GET never writes. Everything shown is escaped.
On a multi-tenant deployment the token names its tenant: the snooze goes to that tenant's table
(a tenant not in the tenants file is refused), and the page names the tenant.
"""

from __future__ import annotations

import html
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

from .scope import DEVICE_COLUMNS, device_of, too_broad
from .store import (
    MAX_SNOOZE,
    LinkRefused,
    Snooze,
    SnoozeRowError,
    SnoozeStore,
    SnoozeStoreError,
    snooze_expiry,
)
from .token import SnoozeClaim, TokenError, read_token

log = logging.getLogger("huntwire")

MAX_REASON = 500
MAX_NAME = 100
DAY_CHOICES = (1, 7, 14, 30)
_MARKDOWN = re.compile(r"[\\`*_{}\[\]()<>#+!|~-]")
HEADERS = {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store",
           "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff",
           "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                      "form-action 'self'; frame-ancestors 'none'"}


HOME_TENANT = ""
"""Key of the deployment's own tenant (``HUNTWIRE_TENANT_ID``) among a tenants file's: links
sent before the file existed name no tenant, and snooze in its tables (it keeps today's)."""


@dataclass(frozen=True)
class PageRequest:
    method: str
    params: Mapping[str, str]
    form: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class PageResponse:
    status: int
    body: str
    headers: Mapping[str, str] = field(default_factory=lambda: dict(HEADERS))


@dataclass(frozen=True)
class TenantSnoozes:
    """Where a link's snooze goes: a tenant's snooze table, its name (None: the deployment's
    one tenant) and its channel's announcement."""

    name: str | None
    store: SnoozeStore
    announce: Callable[[str], object] | None = None


@dataclass
class SnoozeContext:
    key: bytes | None = field(repr=False)
    store: SnoozeStore | None
    """The deployment's snooze table (single tenant); None: no storage, snoozing is off."""
    hunt_names: Mapping[str, str]
    """hunt id -> name: a token for a hunt that no longer exists is refused"""
    announce: Callable[[str], object] | None = None
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    tenants: Mapping[str, TenantSnoozes] | None = field(default=None, repr=False)
    """With a tenants file: tenant key -> its snoozes; a link must name one of them. None: one
    tenant, whose links name none (a link naming a tenant is refused)."""
    problem: str | None = None
    """Why snoozing is off although key and storage are set (shown on the page: no secrets)."""


def handle(request: PageRequest, context: SnoozeContext) -> PageResponse:
    method = request.method.upper()
    if method not in ("GET", "POST"):
        return _page(405, "Method not allowed", "<p>Use the link from the card.</p>")
    if context.key is None or context.store is None or context.problem:
        return _page(503, "Snoozing is not set up", f"<p>{_e(context.problem)}</p>"
                     if context.problem else "<p>HUNTWIRE_SNOOZE_KEY is missing or unusable, "
                     "or storage is missing (see the app's log).</p>")
    token = (request.form if method == "POST" else request.params).get("t", "")
    try:
        claim = read_token(context.key, token, context.now(),
                           fingerprint=request.form.get("finding") if method == "POST" else None)
    except TokenError as exc:
        return _page(403, "Link refused", f"<p>{_e(exc.message)}</p>")
    broad = too_broad(claim.values)
    if broad:
        return _page(403, "Link refused", f"<p>This link would silence too much: {_e(broad)}"
                     ".</p>")
    target = _target(claim, context)
    if isinstance(target, PageResponse):
        return target
    hunt_name = context.hunt_names.get(claim.hunt_id)
    if hunt_name is None:
        return _page(404, "Unknown hunt", "<p>The hunt of this link no longer exists.</p>")
    if method == "GET":
        return _show(token, claim, hunt_name, target)
    return _create(request.form, claim, hunt_name, target, context)


def _target(claim: SnoozeClaim, context: SnoozeContext) -> TenantSnoozes | PageResponse:
    """The snooze table the link's tenant uses, or the page refusing the link."""
    assert context.store is not None
    if context.tenants is None:
        if claim.tenant is None:
            return TenantSnoozes(None, context.store, context.announce)
        return _page(404, "Unknown tenant", f"<p>This link is for tenant <code>"
                     f"{_e(claim.tenant)}</code>; this deployment has no tenants file.</p>")
    if claim.tenant is None and HOME_TENANT not in context.tenants:
        return _page(404, "Unknown tenant", "<p>This link names no tenant and this deployment "
                     "serves several: use the snooze link of a newer card.</p>")
    target = context.tenants.get(claim.tenant or HOME_TENANT)
    if target is None:
        log.warning("huntwire.snooze link refused: tenant %s is not in the tenants file",
                    claim.tenant)
        return _page(404, "Unknown tenant", f"<p>Tenant <code>{_e(claim.tenant or '')}</code> of "
                     "this link is not in this deployment's tenants file.</p>")
    return target


def _show(token: str, claim: SnoozeClaim, hunt_name: str,
          target: TenantSnoozes) -> PageResponse:
    """The form, unless the link is known to be spent or revoked (a read; GET never writes).
    If storage cannot tell, the form is shown: its POST checks again."""
    try:
        refusal = target.store.link_refusal(claim.link_id, f"snooze-{claim.fingerprint}",
                                            claim.expires)
    except SnoozeStoreError as exc:
        log.error("huntwire.snooze %s", exc)
        refusal = None
    if refusal:
        return _page(410, "Link no longer valid", f"<p>{_e(refusal)}.</p>")
    return _form(token, claim, hunt_name, target.name)


def _create(form: Mapping[str, str], claim: SnoozeClaim, hunt_name: str, target: TenantSnoozes,
            context: SnoozeContext) -> PageResponse:
    reason, owner = form.get("reason", "").strip(), form.get("name", "").strip()
    try:
        days = int(form.get("days", "7"))
        if not reason or not owner or len(reason) > MAX_REASON or len(owner) > MAX_NAME:
            raise ValueError("a reason (up to 500 characters) and a name (up to 100) are "
                             "required")
        created = context.now()
        snooze = Snooze(f"snooze-{claim.fingerprint}", claim.hunt_id, claim.values, reason,
                        owner, created, snooze_expiry(created, days), claim.link_id)
    except ValueError as exc:
        message = str(exc) if "required" in str(exc) or "days" in str(exc) else "bad form"
        return _page(400, "Not snoozed", f"<p>{_e(message)}</p>")
    try:
        added = target.store.add(snooze, claim.expires)
    except LinkRefused as refused:
        return _page(409, "Link no longer valid", f"<p>{_e(refused.message)}.</p>")
    except SnoozeStoreError as exc:
        log.error("huntwire.snooze %s", exc)
        return _page(503, "Not snoozed", "<p>Storage is unavailable; try again later.</p>")
    if not added:
        return _page(409, "Already snoozed", f"<p>This finding is already snoozed until "
                     f"{_e(_until(target.store, snooze.id))}.</p>")
    _audit(snooze, hunt_name, target)
    return _page(201, "Snoozed", f"{_tenant(target.name)}<p>Snoozed until "
                 f"{_e(snooze.expires.isoformat())} (rule <code>{_e(snooze.id)}</code>): "
                 f"{_scope(hunt_name, claim.values)}</p>{_conditions(claim.values)}")


def _until(store: SnoozeStore, snooze_id: str) -> str:
    try:
        existing = store.get(snooze_id)
    except (SnoozeStoreError, SnoozeRowError):
        existing = None
    return existing.expires.isoformat() if existing else "?"


def announcement_line(snooze: Snooze, hunt_name: str) -> str:
    """One short line for the channel: plain text, which the notifier escapes like telemetry."""
    what = ", ".join(f"{c} = {_short(v)}" for c, v in snooze.values.items()
                     if c not in DEVICE_COLUMNS)
    device = _short(device_of(snooze.values) or "?", 40)
    return (f"{_short(snooze.owner, 40)} snoozed '{_short(hunt_name, 60)}' on {device} "
            f"until {snooze.expires.isoformat()} where {what}: {_short(snooze.reason, 80)}")


def _audit(snooze: Snooze, hunt_name: str, target: TenantSnoozes) -> None:
    log.warning("huntwire.snooze %s", json.dumps({
        **({"tenant": target.name} if target.name is not None else {}), "rule": snooze.id,
        "hunt": snooze.hunt_id, "owner": snooze.owner,
        "reason": snooze.reason, "created": snooze.created.isoformat(),
        "expires": snooze.expires.isoformat(),
        "where": {c: _short(v, 200) for c, v in snooze.values.items()}}, ensure_ascii=False))
    if target.announce is None:
        return
    try:
        target.announce(announcement_line(snooze, hunt_name))
    except Exception as exc:  # the snooze stands; the log above is its audit record
        log.error("huntwire.snooze announcement not posted: %s", type(exc).__name__)


def _scope(hunt_name: str, values: Mapping[str, str]) -> str:
    return (f"hunt <b>{_e(hunt_name)}</b> stops reporting, on device "
            f"<b>{_e(device_of(values) or '?')}</b> only, the rows in which <b>every</b> one of "
            "these columns holds exactly this value (ignoring case):")


def _tenant(name: str | None) -> str:
    return "" if name is None else (f"<p>Tenant <b>{_e(name)}</b>: the snooze applies to this "
                                     "tenant's runs only.</p>")


def _conditions(values: Mapping[str, str]) -> str:
    rows = "".join(f"<tr><th>{_e(c)}</th><td><code>{_e(v)}</code></td></tr>"
                   for c, v in values.items())
    return (f"<table>{rows}</table><p>Other devices, and other values on this device, are "
            "still reported.</p>")


def _form(token: str, claim: SnoozeClaim, hunt_name: str, tenant: str | None) -> PageResponse:
    options = "".join(f'<option value="{d}"{" selected" if d == 7 else ""}>{d} day(s)'
                      "</option>" for d in DAY_CHOICES if d <= MAX_SNOOZE.days)
    body = (f"{_tenant(tenant)}<p>If you snooze this, {_scope(hunt_name, claim.values)}</p>"
            f"{_conditions(claim.values)}"
            f"<p>Hunt id <code>{_e(claim.hunt_id)}</code>.</p>"
            '<form method="post">'
            f'<input type="hidden" name="t" value="{_e(token)}">'
            f'<input type="hidden" name="finding" value="{_e(claim.fingerprint)}">'
            f'<p><label>Reason <input name="reason" required maxlength="{MAX_REASON}">'
            "</label></p>"
            f'<p><label>Your name <input name="name" required maxlength="{MAX_NAME}">'
            "</label></p>"
            f'<p><label>For <select name="days">{options}</select></label></p>'
            '<p><button type="submit">Snooze</button></p></form>')
    return _page(200, "Snooze this finding", body)


def _page(status: int, title: str, body: str) -> PageResponse:
    return PageResponse(status, f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
                        f"<title>huntwire: {_e(title)}</title></head><body>"
                        f"<h1>{_e(title)}</h1>{body}</body></html>")


def _e(text: str) -> str:
    return html.escape(text, quote=True)


def _plain(text: str) -> str:
    """Text that Teams' Markdown shows as typed (no links, emphasis or HTML)."""
    return _MARKDOWN.sub(r"\\\g<0>", text)


def _short(text: str, width: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
