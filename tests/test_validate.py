"""`huntwire validate`: YAML schema plus Microsoft's Kusto.Language parser against our schemas."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from shared.cli import main

HEADER = """\
id: {id}
name: {name}
source: {source}
query: |
"""
GOOD_QUERY = """\
  DeviceProcessEvents
  | where FileName =~ "powershell.exe"
  | project Timestamp, DeviceId, ReportId, ProcessCommandLine
"""


def hunt_file(folder: Path, name: str, query: str, *, number: int, source: str = "defender",
              extra: str = "") -> Path:
    path = folder / f"{name}.yaml"
    hunt_id = f"00000000-0000-0000-0000-{number:012d}"
    path.write_text(HEADER.format(id=hunt_id, name=name, source=source) + query + extra)
    return path


def run_validate(folder: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code = main(["validate", "--hunts", str(folder), "--format", "json"])
    return code, json.loads(capsys.readouterr().out)


def validate_alone(folder: Path, capsys: pytest.CaptureFixture[str], *extra: str
                   ) -> tuple[int, dict[str, Any]]:
    """validate *folder* without the repository's suppression rules (they name its hunts)."""
    rules = folder / "no-rules"
    rules.mkdir(exist_ok=True)
    code = main(["validate", "--hunts", str(folder), "--suppressions", str(rules), *extra])
    out = capsys.readouterr().out
    return code, (json.loads(out) if "json" in extra else {"text": out})


@pytest.fixture(scope="module")
def broken_folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("broken")
    hunt_file(folder, "good", GOOD_QUERY, number=1)
    hunt_file(folder, "misspelled-column", GOOD_QUERY.replace(
        "ProcessCommandLine", "ProcessComandLine"), number=2)
    hunt_file(folder, "missing-paren", "  DeviceProcessEvents\n  | where (FileName == \"x\"\n"
              "  | project Timestamp, DeviceId, ReportId\n", number=3)
    hunt_file(folder, "unknown-table", "  DeviceProcesEvents\n  | take 10\n", number=4)
    hunt_file(folder, "no-report-id", "  DeviceProcessEvents\n  | project Timestamp, DeviceId\n",
              number=5)
    hunt_file(folder, "sentinel-timestamp", "  DeviceProcessEvents\n"
              "  | where TimeGenerated > ago(1h)\n  | project TimeGenerated, DeviceId\n",
              number=6, source="sentinel", extra="dedupBy: [DeviceId]\n")
    hunt_file(folder, "dedup-not-returned",
              "  DeviceProcessEvents\n  | project Timestamp, DeviceId\n", number=7,
              extra="dedupBy: [DeviceId, ReportId]\n")
    (folder / "not-a-mapping.yaml").write_text("- a\n- list\n")
    (folder / "no-query.yaml").write_text("id: 00000000-0000-0000-0000-000000000099\nname: x\n")
    hunt_file(folder, "zz-duplicate", GOOD_QUERY, number=1)
    return folder


@pytest.fixture(scope="module")
def broken_report(broken_folder: Path) -> tuple[int, dict[str, Any]]:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(["validate", "--hunts", str(broken_folder), "--format", "json"])
    return code, json.loads(out.getvalue())


def errors_for(report: dict[str, Any], file_name: str) -> list[dict[str, Any]]:
    return [e for e in report["errors"] if Path(e["file"]).name == file_name]


def test_exit_code_is_one_when_any_hunt_is_invalid(broken_report: tuple[int, dict[str, Any]]
                                                   ) -> None:
    code, report = broken_report
    assert code == 1
    assert report["valid"] is False
    valid = {Path(h["file"]).name for h in report["hunts"] if h["valid"]}
    assert valid == {"good.yaml", "sentinel-timestamp.yaml", "no-report-id.yaml"}


def test_misspelled_column_is_reported_at_its_position(
        broken_report: tuple[int, dict[str, Any]]) -> None:
    (error,) = errors_for(broken_report[1], "misspelled-column.yaml")
    assert error["code"] == "KS142"
    assert "ProcessComandLine" in error["message"]
    # query starts on line 5, column 3; the column name is on the query's third line.
    assert (error["line"], error["column"]) == (7, 44)


def test_missing_paren_is_a_syntax_error(broken_report: tuple[int, dict[str, Any]]) -> None:
    errors = errors_for(broken_report[1], "missing-paren.yaml")
    assert any(e["code"] == "KS005" and "Expected: )" in e["message"] for e in errors)


def test_unknown_table(broken_report: tuple[int, dict[str, Any]]) -> None:
    (error,) = errors_for(broken_report[1], "unknown-table.yaml")
    assert error["code"] == "KS204"
    assert "DeviceProcesEvents" in error["message"]
    assert (error["line"], error["column"]) == (5, 3)


def test_dedup_by_columns_must_be_returned(broken_report: tuple[int, dict[str, Any]]) -> None:
    """HW001 is the hunt's own dedup: an explicit dedupBy names columns the query must return."""
    (error,) = errors_for(broken_report[1], "dedup-not-returned.yaml")
    assert error["code"] == "HW001"
    assert "ReportId" in error["message"]
    assert "DeviceId" not in error["message"].split("(")[0]


