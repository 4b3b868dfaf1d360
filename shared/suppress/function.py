"""The HTTP-triggered snooze function's body: ``func.HttpRequest`` in, ``func.HttpResponse`` out.
``function_app.py`` registers it (anonymous: the signed token is the authorisation)."""

from __future__ import annotations

import logging
from urllib.parse import parse_qsl

import azure.functions as func

from ..hunt import load_hunts
from ..notify import build_notifier
from ..notify.base import Notice
from ..settings import Settings
from .snooze_page import PageRequest, SnoozeContext, handle
from .wiring import snooze_key, snooze_setup_problem, snooze_store

log = logging.getLogger("huntwire")

MAX_FORM_BYTES = 16_384


def snooze_context(settings: Settings) -> SnoozeContext:
    """Key, snooze table, hunt names and the channel announcement, from the app's settings."""
    problem = snooze_setup_problem(settings)
    if problem:
        log.warning("huntwire.snooze %s", problem)
    notifier = build_notifier(settings)
    hunts = {h.id: h.name for h in load_hunts(settings.hunts_dir).hunts}
    return SnoozeContext(
        key=snooze_key(settings), store=snooze_store(settings), hunt_names=hunts,
        announce=(lambda line: notifier.post_notice(Notice("info", "Snoozed", line)))
        if notifier else None)


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
