"""The Teams digest: one Adaptive Card 1.4 message per hunt per run, safe with hostile telemetry.

Two layers keep telemetry inert (see ``docs/teams-card.md``):

1. Structure: every string that came from a query result is placed only in a ``TextRun`` of a
   ``RichTextBlock``. The Adaptive Cards schema renders TextRun text as plain text (no markdown,
   no HTML); TextBlock and FactSet values, which do go through markdown, carry only our own text.
2. Content: :func:`escape_text` neutralises what a client could still act on if it ever did
   interpret the text: invisible, control and bidirectional characters become visible
   ``{U+XXXX}`` markers, URLs are defanged (``hxxps[:]//evil[.]com/x``), markdown link and image
   syntax is broken by a space (``[t] (u)``), a tag-like ``<`` (``<at>``, ``<img``, ``</``)
   becomes U+2039, and long values are cut with a visible ``…[truncated: N chars]`` marker.

The payload is measured as compact UTF-8 JSON and never exceeds :data:`MAX_PAYLOAD_BYTES`.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import unicodedata
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any
from urllib.parse import quote

from .hunt import Hunt
from .sources.catalog import source_kind
from .window import Window, iso

MAX_PAYLOAD_BYTES = 28_000
"""Teams Workflows webhooks accept about 28 KB per message; measured as compact UTF-8 JSON."""
CARD_VERSION = "1.4"
"""Teams Workflows render 1.4; 1.5 has been reported rejected."""
ADAPTIVE_CARD = "application/vnd.microsoft.card.adaptive"
DEFENDER_PORTAL = "https://security.microsoft.com"
AZURE_PORTAL = "https://portal.azure.com"
MITRE_TECHNIQUES = "https://attack.mitre.org/techniques/"
MAX_LINK_CHARS = 4000
"""A query link longer than this falls back to the advanced hunting page without the query."""
MAX_TECHNIQUES = 12
MAX_EXTRA_COLUMNS = 8

_DEVICE_ID = re.compile(r"^[0-9a-fA-F]{40}$")
_TECHNIQUE = re.compile(r"^T(\d{4})(?:\.(\d{3}))?$")
_SEVERITY_STYLE = {"High": "attention", "Medium": "warning", "Low": "accent",
                   "Informational": "default"}
_SEVERITY_COLOR = {"High": "attention", "Medium": "warning", "Low": "accent",
                   "Informational": "default"}


# --------------------------------------------------------------------------------------------
# Escaping
# --------------------------------------------------------------------------------------------

_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})
"""Control, format (zero-width, bidi, BOM, tags), surrogate, private-use, line/para separators."""
_BLANK_LETTERS = frozenset({0x115F, 0x1160, 0x3164, 0xFFA0, 0x2800, 0x034F, 0x180E})
"""Letters and marks that render as nothing (Hangul fillers, braille blank, grapheme joiner)."""
_MAX_COMBINING_RUN = 2
"""Stacked combining marks ("zalgo") can paint over neighbouring lines; longer runs are shown."""
_URL = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]{0,30})://([^\s/?#\\\"'<>]*)")
"""``scheme://host``: the scheme is defanged (``hxxps[:]//``) and so are the host's dots."""
_SCHEMELESS_URL = re.compile(r"(?<![\w:\]/])//([a-z0-9\-]+(?:\.[a-z0-9\-]+)+)", re.IGNORECASE)
"""``//host/path``, which linkifiers treat as a link relative to the page's scheme."""
_BARE_SCHEME = re.compile(r"(?i)\b(javascript|vbscript|data|mailto|file|ms-[a-z\-]+|tel|sip):")
_WWW = re.compile(r"(?i)\bwww\.[a-z0-9\-.]+")
_TAG_OPEN = re.compile(r"<(?=[A-Za-z/!?])")
_LINK_SYNTAX = re.compile(r"\](?=[(\[])")
"""``[text](url)``, ``![alt](src)`` and ``[text][ref]``: CommonMark wants nothing between."""
_LINK_DEFINITION = re.compile(r"(?m)^(\s{0,3}\[[^\]\n]*\])(?=:)")
"""``[ref]: url`` at the start of a line (only multiline values keep line starts)."""
_TEXT_FUNCTION = re.compile(r"(?i)\{(?=\{(?:DATE|TIME)\()")
"""Adaptive Cards' ``{{DATE(…)}}`` / ``{{TIME(…)}}`` text functions."""
_BLANK_LINES = re.compile(r"\n{3,}")
_NOT_PLAIN_ASCII = re.compile(r"[^\x20-\x7e\n\t]+")


