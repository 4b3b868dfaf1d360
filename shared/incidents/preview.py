"""``huntwire preview-card --incident``: the incident card of sample findings or eval output."""

from __future__ import annotations

import argparse
import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..hunt import Hunt, load_hunts
from ..ledger.keys import event_time_of
from ..preview import SAMPLE_NOW, sample_hunt, sample_rows
from .correlate import Evidence, Group, correlate, device_name
from .model import HuntRef, Incident, IncidentPost
from .store import partition_of


def incident_preview(args: argparse.Namespace) -> tuple[Hunt, int, IncidentPost]:
    """(the most severe hunt, findings, the post) for the preview command's arguments: the most
    severe incident of the sample findings or of ``--from-eval`` output. ValueError when there
    is no match to build one from."""
    if args.from_eval:
        report = json.loads(Path(args.from_eval).read_text(encoding="utf-8"))
        matches = {str(e["id"]).lower(): list(e.get("matches") or []) for e in report["hunts"]}
        hunts = [h for h in _hunts(args) if matches.get(h.id)]
    else:
        hunt = sample_hunt()
        hunts, matches = [hunt], {hunt.id: sample_rows()}
    if not hunts:
        raise ValueError("no hunt with matches to build an incident from")
    evidence = evidence_of_rows(hunts, matches)
    group = max(correlate(evidence), key=lambda g: (_rank(g.severity), len(g.evidence)))
    incident = incident_of(group)
    top = max(hunts, key=lambda h: _rank(h.severity))
    return top, len(group.evidence), IncidentPost("opened", incident, tuple(group.evidence))


def _hunts(args: argparse.Namespace) -> list[Hunt]:
    from ..cli.common import hunts_dir

    return load_hunts(hunts_dir(args)).hunts


def _rank(severity: str) -> int:
    return {"High": 3, "Medium": 2, "Low": 1}.get(severity, 0)


def evidence_of_rows(hunts: Sequence[Hunt], matches: Mapping[str, list[dict[str, Any]]]
                     ) -> list[Evidence]:
    evidence = []
    for hunt in hunts:
        for row in matches.get(hunt.id, []):
            moment = event_time_of(hunt, row) or SAMPLE_NOW
            key = hashlib.sha256(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()
            evidence.append(Evidence(hunt.id, hunt.name, hunt.severity, hunt.techniques,
                                     hunt.evidence_only, row, moment, key[:32], hunt.source))
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
