"""What a run's outcome means for a hunt's health, and which notices it calls for (pure).

Rules (each problem is announced once; a problem that ends and comes back is a new problem):

* failing ``failing_after`` runs in a row (default 3): one ``failing`` notice;
* a permanent failure (bad query, unknown table or column) repeated ``disable_after`` times
  (default 3) auto-disables the hunt with one ``auto-disabled`` notice (it replaces the
  ``failing`` notice when both fall on the same run). A missing permission never disables: the
  fix is a grant, not an edit of the file, so the hunt keeps trying and recovers by itself;
* an auto-disabled hunt is skipped until its file's content changes; then it runs again and its
  next success says ``re-enabled``;
* a hunt whose failure was announced and that succeeds again: one ``recovered`` notice;
* truncated or partial results (the hunt saw less than its window): one ``incomplete`` notice
  until a complete result clears it;
* a missing Graph permission or Log Analytics access: one ``access`` notice per source, naming
  what to grant, until a hunt of that source succeeds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from .model import (
    FAILURE_NOTICES,
    HuntHealth,
    Notice,
    NoticeKind,
    NotifierHealth,
    SourceHealth,
)

NO_AUTO_DISABLE_KINDS = frozenset({"forbidden", "not-found"})
"""Permanent errors the hunt's file cannot cause or fix: never auto-disable for them."""

GRANTS = {
    "defender": "grant the function's managed identity the Microsoft Graph application "
                "permission ThreatHunting.Read.All (with admin consent)",
    "sentinel": "assign the function's managed identity the Log Analytics Reader role on the "
                "Sentinel workspace",
}


@dataclass(frozen=True)
class Limits:
    failing_after: int = 3
    disable_after: int = 3


@dataclass(frozen=True)
class RunFacts:
    """One hunt's run as the runner saw it."""

    hunt_id: str
    name: str
    source: str
    file: str
    file_hash: str
    now: datetime
    status: str
    """``ok`` or ``failed``; other statuses leave health unchanged."""
    error: str | None = None
    error_permanent: bool = False
    error_kind: str | None = None
    error_status: int | None = None
    rows: int = 0
    truncated: bool = False
    partial: bool = False
    partial_error: str | None = None
    pending: int = 0
    pending_since: datetime | None = None


def error_kind(kind: str | None, status: int | None, permanent: bool, message: str) -> str:
    """The source's own code when it has one, else one derived from the HTTP status."""
    if kind:
        return kind
    if status in (401, 403):
        return "forbidden"
    if status == 404:
        return "not-found"
    if status == 429:
        return "throttled"
    if status is not None and status >= 500:
        return "unavailable"
    if "timed out" in message.lower() or "timeout" in message.lower():
        return "timeout"
    if permanent:
        return "bad-query"
    return "unavailable"


def should_skip(record: HuntHealth | None, file_hash: str) -> bool:
    """An auto-disabled hunt whose file did not change is not run."""
    return record is not None and record.disabled and record.disabled_hash == file_hash


def reenable(record: HuntHealth) -> HuntHealth:
    """The file of a disabled hunt changed: run it again; permanent failures count afresh
    (its failure stays announced: a new disable is announced, ``failing`` is not repeated)."""
    return replace(record, disabled=False, disabled_since=None, disabled_hash=None,
                   reenabled=True, permanent_failures=0,
                   notices_sent=record.notices_sent - {"auto-disabled"})


def after_run(previous: HuntHealth | None, facts: RunFacts,
              limits: Limits = Limits()) -> tuple[HuntHealth, list[Notice]]:
    """The hunt's new record and the notices this run calls for."""
    record = previous or HuntHealth(hunt_id=facts.hunt_id)
    record = replace(record, name=facts.name)
    if facts.status == "failed":
        return _failed(record, facts, limits)
    if facts.status == "ok":
        return _succeeded(record, facts)
    return record, []


def _failed(record: HuntHealth, facts: RunFacts,
            limits: Limits) -> tuple[HuntHealth, list[Notice]]:
    message = facts.error or "unknown error"
    kind = error_kind(facts.error_kind, facts.error_status, facts.error_permanent, message)
    failures = record.consecutive_failures + 1
    record = replace(
        record, consecutive_failures=failures,
        permanent_failures=record.permanent_failures + 1 if facts.error_permanent else 0,
        first_failure=record.first_failure or facts.now, last_failure=facts.now,
        last_run=facts.now, last_error=message, last_error_permanent=facts.error_permanent,
        last_error_kind=kind, rows=0, truncated=False, partial=False, file_hash=facts.file_hash,
        pending=facts.pending, pending_since=facts.pending_since)
    if kind == "forbidden":
        return record, []  # announced once per source by source_after_run
    if record.permanent_failures >= limits.disable_after and kind not in NO_AUTO_DISABLE_KINDS:
        return _disable(record, facts)
    if failures >= limits.failing_after and "failing" not in record.notices_sent:
        notice = _notice("failing", record, facts, advice=advice_for(kind, facts))
        return replace(record, notices_sent=record.notices_sent | {"failing"}), [notice]
    return record, []


