"""`huntwire validate` in a detection engineer's daily loop (issue 22 items 9-12, issue 24 #5 and
#6): every problem of every file in one run, counted; one error per KQL root cause; "did you
mean"; regular expressions compiled with RE2; rule files read as strictly as hunt files; rules
that would silence everything refused."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.cli import main
from shared.hunt import load_hunts
from shared.suppress import load_rule_files, validate_rules
from tests.test_suppress import TODAY, rule

needs_node = pytest.mark.skipif(shutil.which("node") is None, reason="Kusto.Language in node")


def hunt(folder: Path, name: str, query: str, number: int, extra: str = "",
         source: str = "defender") -> Path:
    body = "\n".join("  " + line for line in query.strip().splitlines())
    path = folder / f"{name}.yaml"
    path.write_text(f"id: 00000000-0000-0000-0000-{number:012d}\nname: {name}\n"
                    f"source: {source}\n{extra}query: |\n{body}\n")
    return path


@pytest.fixture(scope="module")
def daily_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder of hunts with one kind of mistake each (validated with one Node call)."""
    folder = tmp_path_factory.mktemp("daily")
    hunt(folder, "good", "DeviceProcessEvents | project Timestamp, DeviceId, ReportId", 1)
    hunt(folder, "wher", "DeviceProcessEvents\n| wher FileName =~ 'powershell.exe'\n"
         "| project Timestamp, DeviceId, ReportId, ProcessCommandLine", 2)
    hunt(folder, "ip-type", "DeviceNetworkEvents | where RemoteIpType == 'Public'", 3)
    hunt(folder, "table", "DeviceNetworkEvent | take 1", 4)
    hunt(folder, "sentinel-table", "SecurityEvent | take 1", 5)
    hunt(folder, "regex", "DeviceProcessEvents\n| where ProcessCommandLine matches regex "
         "@'(abc'\n| extend y = extract(\"[a-\", 1, ProcessCommandLine)\n"
         "| extend z = replace_regex(ProcessCommandLine, @'\\d+', 'n')", 6)
    hunt(folder, "many-mistakes", "DeviceProcessEvents | take 1", 7,
         extra="frequency: hourly\nlookback: 4hours\nseverity: Critical\nenabeld: false\n",
         source="defendr")
    rules = folder / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(yaml.safe_dump([rule(hunts=["good"])]))
    return folder


