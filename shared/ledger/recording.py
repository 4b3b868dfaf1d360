"""Recording a run's rows: read what exists, then chunk by chunk (oldest events first) list new
keys as pending, claim the new findings (insert-if-absent, so exactly one run claims each), bump
the others, re-open those due. Past a deadline no new chunk starts; the rest is reported."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from azure.core import MatchConditions
from azure.core.exceptions import ResourceExistsError, ResourceModifiedError
from azure.data.tables import TableEntity, UpdateMode

from ..hunt import Hunt
from ..storage import retry_conflicts
from .keys import Observation
from .model import NOTIFIED, PENDING, Deadline, Finding, LedgerError, RecordResult, utc_or_none
from .pending import Leases, Markers
from .tables import Operation, Tables, etag_of, group, merge, submit_in_transactions

UPDATE_ATTEMPTS: Final = 5
LOOKUP_COLUMNS: Final = ["RowKey", "State", "FirstSeen", "LastSeen", "TimesSeen", "EventTime",
                         "NotifiedAt"]

RECORD_CHUNK: Final = 500
"""Distinct findings written between two deadline checks (a few seconds of storage time)."""

Plan = tuple[str, TableEntity, bool]
"""(key, stored entity, re-open it)."""


def due_for_realert(hunt: Hunt, stored: Mapping[str, Any], now: datetime) -> bool:
    """A notified finding not seen for ``realertAfter`` is re-opened when it shows up again."""
    if hunt.realert_after is None or stored.get("State") != NOTIFIED:
        return False
    last_seen = utc_or_none(stored.get("LastSeen"))
    return last_seen is not None and now - last_seen >= hunt.realert_after


def recording_order(observed: Mapping[str, Observation]) -> list[str]:
    """Keys without an event time first, then oldest event first (ties keep the rows' order)."""
    undated = [key for key, obs in observed.items() if obs.event_time is None]
    dated = sorted((key for key, obs in observed.items() if obs.event_time is not None),
                   key=lambda key: observed[key].event_time or datetime.min)
    return [*undated, *dated]


class Recording:
    """One ``Ledger.record()`` call over the distinct findings *observed* in a run's rows."""

    def __init__(self, tables: Tables, markers: Markers, leases: Leases, hunt: Hunt,
                 observed: dict[str, Observation], now: datetime) -> None:
        self._tables = tables
        self._markers = markers
        self._leases = leases
        self.hunt = hunt
        self.observed = observed
        self.now = now
        self.marked: set[str] = set()
        self.new: list[Finding] = []
        self.seen = 0
        self.reopened = 0

    def run(self, deadline: Deadline | None = None, chunk: int = RECORD_CHUNK) -> RecordResult:
        """Record chunk after chunk; once *deadline* passed, start no new chunk (the first
        always runs, so every call makes progress)."""
        stored = self._tables.read_findings(self.hunt.id, self.observed, LOOKUP_COLUMNS)
        ordered = recording_order(self.observed)
        still_pending: list[str] = []
        for start in range(0, len(ordered), chunk):
            if start and deadline is not None and deadline.passed():
                return self._result(still_pending, ordered[start:])
            keys = ordered[start:start + chunk]
            existing = {key: stored[key] for key in keys if key in stored}
            still_pending += self._record_chunk(keys, existing)
        return self._result(still_pending, [])

    def _record_chunk(self, keys: Sequence[str], existing: dict[str, TableEntity]) -> list[str]:
        """Record *keys*; returns those seen again while still pending."""
        absent = [key for key in keys if key not in existing]
        reopen = [key for key, entity in existing.items()
                  if due_for_realert(self.hunt, entity, self.now)]
        self._mark([*absent, *reopen])  # listed before written: a crash loses nothing
        raced = self._claim([self.observed[key] for key in absent])
        existing.update(raced)
        self._touch(existing)
        claimed = {finding.key for finding in self.new}
        self._leases.handed_out |= claimed
        return [key for key, entity in existing.items()
                if entity.get("State") == PENDING and key not in claimed]

    def _result(self, still_pending: Sequence[str], unrecorded: Sequence[str]) -> RecordResult:
        times = [self.observed[key].event_time for key in unrecorded]
        first = None if not times or None in times else min(t for t in times if t is not None)
        position = {key: number for number, key in enumerate(self.observed)}
        self.new.sort(key=lambda finding: position[finding.key])  # the rows' order
        return RecordResult(self.new, self.seen, self.reopened, tuple(still_pending),
                            unrecorded=len(unrecorded), first_unrecorded=first)

    def _mark(self, keys: Sequence[str]) -> None:
        keys = [key for key in keys if key not in self.marked]
        self._markers.write(self.hunt.id, keys, self.now)
        self.marked.update(keys)

    def _claim(self, observations: Sequence[Observation]) -> dict[str, TableEntity]:
        """Insert-if-absent; returns the findings another run inserted first (re-read)."""
        raced: dict[str, TableEntity] = {}
        by_table = group(observations, lambda obs: self._tables.findings_table_name(obs.key))
        for name, table_observations in by_table.items():
            table = self._tables.table(name)
            pairs: list[tuple[tuple[Observation, dict[str, Any]], Operation]] = []
            for obs in table_observations:
                entity = self._claim_entity(obs)
                pairs.append(((obs, entity), ("create", entity, {})))
            for batch, done in submit_in_transactions(table, pairs):
                for obs, entity in batch:
                    try:
                        if not done:
                            table.create_entity(entity)
                        self.new.append(Finding(self.hunt.id, obs.key, obs.row, obs.event_time,
                                                self.now, 1))
                    except ResourceExistsError:
                        raced[obs.key] = table.get_entity(self.hunt.id, obs.key)
        return raced

    def _claim_entity(self, observation: Observation) -> dict[str, Any]:
        """The entity that claims *observation* as a new pending finding, leased to this run."""
        entity: dict[str, Any] = {
            "PartitionKey": self.hunt.id, "RowKey": observation.key, "State": PENDING,
            "FirstSeen": self.now, "LastSeen": self.now, "TimesSeen": 1,
            "Row": observation.row_json, **self._leases.claim_fields(),
        }
        if observation.truncated:
            entity["RowTruncated"] = True
        if observation.event_time is not None:
            entity["EventTime"] = observation.event_time
        return entity

    def _touch(self, existing: Mapping[str, TableEntity]) -> None:
        """Bump every existing finding (ETag-conditional); re-open those due for it."""
        plans = [(key, entity, due_for_realert(self.hunt, entity, self.now))
                 for key, entity in existing.items()]
        self._mark([key for key, _, reopen in plans if reopen])
        for name, table_plans in group(plans, self._plan_table).items():
            pairs = [(plan, merge(self._patch(plan[1], plan[0], plan[2]), etag_of(plan[1])))
                     for plan in table_plans]
            for batch, done in submit_in_transactions(self._tables.table(name), pairs):
                for key, entity, reopen in batch:
                    if done:
                        self._count(key, entity, reopen)
                    else:
                        self._touch_one(key, entity)

    def _plan_table(self, plan: Plan) -> str:
        return self._tables.findings_table_name(plan[0])

    def _touch_one(self, key: str, entity: TableEntity) -> None:
        table = self._tables.findings_for(key)
        current = [entity]

        def attempt() -> None:
            stored = current[0]
            reopen = due_for_realert(self.hunt, stored, self.now)
            if reopen:
                self._mark([key])
            try:
                table.update_entity(self._patch(stored, key, reopen), mode=UpdateMode.MERGE,
                                    etag=etag_of(stored),
                                    match_condition=MatchConditions.IfNotModified)
            except ResourceModifiedError:
                current[0] = table.get_entity(self.hunt.id, key)
                raise
            self._count(key, stored, reopen)

        retry_conflicts(attempt, attempts=UPDATE_ATTEMPTS, error=LedgerError,
                        gave_up=f"finding {key} of hunt {self.hunt.id} kept changing",
                        hunt_id=self.hunt.id)

    def _patch(self, stored: TableEntity, key: str, reopen: bool) -> dict[str, Any]:
        """The merge that records another sighting of *stored* (and re-opens it if asked)."""
        last_seen = utc_or_none(stored.get("LastSeen")) or self.now
        patch: dict[str, Any] = {"PartitionKey": self.hunt.id, "RowKey": key,
                                 "LastSeen": max(last_seen, self.now),
                                 "TimesSeen": int(stored.get("TimesSeen", 0)) + 1}
        if reopen:
            observation = self.observed[key]
            patch.update(State=PENDING, Row=observation.row_json,
                         RowTruncated=observation.truncated, **self._leases.reopen_fields(self.now))
        return patch

    def _count(self, key: str, entity: TableEntity, reopen: bool) -> None:
        if not reopen:
            self.seen += 1
            return
        self.reopened += 1
        obs = self.observed[key]
        first_seen = utc_or_none(entity.get("FirstSeen")) or self.now
        self.new.append(Finding(self.hunt.id, key, obs.row, obs.event_time, first_seen,
                                int(entity.get("TimesSeen", 0)) + 1))
