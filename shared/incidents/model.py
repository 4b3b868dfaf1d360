"""The incident record shared by the store, the pipeline and the notifiers, and the post a
notifier renders (:class:`IncidentPost`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from .correlate import SEVERITY_ORDER, Evidence

PostKind = Literal["opened", "updated", "storm"]


@dataclass(frozen=True)
class HuntRef:
    """What an incident remembers of a hunt that added evidence to it."""

    id: str
    name: str
    severity: str
    evidence_only: bool = False
    source: str = "defender"

    def as_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "severity": self.severity,
                "evidenceOnly": self.evidence_only, "source": self.source}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> HuntRef:
        return cls(str(data["id"]), str(data.get("name") or data["id"]),
                   str(data.get("severity") or "Medium"), bool(data.get("evidenceOnly")),
                   str(data.get("source") or "defender"))


@dataclass
class Incident:
    """One incident: a device (or entity) and the evidence correlated on it, across runs."""

    id: str
    scope: str
    partition: str
    device: str
    device_id: str
    first_event: datetime
    last_event: datetime
    updated_at: datetime
    opened: bool = False
    """An opening hunt matched: the incident was (or is being) posted. Else it is *held*."""
    hunts: dict[str, HuntRef] = field(default_factory=dict)
    members: set[str] = field(default_factory=set)
    process_keys: set[str] = field(default_factory=set)
    event_keys: set[str] = field(default_factory=set)
    techniques: tuple[str, ...] = ()
    accounts: set[str] = field(default_factory=set)
    """Accounts its evidence ran as (lower case; service accounts left out): a second device
    where one of them is active within the window names this incident."""
    announced: int = 0
    """Posts about this incident that Teams accepted."""
    posts: int = 0
    """Posts intended so far (the open card, then updates); numbers the next update."""
    opening_until: datetime | None = None
    """A run is posting the card that opens this incident until then (a concurrent run posts
    its evidence as an update instead of opening it a second time)."""
    etag: str | None = None

    @property
    def severity(self) -> str:
        best = "Informational"
        for hunt in self.hunts.values():
            if SEVERITY_ORDER.get(hunt.severity, 2) > SEVERITY_ORDER.get(best, 0):
                best = hunt.severity
        return best

    @property
    def where(self) -> str:
        return self.device or self.scope.split(":", 1)[-1]


@dataclass(frozen=True)
class StormLine:
    """One incident in a storm summary."""

    incident: Incident
    kind: str
    """``opened`` or ``updated``."""
    title: str
    events: int


@dataclass(frozen=True)
class IncidentPost:
    """What one incident post says; each notifier renders it its own way.

    ``opened``: the whole story of *evidence* on *incident*; ``updated``: only the new
    *evidence*, naming the incident; ``storm``: one summary of *storm* lines instead of more
    than *storm_limit* posts.
    """

    kind: PostKind
    incident: Incident | None = None
    evidence: tuple[Evidence, ...] = ()
    """The findings this post delivers, in event time order."""
    storm: tuple[StormLine, ...] = ()
    storm_limit: int = 0
    suppressed: tuple[tuple[str, int], ...] = ()
    """(rule id, rows) that suppression rules silenced this run in the hunts involved."""
    snooze: tuple[tuple[str, str], ...] = ()
    """(label, URL) of "Snooze 7 days" links, one per hunt and distinct finding identity (up
    to three), each naming what it silences; none when snoozing is not set up."""
    related: tuple[str, ...] = ()
    """Where this incident meets others: "launched by a process of HW-... (WINWORD.EXE on
    ws-fin-014)", "account contoso\\j.doe also active in HW-... on ws-fin-014"."""
    held_back_since: datetime | None = None
    """When the oldest finding was first claimed, if it waited for an earlier delivery."""

    @property
    def findings(self) -> int:
        return len(self.evidence)