@needs_node
def test_each_file_reports_every_problem_at_once(daily_folder: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    rules = daily_folder / "rules"
    assert main(["validate", "--hunts", str(daily_folder), "--suppressions", str(rules),
                 "--format", "json"]) == 1
    result = json.loads(capsys.readouterr().out)
    by_file: dict[str, list[str]] = {}
    for error in result["errors"]:
        by_file.setdefault(Path(error["file"]).stem, []).append(
            f"{error['field']}: {error['message']}")
    many = " | ".join(by_file["many-mistakes"])
    for expected in ("enabeld: unknown key 'enabeld' (did you mean 'enabled'?)",
                     "frequency: 'hourly' is not a duration", "lookback: '4hours' is not a",
                     "severity: 'Critical' is not one of",
                     "source: 'defendr' is not one of defender, sentinel (did you mean "
                     "'defender'?)"):
        assert expected in many, many
    assert len(by_file["many-mistakes"]) == 5
    assert len(by_file["wher"]) == 1  # 1 root cause, not 7 cascades
    assert by_file["wher"][0].startswith("query: Query operator expected.")
    assert "follow-on error(s) not shown" in by_file["wher"][0]
    assert "(did you mean 'RemoteIPType'?)" in by_file["ip-type"][0]
    assert "(did you mean 'DeviceNetworkEvents'?)" in by_file["table"][0]
    assert "'SecurityEvent' is a sentinel table: set `source: sentinel`" \
        in by_file["sentinel-table"][0]
    regex = by_file["regex"]
    assert len(regex) == 2, regex  # @'\d+' is valid
    assert "matches regex: invalid RE2 regular expression '(abc'" in regex[0]
    assert "extract(): invalid RE2 regular expression '[a-'" in regex[1]
    assert "good" not in by_file
    assert result["valid"] is False


@needs_node
def test_rule_problems_are_counted_in_the_summary(tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    hunt(tmp_path, "good", "DeviceProcessEvents | project Timestamp, DeviceId, ReportId", 1)
    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "r.yaml").write_text(yaml.safe_dump([rule(hunts=["goood"])]))
    assert main(["validate", "--hunts", str(tmp_path), "--suppressions", str(rules)]) == 1
    captured = capsys.readouterr()
    assert "1 hunt(s) valid, 1 error(s) (1 in suppression rules)" in captured.out
    assert "unknown hunt 'goood' (did you mean 'good'?)" in captured.err


@needs_node
def test_the_repository_rule_does_not_break_a_users_folder(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The shipped example names pack hunts: validating another folder warns, never fails."""
    hunt(tmp_path, "mine", "DeviceProcessEvents | project Timestamp, DeviceId, ReportId", 1)
    assert main(["validate", "--hunts", str(tmp_path)]) == 0
    captured = capsys.readouterr()
    assert "0 error(s) (0 in suppression rules)" in captured.out
    assert "warning: " in captured.err
    assert "is not in the hunts folder validated (it is in the configured one)" in captured.err


# -- rules: every problem, hardened reading, breadth (no Node needed) ----------------------

def _problems(folder: Path, text: str, columns: dict[str, dict[str, str]] | None = None,
              hunts: Any = ()) -> list[str]:
    folder.mkdir(exist_ok=True)
    (folder / "r.yaml").write_text(text)
    return [f"{p.severity}: {p.message}"
            for p in validate_rules(folder, list(hunts), TODAY, columns)]


def test_a_rule_with_five_mistakes_gets_five_errors(tmp_path: Path) -> None:
    bad = rule(owenr="x", where={"A": {"equal": "x"}, "B": {"matches": "(x"}},
               expires="next year", reason="")
    del bad["owner"]
    problems = _problems(tmp_path, yaml.safe_dump([bad]))
    assert len(problems) == 6, problems
    text = " | ".join(problems)
    for part in ("unknown key 'owenr' (did you mean 'owner'?)", "'reason' is required",
                 "'owner' is required", "unknown operator 'equal' on column A (did you mean "
                 "'equals'?)", "invalid RE2 regular expression '(x'", "'expires' 'next year'"):
        assert part in text


@pytest.mark.parametrize(("text", "reason"), [
    ("x:\n" + "  " * 0 + "- " * 5000 + "1\n", "nested"),
    ("- &a [1, 1, 1]\n- &b [*a, *a, *a]\n- id: *b\n", "aliases"),
    ("- id: r1\n  hunts: ['*']\n  where:\n    ProcessCommandLine: {equals: agent.exe}\n"
     "  reason: r\n  owner: o\n  expires: 2026-12-30\n  where:\n    DeviceName: {matches: '.'}\n",
     "duplicate key 'where'"),
])
def test_hostile_rule_files_are_one_line_errors_at_load_and_validate(
        tmp_path: Path, text: str, reason: str) -> None:
    """Deep nesting (RecursionError), an alias bomb as an id, a second `where:` silently
    replacing the reviewed condition: each one error naming the file, never a crash."""
    (tmp_path / "r.yaml").write_text(text)
    loaded = load_rule_files(tmp_path, TODAY)
    assert loaded.rules == []
    assert len(loaded.errors) == 1
    assert reason in loaded.errors[0].reason
    problems = validate_rules(tmp_path, [], TODAY)
    assert [(p.severity, reason in p.message) for p in problems] == [("error", True)]
    assert "\n" not in str(problems[0])


SCHEMA_TYPES = {"DeviceName": "string", "Timestamp": "datetime", "DeviceId": "string",
                "ProcessCommandLine": "string", "RemotePort": "int", "RemoteIP": "string",
                "SHA256": "string"}


@pytest.mark.parametrize(("where", "everything"), [
    ({"DeviceName": {"matches": "."}}, True),
    ({"Timestamp": {"matches": "2"}}, True),
    ({"DeviceId": {"matches": "[0-9a-f]"}}, True),
    ({"ProcessCommandLine": {"matches": ".*"}}, True),
    ({"SHA256": {"matches": "^[0-9a-f]{64}$"}}, True),
    ({"RemoteIP": {"matches": "[.:]"}}, True),
    ({"DeviceName": {"matches": "."}, "ProcessCommandLine": {"equals": "agent.exe"}}, False),
    ({"DeviceName": {"startswith": "ws-"}}, False),
    ({"DeviceId": {"equals": "0123456789abcdef0123456789abcdef01234567"}}, False),
    ({"Timestamp": {"startswith": "2026-03-02"}}, False),
    ({"RemotePort": {"in": ["443", "80"]}}, False),
    ({"ProcessCommandLine": {"contains": "powershell"}}, False),
])
def test_a_rule_that_matches_every_row_is_an_error(tmp_path: Path, where: dict[str, Any],
                                                   everything: bool) -> None:
    hunts = load_hunts(Path(__file__).resolve().parents[1] / "hunts").hunts[:1]
    columns = {hunts[0].id: SCHEMA_TYPES}
    problems = _problems(tmp_path, yaml.safe_dump([rule(where=where)]), columns, hunts)
    flagged = [p for p in problems if "matches every row" in p]
    assert bool(flagged) is everything, problems
    assert all(p.startswith("error: ") for p in flagged)
