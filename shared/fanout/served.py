"""The tenants the fan-out serves, and what one worker process keeps between messages.

Without a tenants file: the deployment's one tenant, under the message key ``default`` and on
today's tables (``shared.app.build_runner``, as always). With one: every tenant of the file,
under its tenant id, each with the runner ``shared.tenancy.build_tenant_runner`` builds for the
in-process run (its sources, tables, channel, hunts and suppressions). A process keeps the
tenants file (read again when its size or modification time changes), one managed identity
(its tokens cached) and one set of shared limits (its pacers serve every message it handles).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from azure.core.credentials import TokenCredential

from ..credentials import make_credential
from ..hunt import Hunt
from ..pacing import RateBook
from ..settings import Settings
from ..sources.tenant import SharedLimits
from ..tenants import Tenant, load_tenants, single_tenant
from .messages import DEFAULT_TENANT

FileKey = tuple[Path, int, int]
_tenants: dict[Path, tuple[FileKey, frozenset[str], list[Tenant]]] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class Served:
    """The tenants of one deployment by message key; *multi*: from a tenants file."""

    tenants: dict[str, Tenant]
    multi: bool

    def get(self, key: str) -> Tenant | None:
        return self.tenants.get(key)


def served(settings: Settings, env: Mapping[str, str], hunts: list[Hunt]) -> Served:
    """The deployment's tenants (raises TenantsError for a bad file: the message is retried
    and, if the file stays bad, ends in the poison queue's notice)."""
    if settings.tenants_file is None:
        return Served({DEFAULT_TENANT: single_tenant(settings)}, multi=False)
    return Served({t.key: t for t in cached_tenants(settings.tenants_file, env, hunts)},
                  multi=True)


def cached_tenants(path: Path, env: Mapping[str, str], hunts: list[Hunt]) -> list[Tenant]:
    """The tenants of *path*, read again only when the file (or the hunt ids) changed."""
    resolved = path.resolve()
    try:
        stat = resolved.stat()
        key: FileKey = (resolved, stat.st_size, stat.st_mtime_ns)
    except OSError:
        key = (resolved, -1, -1)
    ids = frozenset(hunt.id for hunt in hunts)
    with _lock:
        kept = _tenants.get(resolved)
        if kept is not None and kept[0] == key and kept[1] == ids and key[1] >= 0:
            return list(kept[2])
    tenants = load_tenants(path, env, known_hunts=ids)
    with _lock:
        _tenants[resolved] = (key, ids, tenants)
    return list(tenants)


_limits: dict[int, SharedLimits] = {}


def process_limits(book: RateBook) -> SharedLimits:
    """The lanes every message of this process shares, paced by *book* (the deployment's: its
    pacers are shared by every instance through the storage account, ``shared.pacing``)."""
    with _lock:
        return _limits.setdefault(id(book), SharedLimits(book=book))


@cache
def process_identity(client_id: str | None, endpoint: str | None) -> TokenCredential:
    """The managed identity of this process (one credential: its tokens are cached), per
    client id and identity endpoint (``IDENTITY_ENDPOINT``, which ``make_credential`` reads)."""
    return make_credential(client_id)
