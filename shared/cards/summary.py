"""Read back what a posted card says at a glance: a hunt's digest or an incident post (for logs,
the demo, the local webhook receiver and tests)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .payload import card_of

HEADER_ID = "incident-header"
"""``id`` of an incident card's header container (how a reader tells it from a digest)."""
HUNTS_ID = "incident-hunts"
_FINDINGS = re.compile(r"([\d,]+) (?:new )?findings?\b")


@dataclass(frozen=True)
class DigestSummary:
    severity: str
    hunt_name: str
    """The digest's hunt; for an incident post, its headline hunt (the title's)."""
    total_new: int
    """Findings the post delivers."""
    findings_shown: int
    kind: str = "digest"
    """``digest``, ``incident`` (opens one) or ``update``."""
    incident_id: str | None = None
    hunts: tuple[tuple[str, int], ...] = ()
    """(hunt name, findings of this post) of every hunt the post names."""
    where: str | None = None
    """The incident's device (or account, address)."""


def summarize_digest(payload: Mapping[str, Any]) -> DigestSummary:
    """Read back the header of a digest (``build_digest``) or an incident post."""
    body = card_of(payload)["body"]
    if body and body[0].get("id") == HEADER_ID:
        return _incident_summary(body)
    title, counts = (block["inlines"] for block in body[0]["items"][:2])
    total = int(str(counts[0]["text"]).split(" ")[0].replace(",", ""))
    return DigestSummary(
        severity=str(title[0]["text"]),
        hunt_name=str(title[-1]["text"]),
        total_new=total,
        findings_shown=sum(1 for element in body[1:] if element.get("type") == "Container"),
        hunts=((str(title[-1]["text"]), total),),
    )


def _incident_summary(body: list[dict[str, Any]]) -> DigestSummary:
    title, facts = (block["inlines"] for block in body[0]["items"][:2])
    label, _, incident_id = str(facts[0]["text"]).rpartition(" ")
    total = next((_count(str(r["text"])) for r in facts if _FINDINGS.search(str(r["text"]))), 0)
    hunts_block = next((e for e in body if e.get("id") == HUNTS_ID), None)
    hunts = []
    for line in (hunts_block or {}).get("items", [])[1:]:
        inlines = line.get("inlines", [])
        if len(inlines) >= 3:
            hunts.append((str(inlines[1]["text"]), _count(str(inlines[2]["text"]))))
    events = sum(1 for e in body[1:] if e.get("type") == "Container" and e.get("separator"))
    return DigestSummary(severity=str(title[0]["text"]), hunt_name=str(title[2]["text"]),
                         total_new=total, findings_shown=events,
                         kind="update" if label == "Update to" else "incident",
                         incident_id=incident_id, hunts=tuple(hunts),
                         where=str(title[4]["text"]) if len(title) > 4 else None)


def _count(text: str) -> int:
    match = _FINDINGS.search(text)
    return int(match.group(1).replace(",", "")) if match else 0
