"""Suppression rules: model, loader (fail open), apply (expiry, counts), validation, and the
`eval`/`validate` commands with `--suppressions`."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.hunt import load_hunts
from shared.suppress import Suppressor, apply_suppressions, load_rule_files, validate_rules
from shared.suppress.rules import RuleError, parse_rule
from shared.suppress.validate import hunt_columns

REPO = Path(__file__).resolve().parents[1]
TODAY = date(2026, 11, 30)
CRADLE = "PowerShell download cradle and stager"
CRADLE_ID = "2372bd2b-5011-45d5-8970-cd90ddc2c07a"
VENDOR = yaml.safe_load((REPO / "suppressions" / "example-vendor-agent.yaml").read_text())[0]
VENDOR_LINE = VENDOR["where"]["ProcessCommandLine"]["equals"]


class FakeHunt:
    def __init__(self, hunt_id: str = CRADLE_ID, name: str = CRADLE):
        self.id, self.name = hunt_id, name


def rule(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"id": "r1", "hunts": ["*"],
                            "where": {"ProcessCommandLine": {"equals": "agent.exe --push"}},
                            "reason": "vendor agent", "owner": "soc@contoso.example",
                            "expires": TODAY + timedelta(days=30)}
    base.update(overrides)
    return base


def write_rules(folder: Path, name: str, rules: list[dict[str, Any]] | str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(rules if isinstance(rules, str) else yaml.safe_dump(rules))
    return path


def row(command: str, parent: str = "agentsvc.exe", **extra: Any) -> dict[str, Any]:
    return {"ProcessCommandLine": command, "InitiatingProcessFileName": parent, **extra}


# -- the operators, case-insensitive on the returned value ---------------------------------

@pytest.mark.parametrize(("condition", "value", "expected"), [
    ({"equals": "Agent.EXE --push"}, "agent.exe --PUSH", True),
    ({"equals": "agent.exe --push"}, "agent.exe --push x", False),
    ({"in": ["a.exe", "AgentSvc.exe"]}, "agentsvc.EXE", True),
    ({"in": ["a.exe"]}, "agentsvc.exe", False),
    ({"startswith": "C:\\Program Files\\"}, "c:\\program files\\x.exe", True),
    ({"endswith": ".PS1"}, "run.ps1", True),
    ({"contains": "FIREWALL"}, "set-firewallpolicy", True),
    ({"matches": r"^set-\w+policy$"}, "Set-FirewallPolicy", True),
    ({"matches": r"^set-\w+policy$"}, "xSet-FirewallPolicy", False),
    ({"equals": 443}, 443, True),
])
def test_each_operator(condition: dict[str, Any], value: Any, expected: bool) -> None:
    parsed = parse_rule(rule(where={"C": condition}), "f.yaml", TODAY)
    assert parsed.matches({"C": value}) is expected


def test_a_missing_or_null_column_never_matches() -> None:
    parsed = parse_rule(rule(where={"C": {"contains": "x"}}), "f.yaml", TODAY)
    assert not parsed.matches({})
    assert not parsed.matches({"C": None})


def test_every_condition_must_hold_and_counts_go_to_the_rule() -> None:
    rules = [parse_rule(rule(where={"ProcessCommandLine": {"equals": "agent.exe --push"},
                                    "InitiatingProcessFileName": {"in": ["agentsvc.exe"]}}),
                        "f.yaml", TODAY)]
    rows = [row("agent.exe --push"), row("agent.exe --push", parent="cmd.exe"), row("other")]
    kept, counts = apply_suppressions(FakeHunt(), rows, rules, TODAY)
    assert kept == rows[1:]
    assert counts == {"r1": 1}


def test_hunts_by_id_name_or_star() -> None:
    by_name = parse_rule(rule(id="n", hunts=[CRADLE.upper()]), "f.yaml", TODAY)
    by_id = parse_rule(rule(id="i", hunts=[CRADLE_ID]), "f.yaml", TODAY)
    other = FakeHunt("00000000-0000-0000-0000-000000000000", "Other")
    for parsed in (by_name, by_id):
        assert apply_suppressions(FakeHunt(), [row("agent.exe --push")], [parsed], TODAY)[1]
        assert apply_suppressions(other, [row("agent.exe --push")], [parsed], TODAY)[1] == {}


# -- expiry ---------------------------------------------------------------------------------

def test_a_rule_past_its_expiry_is_not_applied_and_is_reported(
        caplog: pytest.LogCaptureFixture) -> None:
    expired = parse_rule(rule(id="old", expires=TODAY - timedelta(days=1)), "f.yaml", TODAY)
    soon = parse_rule(rule(id="soon", where={"FileName": {"equals": "x"}},
                           expires=TODAY + timedelta(days=3)), "f.yaml", TODAY)
    last_day = parse_rule(rule(id="today", where={"FileName": {"equals": "y"}},
                               expires=TODAY), "f.yaml", TODAY)
    suppressor = Suppressor([expired, soon, last_day])
    with caplog.at_level(logging.WARNING, logger="huntwire"):
        result = suppressor.apply(FakeHunt(), [row("agent.exe --push", FileName="y")], TODAY)
        suppressor.apply(FakeHunt(), [], TODAY)
    assert result.suppressed == {"today": 1}  # the last day still applies, the expired not
    assert len(result.kept) == 0
    lines = [r.getMessage() for r in caplog.records]
    assert sum("'old'" in line and "expired" in line for line in lines) == 1  # once a day
    assert any("'soon'" in line and "in 3 day(s)" in line for line in lines)


def test_expiry_is_required_and_at_most_one_year_ahead() -> None:
    for bad in (None, "next year", TODAY + timedelta(days=367)):
        with pytest.raises(RuleError, match="expires"):
            parse_rule(rule(expires=bad), "f.yaml", TODAY)
    assert parse_rule(rule(expires=str(TODAY.replace(year=2027))), "f.yaml", TODAY)


# -- the loader fails open ------------------------------------------------------------------

def test_a_broken_file_skips_its_rules_only(tmp_path: Path) -> None:
    write_rules(tmp_path, "a-good.yaml", [rule(id="good")])
    write_rules(tmp_path, "b-bad-yaml.yaml", "- id: [unclosed\n")
    write_rules(tmp_path, "c-bad-rule.yaml", [rule(id="fine"), rule(id="broken",
                                              where={"X": {"like": "y"}})])
    write_rules(tmp_path, "d-dup.yaml", [rule(id="good")])
    loaded = load_rule_files(tmp_path, TODAY)
    assert [r.id for r in loaded.rules] == ["good"]
    messages = [str(e) for e in loaded.errors]
    assert any("b-bad-yaml.yaml" in m and "not valid YAML" in m for m in messages)
    assert any("c-bad-rule.yaml" in m and "'broken'" in m and "unknown operator 'like'" in m
               for m in messages)
    assert any("d-dup.yaml" in m and "duplicate id" in m for m in messages)


def test_a_missing_folder_holds_no_rules(tmp_path: Path) -> None:
    assert load_rule_files(tmp_path / "nope", TODAY).rules == []


# -- validation: every error names file, rule and reason ------------------------------------

@pytest.fixture(scope="module")
def hunts_and_columns() -> tuple[list[Any], dict[str, set[str]]]:
    hunts = load_hunts(REPO / "hunts").hunts
    return hunts, hunt_columns(hunts)


@pytest.mark.parametrize(("bad", "message"), [
    ({"where": {"ProcessCommandLine": {"like": "x"}}}, "unknown operator 'like'"),
    ({"where": {"ProcessCommandLine": {"matches": "(a)\\1"}}}, "invalid RE2 regular expression"),
    ({"where": {"ProcessCommandLine": {"matches": "(?=look)ahead"}}}, "invalid RE2"),
    ({"hunts": ["No such hunt"]}, "unknown hunt 'no such hunt'"),
    ({"hunts": [CRADLE], "where": {"RemoteIP": {"equals": "1.2.3.4"}}},
     "column RemoteIP is not returned by hunt 'PowerShell download cradle and stager'"),
    ({"where": {"NoSuchColumn": {"equals": "x"}}}, "no hunt returns all of the columns"),
    ({"expires": None}, "'expires' is required"),
    ({"expires": TODAY + timedelta(days=400)}, "more than one year ahead"),
    ({"reason": ""}, "'reason' is required"),
    ({"owner": None}, "'owner' is required"),
    ({"where": {}}, "'where' is required"),
    ({"where": {"ProcessCommandLine": {"equals": "a", "contains": "b"}}},
     "exactly one condition"),
    ({"colour": "red"}, "unknown key 'colour'"),
])
def test_each_validation_error(tmp_path: Path, hunts_and_columns: Any, bad: dict[str, Any],
                               message: str) -> None:
    hunts, columns = hunts_and_columns
    path = write_rules(tmp_path, "rules.yaml", [rule(id="the-rule", **bad)])
    problems = validate_rules(tmp_path, hunts, TODAY, columns)
    errors = [p for p in problems if p.severity == "error"]
    assert len(errors) == 1, problems
    assert errors[0].file == str(path)
    assert errors[0].rule == "the-rule"
    assert message in errors[0].message


def test_duplicate_ids_across_files_and_schema_errors(tmp_path: Path,
                                                      hunts_and_columns: Any) -> None:
    hunts, columns = hunts_and_columns
    write_rules(tmp_path, "a.yaml", [rule(id="same")])
    second = write_rules(tmp_path, "b.yaml", [rule(id="same")])
    write_rules(tmp_path, "c.yaml", {"id": "not-a-list"})  # type: ignore[arg-type]
    problems = validate_rules(tmp_path, hunts, TODAY, columns)
    assert any(p.file == str(second) and p.rule == "same" and "duplicate id" in p.message
               for p in problems)
    assert any(p.file.endswith("c.yaml") and "YAML list" in p.message for p in problems)


def test_loose_match_on_a_command_line_is_a_warning(tmp_path: Path,
                                                    hunts_and_columns: Any) -> None:
    hunts, columns = hunts_and_columns
    write_rules(tmp_path, "loose.yaml", [
        rule(id="loose", where={"ProcessCommandLine": {"contains": "Set-FirewallPolicy"}}),
        rule(id="loose-parent", where={"InitiatingProcessCommandLine": {"matches": "agent"}}),
        rule(id="tight", where={"InitiatingProcessFileName": {"contains": "agent"}})])
    problems = validate_rules(tmp_path, hunts, TODAY, columns)
    assert {p.severity for p in problems} == {"warning"}
    assert {p.rule for p in problems} == {"loose", "loose-parent"}
    assert all("attacker" in p.message for p in problems)


def test_the_shipped_rules_are_valid(hunts_and_columns: Any) -> None:
    hunts, columns = hunts_and_columns
    assert validate_rules(REPO / "suppressions", hunts, TODAY, columns) == []


# -- the commands ---------------------------------------------------------------------------

def huntwire(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shared", *args], cwd=REPO, text=True,
                          capture_output=True, timeout=300, check=False)


def vendor_events(path: Path) -> Path:
    """The vendor agent's exact line, the same line from another parent, and a look-alike."""
    lines = [(VENDOR_LINE, "FabrikamAgentSvc.exe"), (VENDOR_LINE, "cmd.exe"),
             (VENDOR_LINE.replace("Set-FirewallPolicy.ps1", "Set-FirewallPolicy.ps1?x=1"),
              "FabrikamAgentSvc.exe")]
    rows = [{"Timestamp": f"2026-11-02T10:0{i}:00Z", "DeviceId": f"dev-{i}",
             "DeviceName": f"ws-{i}", "ReportId": 700 + i, "ActionType": "ProcessCreated",
             "FileName": "powershell.exe", "ProcessCommandLine": line, "ProcessId": 10 + i,
             "AccountDomain": "nt authority", "AccountName": "system",
             "InitiatingProcessFileName": parent,
             "InitiatingProcessCommandLine": f"\"C:\\Program Files\\Fabrikam\\{parent}\""}
            for i, (line, parent) in enumerate(lines)]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def eval_json(events: Path, *extra: str) -> dict[str, Any]:
    done = huntwire("eval", "--events", f"DeviceProcessEvents={events}", "--now",
                    "2026-11-02T12:00:00Z", "--format", "json", *extra)
    assert done.returncode == 0, done.stderr
    return {h["name"]: h for h in json.loads(done.stdout)["hunts"]}


