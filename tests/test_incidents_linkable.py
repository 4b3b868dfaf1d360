"""``validate`` warns when a device hunt can be joined into incidents by time only: it returns
no process id with its creation time and no event key (issue 20)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shared.cli import main
from shared.hunt import Hunt
from shared.incidents.linkable import lineage_warning

HUNT = """\
id: 00000000-0000-0000-0000-0000000000{number:02d}
name: {name}
source: defender
query: |
  DeviceNetworkEvents
  | where InitiatingProcessFileName in~ ("rundll32.exe", "mshta.exe")
  | project {columns}
"""


def hunt() -> Hunt:
    return Hunt(id="00000000-0000-0000-0000-000000000001", name="x", query="x",
                source="defender", path=Path("own.yaml"))


@pytest.mark.parametrize(("columns", "warned"), [
    (("Timestamp", "DeviceId", "DeviceName", "RemoteIP"), True),
    (("Timestamp", "DeviceId", "InitiatingProcessId"), True),  # a pid alone is no link
    (("Timestamp", "DeviceId", "InitiatingProcessId", "InitiatingProcessCreationTime"), False),
    (("Timestamp", "DeviceName", "ProcessId", "ProcessCreationTime"), False),
    (("Timestamp", "DeviceId", "ReportId"), False),
    (("TimeGenerated", "UserPrincipalName", "IPAddress"), False),  # no device: no lineage
])
def test_lineage_warning(columns: tuple[str, ...], warned: bool) -> None:
    warning = lineage_warning(hunt(), columns)
    assert (warning is not None) == warned
    if warning:
        assert warning.startswith("own.yaml: ")
        assert "InitiatingProcessId+InitiatingProcessCreationTime" in warning


def test_validate_names_the_hunt_that_cannot_be_lineage_linked(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "own.yaml").write_text(HUNT.format(
        number=1, name="Own", columns="Timestamp, DeviceId, DeviceName, RemoteIP, RemotePort"))
    (tmp_path / "linked.yaml").write_text(HUNT.format(
        number=2, name="Linked", columns="Timestamp, DeviceId, DeviceName, InitiatingProcessId, "
                                         "InitiatingProcessCreationTime"))
    rules = tmp_path / "no-rules"
    rules.mkdir()
    code = main(["validate", "--hunts", str(tmp_path), "--suppressions", str(rules),
                 "--format", "json"])
    report = json.loads(capsys.readouterr().out)

    assert code == 0  # a warning, not an error
    messages = [w["message"] for w in report["warnings"]]
    assert [m for m in messages if "lineage" in m] == [
        next(m for m in messages if m.startswith("own.yaml: returns no process id"))]
