"""One finding (a result row) as a card Container: who, where and when first, then what ran.

The row's fields are located across table shapes (Defender, Sentinel, network, sign-in) and every
value is escaped; :class:`Limits` bounds each kind of field so the digest can trade detail for
more findings within the payload limit.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from ..hunt import Hunt
from .elements import Element, labelled, link_run, rich, run
from .escape import escape_text, to_text
from .links import PortalLinks

MAX_EXTRA_COLUMNS = 8


@dataclass(frozen=True)
class Limits:
    """Longest value, in characters after escaping, shown for each kind of field."""

    command_line: int
    script: int
    field: int


FULL = Limits(command_line=2000, script=2000, field=256)
MEDIUM = Limits(command_line=600, script=600, field=128)
COMPACT = Limits(command_line=200, script=160, field=64)
TIERS = (FULL, MEDIUM, COMPACT)
"""Richest first: the digest takes the first that fits a finding's share of the payload."""

_SHOWN_COLUMNS = frozenset({
    "Timestamp", "TimeGenerated", "DeviceId", "DeviceName", "Computer", "AccountName",
    "AccountDomain", "AccountUpn", "InitiatingProcessAccountName",
    "InitiatingProcessAccountDomain", "InitiatingProcessFileName", "InitiatingProcessCommandLine",
    "InitiatingProcessParentFileName", "FileName", "ProcessCommandLine", "DecodedCommand",
    "DecodedScript", "RemoteIP", "RemotePort", "RemoteUrl",
})
_NOISE_COLUMNS = frozenset({"ReportId", "TenantId", "_ResourceId", "Type", "SourceSystem",
                            "MG", "ManagementGroupName", "_SubscriptionId"})


@dataclass(frozen=True)
class FindingView:
    """The fields of one result row an analyst reads first, located across table shapes."""

    time: Any
    device: Any
    device_id: Any
    account: str
    parent: Any
    process: Any
    command_line: Any
    decoded: Any
    remote: str

    @classmethod
    def of(cls, row: Mapping[str, Any], time_column: str) -> FindingView:
        has_process = bool(row.get("ProcessCommandLine") or row.get("FileName"))
        return cls(
            time=_first(row, time_column, "Timestamp", "TimeGenerated"),
            device=_first(row, "DeviceName", "Computer", "DeviceId"),
            device_id=row.get("DeviceId"),
            account=_account(row),
            parent=row.get("InitiatingProcessFileName") if has_process
            else row.get("InitiatingProcessParentFileName"),
            process=row.get("FileName") if has_process else row.get("InitiatingProcessFileName"),
            command_line=row.get("ProcessCommandLine") if has_process
            else row.get("InitiatingProcessCommandLine"),
            decoded=_first(row, "DecodedCommand", "DecodedScript"),
            remote=_remote(row),
        )

    @property
    def has_details(self) -> bool:
        return bool(self.process or self.command_line or self.remote)


def _first(row: Mapping[str, Any], *columns: str) -> Any:
    for column in columns:
        value = row.get(column)
        if value not in (None, ""):
            return value
    return None


def _account(row: Mapping[str, Any]) -> str:
    name = to_text(_first(row, "AccountName", "InitiatingProcessAccountName"))
    domain = to_text(_first(row, "AccountDomain", "InitiatingProcessAccountDomain"))
    if name:
        return f"{domain}\\{name}" if domain else name
    return to_text(row.get("AccountUpn"))


def _remote(row: Mapping[str, Any]) -> str:
    address = to_text(row.get("RemoteIP"))
    port = to_text(row.get("RemotePort"))
    endpoint = f"{address}:{port}" if address and port else address
    return " ".join(p for p in (endpoint, to_text(row.get("RemoteUrl"))) if p)


def display_time(value: Any) -> str:
    """``2026-11-27 22:14:03 UTC`` for datetimes and ISO strings; anything else as text."""
    moment = value
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return to_text(value)
    if isinstance(moment, datetime):
        aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
        return aware.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    return to_text(value)


def finding_element(row: Mapping[str, Any], hunt: Hunt, portal: PortalLinks,
                    limits: Limits) -> Element:
    """One finding as a Container: who, where and when first, then what ran."""
    view = FindingView.of(row, hunt.time_column)
    items: list[Element] = [_headline(view, portal, limits)]
    if view.parent or view.process:
        items.append(rich(run("Parent ", isSubtle=True),
                          run(escape_text(view.parent, limit=limits.field) or "?"),
                          run("  →  ", isSubtle=True),
                          run(escape_text(view.process, limit=limits.field) or "?",
                              weight="Bolder"), spacing="Small"))
    if view.command_line:
        items.append(labelled("Command line", escape_text(view.command_line,
                                                          limit=limits.command_line),
                              fontType="Monospace"))
    if view.decoded:
        items.append(labelled("Decoded", escape_text(view.decoded, limit=limits.script,
                                                     multiline=True), fontType="Monospace"))
    if view.remote:
        items.append(labelled("Remote", escape_text(view.remote, limit=limits.field)))
    items.extend(labelled(escape_text(name, limit=64), escape_text(value, limit=limits.field))
                 for name, value in _extra_columns(row, hunt, view))
    return {"type": "Container", "separator": True, "spacing": "Medium", "items": items}


def _headline(view: FindingView, portal: PortalLinks, limits: Limits) -> Element:
    device = escape_text(view.device, limit=limits.field) or "unknown device"
    device_url = portal.device_page(view.device_id)
    device_run = link_run(device, device_url) if device_url else run(device)
    when = escape_text(display_time(view.time), limit=limits.field) or "unknown time"
    runs = [run(when, weight="Bolder"), run("  ·  ", isSubtle=True), device_run]
    if view.account:
        runs += [run("  ·  ", isSubtle=True), run(escape_text(view.account, limit=limits.field))]
    return rich(*runs)


def _extra_columns(row: Mapping[str, Any], hunt: Hunt,
                   view: FindingView) -> Iterator[tuple[str, Any]]:
    """The hunt's ``teams.columns``; without them, other columns only when the row has no
    process or network fields (e.g. a Sentinel sign-in hunt)."""
    if hunt.teams.columns:
        names: Sequence[str] = [c for c in hunt.teams.columns if c not in _SHOWN_COLUMNS]
    elif view.has_details:
        return
    else:
        names = [c for c in row if c not in _SHOWN_COLUMNS and c not in _NOISE_COLUMNS]
    shown = 0
    for name in names:
        value = row.get(name)
        if value in (None, "", [], {}) or shown >= MAX_EXTRA_COLUMNS:
            continue
        shown += 1
        yield name, value
