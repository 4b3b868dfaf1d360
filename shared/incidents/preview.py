"""``huntwire preview-card``: the incident card of sample findings or eval output (the hunts and
their rows come from the command, ``shared.cli.preview``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from ..hunt import Hunt
from ..ledger.keys import event_time_of
from ..preview import SAMPLE_NOW
from .correlate import Evidence, Group, correlate, device_name
from .lineage import reads_process_events
from .model import HuntRef, Incident, IncidentPost
from .pipeline import key_columns
from .store import partition_of


def incident_preview(hunts: Sequence[Hunt], matches: Mapping[str, list[dict[str, Any]]]
                     ) -> tuple[Hunt, int, IncidentPost]:
    """(the most severe hunt, findings, the post) of the most severe incident that *matches*
    (hunt id -> result rows) make. ValueError when there is no match to build one from."""
    hunts = [hunt for hunt in hunts if matches.get(hunt.id)]
    if not hunts:
        raise ValueError("no hunt with matches to build an incident from")
    evidence = evidence_of_rows(hunts, matches)
    group = max(correlate(evidence), key=lambda g: (_rank(g.severity), len(g.evidence)))
    incident = incident_of(group)
    top = max(hunts, key=lambda h: _rank(h.severity))
    return top, len(group.evidence), IncidentPost("opened", incident, tuple(group.evidence))


def _rank(severity: str) -> int:
    return {"High": 3, "Medium": 2, "Low": 1}.get(severity, 0)


def evidence_of_rows(hunts: Sequence[Hunt], matches: Mapping[str, list[dict[str, Any]]]
                     ) -> list[Evidence]:
    evidence = []
    for hunt in hunts:
        process_events = reads_process_events(hunt.query)
        for row in matches.get(hunt.id, []):
            moment = event_time_of(hunt, row) or SAMPLE_NOW
            key = hashlib.sha256(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()
            evidence.append(Evidence(hunt.id, hunt.name, hunt.severity, hunt.techniques,
                                     hunt.evidence_only, row, moment, key[:32], hunt.source,
                                     keys=key_columns(hunt, row), listed=hunt.teams.columns,
                                     entities=hunt.entity_columns,
                                     process_events=process_events))
    return evidence


def incident_of(group: Group) -> Incident:
    """An unsaved incident for *group* (preview id ``HW-<day>-<device>-01``)."""
    row = next((e.row for e in group.evidence if e.row.get("DeviceId")), group.evidence[0].row)
    device_id = str(row.get("DeviceId") or "")
    tag = device_id[:4].upper() if len(device_id) == 40 else "0000"
    return Incident(
        id=f"HW-{group.start:%Y%m%d}-{tag}-01", scope=group.scope,
        partition=partition_of(group.scope),
        device=next((device_name(e.row) for e in group.evidence if device_name(e.row)), ""),
        device_id=device_id, first_event=group.start, last_event=group.end,
        updated_at=datetime.now(UTC), opened=True,
        hunts={e.hunt_id: HuntRef(e.hunt_id, e.hunt_name, e.severity, e.evidence_only, e.source)
               for e in group.evidence})
