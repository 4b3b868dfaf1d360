"""The incident record shared by the store, the card and the pipeline."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .correlate import SEVERITY_ORDER


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
    announced: int = 0
    """Posts about this incident that Teams accepted."""
    posts: int = 0
    """Posts intended so far (the open card, then updates); numbers the next update."""
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
