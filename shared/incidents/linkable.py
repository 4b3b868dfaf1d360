"""Whether a hunt's findings can be linked into incidents by more than time (``validate``).

Correlation joins findings of one device that share a process (a process id *with* its
creation time, in any lineage column pair) or an event (``ReportId``); without either, a hunt's
findings join an incident only by falling within the time window, and a process it saw that
launched something hours later is a separate incident.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from ..hunt import Hunt
from .correlate import DEVICE_ID_COLUMNS, DEVICE_NAME_COLUMNS, LINEAGE_COLUMNS

EVENT_KEYS = ("ReportId",)


def lineage_warning(hunt: Hunt, columns: Sequence[str]) -> str | None:
    """The warning for a device hunt whose result *columns* carry neither a lineage pair nor an
    event key; None when it can be linked (or names no device, so lineage cannot apply)."""
    returned = set(columns)
    if not returned & {*DEVICE_ID_COLUMNS, *DEVICE_NAME_COLUMNS}:
        return None
    if any(pid in returned and created in returned for pid, created in LINEAGE_COLUMNS):
        return None
    if returned & set(EVENT_KEYS):
        return None
    pairs = ", ".join(f"{pid}+{created}" for pid, created in LINEAGE_COLUMNS[:2])
    return (f"{hunt.path.name}: returns no process id with its creation time ({pairs}) and no "
            "event key (ReportId): its findings join incidents by time only, never by process "
            "lineage; add those columns to the query's project")


def lineage_warnings(hunts: Iterable[Hunt], checked: Mapping[str, object]) -> list[str]:
    """:func:`lineage_warning` for every hunt ``validate`` analysed (``checked``: hunt id ->
    ``kql_check.CheckedQuery``)."""
    found = []
    for hunt in hunts:
        answer = checked.get(hunt.id)
        columns = [name for name, _ in getattr(answer, "columns", [])]
        warning = lineage_warning(hunt, columns) if answer is not None else None
        if warning:
            found.append(warning)
    return found