def test_eval_suppresses_the_vendor_agents_exact_line_and_nothing_else(tmp_path: Path) -> None:
    events = vendor_events(tmp_path / "events.jsonl")
    write_rules(tmp_path / "rules", "vendor.yaml", [VENDOR])
    (tmp_path / "none").mkdir()
    without = eval_json(events, "--suppressions", str(tmp_path / "none"))[CRADLE]
    assert sorted(m["ReportId"] for m in without["matches"]) == [700, 701, 702]
    hunts = eval_json(events, "--suppressions", str(tmp_path / "rules"))
    cradle = hunts[CRADLE]
    assert sorted(m["ReportId"] for m in cradle["matches"]) == [701, 702]
    assert cradle["suppressed"] == {VENDOR["id"]: 1}
    assert hunts[f"{CRADLE} (Sentinel)"]["suppressed"] == {VENDOR["id"]: 1}
    assert all(h["suppressed"] == {} for n, h in hunts.items() if "cradle" not in n)


def test_eval_does_not_apply_an_expired_rule(tmp_path: Path) -> None:
    events = vendor_events(tmp_path / "events.jsonl")
    write_rules(tmp_path / "rules", "vendor.yaml",
                [{**VENDOR, "expires": date(2026, 11, 1)}])  # --now is 2026-11-02
    done = huntwire("eval", "--events", f"DeviceProcessEvents={events}", "--now",
                    "2026-11-02T12:00:00Z", "--format", "json", "--suppressions",
                    str(tmp_path / "rules"), "--hunt", CRADLE_ID)
    (cradle,) = json.loads(done.stdout)["hunts"]
    assert len(cradle["matches"]) == 3
    assert cradle["suppressed"] == {}
    assert "expired on 2026-11-01" in done.stderr


