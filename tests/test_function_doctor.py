"""azure-functions-doctor checks the Function app statically (there is no Functions host here)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

DEPLOYED = ("function_app.py", "host.json", "requirements.txt", ".funcignore", "shared", "hunts",
            "suppressions")
"""What `func azure functionapp publish`/azd ship after .funcignore; the doctor checks that."""


def test_doctor_reports_no_failed_check(repo: Path, tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    for name in DEPLOYED:
        source = repo / name
        if source.is_dir():
            shutil.copytree(source, app / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, app / name)
    doctor = Path(sys.executable).with_name("azure-functions-doctor")
    summary = tmp_path / "summary.json"
    done = subprocess.run([str(doctor), "doctor", "--path", str(app), "--format", "json",
                           "--hosting-plan", "flex-consumption", "--target-python", "3.11",
                           "--summary-json", str(summary)],
                          capture_output=True, text=True, check=False, timeout=120)
    report = json.loads(done.stdout)
    statuses = [item["status"] for section in report["results"] for item in section["items"]]
    failed = [item for section in report["results"] for item in section["items"]
              if item["status"] == "fail"]
    assert report["metadata"]["programming_model"] == "v2"
    assert failed == []
    assert statuses.count("pass") >= 10
    assert done.returncode == 0


def test_function_start_imports_only_runtime_requirements(repo: Path) -> None:
    """The deployed app has requirements.txt only: dev tools must not load when it starts."""
    code = ("import sys, function_app\n"
            "function_app.app.get_functions()\n"
            "import shared.app, shared.runner\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'duckdb', 'duckdb_kql', "
            "'PIL', 'pytest', 'devtools'}))")
    done = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True,
                          text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
