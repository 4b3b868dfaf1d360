"""The command line entry points."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


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
