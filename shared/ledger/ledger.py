"""The ``Ledger``: findings, pending findings with their leases, and checkpoints of every hunt,
in one Table Storage account. Each piece lives in its own module; this one wires them."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Final

from azure.data.tables import TableClient

from ..hunt import Hunt
from ..storage import Storage
from .checkpoints import Checkpoints
from .keys import check_partition_key, observe
from .model import Checkpoint, Deadline, Finding, RecordResult, require_aware, utcnow
from .pending import Leases, Markers, Pending
from .recording import RECORD_CHUNK, Recording
from .tables import Tables, storage_errors

DEFAULT_CLAIM_LEASE: Final = timedelta(minutes=15)


class Ledger:
    """Findings, pending markers and checkpoints of every hunt. Make one per run: its leases
    (claims and ``take_pending``) belong to it."""

    def __init__(self, storage: Storage, *, findings_table: str = "huntwireFindings",
                 pending_table: str = "huntwirePending",
                 checkpoints_table: str = "huntwireCheckpoints",
                 claim_lease: timedelta = DEFAULT_CLAIM_LEASE, point_lookup_limit: int = 98,
                 lookup_workers: int = 4, clock: Callable[[], datetime] = utcnow,
                 record_chunk: int = RECORD_CHUNK, lease_owner: str | None = None) -> None:
        self.storage = storage
        self._tables = Tables(storage, findings=findings_table, pending=pending_table,
                              checkpoints=checkpoints_table,
                              point_lookup_limit=point_lookup_limit, lookup_workers=lookup_workers)
        self.markers = Markers(self._tables)
        self._leases = Leases(self._tables, claim_lease)
        if lease_owner:  # a queue cycle's invocations share its leases (shared/fanout)
            self._leases.owner = lease_owner
        self._pending = Pending(self._tables, self.markers, self._leases, clock)
        self._checkpoints = Checkpoints(self._tables)
        self._seen_pending: dict[str, tuple[str, ...]] = {}
        self._record_chunk = record_chunk

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

    def release(self, hunt_id: str, keys: Iterable[str]) -> int:
        """Give back this ledger's leases on the findings *keys* of *hunt_id* after a failed
        post, so the next run posts them at once. Returns how many leases were released."""
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return 0
        with storage_errors("releasing leases", hunt_id):
            return self._leases.release(hunt_id, wanted)

    def mark_notified(self, hunt_id: str, keys: Iterable[str], now: datetime) -> None:
        """Record that the notifier accepted the findings *keys* of *hunt_id*; they leave the
        pending list (keys no longer stored are skipped)."""
        now = require_aware(now)
        wanted = list(dict.fromkeys(keys))
        if not wanted:
            return
        with storage_errors("marking findings notified", hunt_id):
            self._pending.mark_notified(hunt_id, wanted, now)

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
