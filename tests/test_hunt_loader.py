"""The hunt file loader: schema, defaults, and errors that name file, field and reason."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from shared.hunt import HuntError, load_hunt, load_hunts, parse_duration

VALID = """\
id: 11111111-2222-3333-4444-555555555555
name: Test hunt
severity: High
source: defender
query: |
  DeviceProcessEvents
  | where FileName =~ "powershell.exe"
"""


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def test_sentinel_repository_format_loads_unchanged_with_defaults(repo: Path) -> None:
    result = load_hunts(repo / "tests" / "fixtures" / "sentinel-format")
    assert result.errors == []
    assert len(result.hunts) == 2
    for hunt in result.hunts:
        assert hunt.source == "defender"  # inferred from the Defender connector ids
        assert hunt.frequency == timedelta(hours=1)
        assert hunt.lookback == timedelta(hours=4)
        assert hunt.dedup_by == ("DeviceId", "ReportId")
        assert hunt.enabled
    encoded = next(h for h in result.hunts if h.name == "Encoded PowerShell launch")
    assert encoded.techniques == ("T1059.001", "T1027")
    assert "metadata" not in " ".join(result.warnings)  # a known Sentinel key, not a typo


def test_huntwire_keys_override_defaults(tmp_path: Path) -> None:
    path = write(tmp_path, "h.yaml", VALID + "frequency: 30m\nlookback: 2d\nenabled: false\n"
                 "dedupBy: [DeviceId]\nrealertAfter: 7d\nteams:\n  maxFindings: 3\n")
    hunt, warnings = load_hunt(path)
    assert (hunt.frequency, hunt.lookback) == (timedelta(minutes=30), timedelta(days=2))
    assert hunt.enabled is False
    assert hunt.dedup_by == ("DeviceId",)
    assert hunt.realert_after == timedelta(days=7)
    assert hunt.teams.max_findings == 3
    assert warnings == []


def test_query_position_points_at_the_query_text(tmp_path: Path) -> None:
    hunt, _ = load_hunt(write(tmp_path, "h.yaml", VALID))
    assert (hunt.query_line, hunt.query_column) == (6, 3)
    assert hunt.file_position(2, 3) == (7, 5)


@pytest.mark.parametrize(("text", "field", "reason"), [
    ("- just\n- a list\n", None, "must be a YAML mapping, found list"),
    ("", None, "must be a YAML mapping, found empty"),
    (VALID.replace("query: |\n  DeviceProcessEvents\n  | where FileName =~ \"powershell.exe\"\n",
                   ""), "query", "required field is missing"),
    (VALID.replace("severity: High", "severity: Critical"), "severity", "is not one of"),
    (VALID + "lookback: 4 hours\n", "lookback", "is not a duration"),
    (VALID + "frequency: 4h\nlookback: 1h\n", "lookback", "shorter than frequency"),
    (VALID + "lookback: 31d\n", "lookback", "longer than 30 days"),
    (VALID.replace("id: 11111111-2222-3333-4444-555555555555", "id: not-a-guid"), "id",
     "does not match"),
    ("id: [unclosed\n", None, "not valid YAML"),
])
def test_bad_files_name_file_field_and_reason(tmp_path: Path, text: str, field: str | None,
                                              reason: str) -> None:
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(HuntError) as caught:
        load_hunt(path)
    assert caught.value.path == str(path)
    assert caught.value.field == field
    assert reason in caught.value.reason
    assert str(path) in str(caught.value)


def test_a_broken_file_does_not_stop_the_others(tmp_path: Path) -> None:
    write(tmp_path, "a-good.yaml", VALID)
    write(tmp_path, "b-broken.yaml", "query: [\n")
    write(tmp_path, "c-good.yml", VALID.replace("1111", "9999").replace("Test hunt", "Other"))
    result = load_hunts(tmp_path)
    assert [h.name for h in result.hunts] == ["Test hunt", "Other"]
    assert [Path(e.path).name for e in result.errors] == ["b-broken.yaml"]


def test_duplicate_id_is_an_error_naming_both_files(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", VALID)
    write(tmp_path, "b.yaml", VALID.replace("Test hunt", "Copy"))
    result = load_hunts(tmp_path)
    assert len(result.hunts) == 1
    (error,) = result.errors
    assert error.field == "id"
    assert "duplicate id" in error.reason
    assert "a.yaml" in error.reason
    assert error.path.endswith("b.yaml")


def test_unknown_keys_warn_but_load(tmp_path: Path) -> None:
    _, warnings = load_hunt(write(tmp_path, "h.yaml", VALID + "reviewer: alice\n"))
    assert warnings == [f"{tmp_path / 'h.yaml'}: unknown key 'reviewer' ignored"]


@pytest.mark.parametrize(("key", "meant"), [("enabeld: false", "enabled"),
                                            ("lookbak: 2h", "lookback"),
                                            ("Enabled: false", "enabled"),
                                            ("frequncy: 2h", "frequency")])
def test_a_key_that_shadows_a_known_one_is_an_error(tmp_path: Path, key: str,
                                                     meant: str) -> None:
    """``enabeld: false`` would leave the hunt enabled: refused, with the key it looks like."""
    with pytest.raises(HuntError, match=f"did you mean '{meant}'") as raised:
        load_hunt(write(tmp_path, "h.yaml", VALID + key + "\n"))
    assert raised.value.field == key.split(":")[0]
    assert raised.value.line is not None


def test_missing_folder_is_reported(tmp_path: Path) -> None:
    result = load_hunts(tmp_path / "nope")
    assert result.hunts == []
    assert "does not exist" in result.errors[0].reason


@pytest.mark.parametrize(("text", "expected"), [
    ("15m", timedelta(minutes=15)), ("1h", timedelta(hours=1)), ("7d", timedelta(days=7)),
    ("90s", timedelta(seconds=90)),
])
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


def test_sentinel_source_inferred_without_defender_connector(tmp_path: Path) -> None:
    text = VALID.replace("source: defender\n", "requiredDataConnectors:\n"
                         "  - connectorId: SecurityEvents\n")
    hunt, _ = load_hunt(write(tmp_path, "h.yaml", text))
    assert hunt.source == "sentinel"
    assert hunt.time_column == "TimeGenerated"
    assert hunt.dedup_by == ()
