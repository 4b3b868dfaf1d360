"""The harness of the local engine's case tables (``test_kql_semantics``, ``test_kql_parity``):
each case is a query and the rows it must give, run on the local engine and checked by
Microsoft's parser."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from shared.hunt import Hunt
from shared.kql_check import analyse
from shared.sources.local import LocalSource
from shared.window import Window

NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)


def run_case(engine: LocalSource, query: str, *, hunt_id: str, name: str) -> list[dict[str, Any]]:
    """The rows *query* gives on the local engine, as a Defender hunt over the last 4 hours."""
    hunt = Hunt(id=hunt_id, name=name, query=query, source="defender", path=Path(f"{name}.yaml"))
    rows: list[dict[str, Any]] = engine.run(hunt, Window(NOW - timedelta(hours=4), NOW)).rows
    return rows


def diagnostics(cases: Mapping[str, tuple[str, Any]]) -> dict[str, list[str]]:
    """Microsoft's parser's diagnostics of every case's query, by case name."""
    checked = analyse({name: query for name, (query, _) in cases.items()}, "defender")
    return {name: [f"{d.code}: {d.message}" for d in result.diagnostics]
            for name, result in checked.items()}