def test_eval_applies_the_other_rules_when_one_file_is_broken(tmp_path: Path) -> None:
    events = vendor_events(tmp_path / "events.jsonl")
    write_rules(tmp_path / "rules", "a-broken.yaml", "this: is: not: yaml: [")
    write_rules(tmp_path / "rules", "b-vendor.yaml", [VENDOR])
    done = huntwire("eval", "--events", f"DeviceProcessEvents={events}", "--now",
                    "2026-11-02T12:00:00Z", "--format", "json", "--suppressions",
                    str(tmp_path / "rules"), "--hunt", CRADLE_ID)
    (cradle,) = json.loads(done.stdout)["hunts"]
    assert cradle["suppressed"] == {VENDOR["id"]: 1}
    assert "a-broken.yaml" in done.stderr


def test_validate_exits_1_naming_the_file_with_an_unknown_operator(tmp_path: Path) -> None:
    path = write_rules(tmp_path, "typo.yaml",
                       [rule(id="typo", where={"ProcessCommandLine": {"equal": "x"}})])
    done = huntwire("validate", "--suppressions", str(tmp_path))
    assert done.returncode == 1
    assert f"{path}: rule 'typo': unknown operator 'equal'" in done.stderr
    as_json = huntwire("validate", "--suppressions", str(tmp_path), "--format", "json")
    report = json.loads(as_json.stdout)
    assert as_json.returncode == 1
    assert report["valid"] is False
    assert report["suppressions"][0]["file"] == str(path)


def test_validate_passes_with_the_shipped_rules() -> None:
    done = huntwire("validate")
    assert done.returncode == 0, done.stderr
    assert "error" not in done.stderr
