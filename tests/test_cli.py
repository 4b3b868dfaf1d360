"""The command line entry points."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest


def test_python_dash_m_shared_help_lists_commands(repo: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "shared", "--help"], capture_output=True,
                          text=True, cwd=repo, check=False)
    assert done.returncode == 0
    for command in ("validate", "eval"):
        assert command in done.stdout


def test_console_script_is_installed(repo: Path) -> None:
    script = Path(sys.executable).with_name("huntwire")
    done = subprocess.run([str(script), "validate", "--help"], capture_output=True, text=True,
                          check=False)
    assert done.returncode == 0
    assert "--format" in done.stdout


def test_unknown_command_fails(repo: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "shared", "frobnicate"], capture_output=True,
                          text=True, cwd=repo, check=False)
    assert done.returncode != 0
    assert "invalid choice" in done.stderr


def huntwire(repo: Path, *argv: str, env: dict[str, str] | None = None,
             ) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("HUNTWIRE_")}
    return subprocess.run([sys.executable, "-m", "shared", *argv], capture_output=True,
                          text=True, cwd=repo, check=False, env={**clean, **(env or {})},
                          timeout=120)


@pytest.mark.parametrize(("env", "message"), [
    ({"HUNTWIRE_STORAGE": "garbage"},
     "error: HUNTWIRE_STORAGE: the connection string is not 'Key=Value;...' pairs "
     "(or UseDevelopmentStorage=true)"),
    ({"HUNTWIRE_GRAPH_ENDPOINT": "https://[graph.microsoft.com/"},
     "error: HUNTWIRE_GRAPH_ENDPOINT: 'https://[graph.microsoft.com' is not a valid URL"),
    ({"HUNTWIRE_TEAMS_WEBHOOK_URL": "https://prod.logic.azure.com:99999/w?sig=SECRET"},
     "error: HUNTWIRE_TEAMS_WEBHOOK_URL: the value has an invalid port"),
    ({"HUNTWIRE_HEARTBEAT_HOUR": "25"},
     "error: HUNTWIRE_HEARTBEAT_HOUR: '25' is not an hour 0-23 (UTC) or 'off'"),
])
def test_bad_setting_is_one_line_and_exit_2(repo: Path, env: dict[str, str],
                                            message: str) -> None:
    done = huntwire(repo, "run", "--once", env={"HUNTWIRE_STORAGE": "UseDevelopmentStorage=true",
                                                **env})
    assert done.returncode == 2
    assert done.stderr.splitlines() == [message]
    assert "Traceback" not in done.stderr
    assert "SECRET" not in done.stderr
    assert done.stdout == ""


def test_every_bad_setting_is_reported_at_once(repo: Path) -> None:
    done = huntwire(repo, "run", "--once", env={
        "HUNTWIRE_STORAGE": "garbage", "HUNTWIRE_LOGS_ENDPOINT": "http://[::1",
        "HUNTWIRE_TEAMS_WEBHOOK_URL": "https://x.example:port/w?sig=SECRET"})
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert sorted(line.split(":")[1].strip() for line in lines) == [
        "HUNTWIRE_LOGS_ENDPOINT", "HUNTWIRE_STORAGE", "HUNTWIRE_TEAMS_WEBHOOK_URL"]
    assert "Traceback" not in done.stderr
    assert "SECRET" not in done.stderr


def test_hunts_flag_overrides_the_setting(repo: Path) -> None:
    done = huntwire(repo, "validate", "--hunts", str(repo / "hunts"), "--format", "json",
                    env={"HUNTWIRE_HUNTS_DIR": "/nonexistent"})
    assert json.loads(done.stdout)["hunts"]
    unset = huntwire(repo, "validate", "--format", "json",
                     env={"HUNTWIRE_HUNTS_DIR": "/nonexistent"})
    assert unset.returncode == 1
    assert "hunts folder does not exist" in unset.stdout


def test_cli_modules_import_without_cycles() -> None:
    """Each command module imports alone, in a fresh interpreter, before the package's main."""
    for module in ("common", "validate", "eval", "run", "preview"):
        done = subprocess.run([sys.executable, "-c", f"import shared.cli.{module}"],
                              capture_output=True, text=True, check=False)
        assert done.returncode == 0, done.stderr


def test_readme_commands_and_help_agree(repo: Path) -> None:
    """Every flag the README's Commands block shows exists in that command's --help, with the
    same metavar or choices (issue 22 item 17)."""
    import re

    from shared.cli import build_parser

    readme = (repo / "README.md").read_text(encoding="utf-8")
    block = readme.split("## Commands", 1)[1].split("```sh", 1)[1].split("```", 1)[0]
    parser = build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "==SUPPRESS==" or a.choices)
    checked = 0
    for line in block.splitlines():
        words = line.split("#", 1)[0].split()
        if len(words) < 2 or words[1].startswith("-"):
            continue
        command = subparsers.choices[words[1]]
        if words[1] in ("schema", "suppressions"):
            action_parser = next(a for a in command._actions if a.choices)
            command = action_parser.choices[words[2].split("|")[0]]
        help_text = " ".join(command.format_help().split())
        for flag, value in re.findall(r"\[?(--[a-z-]+)(?: ([A-Z=]+|[a-z|]+))?", line):
            assert flag in help_text, (line, flag)
            if value and value.isupper():
                assert f"{flag} {value}" in help_text, (line, flag, value)
            elif value and "|" in value:
                assert "{" + value.replace("|", ",") + "}" in help_text, (line, flag, value)
            checked += 1
    assert checked >= 15
