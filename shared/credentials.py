"""The Azure credential huntwire runs with, and the rule for where its tokens may be sent."""

from __future__ import annotations

import ipaddress
import os
from urllib.parse import urlsplit

from azure.core.credentials import TokenCredential
from azure.identity import DefaultAzureCredential, ManagedIdentityCredential


def make_credential(client_id: str | None = None) -> TokenCredential:
    """Managed identity inside Azure Functions (``IDENTITY_ENDPOINT`` is set), else the default
    chain (environment, workload identity, Azure CLI, ...) for local runs.

    *client_id* selects a user-assigned identity; None means the system-assigned one.
    """
    if os.environ.get("IDENTITY_ENDPOINT"):
        return ManagedIdentityCredential(client_id=client_id)
    return DefaultAzureCredential(managed_identity_client_id=client_id)


def is_loopback(url: str) -> bool:
    host = urlsplit(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def https_required(endpoint: str) -> bool:
    """Whether bearer tokens to *endpoint* must travel over TLS.

    Plain http is accepted for loopback only (the local stand-ins in ``devtools``); anything else
    must be https, and an http endpoint elsewhere is refused rather than sent a token.
    """
    scheme = urlsplit(endpoint).scheme.lower()
    if scheme == "https":
        return True
    if scheme == "http" and is_loopback(endpoint):
        return False
    raise ValueError(f"refusing to send tokens to {endpoint!r}: use https (plain http is "
                     "allowed for loopback test servers only)")
