"""The storage settings, read here and nowhere else: ``HUNTWIRE_STORAGE`` (a connection string,
Azurite's locally) wins; else ``HUNTWIRE_STORAGE__tableServiceUri`` with the run's credential."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from azure.core.credentials import TokenCredential

from ..errors import ConfigurationError
from .layer import Storage

if TYPE_CHECKING:
    from ..settings import Settings


def open_storage(settings: Settings, credential: TokenCredential | None = None,
                 **options: Any) -> Storage:
    """The run's storage account. *credential*: the run's one credential (made here from
    ``AZURE_CLIENT_ID`` when the endpoint needs one and none is given)."""
    if settings.storage_connection_string:
        return Storage.from_connection_string(settings.storage_connection_string, **options)
    if not settings.table_service_uri:
        raise ConfigurationError("no storage configured: set HUNTWIRE_STORAGE or "
                                 "HUNTWIRE_STORAGE__tableServiceUri", reason="configuration")
    if credential is None:
        from ..credentials import make_credential

        credential = make_credential(settings.client_id)
    return Storage.from_endpoint(settings.table_service_uri, credential, **options)


def storage_configured(settings: Settings) -> bool:
    return bool(settings.storage_connection_string or settings.table_service_uri)


def needs_credential(settings: Settings) -> bool:
    """Whether the storage settings reach the account with the run's credential."""
    return not settings.storage_connection_string and bool(settings.table_service_uri)