@dataclass(frozen=True)
class Limits:
    """Longest value, in characters after escaping, shown for each kind of field."""

    command_line: int
    script: int
    field: int


FULL = Limits(command_line=2000, script=2000, field=256)
MEDIUM = Limits(command_line=600, script=600, field=128)
COMPACT = Limits(command_line=200, script=160, field=64)
_TIERS = (FULL, MEDIUM, COMPACT)


def escape_text(value: Any, *, limit: int = 500, multiline: bool = False) -> str:
    """Telemetry value as text that cannot link, mention, embed, format or hide anything.

    *limit* bounds the result in characters (a visible marker says how long the original was);
    *multiline* keeps line breaks (scripts), otherwise each becomes a visible ``↵``.
    """
    raw = to_text(value)
    head = raw[: limit + 16]
    text = _neutralise_invisible(head.replace("\r\n", "\n").replace("\r", "\n"))
    text = _BLANK_LINES.sub("\n\n", text) if multiline else text.replace("\n", "↵")
    text = _defang(text)
    return _truncate(text, limit, len(raw), cut=len(head) < len(raw))


def to_text(value: Any) -> str:
    """Any result value as a string: datetimes in ISO 8601 UTC, containers as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return iso(value if value.tzinfo else value.replace(tzinfo=UTC))
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return str(value)


def _neutralise_invisible(text: str) -> str:
    """Replace invisible and control characters with visible ``{U+XXXX}`` markers."""
    return _NOT_PLAIN_ASCII.sub(_neutralise_run, text)


def _neutralise_run(match: re.Match[str]) -> str:
    out: list[str] = []
    combining = 0
    for char in match.group(0):
        code = ord(char)
        category = unicodedata.category(char)
        combining = combining + 1 if category in ("Mn", "Me") else 0
        if (category in _INVISIBLE_CATEGORIES or code in _BLANK_LETTERS
                or _is_noncharacter(code) or combining > _MAX_COMBINING_RUN):
            out.append(f"{{U+{code:04X}}}")
        else:
            out.append(char)
    return "".join(out)


def _is_noncharacter(code: int) -> bool:
    return 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFE) == 0xFFFE


def _defang(text: str) -> str:
    text = _URL.sub(lambda m: f"{_defang_scheme(m.group(1))}[:]//{_defang_host(m.group(2))}",
                    text)
    text = _SCHEMELESS_URL.sub(lambda m: "//" + _defang_host(m.group(1)), text)
    text = _BARE_SCHEME.sub(lambda m: m.group(1) + "[:]", text)
    text = _WWW.sub(lambda m: _defang_host(m.group(0)), text)
    text = _TAG_OPEN.sub("\u2039", text)
    text = _LINK_SYNTAX.sub("] ", text)
    text = _LINK_DEFINITION.sub(r"\1 ", text)
    return _TEXT_FUNCTION.sub("{ ", text)


def _defang_scheme(scheme: str) -> str:
    lowered = scheme.lower()
    if lowered.startswith("http"):
        return scheme[0] + "xx" + scheme[3:]
    if lowered.startswith("ftp"):
        return scheme[0] + "x" + scheme[2:]
    return scheme


def _defang_host(host: str) -> str:
    return host.replace(".", "[.]")


def _truncate(text: str, limit: int, original_length: int, *, cut: bool) -> str:
    if len(text) <= limit and not cut:
        return text
    marker = f" …[truncated: {original_length:,} chars]"
    end = max(0, min(len(text), limit - len(marker)))
    marker_start = text.rfind("{U+", max(0, end - 9), end)
    if marker_start != -1 and text.find("}", marker_start, end) == -1:
        end = marker_start
    return text[:end] + marker


# --------------------------------------------------------------------------------------------
# Links
# --------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class PortalLinks:
    """Where the card's links point. Without a workspace resource id, Sentinel hunts get no
    query link (the Logs blade needs the workspace's Azure resource id, not its customer id)."""

    defender_portal: str = DEFENDER_PORTAL
    azure_portal: str = AZURE_PORTAL
    tenant_id: str | None = None
    sentinel_workspace_resource_id: str | None = None
    """``/subscriptions/…/resourceGroups/…/providers/Microsoft.OperationalInsights/workspaces/…``"""

    def device_page(self, device_id: Any) -> str | None:
        """Defender device page, only for a well-formed DeviceId (40 hex digits)."""
        if not isinstance(device_id, str) or not _DEVICE_ID.match(device_id):
            return None
        return self._with_tenant(f"{self.defender_portal}/machines/v2/{device_id.lower()}")

    def query_link(self, hunt: Hunt, window: Window) -> tuple[str, str] | None:
        """(title, url) that opens *hunt*'s query in Defender advanced hunting or Sentinel Logs."""
        link = source_kind(hunt.source).portal_link
        if link == "advanced-hunting":
            return "Open in advanced hunting", self.advanced_hunting(hunt.query)
        if link == "sentinel-logs" and self.sentinel_workspace_resource_id:
            return "Open in Sentinel Logs", self.sentinel_logs(hunt.query, window)
        return None

    def advanced_hunting(self, query: str) -> str:
        """Defender's share link: base64url of gzip of the UTF-16LE query text."""
        page = f"{self.defender_portal}/v2/advanced-hunting"
        encoded = base64.urlsafe_b64encode(_gzip(query.encode("utf-16-le"))).decode().rstrip("=")
        link = f"{page}?query={encoded}&timeRangeId=week"
        return self._with_tenant(link if len(link) <= MAX_LINK_CHARS else page)

    def sentinel_logs(self, query: str, window: Window) -> str:
        """Azure portal Logs blade over the workspace, the query and the hunt's exact window."""
        resource = quote(self.sentinel_workspace_resource_id or "", safe="")
        encoded = quote(base64.b64encode(_gzip(query.encode("utf-8"))).decode(), safe="")
        timespan = quote(window.iso_interval(), safe="")
        tenant = f"@{self.tenant_id}" if self.tenant_id else ""
        base = (f"{self.azure_portal}/#{tenant}/blade/Microsoft_Azure_Monitoring_Logs/LogsBlade/"
                f"resourceId/{resource}/source/LogsBlade.AnalyticsShareLinkToQuery")
        link = f"{base}/q/{encoded}/timespan/{timespan}"
        return link if len(link) <= MAX_LINK_CHARS else f"{base}/timespan/{timespan}"

    def _with_tenant(self, url: str) -> str:
        if not self.tenant_id:
            return url
        separator = "&" if "?" in url else "?"
        return f"{url}{separator}tid={quote(self.tenant_id, safe='')}"


def _gzip(data: bytes) -> bytes:
    return gzip.compress(data, mtime=0)


def technique_url(technique: str) -> str | None:
    match = _TECHNIQUE.match(technique)
    if not match:
        return None
    sub = f"{match.group(2)}/" if match.group(2) else ""
    return f"{MITRE_TECHNIQUES}T{match.group(1)}/{sub}"


# --------------------------------------------------------------------------------------------
# Card elements (plain dicts: the payload is JSON)
# --------------------------------------------------------------------------------------------

Element = dict[str, Any]


def run(text: str, **style: Any) -> Element:
    """A TextRun: plain text, never markdown."""
    return {"type": "TextRun", "text": text, **style}


def link_run(text: str, url: str, **style: Any) -> Element:
    return run(text, selectAction={"type": "Action.OpenUrl", "url": url}, **style)


def rich(*runs: Element, **props: Any) -> Element:
    return {"type": "RichTextBlock", "inlines": [r for r in runs if r["text"]], **props}


def labelled(label: str, value: str, **value_style: Any) -> Element:
    return rich(run(f"{label}: ", isSubtle=True, weight="Bolder"), run(value, **value_style),
                spacing="Small")


# --------------------------------------------------------------------------------------------
# Findings
# --------------------------------------------------------------------------------------------

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
    runs = [run(when, weight="Bolder"), run("  ·  ", isSubtle=True),
            device_run]
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


# --------------------------------------------------------------------------------------------
# The digest
# --------------------------------------------------------------------------------------------

def build_digest(hunt: Hunt, window: Window, rows: Sequence[Mapping[str, Any]], *,
                 total_new: int, portal: PortalLinks | None = None) -> dict[str, Any]:
    """The whole webhook payload for one hunt's new findings, under :data:`MAX_PAYLOAD_BYTES`.

    Up to ``hunt.teams.max_findings`` rows are shown in full; values are shortened so more
    findings fit, findings that do not fit are dropped, and the card says how many are not shown.
    """
    links = portal or PortalLinks()
    total = max(total_new, len(rows))
    card = _card_shell(hunt, window, total, links)
    budget = MAX_PAYLOAD_BYTES - payload_size(_message(card)) - _more_size(total)
    wanted = min(len(rows), max(1, hunt.teams.max_findings))
    findings: list[Element] = []
    for index, row in enumerate(rows[:wanted]):
        share = budget // (wanted - index)
        element, size = _fitting_finding(row, hunt, links, share, budget)
        if element is None:
            break
        findings.append(element)
        budget -= size
    return _assemble(card, findings, total)


def _assemble(card: dict[str, Any], findings: list[Element], total: int) -> dict[str, Any]:
    """The message with *findings* and an "and K more" line; drops findings while it is too
    big (sizes are additive, so this normally succeeds at once)."""
    header = card["body"][0]
    while True:
        more = [_more_element(total - len(findings), total)] if total > len(findings) else []
        card["body"] = [header, *findings, *more]
        payload = _message(card)
        if payload_size(payload) <= MAX_PAYLOAD_BYTES or not findings:
            return payload
        findings = findings[:-1]


def _fitting_finding(row: Mapping[str, Any], hunt: Hunt, links: PortalLinks, share: int,
                     budget: int) -> tuple[Element | None, int]:
    """The richest rendering of *row* within its fair *share*, else the smallest that fits."""
    element: Element = {}
    size = 0
    for limits in _TIERS:
        element = finding_element(row, hunt, links, limits)
        size = _element_size(element)
        if size <= share:
            return element, size
    return (element, size) if size <= budget else (None, 0)


def _element_size(element: Element) -> int:
    """Bytes *element* adds to a JSON array: itself plus a separating comma."""
    return payload_size(element) + 1


def _more_element(hidden: int, total: int) -> Element:
    return {"type": "TextBlock", "wrap": True, "isSubtle": True, "separator": True,
            "text": f"…and {hidden:,} more of {total:,} new findings not shown here."}


def _more_size(total: int) -> int:
    return _element_size(_more_element(total, total))


def _card_shell(hunt: Hunt, window: Window, total: int, links: PortalLinks) -> dict[str, Any]:
    card: dict[str, Any] = {
        "type": "AdaptiveCard",
        "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
        "version": CARD_VERSION,
        "msteams": {"width": "Full"},
        "body": [_header(hunt, window, total)],
    }
    query = links.query_link(hunt, window)
    if query:
        card["actions"] = [{"type": "Action.OpenUrl", "title": query[0], "url": query[1]}]
    return card


def _header(hunt: Hunt, window: Window, total: int) -> Element:
    severity = hunt.severity if hunt.severity in _SEVERITY_STYLE else "Medium"
    items: list[Element] = [
        rich(run(severity.upper(), weight="Bolder", color=_SEVERITY_COLOR[severity]),
             run("   "), run(escape_text(hunt.name, limit=200), weight="Bolder", size="Large")),
        rich(run(f"{total:,} new finding{'' if total == 1 else 's'}", weight="Bolder"),
             run(f"   ·   {window_text(window)}", isSubtle=True), spacing="Small"),
    ]
    techniques = _technique_runs(hunt.techniques[:MAX_TECHNIQUES])
    if techniques:
        items.append(rich(run("MITRE ATT&CK  ", isSubtle=True), *techniques, spacing="Small"))
    if hunt.tactics:
        tactics = escape_text(", ".join(hunt.tactics), limit=200)
        items.append(rich(run("Tactics  ", isSubtle=True), run(tactics), spacing="None"))
    if hunt.description:
        summary = " ".join(hunt.description.split())  # YAML block folds are not line breaks
        items.append(rich(run(escape_text(summary, limit=300), isSubtle=True),
                          spacing="Small"))
    return {"type": "Container", "style": _SEVERITY_STYLE[severity], "bleed": True,
            "items": items}


def _technique_runs(techniques: Sequence[str]) -> list[Element]:
    runs: list[Element] = []
    for technique in techniques:
        if runs:
            runs.append(run(", "))
        label = escape_text(technique, limit=16)
        url = technique_url(technique)
        runs.append(link_run(label, url) if url else run(label))
    return runs


def window_text(window: Window) -> str:
    start = window.start.astimezone(UTC)
    end = window.end.astimezone(UTC)
    end_format = "%H:%M" if start.date() == end.date() else "%Y-%m-%d %H:%M"
    return f"{start:%Y-%m-%d %H:%M} → {end.strftime(end_format)} UTC"


def _message(card: dict[str, Any]) -> dict[str, Any]:
    return {"type": "message",
            "attachments": [{"contentType": ADAPTIVE_CARD, "contentUrl": None, "content": card}]}


def payload_size(payload: Any) -> int:
    """Bytes of *payload* as sent: compact JSON, UTF-8, non-ASCII unescaped."""
    return len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode())