def test_defender_hunt_without_report_id_is_valid_with_a_derived_identity(
        broken_report: tuple[int, dict[str, Any]]) -> None:
    """Timestamp/DeviceId/ReportId are a custom-detection rule, not a hunting-query one."""
    assert errors_for(broken_report[1], "no-report-id.yaml") == []
    (hunt,) = [h for h in broken_report[1]["hunts"] if Path(h["file"]).name == "no-report-id.yaml"]
    assert hunt["identity"] == {"columns": ["DeviceId"], "basis": "row"}
    (good,) = [h for h in broken_report[1]["hunts"] if Path(h["file"]).name == "good.yaml"]
    assert good["identity"] == {"columns": ["DeviceId", "ReportId"], "basis": "event"}


def test_yaml_not_a_mapping_no_query_and_duplicate_id(
        broken_report: tuple[int, dict[str, Any]]) -> None:
    report = broken_report[1]
    assert "must be a YAML mapping" in errors_for(report, "not-a-mapping.yaml")[0]["message"]
    (no_query,) = errors_for(report, "no-query.yaml")
    assert (no_query["field"], no_query["message"]) == ("query", "required field is missing")
    (duplicate,) = errors_for(report, "zz-duplicate.yaml")
    assert duplicate["field"] == "id"
    assert "good.yaml" in duplicate["message"]


def test_text_output_gives_file_line_column_code(broken_folder: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", "--hunts", str(broken_folder)]) == 1
    err = capsys.readouterr().err
    assert f"{broken_folder / 'misspelled-column.yaml'}:7:44: KS142" in err


def test_repository_hunts_are_valid(repo: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, report = run_validate(repo / "hunts", capsys)
    assert report["errors"] == []
    assert code == 0
    assert len(report["hunts"]) >= 1


def test_unknown_tables_in_fuzzy_union_and_table_call_are_warnings(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hunt_file(tmp_path, "fuzzy", "  union isfuzzy=true SecurityEvent, Contoso_Firewall_CL\n"
              "  | project TimeGenerated, Computer\n", number=1, source="sentinel")
    hunt_file(tmp_path, "table-call", '  table("Contoso_Proxy_CL")\n  | take 5\n', number=2,
              source="sentinel")
    code, report = validate_alone(tmp_path, capsys, "--format", "json")
    assert (code, report["errors"]) == (0, [])
    by_file = {Path(w["file"]).name: w for w in report["warnings"] if "file" in w}
    assert by_file["fuzzy.yaml"]["code"] == "KS205"
    assert "Contoso_Firewall_CL" in by_file["fuzzy.yaml"]["message"]
    assert by_file["table-call.yaml"]["code"] == "KS204"
    assert "Contoso_Proxy_CL" in by_file["table-call.yaml"]["message"]
    assert "resolved when the hunt runs" in by_file["table-call.yaml"]["message"]
    assert (by_file["table-call.yaml"]["line"], by_file["table-call.yaml"]["column"]) == (5, 9)


def test_an_unknown_plain_table_is_still_an_error(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    hunt_file(tmp_path, "plain", "  Contoso_Proxy_CL\n  | take 5\n", number=1, source="sentinel")
    code, report = validate_alone(tmp_path, capsys, "--format", "json")
    assert code == 1
    assert [e["code"] for e in report["errors"]] == ["KS204"]


def test_sentinel_time_placeholders_validate_and_keep_positions(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    query = ("  let starttime = todatetime('{{StartTimeISO}}');\n"
             "  let endtime = todatetime('{{EndTimeISO}}');\n"
             "  SigninLogs\n  | where TimeGenerated between (starttime .. endtime)\n"
             "  | project TimeGenerated, UserPrincipalName, IPAdress\n")
    hunt_file(tmp_path, "placeholders", query, number=1, source="sentinel")
    code, report = validate_alone(tmp_path, capsys, "--format", "json")
    (error,) = report["errors"]
    assert code == 1
    assert error["code"] == "KS142"
    assert "IPAdress" in error["message"]
    assert (error["line"], error["column"]) == (9, 47)


def test_watchlist_function_columns_are_open(tmp_path: Path,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    query = ("  let vip = _GetWatchlist('VIPUsers') | project UserPrincipalName = tolower(Upn);\n"
             "  SigninLogs\n  | where tolower(UserPrincipalName) in (vip)\n"
             "  | project TimeGenerated, UserPrincipalName, IPAddress\n")
    hunt_file(tmp_path, "watchlist", query, number=1, source="sentinel")
    code, report = validate_alone(tmp_path, capsys, "--format", "json")
    assert (code, report["errors"]) == (0, [])


def test_text_output_names_each_hunts_identity(tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    hunt_file(tmp_path, "by-account", "  SecurityEvent\n  | where EventID == 4625\n"
              "  | summarize Attempts = count(), LastSeen = max(TimeGenerated) by Account,"
              " Computer\n", number=1, source="sentinel")
    code, report = validate_alone(tmp_path, capsys)
    assert code == 0
    out = report["text"]
    assert "identity: by-account.yaml: Account, Computer [entities+keys]" in out
