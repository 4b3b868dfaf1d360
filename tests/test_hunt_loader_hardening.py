"""Hostile hunt files: each is one clear error, never a crash, and never stops the other files."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import pytest

from shared.cli import main
from shared.hunt import HuntError, load_hunt, load_hunts

GUID = "11111111-2222-3333-4444-555555555555"
VALID = f"""\
id: {GUID}
name: Test hunt
source: sentinel
query: |
  SecurityEvent
  | where EventID == 4688
"""
GOOD = """\
id: 99999999-2222-3333-4444-555555555555
name: Good hunt
source: defender
query: |
  DeviceProcessEvents
  | project Timestamp, DeviceId, ReportId
"""
BILLION_LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, "
    f"*{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}, *{chr(97 + i)}]\n"
    for i in range(9))

# file text -> the reason it is refused (a substring of the error)
HOSTILE: dict[str, tuple[bytes, str]] = {
    "deep-nesting": ((VALID + "tags: " + "[" * 50_000 + "]" * 50_000 + "\n").encode(),
                     "nested deeper than"),
    "deep-mapping": ((VALID + "tags: " + "{a: " * 5_000 + "1" + "}" * 5_000 + "\n").encode(),
                     "nested deeper than"),
    "huge-duration": ((VALID + "frequency: 99999999999999999999d\n").encode(),
                      "is not a duration"),
    "huge-lookback": ((VALID + "lookback: 999999999d\n").encode(), "longer than 30 days"),
    "huge-realert": ((VALID + "realertAfter: 999999999d\n").encode(), "longer than 365 days"),
    "zero-frequency": ((VALID + "frequency: 0s\n").encode(), "more than 0"),
    "alias-bomb": ((VALID + BILLION_LAUGHS).encode(), "aliases"),
    "lone-surrogate": (VALID.replace("name: Test hunt", 'name: "bad \\ud800 name"').encode(),
                       "lone surrogate (U+D800)"),
    "latin-1": (VALID.replace("Test hunt", "Caf\u00e9").encode("latin-1"), "not valid UTF-8"),
    "duplicate-key": ((VALID + "name: Second name\n").encode(), "duplicate key 'name'"),
    "id-trailing-newline": (VALID.replace(f"id: {GUID}", f'id: "{GUID}\\n"').encode(),
                            "does not match"),
    "duration-trailing-newline": ((VALID + 'lookback: "4h\\n"\n').encode(), "not a duration"),
    "huge-file": ((VALID + "description: " + "x" * 1_100_000 + "\n").encode(), "bytes, more"),
}


@pytest.fixture(scope="module")
def hostile_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("hostile")
    for name, (data, _) in HOSTILE.items():
        (folder / f"{name}.yaml").write_bytes(data)
    (folder / "zz-good.yaml").write_text(GOOD)
    return folder


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_each_hostile_file_is_one_clear_error(hostile_folder: Path, name: str) -> None:
    with pytest.raises(HuntError) as caught:
        load_hunt(hostile_folder / f"{name}.yaml")
    assert HOSTILE[name][1] in caught.value.reason


def test_hostile_files_stop_nothing(hostile_folder: Path) -> None:
    result = load_hunts(hostile_folder)
    assert [h.path.name for h in result.hunts] == ["zz-good.yaml"]
    assert sorted(Path(e.path).stem for e in result.errors) == sorted(HOSTILE)


def test_validate_and_run_agree_on_hostile_files(hostile_folder: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """`validate` and the runner's loader (shared.app.load_valid_hunts) use one loader."""
    from shared.app import load_valid_hunts

    main(["validate", "--hunts", str(hostile_folder), "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert sorted(Path(e["file"]).stem for e in report["errors"]) == sorted(HOSTILE)
    assert [h.path.name for h in load_valid_hunts(hostile_folder)] == ["zz-good.yaml"]


def test_duplicate_key_names_key_and_line(tmp_path: Path) -> None:
    path = tmp_path / "h.yaml"
    path.write_text(VALID + "name: again\n")
    with pytest.raises(HuntError) as caught:
        load_hunt(path)
    assert caught.value.line == 7
    assert "duplicate key 'name'" in str(caught.value)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be",
                                      "utf-32"])
def test_files_with_a_byte_order_mark_load(tmp_path: Path, encoding: str) -> None:
    text = VALID.replace("Test hunt", "Caf\u00e9 \u2013 hunt")
    data = text.encode(encoding)
    bom = {"utf-16-le": codecs.BOM_UTF16_LE, "utf-16-be": codecs.BOM_UTF16_BE}.get(encoding, b"")
    (tmp_path / "h.yaml").write_bytes(bom + data)
    hunt, _ = load_hunt(tmp_path / "h.yaml")
    assert hunt.name == "Caf\u00e9 \u2013 hunt"
    assert hunt.query.startswith("SecurityEvent\n")


@pytest.mark.parametrize("suffix", [".yaml", ".yml", ".YAML", ".YML", ".Yaml"])
def test_every_letter_case_of_the_suffix_loads(tmp_path: Path, suffix: str) -> None:
    (tmp_path / f"h{suffix}").write_text(VALID)
    (tmp_path / "notes.txt").write_text("not a hunt")
    assert [h.path.name for h in load_hunts(tmp_path).hunts] == [f"h{suffix}"]


def test_control_characters_are_escaped_when_printed(tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "evil\x1b[2J.yaml").write_text(VALID + "\x1b[31mkey: 1\nseverity: Huge\n")
    assert main(["validate", "--hunts", str(tmp_path)]) == 1
    captured = capsys.readouterr()
    assert "\x1b" not in captured.err + captured.out
    assert "evil\\x1b[2J.yaml" in captured.err


def test_anchors_without_aliases_and_plain_files_still_load(tmp_path: Path) -> None:
    (tmp_path / "h.yaml").write_text(VALID + "tags: &t [a, b]\n")
    hunt, _ = load_hunt(tmp_path / "h.yaml")
    assert hunt.id == GUID


def test_a_stub_saying_the_query_moved_is_a_warning(tmp_path: Path) -> None:
    (tmp_path / "stub.yaml").write_text(
        f"id: {GUID}\nname: Moved\ndescription: |\n  'As part of content migration, this file "
        "is moved to new location. you can find here: https://example.test/q.yaml'\n")
    (tmp_path / "noquery.yaml").write_text(f"id: {GUID.replace('1', '7')}\nname: No query\n")
    result = load_hunts(tmp_path)
    assert result.hunts == []
    assert [Path(e.path).name for e in result.errors] == ["noquery.yaml"]
    assert any("says it moved: https://example.test/q.yaml" in w for w in result.warnings)


def test_empty_metadata_is_ignored_with_a_warning(tmp_path: Path) -> None:
    (tmp_path / "h.yaml").write_text(VALID + "tactics:\nrelevantTechniques:\n  -\n")
    hunt, warnings = load_hunt(tmp_path / "h.yaml")
    assert hunt.tactics == ()
    assert hunt.techniques == ()
    assert len(warnings) == 2
    assert "'tactics' is empty" in warnings[0]
