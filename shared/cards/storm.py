"""The storm summary: one card for a run that opened or updated more incidents than the limit.

Lines go highest severity first, and every High or Critical incident is named whatever the
size (the pipeline also posts each of them on its own): a flood of low-severity noise cannot
push the real attack off the card.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..incidents.correlate import SEVERE, severity_rank
from ..incidents.model import StormLine
from .elements import Element, rich, run
from .escape import escape_text
from .payload import MAX_PAYLOAD_BYTES, card_shell, message, payload_size

STYLE = {"Critical": "attention", "High": "attention", "Medium": "warning", "Low": "accent",
         "Informational": "default"}
MAX_STORM_ROWS = 60


def storm_payload(lines: Sequence[StormLine], limit: int,
                  suppressed: Sequence[tuple[str, int]] = ()) -> dict[str, Any]:
    """One summary card for a run that opened or updated more incidents than *limit*."""
    ordered = sorted(lines, key=lambda line: -severity_rank(line.incident.severity))
    opened = sum(1 for line in lines if line.kind == "opened")
    updated = len(lines) - opened
    top = max((line.incident.severity for line in lines), key=severity_rank, default="Medium")
    severity = top if top in STYLE else "Medium"
    severe = [line for line in ordered if severity_rank(line.incident.severity) >= SEVERE]
    header = {"type": "Container", "style": STYLE[severity], "bleed": True, "items": [
        rich(run(severity.upper(), weight="Bolder", color=STYLE[severity]), run("   "),
             run(f"{opened:,} incidents opened, {updated:,} updated in one run", weight="Bolder",
                 size="Large")),
        rich(run(f"Storm guard: more than {limit} posts in one run, so one summary instead. Each "
                 "incident keeps its id; later evidence is posted as updates."
                 + (f" {len(severe):,} High or Critical incident(s) are listed first and each "
                    "is also posted on its own." if severe else ""), isSubtle=True),
             spacing="Small")]}
    must = [_row(line) for line in severe]
    rows = [_row(line) for line in ordered[len(severe):MAX_STORM_ROWS]]
    footer = [e for e in (suppressed_element(suppressed),) if e]
    while True:
        more = len(lines) - len(must) - len(rows)
        severe_more = len(severe) - len(must)
        tail = ([{"type": "TextBlock", "wrap": True, "isSubtle": True,
                  "text": f"…and {more:,} more incidents"
                          + (f", {severe_more:,} of them High or Critical (each posted on its "
                             "own)." if severe_more else ".")}] if more else [])
        payload = message(card_shell([header, *must, *rows, *tail, *footer]))
        if payload_size(payload) <= MAX_PAYLOAD_BYTES or not (rows or must):
            return payload
        if rows:
            rows = rows[: len(rows) * 3 // 4]
        elif all(len(row["inlines"]) > 2 for row in must):
            must = [_row(line, compact=True) for line in severe]  # ids only, then cut
        else:
            must = must[: len(must) * 3 // 4]


def _row(line: StormLine, *, compact: bool = False) -> Element:
    severity = run(f"{line.incident.severity.upper():<6} ", weight="Bolder",
                   color=STYLE.get(line.incident.severity, "default"))
    if compact:
        where = escape_text(line.incident.where, limit=40)
        return rich(severity, run(f"{line.incident.id}  {where}"), spacing="None")
    return rich(severity, run(f"{line.incident.id} ({line.kind})  "),
                run(escape_text(line.title, limit=160)),
                run(f"  ·  {line.events} event(s)", isSubtle=True), spacing="None")


def suppressed_element(suppressed: Sequence[tuple[str, int]]) -> Element | None:
    """Footer: rows that suppression rules silenced this run in the hunts involved."""
    if not suppressed:
        return None
    parts = ", ".join(f"{rows:,} row{'' if rows == 1 else 's'} by {rule}"
                      for rule, rows in suppressed[:8])
    more = f" and {len(suppressed) - 8} more rules" if len(suppressed) > 8 else ""
    return rich(run("Suppressed this run in these hunts: ", isSubtle=True, weight="Bolder"),
                run(escape_text(parts + more, limit=600), isSubtle=True), spacing="Medium",
                separator=True)
