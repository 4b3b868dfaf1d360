"""`huntwire import`: what each file is for and the schedule it should get (issue 22 item 16), and
the doors held (issue 24 #9): no link followed out of DIR, nothing written through a link,
control characters in file names printed escaped."""

from __future__ import annotations

import io
import os
import shutil
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from shared.cli import main
from shared.hunt import Hunt
from shared.importer import CANNOT_RUN, import_hunts, printable
from shared.importer_review import ALERTING, INVENTORY, TEMPLATE, review, watchlists

needs_node = pytest.mark.skipif(shutil.which("node") is None,
                                reason="import validates with Microsoft's KQL parser in node")
HUNT = ("id: 66666666-0000-0000-0000-0000000000{n:02d}\nname: {name}\n"
        "requiredDataConnectors:\n  - connectorId: MicrosoftThreatProtection\n"
        "    dataTypes:\n      - DeviceProcessEvents\nquery: |\n  DeviceProcessEvents\n"
        "  | where Timestamp > ago(1d)\n  | where FileName =~ \"certutil.exe\"\n")


def make(query: str, name: str = "h", source: str = "defender", **extra: object) -> Hunt:
    hunt = Hunt(id="66666666-0000-0000-0000-000000000099", name=name, query=query,
                source=source, path=Path("h.yaml"), **extra)  # type: ignore[arg-type]
    return hunt


@pytest.mark.parametrize(("query", "name", "use"), [
    ("DeviceProcessEvents | where Timestamp between (datetime(2018-07-15) .. 1d)", "x", TEMPLATE),
    ('let ip = "10.1.2.3";\nDeviceNetworkEvents | where RemoteIP == ip', "x", TEMPLATE),
    ('let dev = "<DeviceName>";\nDeviceInfo | where DeviceName == dev', "x", TEMPLATE),
    ("DeviceInfo\n| summarize arg_max(Timestamp, *) by DeviceId", "Devices", INVENTORY),
    ("DeviceProcessEvents | where FileName == 'x'", "Device uptime calculation", INVENTORY),
    ('let bad = dynamic(["10.1.2.3", "10.9.9.9"]);\nDeviceNetworkEvents\n'
     "| where RemoteIP in (bad)", "IOC", ALERTING),
    ("DeviceProcessEvents | where FileName =~ 'certutil.exe' // datetime(2018-07-15)", "x",
     ALERTING),
])
def test_use_tells_alerting_from_templates_and_inventory(query: str, name: str, use: str) -> None:
    assert review(make(query, name)).use == use


def test_no_time_range_gets_the_portals_lookback_and_long_lookbacks_run_daily() -> None:
    bare = review(make("DeviceProcessEvents | where FileName == 'x'", lookback=timedelta(hours=4),
                       lookback_reason="default (the query sets no time range)"))
    assert (bare.lookback, bare.frequency) == (timedelta(days=7), timedelta(days=1))
    assert "Defender advanced hunting" in bare.schedule_note
    sentinel = review(make("SigninLogs | take 1", source="sentinel", lookback=timedelta(hours=4),
                           lookback_reason="default (the query sets no time range)"), "14d")
    assert sentinel.lookback == timedelta(days=14)
    assert "queryPeriod" in sentinel.schedule_note
    long = review(make("DeviceProcessEvents | where Timestamp > ago(30d)",
                       lookback=timedelta(days=30), lookback_reason="query: ago(30d)"))
    assert long.frequency == timedelta(days=1)
    assert "proposed frequency 1d" in long.schedule_note
    hourly = review(make("DeviceProcessEvents | where Timestamp > ago(2h)",
                         lookback=timedelta(hours=2), lookback_reason="query: ago(2h)"))
    assert hourly.frequency == timedelta(hours=1)
    assert "frequency" not in hourly.schedule_note


def test_watchlists_are_read_from_code_not_comments() -> None:
    query = ("// uses _GetWatchlist('FromComment')\nlet v = _GetWatchlist('VIPs');\n"
             "SigninLogs | where Url == \"https://x\" | join (_GetWatchlist('Second')) on Url"
             " // _GetWatchlist('Trailing')")
    assert watchlists(query) == ["Second", "VIPs"]


def test_printable_escapes_terminal_control_characters() -> None:
    assert printable("a\x1b[31mred\x07.yaml") == "a\\x1b[31mred\\x07.yaml"
    assert printable("plain.yaml") == "plain.yaml"


@needs_node
def test_links_out_of_dir_and_into_the_target_are_refused(tmp_path: Path) -> None:
    source, target, outside = tmp_path / "src", tmp_path / "hunts", tmp_path / "outside"
    for folder in (source, target, outside):
        folder.mkdir()
    (outside / "secret.yaml").write_text(HUNT.format(n=1, name="secret"))
    os.symlink(outside / "secret.yaml", source / "linked.yaml")
    (source / "good.yaml").write_text(HUNT.format(n=2, name="good"))
    os.symlink(outside / "planted.yaml", target / "good.yaml")  # dangling, under the same name
    items = {i.file: i for i in import_hunts(source, target, env={})}
    assert items["linked.yaml"].verdict == CANNOT_RUN
    assert "outside" in items["linked.yaml"].reasons[0]
    assert not (target / "linked.yaml").exists()
    assert items["good.yaml"].copied is False
    assert "is a link" in str(items["good.yaml"].refused)
    assert not (outside / "planted.yaml").exists()  # nothing written through the link


@needs_node
def test_file_names_are_escaped_and_progress_goes_to_a_terminal_only(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "src"
    source.mkdir()
    (source / "a\x1b[2Jb.yaml").write_text(HUNT.format(n=3, name="escaped"))

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    terminal = Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert main(["import", str(source), "--to", str(tmp_path / "hunts"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out
    assert "a\\x1b[2Jb.yaml" in out
    assert "[1/1] judging a\\x1b[2Jb.yaml" in terminal.getvalue()
    header = [line.split() for line in out.splitlines() if line.startswith("file ")]
    assert header == [["file", "verdict", "use", "frequency", "lookback", "action"]]
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert main(["import", str(source), "--to", str(tmp_path / "hunts"), "--dry-run"]) == 0
    assert "judging" not in sys.stderr.getvalue()
