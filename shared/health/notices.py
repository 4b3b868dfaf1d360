"""Health notices for the channel, as notifier :class:`~shared.notify.base.Notice`s: the notifier
renders them (Teams: an Adaptive Card 1.4 of plain TextRuns, every string escaped like telemetry,
since hunt names and error texts come from files and services).

Each notice carries the tag ``health-<kind>``; the Teams card puts it in its header's element id,
so tools and tests can tell a health notice from an incident card (:func:`health_kind`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from ..cards.notice import MAX_FACTS
from ..notify.base import Notice as ChannelNotice
from ..notify.base import Severity
from .model import HeartbeatTally, HuntHealth, Notice, NotifierHealth, TenantTally

HEALTH_TAG = "health-"
HEALTH_ID_PREFIX = "huntwire-" + HEALTH_TAG
_TITLES = {
    "failing": "Hunt failing",
    "auto-disabled": "Hunt auto-disabled",
    "recovered": "Hunt recovered",
    "re-enabled": "Hunt re-enabled",
    "incomplete": "Hunt saw less than its window",
    "access": "huntwire lacks access",
}
_SEVERITY: dict[str, Severity] = {
    "failing": "High", "auto-disabled": "High", "access": "High", "incomplete": "Medium",
    "recovered": "Informational", "re-enabled": "Informational"}


def when(moment: datetime | None) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC") if moment else "unknown"


def health_notice(notice: Notice) -> ChannelNotice:
    """The channel notice announcing *notice*."""
    facts: list[tuple[str, str]] = []
    if notice.error:
        facts.append(("Error", notice.error))
    if notice.advice:
        facts.append(("What to do", notice.advice))
    facts.append(("Hunt id", notice.hunt_id))
    return ChannelNotice("health", _TITLES[notice.kind], _lead(notice),
                         severity=_SEVERITY[notice.kind], facts=tuple(facts),
                         tag=HEALTH_TAG + notice.kind)


def _lead(notice: Notice) -> str:
    name = notice.hunt_name or notice.hunt_id
    if notice.kind == "failing":
        return f"{name} has failed {notice.failures} runs in a row, since {when(notice.since)}."
    if notice.kind == "auto-disabled":
        return (f"{name} was disabled after {notice.failures} failed runs in a row (since "
                f"{when(notice.since)}); the error will not go away by itself.")
    if notice.kind == "recovered":
        return f"{name} runs again: it succeeded at {when(notice.at)}."
    if notice.kind == "re-enabled":
        return f"{name} was re-enabled when its file changed and succeeded at {when(notice.at)}."
    if notice.kind == "incomplete":
        return f"{name} saw less than its window at {when(notice.at)}."
    source = notice.source or "a source"
    return f"{source} refused access since {when(notice.since)} (first seen on hunt {name})."


def heartbeat_notice(tally: HeartbeatTally, now: datetime,
                     hunts: Mapping[str, HuntHealth] | None = None,
                     channel: NotifierHealth | None = None) -> ChannelNotice:
    """The daily "still alive" notice, readable on its own (its readers need no CLI): runs,
    findings, incidents and suppressions of the last day, which hunts are ok, failing or
    disabled, the channel's state, and any hunt every row of which was suppressed."""
    hunts = hunts or {}
    ran = len(tally.hunt_runs)
    times = sum(tally.hunt_runs.values())
    summary = (f"Since {when(tally.since)}: {tally.runs} run(s), {ran} hunt(s) ran {times} "
               f"time(s), {tally.failures} failure(s). {tally.findings} new finding(s) in "
               f"{tally.incidents} incident(s); {tally.suppressed} row(s) suppressed.")
    facts: list[tuple[str, str]] = []
    if hunts:
        facts.append(("Hunts", _hunt_states(hunts)))
    facts.append(("Channel", _channel_state(channel)))
    silenced = tally.fully_suppressed()
    if silenced:
        names = [f"{(hunts[h].name if h in hunts and hunts[h].name else h)} ({rows} row(s))"
                 for h, rows in sorted(silenced.items())]
        facts.append(("Fully suppressed", "every row suppressed since "
                      f"{when(tally.since)}: {'; '.join(names)}. Check the rules and snoozes "
                      "that name it."))
    facts.append(("Sent", when(now)))
    return ChannelNotice("health", "huntwire is running", summary,
                         severity="Medium" if silenced else "Informational",
                         facts=tuple(facts), tag=HEALTH_TAG + "heartbeat")


