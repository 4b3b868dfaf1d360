"""Shared fixtures: a real Azurite for the whole session, started and stopped by the test run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from azure.core.credentials import TokenCredential

from devtools.azurite import Azurite, AzuriteQueues
from devtools.identity import IdentityServer
from shared.credentials import make_credential
from shared.schemas import cache_path, clear_cache, use_cache_file

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    """Azurite's Table service on a free loopback port (in memory)."""
    with Azurite() as server:
        yield server


@pytest.fixture(scope="session")
def storage_connection_string(azurite: Azurite) -> str:
    return azurite.connection_string


@pytest.fixture(scope="session")
def azurite_queues() -> Iterator[AzuriteQueues]:
    """Azurite's Queue service on a free loopback port (in memory), for the fan-out tests."""
    with AzuriteQueues() as server:
        yield server


@pytest.fixture(scope="session")
def queue_connection_string(azurite: Azurite, azurite_queues: AzuriteQueues) -> str:
    """One account string with both services: Azurite's tables and its queues."""
    return azurite_queues.connection_string(azurite.table_endpoint)


@pytest.fixture
def repo() -> Path:
    return REPO


@pytest.fixture(autouse=True)
def _no_ambient_azure_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests set the settings they need; nothing leaks in from the developer's shell."""
    for name in list(os.environ):
        if name.startswith("HUNTWIRE_") or name in ("IDENTITY_ENDPOINT", "IDENTITY_HEADER",
                                                    "MSI_ENDPOINT", "MSI_SECRET",
                                                    "AZURE_CLIENT_ID"):
            monkeypatch.delenv(name, raising=False)


@pytest.fixture
def identity(monkeypatch: pytest.MonkeyPatch) -> Iterator[IdentityServer]:
    """A local managed-identity endpoint (``IDENTITY_ENDPOINT``/``IDENTITY_HEADER``), as Azure
    Functions serves it, so azure-identity's real credential code runs."""
    with IdentityServer() as server:
        for name, value in server.env.items():
            monkeypatch.setenv(name, value)
        yield server


@pytest.fixture
def credential(identity: IdentityServer) -> TokenCredential:
    return make_credential(None)


@pytest.fixture
def own_cache(tmp_path: Path) -> Iterator[Path]:
    """A cache file of the test's own; the default one is restored afterwards."""
    before = cache_path()
    path = tmp_path / "schemas.cache.json"
    use_cache_file(path)
    yield path
    use_cache_file(before)
    clear_cache()
