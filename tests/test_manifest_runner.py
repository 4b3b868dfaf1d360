"""The runner loads only hunts the validation manifest allows; azd validates before deploying."""

from __future__ import annotations

import logging
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from shared.app import load_valid_hunts
from shared.cli import main
from shared.hunt import Hunt
from shared.manifest import default_manifest_path
from shared.runner import Runner, RunSummary

REPO = Path(__file__).resolve().parents[1]
HUNT = """\
id: 00000000-0000-0000-0000-0000000000{n:02d}
name: hunt {n}
source: sentinel
query: |
  SecurityEvent
  | where EventID == 4625
  | summarize Attempts = count() by Account, Computer
"""


def _hunts(tmp_path: Path) -> Path:
    hunts = tmp_path / "hunts"
    hunts.mkdir()
    for n in (1, 2):
        (hunts / f"h{n}.yaml").write_text(HUNT.format(n=n))
    return hunts


def test_without_a_manifest_every_hunt_runs_with_one_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    hunts = _hunts(tmp_path)
    with caplog.at_level(logging.WARNING, logger="huntwire"):
        loaded = load_valid_hunts(hunts)
    assert [h.name for h in loaded] == ["hunt 1", "hunt 2"]
    warnings = [r.getMessage() for r in caplog.records if "manifest" in r.getMessage()]
    assert len(warnings) == 1
    assert "unvalidated" in warnings[0]


def _run(hunts: list[Hunt]) -> RunSummary:
    runner = Runner(hunts=hunts, sources={}, ledger=None, notifier=None, dry_run=True)
    return runner.run_once(datetime(2026, 3, 2, 12, tzinfo=UTC))


@pytest.mark.skipif(shutil.which("node") is None, reason="validate runs Kusto.Language in node")
def test_a_hunt_edited_after_validation_fails_the_run_with_its_reason(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    hunts = _hunts(tmp_path)
    rules = tmp_path / "rules"
    rules.mkdir()
    assert main(["validate", "--hunts", str(hunts), "--suppressions", str(rules),
                 "--manifest", str(default_manifest_path(hunts))]) == 0
    capsys.readouterr()
    (hunts / "h2.yaml").write_text(HUNT.format(n=2) + "# edited\n")
    (hunts / "h3.yaml").write_text(HUNT.format(n=3))  # never validated
    with caplog.at_level(logging.WARNING, logger="huntwire"):
        loaded = load_valid_hunts(hunts)
    assert [(h.name, h.refused is None) for h in loaded] == [
        ("hunt 1", True), ("hunt 2", False), ("hunt 3", False)]
    refused = " ".join(r.getMessage() for r in caplog.records
                       if r.getMessage().startswith("huntwire.hunt_refused"))
    assert "h2.yaml) was edited after validation" in refused
    assert "h3.yaml) did not pass validation" in refused
    summary = _run(loaded)
    assert not summary.ok
    by_name = {o.name: o for o in summary.outcomes}
    assert by_name["hunt 2"].status == "failed"
    assert "edited after validation" in (by_name["hunt 2"].error or "")
    assert by_name["hunt 3"].status == "failed"
    assert by_name["hunt 1"].status != "failed"


def test_an_unreadable_manifest_fails_every_hunt(tmp_path: Path,
                                                 caplog: pytest.LogCaptureFixture) -> None:
    hunts = _hunts(tmp_path)
    default_manifest_path(hunts).write_text("{not json")
    with caplog.at_level(logging.ERROR, logger="huntwire"):
        loaded = load_valid_hunts(hunts)
    assert any("not JSON" in r.getMessage() for r in caplog.records)
    summary = _run(loaded)
    assert not summary.ok
    assert all(o.status == "failed" and "not JSON" in (o.error or "")
               for o in summary.outcomes)


def test_a_deleted_manifest_in_azure_fails_every_hunt(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """In Azure a deployment always ships the manifest: its absence is not "all validated"."""
    monkeypatch.setenv("WEBSITE_INSTANCE_ID", "0123abcd")
    summary = _run(load_valid_hunts(_hunts(tmp_path)))
    assert not summary.ok
    assert [o.status for o in summary.outcomes] == ["failed", "failed"]
    assert all("no validation manifest" in (o.error or "") for o in summary.outcomes)


def test_azd_validates_and_ships_the_manifest() -> None:
    config = yaml.safe_load((REPO / "azure.yaml").read_text(encoding="utf-8"))
    command = "-m shared validate --manifest hunts/huntwire.manifest.json"
    for hook in ("prepackage", "predeploy"):
        for platform, script in (("posix", "validate.sh"), ("windows", "validate.ps1")):
            assert config["hooks"][hook][platform]["run"] == f"infra/hooks/{script}"
            assert config["hooks"][hook][platform]["continueOnError"] is False
            assert command in (REPO / "infra" / "hooks" / script).read_text(encoding="utf-8")
    lines = (REPO / ".funcignore").read_text(encoding="utf-8").splitlines()
    assert "!hunts/huntwire.manifest.json" in lines
    assert not {"hunts/", "hunts", "*.json"} & set(lines)