NAME_CHARS = 48
"""A tenant or hunt name is cut to this on the deployment heartbeat (with an ellipsis)."""
LINE_CHARS = 420
"""Each fact of the deployment heartbeat is cut to this (the card's own limit is 500)."""
_DIGITS = re.compile(r"(\d+)")
NAMES_LISTED = 5
"""Failing, disabled or fully suppressed hunts named per tenant, then "and N more"."""


def deployment_notice(tenants: Sequence[TenantTally], now: datetime) -> ChannelNotice:
    """A multi-tenant deployment's one daily heartbeat: a total line, then a line per tenant,
    worst first (unreadable, findings channel failing, failing or disabled hunts, failures, no
    runs, fully suppressed hunts); those past the card's facts share one line, compactly, up to
    "and N more". Bounded: at most the card's facts, each cut to :data:`LINE_CHARS`, names to
    :data:`NAME_CHARS` (tenant and hunt names are customer text: the card escapes them)."""
    ranked = sorted(tenants, key=lambda t: (tuple(-n for n in _badness(t)), _natural(t.name)))
    room = MAX_FACTS - 1  # the last fact says when it was sent
    listed = ranked if len(ranked) <= room else ranked[:room - 1]
    facts = [(_cut(t.name or "(unnamed)", NAME_CHARS), _cut(_tenant_line(t), LINE_CHARS))
             for t in listed]
    rest = ranked[len(listed):]
    if rest:
        facts.append((f"{len(rest)} more tenant(s)", _compact(rest)))
    facts.append(("Sent", when(now)))
    severity: Severity = "Medium" if any(any(_badness(t)) for t in tenants) else "Informational"
    return ChannelNotice("health", f"huntwire is running: {len(tenants)} tenant(s)",
                         _total_line(tenants), severity=severity, facts=tuple(facts),
                         tag=HEALTH_TAG + "heartbeat")


def _total_line(tenants: Sequence[TenantTally]) -> str:
    tallies = [t.tally for t in tenants if t.tally is not None]
    since = min((t.since for t in tallies if t.since), default=None)
    unreadable = sum(t.error is not None for t in tenants)
    times = sum(sum(t.hunt_runs.values()) for t in tallies)
    text = (f"Since {when(since) if since else 'the last heartbeat'}: {len(tenants)} tenant(s)"
            + (f" ({unreadable} unreadable)" if unreadable else "")
            + f", hunts ran {times} time(s), {sum(t.failures for t in tallies)} failure(s). "
            f"{sum(t.findings for t in tallies)} new finding(s) in "
            f"{sum(t.incidents for t in tallies)} incident(s); "
            f"{sum(t.suppressed for t in tallies)} row(s) suppressed.")
    return text + " Worst tenants first."


def _badness(tenant: TenantTally) -> tuple[int, int, int, int, int, int]:
    """(unreadable, findings channel failing, failing or disabled hunts, failures, no runs,
    fully suppressed hunts): a dead channel holds back every finding of the tenant."""
    if tenant.error is not None:
        return (1, 0, 0, 0, 0, 0)
    tally = tenant.tally or HeartbeatTally()
    failing, disabled = _troubled(tenant.hunts)
    dead = tenant.channel is not None and tenant.channel.state == "failing"
    return (0, int(dead), len(failing) + len(disabled), tally.failures, int(tally.runs == 0),
            len(tally.fully_suppressed()))


def _troubled(hunts: Mapping[str, HuntHealth]) -> tuple[list[str], list[str]]:
    """Names of the failing and of the disabled hunts."""
    disabled = sorted(h.name or h.hunt_id for h in hunts.values() if h.disabled)
    failing = sorted(h.name or h.hunt_id for h in hunts.values()
                     if not h.disabled and h.consecutive_failures)
    return failing, disabled


