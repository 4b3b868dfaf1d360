"""What one run reports: each hunt's outcome and the run's summary (logged, printed by the CLI,
read by health)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Status = Literal["ok", "failed", "not-due", "skipped", "disabled"]


@dataclass
class HuntOutcome:
    hunt_id: str
    name: str
    status: Status
    window_start: str | None = None
    window_end: str | None = None
    rows: int = 0
    suppressed: dict[str, int] = field(default_factory=dict)
    """Rows the query returned that suppression rules silenced, per rule id."""
    new: int = 0
    seen: int = 0
    posted: int = 0
    """Findings of this hunt in posts this run delivered."""
    pending: int = 0
    held: int = 0
    """Findings notified without a post of their own (an evidence-only hunt's finding kept on
    an incident nobody opened yet, or one an earlier post already delivered)."""
    incidents: int = 0
    """Incidents this hunt's findings went to this run."""
    seconds: float = 0.0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    rows_preview: list[dict[str, Any]] = field(default_factory=list, repr=False)
    """Dry run: the rows the query returned."""
    new_findings: list[dict[str, Any]] = field(default_factory=list, repr=False)
    """The findings this run claimed as new (their ledger summaries)."""
    error_permanent: bool = False
    error_kind: str | None = None
    error_status: int | None = None
    truncated: bool = False
    partial: bool = False
    delivery_failed: bool = False
    """New or pending findings could not be delivered: they stay pending, the run fails."""
    pending_since: str | None = None
    """Claim time of the oldest finding this run found pending (before posting)."""
    unrecorded: int = 0
    """Findings the storage allowance left unrecorded: the checkpoint stays before them and the
    next run records them (a warning, not a failure: nothing is lost)."""
    unrecorded_from: str | None = None
    """Event time of the oldest unrecorded finding (None: one had no event time)."""


@dataclass
class RunSummary:
    started: str
    outcomes: list[HuntOutcome]
    stopped_early: bool = False
    incidents: dict[str, int] = field(default_factory=dict)
    """``opened``, ``updated``, ``held`` incidents and ``posts`` delivered this run."""
    storage_requests: int = 0
    """HTTP requests the run sent to Table Storage (retries included)."""

    @property
    def ok(self) -> bool:
        return not self.stopped_early and all(o.status != "failed" and not o.delivery_failed
                                              for o in self.outcomes)

    def totals(self) -> dict[str, int]:
        keys = ("rows", "new", "posted", "pending")
        counts = {k: sum(getattr(o, k) for o in self.outcomes) for k in keys}
        for status in ("ok", "failed", "not-due", "skipped", "disabled"):
            counts[status.replace("-", "_")] = sum(o.status == status for o in self.outcomes)
        counts["delivery_failed"] = sum(o.delivery_failed for o in self.outcomes)
        counts.update({f"incidents_{k}": v for k, v in self.incidents.items()})
        counts["storage_requests"] = self.storage_requests
        return counts