def _disable(record: HuntHealth, facts: RunFacts) -> tuple[HuntHealth, list[Notice]]:
    announced = "auto-disabled" in record.notices_sent
    record = replace(record, disabled=True, disabled_since=facts.now,
                     disabled_hash=facts.file_hash, reenabled=False,
                     notices_sent=record.notices_sent | FAILURE_NOTICES)
    if announced:
        return record, []
    advice = (f"Fix {facts.file} (try the query in advanced hunting, then run huntwire "
              "validate); the hunt runs again by itself once the file changes.")
    return record, [_notice("auto-disabled", record, facts, advice=advice)]


def _succeeded(record: HuntHealth, facts: RunFacts) -> tuple[HuntHealth, list[Notice]]:
    notices: list[Notice] = []
    if record.reenabled:
        notices.append(_notice("re-enabled", record, facts,
                               advice="Its file changed and it ran successfully again."))
    elif record.consecutive_failures and record.notices_sent & FAILURE_NOTICES:
        notices.append(_notice("recovered", record, facts,
                               advice="No action needed; findings of the missed windows are "
                                      "caught up."))
    sent = record.notices_sent - FAILURE_NOTICES
    incomplete = facts.truncated or facts.partial
    if incomplete and "incomplete" not in sent:
        notices.append(_notice("incomplete", record, facts, error=_incomplete_text(facts),
                               advice=advice_for("incomplete", facts)))
    sent = sent | {"incomplete"} if incomplete else sent - {"incomplete"}
    record = replace(
        record, consecutive_failures=0, permanent_failures=0, first_failure=None,
        last_success=facts.now, last_run=facts.now, rows=facts.rows, truncated=facts.truncated,
        partial=facts.partial, pending=facts.pending, pending_since=facts.pending_since,
        file_hash=facts.file_hash,
        reenabled=False, notices_sent=sent)
    return record, notices


def source_after_run(previous: SourceHealth | None,
                     facts: RunFacts) -> tuple[SourceHealth, Notice | None]:
    """Access to the hunt's source: one ``access`` notice while permission is missing."""
    record = previous or SourceHealth(source=facts.source)
    forbidden = facts.status == "failed" and error_kind(
        facts.error_kind, facts.error_status, facts.error_permanent,
        facts.error or "") == "forbidden"
    if facts.status == "ok":
        return replace(record, forbidden_since=None, notice_sent=False), None
    if not forbidden or record.notice_sent:
        return record, None
    record = replace(record, forbidden_since=record.forbidden_since or facts.now,
                     notice_sent=True)
    grant = GRANTS.get(facts.source, "grant the function's identity read access to "
                                     f"{facts.source}")
    notice = Notice(kind="access", hunt_id=facts.hunt_id, hunt_name=facts.name, at=facts.now,
                    since=record.forbidden_since, error=facts.error, source=facts.source,
                    advice=f"To fix: {grant}. Every {facts.source} hunt needs it; they run "
                           "again by themselves once it is granted.")
    return record, notice


def advice_for(kind: str, facts: RunFacts) -> str:
    if kind == "bad-query":
        return (f"Fix the query in {facts.file}: try it in advanced hunting, then run huntwire "
                "validate.")
    if kind == "throttled":
        return ("The service is throttling huntwire: spread the hunts' schedules or make them "
                "run less often. Retried every run.")
    if kind == "incomplete":
        return ("Narrow the query or shorten its lookback (Graph returns at most 100,000 rows); "
                "the window is queried again next run.")
    if kind == "not-found":
        return "Check the Sentinel workspace id and the service endpoints in the app settings."
    return ("The service did not answer in time or failed; huntwire retries every run. If it "
            "persists, check the service's health or make the query cheaper.")


def _incomplete_text(facts: RunFacts) -> str:
    if facts.truncated:
        return f"result truncated at {facts.rows:,} rows"
    return f"partial result: {facts.partial_error or 'the service reported an error'}"


def _notice(kind: NoticeKind, record: HuntHealth, facts: RunFacts, *, advice: str,
            error: str | None = None) -> Notice:
    return Notice(kind=kind, hunt_id=record.hunt_id, hunt_name=record.name,
                  at=facts.now, since=record.first_failure, failures=record.consecutive_failures,
                  error=error if error is not None else record.last_error, advice=advice,
                  source=facts.source)


def notifier_after_run(previous: NotifierHealth | None, *, configured: bool, delivered: int,
                       failed: list[str], pending: int, held_back_since: datetime | None,
                       now: datetime) -> NotifierHealth:
    """The channel's state after a run that delivered *delivered* posts and saw *failed*."""
    record = previous or NotifierHealth()
    record = replace(record, pending=pending, held_back_since=held_back_since)
    if not configured:
        return replace(record, state="unconfigured", since=record.since
                       if record.state == "unconfigured" else now)
    if failed:
        since = record.since if record.state == "failing" else now
        return replace(record, state="failing", since=since, last_failure=now,
                       last_error=failed[-1])
    if delivered:
        since = record.since if record.state == "ok" else now
        return replace(record, state="ok", since=since, last_ok=now)
    return record