def serialize(payload: Any) -> bytes:
    """The exact request body :class:`~shared.teams.TeamsWebhook` posts."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(frozen=True)
class DigestSummary:
    """What a digest says at a glance (for logs, the demo receiver and tests)."""

    severity: str
    hunt_name: str
    total_new: int
    findings_shown: int


def summarize_digest(payload: Mapping[str, Any]) -> DigestSummary:
    """Read back the header of a payload made by :func:`build_digest`."""
    body = card_of(payload)["body"]
    title, counts = (block["inlines"] for block in body[0]["items"][:2])
    return DigestSummary(
        severity=str(title[0]["text"]),
        hunt_name=str(title[-1]["text"]),
        total_new=int(str(counts[0]["text"]).split(" ")[0].replace(",", "")),
        findings_shown=sum(1 for element in body[1:] if element.get("type") == "Container"),
    )


def card_of(payload: Mapping[str, Any]) -> dict[str, Any]:
    """The Adaptive Card inside a webhook payload."""
    content: dict[str, Any] = payload["attachments"][0]["content"]
    return content


__all__ = ["ADAPTIVE_CARD", "CARD_VERSION", "MAX_PAYLOAD_BYTES", "DigestSummary", "PortalLinks",
           "build_digest", "card_of", "escape_text", "payload_size", "serialize",
           "summarize_digest"]
