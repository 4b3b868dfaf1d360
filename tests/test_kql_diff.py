"""Differential set (issue 23): our own hunts over fixture events, each with the rows Kusto returns,
written by hand from Microsoft's KQL reference (tests/fixtures/kql_diff/cases.yaml). A query that
runs locally must give exactly these rows; each query also passes Microsoft's parser."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.hunt import Hunt
from shared.kql_check import analyse
from shared.sources.local import LocalSource
from shared.window import Window

FOLDER = Path(__file__).parent / "fixtures" / "kql_diff"
NOW = datetime(2026, 11, 2, 12, 0, tzinfo=UTC)
CASES: list[dict[str, Any]] = yaml.safe_load((FOLDER / "cases.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def engine() -> LocalSource:
    return LocalSource({t: FOLDER / f"{t}.jsonl" for t in
                        ("DeviceProcessEvents", "DeviceNetworkEvents")})


def expected_rows(case: dict[str, Any]) -> list[dict[str, Any]]:
    def value(v: Any) -> Any:
        if isinstance(v, str) and v.endswith("Z") and v[:4].isdigit():
            return datetime.fromisoformat(v)
        return v
    return [{k: value(v) for k, v in row.items()} for row in case["expected"]]


@pytest.mark.parametrize("case", CASES, ids=[c["name"] for c in CASES])
def test_local_result_is_the_hand_written_one(engine: LocalSource, case: dict[str, Any]) -> None:
    hunt = Hunt(id="77777777-0000-4000-8000-000000000001", name=case["name"],
                query=case["query"], source="defender", path=Path("diff.yaml"))
    rows = engine.run(hunt, Window(NOW - timedelta(hours=4), NOW)).rows
    assert rows == expected_rows(case)


@pytest.mark.skipif(shutil.which("node") is None, reason="Microsoft's KQL parser runs in node")
def test_every_case_passes_microsofts_parser() -> None:
    checked = analyse({c["name"]: c["query"] for c in CASES}, "defender")
    problems = {n: [d.message for d in r.diagnostics] for n, r in checked.items() if r.diagnostics}
    assert problems == {}
