"""The validation manifest: validate writes it; a hunt edited afterwards is not allowed to run."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from shared.cli import main
from shared.errors import ConfigurationError
from shared.hunt import load_hunts
from shared.identity import Identity
from shared.manifest import load_manifest, manifest_allows, manifest_identity

pytestmark = pytest.mark.skipif(shutil.which("node") is None,
                                reason="validate runs Microsoft's KQL parser in node")

GOOD = """\
id: 00000000-0000-0000-0000-0000000000{n:02d}
name: hunt {n}
source: sentinel
query: |
  SecurityEvent
  | where EventID == 4625
  | summarize Attempts = count() by Account, Computer
"""


@pytest.fixture
def validated(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> tuple[Path, Path]:
    hunts = tmp_path / "hunts"
    hunts.mkdir()
    for n in (1, 2):
        (hunts / f"h{n}.yaml").write_text(GOOD.format(n=n))
    rules = tmp_path / "rules"
    rules.mkdir()
    manifest = tmp_path / "manifest.json"
    code = main(["validate", "--hunts", str(hunts), "--suppressions", str(rules),
                 "--manifest", str(manifest)])
    assert code == 0
    assert "manifest: 2 valid hunt(s) written" in capsys.readouterr().err
    (hunts / "bad.yaml").write_text(GOOD.format(n=3))  # added after validation
    return hunts, manifest


def test_a_failed_validate_writes_no_manifest_and_removes_the_old_one(
        validated: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """A partial manifest would let the hunts that passed deploy while the run looks green."""
    hunts, manifest = validated
    (hunts / "bad.yaml").write_text(GOOD.format(n=3).replace("Account,", "Acount,"))
    code = main(["validate", "--hunts", str(hunts), "--suppressions", str(hunts.parent / "rules"),
                 "--manifest", str(manifest)])
    assert code == 1
    assert "manifest: not written, validation failed; the old one was removed" \
        in capsys.readouterr().err
    assert not manifest.exists()


def test_validate_writes_id_hash_and_identity_of_valid_hunts_only(
        validated: tuple[Path, Path]) -> None:
    hunts, path = validated
    document = json.loads(path.read_text())
    assert not path.with_name(path.name + ".partial").exists()
    assert document["format"] == "huntwire-manifest/1"
    entry = document["hunts"]["00000000-0000-0000-0000-000000000001"]
    assert entry["sha256"] == hashlib.sha256((hunts / "h1.yaml").read_bytes()).hexdigest()
    assert entry["identity"] == ["Account", "Computer"]
    assert "00000000-0000-0000-0000-000000000003" not in document["hunts"]


def test_the_runner_check(validated: tuple[Path, Path]) -> None:
    hunts, path = validated
    manifest = load_manifest(path)
    by_id = {h.id[-1]: h for h in load_hunts(hunts).hunts}
    assert manifest_allows(by_id["1"], manifest) is None
    assert manifest_identity(by_id["1"], manifest) == Identity(("Account", "Computer"),
                                                               "entities+keys")
    not_valid = manifest_allows(by_id["3"], manifest)
    assert not_valid is not None
    assert "not in the manifest" in not_valid

    (hunts / "h2.yaml").write_text(GOOD.format(n=2) + "# tuned later\n")
    (edited,) = [h for h in load_hunts(hunts).hunts if h.id.endswith("2")]
    reason = manifest_allows(edited, manifest)
    assert reason is not None
    assert "edited after validation" in reason
    assert manifest_identity(edited, manifest) is None


def test_a_broken_manifest_is_a_configuration_error(tmp_path: Path) -> None:
    path = tmp_path / "m.json"
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_manifest(path)
    path.write_text('{"format": "something-else"}')
    with pytest.raises(ConfigurationError, match="not a huntwire-manifest/1"):
        load_manifest(path)
    path.write_text('{"format": "huntwire-manifest/1", "hunts": {"x": {"file": "a"}}}')
    with pytest.raises(ConfigurationError, match="malformed"):
        load_manifest(path)
