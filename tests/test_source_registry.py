"""The source registry: one place that says which sources exist and what hunts and cards need."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.app import build_sources
from shared.hunt import Hunt, infer_source, load_hunts
from shared.settings import Settings
from shared.sources.catalog import SOURCES, factory, source_kind, source_names, time_columns
from shared.sources.defender import DefenderSource
from shared.sources.sentinel import SentinelSource


def test_each_source_declares_what_the_rest_of_the_product_reads() -> None:
    defender, sentinel = source_kind("defender"), source_kind("sentinel")

    assert (defender.time_column, sentinel.time_column) == ("Timestamp", "TimeGenerated")
    assert defender.default_dedup == ("DeviceId", "ReportId")
    assert sentinel.default_dedup == ()
    assert (defender.portal_link, sentinel.portal_link) == ("advanced-hunting", "sentinel-logs")
    assert time_columns() == ["Timestamp", "TimeGenerated"]
    assert factory("defender").__module__ == "shared.sources.defender"
    with pytest.raises(KeyError, match="known: defender, sentinel"):
        source_kind("splunk")


@pytest.mark.parametrize(("connector", "expected"), [
    ("MicrosoftThreatProtection", "defender"), ("Microsoft365Defender", "defender"),
    ("MicrosoftDefenderAdvancedThreatProtection", "defender"), ("SecurityEvents", "sentinel")])
def test_a_hunt_without_source_runs_where_its_connector_is(connector: str, expected: str) -> None:
    assert infer_source({"requiredDataConnectors": [{"connectorId": connector}]}) == expected


def test_hunts_read_time_column_and_dedup_from_the_registry(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(
        "id: 3f6c1a52-0000-4000-8000-0000000000a1\nname: A\nseverity: Low\n"
        "requiredDataConnectors: [{connectorId: MicrosoftThreatProtection}]\n"
        "query: DeviceProcessEvents | project Timestamp, DeviceId, ReportId\n")
    [hunt] = load_hunts(tmp_path).hunts

    assert hunt.source == "defender"
    assert hunt.time_column == "Timestamp"
    assert hunt.dedup_by == ("DeviceId", "ReportId")
    assert isinstance(hunt, Hunt)


def test_build_sources_builds_every_configured_source_once() -> None:
    with_workspace = build_sources(Settings(sentinel_workspace_id="5e0c1b2a-0000-4000-8000-0000"
                                                                  "00000001"))
    without = build_sources(Settings())

    assert set(with_workspace) == set(source_names()) == set(SOURCES)
    assert isinstance(with_workspace["defender"], DefenderSource)
    assert isinstance(with_workspace["sentinel"], SentinelSource)
    assert set(without) == {"defender"}, "Sentinel needs a workspace id"
    for built in (*with_workspace.values(), *without.values()):
        built.close()
