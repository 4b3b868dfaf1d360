"""The ``Ledger``: findings, pending findings with their leases, and checkpoints of every hunt,
in one Table Storage account. Each piece lives in its own module; this one wires them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from azure.core.credentials import TokenCredential
from azure.data.tables import TableClient, TableServiceClient

from ..hunt import Hunt
from .checkpoints import Checkpoints
from .keys import check_partition_key, observe
from .model import Checkpoint, Deadline, Finding, LedgerError, RecordResult, require_aware, utcnow
from .pending import Leases, Markers, Pending
from .recording import RECORD_CHUNK, Recording
from .tables import Tables, storage_errors

DEFAULT_CLAIM_LEASE: Final = timedelta(minutes=15)
CLIENT_OPTIONS: Final[dict[str, Any]] = {
    "connection_timeout": 10,
    "read_timeout": 60,
    "retry_total": 3,
    "retry_backoff_factor": 0.8,
    "retry_backoff_max": 20,
}
"""Bounded timeouts (seconds) and retries for every Table Storage request."""
_LEDGER_OPTIONS: Final = frozenset({"findings_table", "pending_table", "checkpoints_table",
                                    "claim_lease", "point_lookup_limit", "lookup_workers",
                                    "clock", "record_chunk"})


class Ledger:
    """Findings, pending markers and checkpoints of every hunt. Make one per run: its leases
    (claims and ``take_pending``) belong to it."""

    def __init__(self, service: TableServiceClient, *, findings_table: str = "huntwireFindings",
                 pending_table: str = "huntwirePending",
                 checkpoints_table: str = "huntwireCheckpoints",
                 claim_lease: timedelta = DEFAULT_CLAIM_LEASE, point_lookup_limit: int = 98,
                 lookup_workers: int = 4, clock: Callable[[], datetime] = utcnow,
                 record_chunk: int = RECORD_CHUNK) -> None:
        self._tables = Tables(service, findings=findings_table, pending=pending_table,
                              checkpoints=checkpoints_table,
                              point_lookup_limit=point_lookup_limit, lookup_workers=lookup_workers)
        self.markers = Markers(self._tables)
        self._leases = Leases(self._tables, claim_lease)
        self._pending = Pending(self._tables, self.markers, self._leases, clock)
        self._checkpoints = Checkpoints(self._tables)
        self._seen_pending: dict[str, tuple[str, ...]] = {}
        self._record_chunk = record_chunk

    @classmethod
    def from_connection_string(cls, connection_string: str, **kw: Any) -> Ledger:
        """A ledger on the account of *connection_string* (e.g. Azurite's).

        Keyword arguments the constructor does not take go to the ``TableServiceClient``.
        """
        ledger_options, client_options = _split_options(kw)
        try:
            service = TableServiceClient.from_connection_string(connection_string,
                                                                **client_options)
        except ValueError:
            raise LedgerError("the storage connection string is not valid") from None
        return cls(service, **ledger_options)

    @classmethod
    def from_endpoint(cls, table_service_uri: str, credential: TokenCredential,
                      **kw: Any) -> Ledger:
        """A ledger on *table_service_uri* authenticated with *credential* (managed identity).

        Keyword arguments the constructor does not take go to the ``TableServiceClient``.
        """
        ledger_options, client_options = _split_options(kw)
        service = TableServiceClient(endpoint=table_service_uri, credential=credential,
                                     **client_options)
        return cls(service, **ledger_options)

    def record(self, hunt: Hunt, rows: Sequence[Mapping[str, Any]], now: datetime, *,
               deadline: Deadline | None = None) -> RecordResult:
        """Remember *rows*; claim the findings no run has seen, bump the others.

        Findings are written oldest event first, in chunks of ``record_chunk``; once *deadline*
        has passed no new chunk starts, and ``unrecorded``/``first_unrecorded`` say what is left
        (everything written stays written, markers before findings).

        A finding is in ``new`` of exactly one call, however many runs overlap, and is leased to
        this ledger for ``claim_lease``. Rows mapping to the same key count once. Re-opening
        (``realertAfter``) needs a finding that was notified and then not seen for that long.
        """
        now = require_aware(now)
        hunt_id = check_partition_key(hunt.id)
        observed = observe(hunt, rows)
        if not observed:
            return RecordResult([], 0, 0)
        with storage_errors("recording findings", hunt_id):
            recorded = Recording(self._tables, self.markers, self._leases, hunt, observed,
                                 now).run(deadline, self._record_chunk)
        self._seen_pending[hunt_id] = recorded.still_pending
        return recorded

    def pending(self, hunt: Hunt) -> list[Finding]:
        """Every claimed, not yet notified finding of *hunt*, oldest first, leased or not.

        For status and inspection; a poster uses ``take_pending``. Reads the hunt's markers and
        the findings they name (never the whole findings table) and prunes stale markers.
        """
        with storage_errors("listing pending findings", hunt.id):
            return [finding for finding, _ in self._pending.listed(hunt.id)]

    def take_pending(self, hunt: Hunt, now: datetime,
                     lease: timedelta | None = None) -> list[Finding]:
        """Pending findings no run holds a lease on, leased to this ledger for *lease*.

        Leases are taken with ETag-conditional writes, so overlapping runs never both get the
        same finding. This run's own claims are already leased to it: post ``record().new``
        plus what this returns. Findings the last ``record()`` of *hunt* saw still pending are
        included even when no pending marker lists them (they are marked again).
        """
        now = require_aware(now)
        seen_pending = self._seen_pending.pop(hunt.id, ())
        with storage_errors("leasing pending findings", hunt.id):
            return self._pending.take(hunt.id, now, lease or self._leases.claim_lease,
                                      seen_pending)

    def release(self, hunt: Hunt, findings: Sequence[Finding]) -> int:
        """Give back this ledger's leases on *findings* after a failed post, so the next run
        posts them at once. Returns how many leases were released."""
        keys = _keys_of(hunt, findings, "release")
        if not keys:
            return 0
        with storage_errors("releasing leases", hunt.id):
            return self._leases.release(hunt.id, keys)

    def mark_notified(self, hunt: Hunt, findings: Sequence[Finding], now: datetime) -> None:
        """Record that the notifier accepted *findings*; they leave the pending list."""
        now = require_aware(now)
        keys = _keys_of(hunt, findings, "mark_notified")
        if not keys:
            return
        with storage_errors("marking findings notified", hunt.id):
            self._pending.mark_notified(hunt.id, keys, now)

    def checkpoint(self, hunt_id: str) -> Checkpoint | None:
        """The stored checkpoint of *hunt_id*, or None before its first run."""
        return self._checkpoints.read(hunt_id)

    def save_checkpoint(self, checkpoint: Checkpoint) -> None:
        """Store *checkpoint*, replacing the previous one (fields set to None are removed)."""
        self._checkpoints.save(checkpoint)

    @property
    def findings_client(self) -> TableClient:
        """The table of findings without an event day (``u-`` keys)."""
        return self._tables.undated_findings

    def findings_clients(self) -> list[TableClient]:
        """Every findings table that exists: the undated one and one per event day."""
        return self._tables.all_findings()

    @property
    def pending_client(self) -> TableClient:
        return self._tables.pending


def ledger_from_settings(settings: Mapping[str, str], credential: TokenCredential | None = None,
                         **kw: Any) -> Ledger:
    """The ledger the app settings describe.

    ``HUNTWIRE_STORAGE`` (a connection string, e.g. Azurite's) wins; otherwise
    ``HUNTWIRE_STORAGE__tableServiceUri`` with *credential* (the managed identity).
    """
    connection_string = settings.get("HUNTWIRE_STORAGE", "").strip()
    if connection_string:
        return Ledger.from_connection_string(connection_string, **kw)
    endpoint = settings.get("HUNTWIRE_STORAGE__tableServiceUri", "").strip()
    if not endpoint:
        raise LedgerError("no storage configured: set HUNTWIRE_STORAGE or "
                          "HUNTWIRE_STORAGE__tableServiceUri")
    if credential is None:
        raise LedgerError("HUNTWIRE_STORAGE__tableServiceUri needs a credential "
                          "(managed identity)")
    return Ledger.from_endpoint(endpoint, credential, **kw)


def _keys_of(hunt: Hunt, findings: Sequence[Finding], action: str) -> list[str]:
    """The distinct keys of *findings*, which must all belong to *hunt*."""
    if any(finding.hunt_id != hunt.id for finding in findings):
        raise LedgerError(f"{action} got findings of another hunt than {hunt.id}",
                          hunt_id=hunt.id)
    return list(dict.fromkeys(finding.key for finding in findings))


def _split_options(kw: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(Ledger options, TableServiceClient options with the bounded defaults)."""
    ledger = {name: value for name, value in kw.items() if name in _LEDGER_OPTIONS}
    client = {**CLIENT_OPTIONS, **{n: v for n, v in kw.items() if n not in _LEDGER_OPTIONS}}
    return ledger, client
