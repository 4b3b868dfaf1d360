"""The HTTP-triggered snooze function's body: ``func.HttpRequest`` in, ``func.HttpResponse`` out.
``function_app.py`` registers it (anonymous: the signed token is the authorisation) and, for a
tenants file, hands in the tenants' snooze tables (``shared.tenancy.snooze_tenants``: the layer
that knows tenants sits above this one)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from urllib.parse import parse_qsl

import azure.functions as func

from ..errors import ConfigurationError
from ..hunt import load_hunts
from ..notify import build_notifier
from ..notify.base import Notice
from ..settings import Settings
from ..storage import Storage
from .snooze_page import PageRequest, SnoozeContext, TenantSnoozes, handle
from .wiring import snooze_key, snooze_setup_problem, snooze_store

log = logging.getLogger("huntwire")

MAX_FORM_BYTES = 16_384
TenantResolver = Callable[[Settings, Storage], Mapping[str, TenantSnoozes]]
"""Settings and the account -> each tenant's snoozes by tenant key (raises ConfigurationError
when the tenants file cannot be used)."""


def snooze_context(settings: Settings, tenants: TenantResolver | None = None) -> SnoozeContext:
    """Key, snooze table, hunt names and the channel announcement, from the app's settings;
    with a tenants file, each tenant's snooze table and channel (by *tenants*)."""
    problem = snooze_setup_problem(settings)
    if problem:
        log.warning("huntwire.snooze %s", problem)
    notifier = build_notifier(settings)
    hunts = {h.id: h.name for h in load_hunts(settings.hunts_dir).hunts}
    context = SnoozeContext(
        key=snooze_key(settings), store=snooze_store(settings), hunt_names=hunts,
        announce=(lambda line: notifier.post_notice(Notice("info", "Snoozed", line)))
        if notifier else None)
    if settings.tenants_file is not None and context.store is not None:
        context.tenants = {}  # fail closed: no tenant is known until the file is read
        try:
            if tenants is not None:
                context.tenants = tenants(settings, context.store.storage)
        except ConfigurationError as exc:
            log.error("huntwire.snooze tenants file not usable, snoozing is off: %s",
                      " ".join(str(exc).split()))
            context.problem = "The tenants file cannot be used (see the app's log)."
    return context


def snooze_http(request: func.HttpRequest, context: SnoozeContext) -> func.HttpResponse:
    form: dict[str, str] = {}
    if request.method.upper() == "POST":
        body = request.get_body()
        if len(body) > MAX_FORM_BYTES:
            return func.HttpResponse("form too large", status_code=413)
        try:
            form = dict(parse_qsl(body.decode("utf-8", "replace"), max_num_fields=10))
        except ValueError:
            return func.HttpResponse("bad form", status_code=400)
    page = handle(PageRequest(request.method, dict(request.params), form), context)
    return func.HttpResponse(page.body, status_code=page.status, headers=dict(page.headers))
