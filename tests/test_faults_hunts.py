"""Malformed hunt files (bombs, nesting, overflow, encodings, duplicate keys) beside a good hunt:
`huntwire validate` and `huntwire run --once` (subprocesses, real Azurite and webhook) report
each bad file and still validate, run and deliver the good one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from devtools.azurite import Azurite
from devtools.webhook import WebhookReceiver
from tests.faults_world import BASE, Events
from tests.test_hunt_loader_hardening import HOSTILE

pytestmark = pytest.mark.faults

REPO = Path(__file__).resolve().parents[1]
GOOD = """\
id: 99999999-2222-3333-4444-000000000016
name: Good marker hunt
source: defender
dedupBy: [DeviceId, ReportId]
teams:
  maxFindings: 50
query: |
  DeviceProcessEvents
  | where ProcessCommandLine contains "fwtok"
  | project Timestamp, DeviceId, ReportId, ProcessCommandLine
"""


def test_malformed_hunt_files_never_stop_the_good_hunt(tmp_path: Path, azurite: Azurite) -> None:
    hunts = tmp_path / "hunts"
    hunts.mkdir()
    for name, (data, _) in HOSTILE.items():
        (hunts / f"{name}.yaml").write_bytes(data)
    (hunts / "zz-good.yaml").write_text(GOOD)
    events = Events(tmp_path / "DeviceProcessEvents.jsonl")
    tokens = events.add(1, 4)
    with WebhookReceiver() as webhook:
        env = {**os.environ, "HUNTWIRE_STORAGE": azurite.connection_string,
               "HUNTWIRE_TEAMS_WEBHOOK_URL": webhook.url, "HUNTWIRE_HUNTS_DIR": str(hunts)}
        validate = subprocess.run([sys.executable, "-m", "shared", "validate", "--hunts",
                                   str(hunts), "--format", "json"], cwd=REPO, env=env,
                                  capture_output=True, text=True, timeout=300)
        run = subprocess.run([sys.executable, "-m", "shared", "run", "--once", "--format",
                              "json", "--now", (BASE.replace(hour=1)).strftime(
                                  "%Y-%m-%dT%H:%M:%SZ"),
                              "--events", f"DeviceProcessEvents={events.path}"],
                             cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
        bodies = [post.body.decode() for post in webhook.posts]
    assert validate.returncode == 1
    report = json.loads(validate.stdout)
    assert sorted(Path(e["file"]).stem for e in report["errors"]) == sorted(HOSTILE)
    assert "Traceback" not in validate.stderr + run.stderr
    summary = json.loads(run.stdout)
    (good,) = summary["hunts"]
    assert (good["name"], good["status"], good["posted"]) == ("Good marker hunt", "ok", 4)
    for name in HOSTILE:
        assert f"{name}.yaml" in run.stderr  # each bad file is named, with its reason
    assert all(sum(token in body for body in bodies) == 1 for token in tokens)
