"""Health notices for the channel, as notifier :class:`~shared.notify.base.Notice`s: the notifier
renders them (Teams: an Adaptive Card 1.4 of plain TextRuns, every string escaped like telemetry,
since hunt names and error texts come from files and services).

Each notice carries the tag ``health-<kind>``; the Teams card puts it in its header's element id,
so tools and tests can tell a health notice from an incident card (:func:`health_kind`).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from ..notify.base import Notice as ChannelNotice
from ..notify.base import Severity
from .model import HeartbeatTally, HuntHealth, Notice, NotifierHealth

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


def _hunt_states(hunts: Mapping[str, HuntHealth]) -> str:
    disabled = sorted(h.name or h.hunt_id for h in hunts.values() if h.disabled)
    failing = sorted(h.name or h.hunt_id for h in hunts.values()
                     if not h.disabled and h.consecutive_failures)
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
