"""Health records as plain data (no storage, no I/O)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Literal

NoticeKind = Literal["failing", "auto-disabled", "recovered", "re-enabled", "incomplete",
                     "access"]
FAILURE_NOTICES: frozenset[str] = frozenset({"failing", "auto-disabled"})


@dataclass(frozen=True)
class HuntHealth:
    """What huntwire knows about one hunt's recent runs."""

    hunt_id: str
    name: str = ""
    consecutive_failures: int = 0
    permanent_failures: int = 0
    """Consecutive failures that were permanent and may auto-disable the hunt."""
    first_failure: datetime | None = None
    last_failure: datetime | None = None
    last_success: datetime | None = None
    last_run: datetime | None = None
    last_error: str | None = None
    last_error_permanent: bool = False
    last_error_kind: str | None = None
    rows: int = 0
    truncated: bool = False
    partial: bool = False
    pending: int = 0
    pending_since: datetime | None = None
    """Claim time of the oldest finding still waiting for Teams."""
    file_hash: str | None = None
    disabled: bool = False
    disabled_since: datetime | None = None
    disabled_hash: str | None = None
    """The file's content hash when it was disabled; another hash re-enables it."""
    reenabled: bool = False
    """Re-enabled after its file changed; announced with its next success."""
    notices_sent: frozenset[str] = frozenset()
    etag: str | None = field(default=None, compare=False)

    def without_notices(self, kinds: set[str]) -> HuntHealth:
        return replace(self, notices_sent=self.notices_sent - kinds)


@dataclass(frozen=True)
class SourceHealth:
    """Access to one query source (``defender`` or ``sentinel``): announced once per problem."""

    source: str
    forbidden_since: datetime | None = None
    notice_sent: bool = False
    etag: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class NotifierHealth:
    """The Teams channel as seen by the last runs."""

    state: Literal["ok", "failing", "unconfigured", "unknown"] = "unknown"
    since: datetime | None = None
    last_ok: datetime | None = None
    last_failure: datetime | None = None
    last_error: str | None = None
    pending: int = 0
    held_back_since: datetime | None = None
    etag: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class HeartbeatTally:
    """Counts since the last heartbeat, and the UTC day it was last sent."""

    since: datetime | None = None
    last_sent_day: str | None = None
    runs: int = 0
    hunt_runs: dict[str, int] = field(default_factory=dict)
    failures: int = 0
    findings: int = 0
    incidents: int = 0
    suppressed: int = 0
    hunt_rows: dict[str, int] = field(default_factory=dict)
    """Rows each hunt's query returned (before suppression) since :attr:`since`."""
    hunt_suppressed: dict[str, int] = field(default_factory=dict)
    """Rows of each hunt that suppression rules or snoozes silenced since :attr:`since`."""
    etag: str | None = field(default=None, compare=False)

    def fully_suppressed(self) -> dict[str, int]:
        """Hunts whose every returned row was suppressed since :attr:`since` (hunt -> rows): a
        rule or snooze may be silencing the hunt entirely."""
        return {hunt: rows for hunt, rows in self.hunt_rows.items()
                if rows > 0 and self.hunt_suppressed.get(hunt, 0) >= rows}


@dataclass(frozen=True)
class DeploymentBeat:
    """A multi-tenant deployment's one daily heartbeat: the UTC day it was last sent, and the
    claim of the instance posting it now (``shared.health.deployment``)."""

    last_sent_day: str | None = None
    claimed_day: str | None = None
    claimed_at: datetime | None = None
    etag: str | None = field(default=None, compare=False)


@dataclass(frozen=True)
class TenantTally:
    """One tenant's part in the deployment heartbeat: its tally and hunts, or why they could
    not be read (*error*: the tenant is named as unreadable)."""

    name: str
    tally: HeartbeatTally | None = None
    hunts: Mapping[str, HuntHealth] = field(default_factory=dict)
    channel: NotifierHealth | None = None
    """The tenant's findings channel, as its last runs saw it."""
    error: str | None = None


@dataclass(frozen=True)
class Notice:
    """One message for the channel about one hunt (or one source, for ``access``)."""

    kind: NoticeKind
    hunt_id: str
    hunt_name: str
    at: datetime
    since: datetime | None = None
    failures: int = 0
    error: str | None = None
    advice: str = ""
    source: str | None = None
