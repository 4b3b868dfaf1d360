"""`huntwire import DIR`: byte-for-byte copies, and for each file: runs as is, needs a setting, or
cannot run and why. Fixture hunts are written here (no third-party files in the repository)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from shared.cli import main
from shared.importer import CANNOT_RUN, NEEDS_SETTING, RUNS, ImportItem, import_hunts

pytestmark = pytest.mark.skipif(shutil.which("node") is None,
                                reason="import validates with Microsoft's KQL parser in node")


def hunt(n: int, query: str, connector: str = "MicrosoftThreatProtection",
         table: str = "DeviceProcessEvents", extra: str = "") -> str:
    body = "".join(f"  {line}\n" for line in query.strip().splitlines())
    return (f"id: 55555555-0000-0000-0000-0000000000{n:02d}\nname: fixture {n}\n"
            f"requiredDataConnectors:\n  - connectorId: {connector}\n    dataTypes:\n"
            f"      - {table}\n{extra}query: |\n{body}")


DEFENDER = hunt(1, "DeviceProcessEvents\n| where Timestamp > ago(7d)\n"
                "| where FileName =~ \"certutil.exe\"\n| project Timestamp, DeviceId, ReportId")
SENTINEL = hunt(2, "SecurityEvent\n| where EventID == 4625\n"
                "| summarize Attempts = count() by Account", "SecurityEvents", "SecurityEvent")
WATCHLIST = hunt(3, "let vips = _GetWatchlist('VIPUsers') | project SearchKey;\n"
                 "SigninLogs\n| where UserPrincipalName in (vips)", "AzureActiveDirectory",
                 "SigninLogs")
CUSTOM = hunt(4, "Contoso_Firewall_CL\n| where Action_s == \"deny\"", "Syslog", "Syslog")
BAD_COLUMN = hunt(5, "DeviceProcessEvents\n| where NoSuchColumn == 1")
MOVED = ("id: 55555555-0000-0000-0000-000000000006\nname: moved\n"
         "description: This query was moved to a new location, see "
         "https://example.org/new.yaml\n")
LOCAL_GAP = hunt(7, "let bad = externaldata(Sha256: string)[@\"https://example.org/h.csv\"] "
                 "with (format=\"csv\");\nDeviceFileEvents\n| where SHA256 in (bad)",
                 table="DeviceFileEvents")
CRLF = DEFENDER.replace("0000000000" + "01", "0000000000" + "08").replace("\n", "\r\n")


@pytest.fixture
def source(tmp_path: Path) -> Path:
    folder = tmp_path / "Hunting Queries"
    folder.mkdir()
    files = {"defender.yaml": DEFENDER, "sentinel.yaml": SENTINEL, "watchlist.yaml": WATCHLIST,
             "custom.yaml": CUSTOM, "bad.yaml": BAD_COLUMN, "moved.yaml": MOVED,
             "local-gap.yaml": LOCAL_GAP}
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    (folder / "crlf.YAML").write_bytes(CRLF.encode("utf-8"))
    return folder


def by_file(items: list[ImportItem]) -> dict[str, ImportItem]:
    return {item.file: item for item in items}


def test_each_file_gets_a_verdict_and_its_reason(source: Path, tmp_path: Path) -> None:
    items = by_file(import_hunts(source, tmp_path / "hunts", env={}))
    assert items["defender.yaml"].verdict == RUNS
    assert "lookback 7d (query: ago(7d))" in " ".join(items["defender.yaml"].notes)
    assert items["sentinel.yaml"].verdict == NEEDS_SETTING
    assert items["sentinel.yaml"].reasons == ["Sentinel hunt: set HUNTWIRE_SENTINEL_WORKSPACE_ID"]
    assert any("watchlist 'VIPUsers'" in r for r in items["watchlist.yaml"].reasons)
    assert items["custom.yaml"].verdict == NEEDS_SETTING
    assert any("huntwire schema pull" in r for r in items["custom.yaml"].reasons)
    bad = items["bad.yaml"]
    assert bad.verdict == CANNOT_RUN
    assert "bad.yaml:9:11:" in bad.reasons[0]  # line and column of NoSuchColumn in the file
    assert "NoSuchColumn" in bad.reasons[0]
    assert items["moved.yaml"].verdict == CANNOT_RUN
    assert "https://example.org/new.yaml" in items["moved.yaml"].reasons[0]
    # not running locally is said, never a reason to refuse: production runs in Defender
    gap = items["local-gap.yaml"]
    assert gap.verdict == RUNS
    assert any("local engine cannot run externaldata" in n for n in gap.notes)


def test_with_the_workspace_set_a_sentinel_hunt_runs_as_is(source: Path, tmp_path: Path) -> None:
    items = by_file(import_hunts(source, tmp_path / "hunts",
                                 env={"HUNTWIRE_SENTINEL_WORKSPACE_ID": "w"}))
    assert items["sentinel.yaml"].verdict == RUNS


def test_copies_byte_for_byte_and_never_what_cannot_run(source: Path, tmp_path: Path) -> None:
    target = tmp_path / "hunts"
    items = by_file(import_hunts(source, target, env={}))
    copied = sorted(p.name for p in target.iterdir())
    assert copied == sorted(n for n, i in items.items() if i.verdict != CANNOT_RUN)
    for name in copied:
        assert (target / name).read_bytes() == (source / name).read_bytes()
    assert b"\r\n" in (target / "crlf.YAML").read_bytes()


def test_dry_run_copies_nothing(source: Path, tmp_path: Path) -> None:
    items = import_hunts(source, tmp_path / "hunts", dry_run=True, env={})
    assert not (tmp_path / "hunts").exists()
    assert not any(i.copied for i in items)


def test_never_overwrites_a_different_file_and_refuses_duplicate_ids(
        source: Path, tmp_path: Path) -> None:
    target = tmp_path / "hunts"
    target.mkdir()
    (target / "defender.yaml").write_text(DEFENDER + "# our local edit\n")
    (target / "ours.yaml").write_text(SENTINEL.replace("name: fixture 2", "name: ours"))
    (source / "sentinel-copy.yaml").write_text(WATCHLIST.replace("name: fixture 3", "name: b"))
    items = by_file(import_hunts(source, target, env={}))
    assert "not overwritten" in str(items["defender.yaml"].refused)
    assert (target / "defender.yaml").read_text().endswith("# our local edit\n")
    assert "already used by ours.yaml" in str(items["sentinel.yaml"].refused)
    assert not (target / "sentinel.yaml").exists()
    refused = [i for i in (items["sentinel-copy.yaml"], items["watchlist.yaml"]) if i.refused]
    assert len(refused) == 1
    assert "duplicate id" in str(refused[0].refused)
    # importing the same files again changes nothing and refuses nothing new
    again = by_file(import_hunts(source, target, env={}))
    assert "unchanged" in " ".join(again["crlf.YAML"].notes)
    assert again["crlf.YAML"].refused is None


def test_cli_json_and_exit_code(source: Path, tmp_path: Path,
                                capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["import", str(source), "--to", str(tmp_path / "hunts"), "--format", "json"])
    report = json.loads(capsys.readouterr().out)
    assert code == 1  # bad.yaml and moved.yaml cannot run
    verdicts = {f["file"]: f["verdict"] for f in report["files"]}
    assert verdicts["bad.yaml"] == CANNOT_RUN
    assert verdicts["defender.yaml"] == RUNS
    assert report["files"][0]["copied"] in (True, False)
    (source / "bad.yaml").unlink()
    (source / "moved.yaml").unlink()
    assert main(["import", str(source), "--to", str(tmp_path / "hunts2"), "--dry-run"]) == 0
    assert "(dry run)" in capsys.readouterr().out
