"""The one interface every query source implements."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from ..errors import SourceError
from ..hunt import Hunt
from ..window import Window


@dataclass(frozen=True)
class Column:
    name: str
    type: str
    """KQL type name: string, long, int, real, bool, datetime, dynamic, guid, timespan."""


@dataclass
class QueryResult:
    columns: list[Column]
    rows: list[dict[str, Any]]
    """One dict per row, values converted to Python types (datetime aware in UTC)."""
    truncated: bool = False
    """The service returned its row limit; there may be more rows than these."""
    partial: bool = False
    """The service answered with an error alongside the data (e.g. LogsQueryPartialResult)."""
    partial_error: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)


class QueryError(SourceError):
    """A hunt's query could not be run. ``retryable`` tells whether a later run may succeed."""

    def __init__(self, hunt_id: str, message: str, *, status: int | None = None,
                 retryable: bool = False):
        self.hunt_id = hunt_id
        self.message = message
        self.status = status
        self.retryable = retryable
        detail = f" (HTTP {status})" if status else ""
        super().__init__(f"hunt {hunt_id}: {message}{detail}", permanent=not retryable)
        self.message = message


class QuerySource(Protocol):
    name: str

    def run(self, hunt: Hunt, window: Window) -> QueryResult:
        """Run *hunt*'s KQL over *window*; raise QueryError when it cannot."""
        ...
