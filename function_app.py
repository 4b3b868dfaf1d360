"""Azure Functions entry point (Python v2 programming model): the hourly hunt timer, the snooze
page, and the queue fan-out (``HUNTWIRE_FANOUT=queue``, docs/fanout.md): a worker per hunt
message, one delivery per (tenant, cycle), and the poison queues announced. With a tenants file
(``HUNTWIRE_TENANTS_FILE``) both modes serve every tenant of it; each queue message names its
tenant, and the process keeps the hunts, the tenants file and its identity between messages."""

from __future__ import annotations

import logging
import os
from datetime import UTC, datetime, timedelta
from functools import cache

import azure.functions as func

from shared.app import build_runner
from shared.fanout import DELIVERY_QUEUE, HUNTS_QUEUE, POISON_SUFFIX, Fanout, queue_mode
from shared.outcome import HuntOutcome
from shared.settings import Settings, SettingsError, load_settings
from shared.suppress.function import snooze_context, snooze_http
from shared.tenancy import run_tenants, snooze_tenants

app = func.FunctionApp()
log = logging.getLogger("huntwire")

FUNCTION_TIMEOUT = timedelta(minutes=30)  # host.json functionTimeout (Flex Consumption default)
SAFETY_MARGIN = timedelta(minutes=2)
"""Time kept back for the last hunt's ledger writes, the summary and the host's own work."""


@cache
def settings() -> Settings:
    """Read and validate every setting once per worker; each problem is logged on its own line."""
    try:
        return load_settings(os.environ)
    except SettingsError as error:
        for problem in error.problems:
            log.error("huntwire.settings %s", problem)
        raise


@app.timer_trigger(schedule="%HUNTWIRE_SCHEDULE%", arg_name="timer", run_on_startup=False,
                   use_monitor=True)
def hourly_hunts(timer: func.TimerRequest) -> None:
    if timer.past_due:
        log.warning("huntwire.timer past due: windows will catch up from the last checkpoint")
    if queue_mode(os.environ):  # the hunts run in the queue functions below
        fanout().start(datetime.now(UTC))
        return
    if settings().tenants_file is not None:  # an MSSP: every tenant, one failing never blocks
        tenants = run_tenants(settings(), datetime.now(UTC),
                              time_budget=FUNCTION_TIMEOUT - SAFETY_MARGIN)
        if not tenants.ok:
            raise RuntimeError(f"huntwire run incomplete: {tenants.incomplete()}")
        return
    runner = build_runner(settings(), time_budget=FUNCTION_TIMEOUT - SAFETY_MARGIN)
    summary = runner.run_once(datetime.now(UTC))
    if not summary.ok:
        # Failing the invocation makes it visible in Application Insights and its alerts.
        raise RuntimeError(f"huntwire run incomplete: {incomplete(summary.outcomes)}")


def fanout() -> Fanout:
    return Fanout.from_settings(settings(), os.environ, FUNCTION_TIMEOUT - SAFETY_MARGIN)


# The queue functions. connection="HUNTWIRE_STORAGE": the host reads the connection string, or
# HUNTWIRE_STORAGE__queueServiceUri with __credential/__clientId (managed identity) in Azure.
@app.queue_trigger(arg_name="msg", queue_name=HUNTS_QUEUE, connection="HUNTWIRE_STORAGE")
def hunt_worker(msg: func.QueueMessage) -> None:
    """One (tenant, hunt) of a cycle: query, suppression, ledger, then the fan-in count."""
    fanout().work(msg.get_body())


@app.queue_trigger(arg_name="msg", queue_name=DELIVERY_QUEUE, connection="HUNTWIRE_STORAGE")
def cycle_delivery(msg: func.QueueMessage) -> None:
    """Incidents, Teams and mark notified, once per (tenant, cycle)."""
    fanout().deliver(msg.get_body())


@app.queue_trigger(arg_name="msg", queue_name=HUNTS_QUEUE + POISON_SUFFIX,
                   connection="HUNTWIRE_STORAGE")
def hunt_poison(msg: func.QueueMessage) -> None:
    """A hunt message that failed maxDequeueCount times: a notice and a health failure."""
    fanout().poison(msg.get_body(), HUNTS_QUEUE + POISON_SUFFIX)


@app.queue_trigger(arg_name="msg", queue_name=DELIVERY_QUEUE + POISON_SUFFIX,
                   connection="HUNTWIRE_STORAGE")
def delivery_poison(msg: func.QueueMessage) -> None:
    """A delivery that failed maxDequeueCount times: a notice (the findings stay pending)."""
    fanout().poison(msg.get_body(), DELIVERY_QUEUE + POISON_SUFFIX)


def incomplete(outcomes: list[HuntOutcome]) -> str:
    """Which hunts did not finish and which could not deliver their findings."""
    failed = [o.hunt_id for o in outcomes if o.status in ("failed", "skipped")]
    undelivered = [o.hunt_id for o in outcomes if o.delivery_failed]
    parts = [f"hunts {', '.join(failed)} did not finish"] if failed else []
    if undelivered:
        parts.append(f"findings of hunts {', '.join(undelivered)} were not delivered "
                     "(they stay pending)")
    return "; ".join(parts) or "the run stopped early (time budget)"


@app.route(route="snooze", methods=["GET", "POST"], auth_level=func.AuthLevel.ANONYMOUS)
def snooze(req: func.HttpRequest) -> func.HttpResponse:
    """The card's "Snooze similar" page; the signed token in the link is the authorisation
    (with a tenants file, it names the tenant whose tables the snooze goes to)."""
    return snooze_http(req, snooze_context(settings(), snooze_tenants))
