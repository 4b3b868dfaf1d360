"""Where a card's links point: Defender device pages, the hunt's query in Defender advanced
hunting or Sentinel Logs, and MITRE ATT&CK technique pages. Only our own URLs become links."""

from __future__ import annotations

import base64
import gzip
import re
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from ..hunt import Hunt
from ..sources.catalog import source_kind
from ..window import Window

DEFENDER_PORTAL = "https://security.microsoft.com"
AZURE_PORTAL = "https://portal.azure.com"
MITRE_TECHNIQUES = "https://attack.mitre.org/techniques/"
MAX_LINK_CHARS = 4000
"""A query link longer than this falls back to the advanced hunting page without the query."""

_DEVICE_ID = re.compile(r"^[0-9a-fA-F]{40}$")
_TECHNIQUE = re.compile(r"^T(\d{4})(?:\.(\d{3}))?$")


@dataclass(frozen=True)
class PortalLinks:
    """Where the card's links point. Without a workspace resource id, Sentinel hunts get no
    query link (the Logs blade needs the workspace's Azure resource id, not its customer id).

    In production build it with :meth:`from_ids` from the settings ``HUNTWIRE_TENANT_ID`` and
    ``HUNTWIRE_SENTINEL_WORKSPACE_RESOURCE_ID``.
    """

    defender_portal: str = DEFENDER_PORTAL
    azure_portal: str = AZURE_PORTAL
    tenant_id: str | None = None
    sentinel_workspace_resource_id: str | None = None
    """``/subscriptions/…/resourceGroups/…/providers/Microsoft.OperationalInsights/workspaces/…``"""

    @classmethod
    def from_ids(cls, tenant_id: str | None = None,
                 sentinel_workspace_resource_id: str | None = None) -> PortalLinks:
        """Links for one tenant and Sentinel workspace; blank values count as unset."""
        return cls(tenant_id=(tenant_id or "").strip() or None,
                   sentinel_workspace_resource_id=(sentinel_workspace_resource_id or "").strip()
                   or None)

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
        tenant = f"@{quote(self.tenant_id, safe='')}" if self.tenant_id else ""
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
    """The MITRE ATT&CK page of a well-formed technique id (``T1059`` or ``T1059.001``)."""
    match = _TECHNIQUE.match(technique)
    if not match:
        return None
    sub = f"{match.group(2)}/" if match.group(2) else ""
    return f"{MITRE_TECHNIQUES}T{match.group(1)}/{sub}"