def _tenant_line(tenant: TenantTally) -> str:
    if tenant.error is not None:
        return f"UNREADABLE, not counted: {_cut(tenant.error, 200)}"
    tally = tenant.tally or HeartbeatTally()
    if tally.runs == 0:
        text = (f"no runs recorded since {when(tally.since)}" if tally.since
                else "no runs recorded yet")
    else:
        text = (f"hunts ran {sum(tally.hunt_runs.values())} time(s), {tally.failures} "
                f"failure(s), {tally.findings} new finding(s), {tally.incidents} incident(s), "
                f"{tally.suppressed} row(s) suppressed")
    failing, disabled = _troubled(tenant.hunts)
    if failing:
        text += f". Failing: {_names(failing)}"
    if disabled:
        text += f". Disabled: {_names(disabled)}"
    if tenant.channel is not None and tenant.channel.state in ("failing", "unconfigured"):
        text += f". Findings channel: {_channel_state(tenant.channel)}"
    silenced = tally.fully_suppressed()
    if silenced:
        hunts = tenant.hunts
        text += ". Every row suppressed: " + _names(
            [f"{_cut(hunts[h].name if h in hunts and hunts[h].name else h, NAME_CHARS)} "
             f"({rows} row(s))" for h, rows in sorted(silenced.items())])
    return text


def _compact(tenants: Sequence[TenantTally]) -> str:
    parts: list[str] = []
    for index, tenant in enumerate(tenants):
        tally = tenant.tally or HeartbeatTally()
        counts = [f"{sum(tally.hunt_runs.values())} ran"]
        counts += [f"{n} {what}" for n, what in ((tally.failures, "failed"),
                                                  (tally.findings, "new")) if n]
        part = (f"{_cut(tenant.name, 32)} (unreadable)" if tenant.error is not None else
                f"{_cut(tenant.name, 32)} ({', '.join(counts)})")
        tail = f"; and {len(tenants) - index} more"
        if len("; ".join([*parts, part])) + len(tail) > LINE_CHARS:
            return "; ".join(parts) + tail
        parts.append(part)
    return "; ".join(parts)


def _names(names: Sequence[str]) -> str:
    shown = ", ".join(_cut(name, NAME_CHARS) for name in names[:NAMES_LISTED])
    return shown + (f" and {len(names) - NAMES_LISTED} more" if len(names) > NAMES_LISTED
                    else "")


def _natural(name: str) -> list[str | int]:
    """Sort key: "Tenant 2" before "Tenant 10"."""
    return [int(part) if index % 2 else part
            for index, part in enumerate(_DIGITS.split(name.casefold()))]


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _hunt_states(hunts: Mapping[str, HuntHealth]) -> str:
    failing, disabled = _troubled(hunts)
    ok = len(hunts) - len(disabled) - len(failing)
    text = f"{ok} ok, {len(failing)} failing, {len(disabled)} disabled"
    if failing:
        text += f". Failing: {', '.join(failing)}"
    if disabled:
        text += f". Disabled: {', '.join(disabled)}"
    return text


def _channel_state(channel: NotifierHealth | None) -> str:
    if channel is None or channel.state == "unknown":
        return "no delivery recorded yet"
    if channel.state == "ok":
        return f"delivering; {channel.pending} finding(s) waiting"
    if channel.state == "unconfigured":
        return f"no findings webhook configured: {channel.pending} finding(s) waiting"
    return (f"failing since {when(channel.since)}: {channel.pending} finding(s) waiting "
            f"({channel.last_error or 'no answer'})")


def health_kind(payload: Mapping[str, Any]) -> str | None:
    """``failing``, ``heartbeat``, ... for a posted health notice; None for any other payload."""
    try:
        first = payload["attachments"][0]["content"]["body"][0]
    except (KeyError, IndexError, TypeError):
        return None
    ident = first.get("id") if isinstance(first, Mapping) else None
    if isinstance(ident, str) and ident.startswith(HEALTH_ID_PREFIX):
        return ident[len(HEALTH_ID_PREFIX):]
    return None
