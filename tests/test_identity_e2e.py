"""End to end: a summarize hunt run two hours in a row over the same activity posts it once.

Two `huntwire run --once --now ...` an hour apart, local engine over `--events`, Azurite and a
local Teams webhook; nothing of ours is mocked. The brute-force count and LastSeen grow between the
runs; the finding identity (the summarize's by-keys, or the manifest's identity) does not.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devtools.webhook import WebhookReceiver
from tests.fanout_world import clear_tables

REPO = Path(__file__).resolve().parents[1]
HUNT = """\
id: 44444444-0000-0000-0000-000000000001
name: Failed logons by account
severity: Medium
requiredDataConnectors:
  - connectorId: SecurityEvents
    dataTypes: [SecurityEvent]
query: |
  SecurityEvent
  | where EventID == 4625
  | summarize Attempts = count(), FirstSeen = min(TimeGenerated), LastSeen = max(TimeGenerated)
      by Account, Computer
  | where Attempts >= 3
"""
FIRST = datetime(2026, 11, 30, 10, tzinfo=UTC)


def failure(account: str, when: datetime) -> dict[str, Any]:
    return {"TimeGenerated": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "EventID": 4625,
            "Account": account, "Computer": "dc-1", "IpAddress": "203.0.113.9"}


@pytest.fixture
def webhook(storage_connection_string: str) -> Iterator[WebhookReceiver]:
    clear_tables(storage_connection_string)
    with WebhookReceiver() as receiver:
        yield receiver


def huntwire(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shared", *args], cwd=REPO, env=env,
                          text=True, capture_output=True, timeout=300, check=False)


@pytest.mark.parametrize("manifest", [False, True], ids=["derived", "manifest"])
def test_a_summarize_hunt_posts_the_same_activity_once(
        tmp_path: Path, webhook: WebhookReceiver, storage_connection_string: str,
        manifest: bool) -> None:
    if manifest and shutil.which("node") is None:
        pytest.skip("validate runs Kusto.Language in node")
    hunts = tmp_path / "hunts"
    hunts.mkdir()
    (hunts / "brute.yaml").write_text(HUNT)
    (tmp_path / "no-rules").mkdir()
    events = tmp_path / "events.jsonl"
    env = {"PATH": "/usr/bin:/bin", "HUNTWIRE_STORAGE": storage_connection_string,
           "HUNTWIRE_TEAMS_WEBHOOK_URL": webhook.url, "HUNTWIRE_HUNTS_DIR": str(hunts),
           "HUNTWIRE_SUPPRESSIONS_DIR": str(tmp_path / "no-rules"),
           "HUNTWIRE_HEARTBEAT_HOUR": "off"}
    if manifest:
        done = huntwire(env, "validate", "--hunts", str(hunts), "--manifest",
                        str(hunts / "huntwire.manifest.json"))
        assert done.returncode == 0, done.stderr
        listed = json.loads((hunts / "huntwire.manifest.json").read_text())["hunts"]
        assert listed["44444444-0000-0000-0000-000000000001"]["identity"] == ["Account",
                                                                              "Computer"]

    def run(now: datetime, rows: list[dict[str, Any]]) -> dict[str, Any]:
        events.write_text("".join(json.dumps(r) + "\n" for r in rows))
        done = huntwire(env, "run", "--once", "--format", "json", "--now", now.isoformat(),
                        "--events", f"SecurityEvent={events}")
        assert done.returncode == 0, done.stderr
        (hunt,) = json.loads(done.stdout)["hunts"]
        return hunt  # type: ignore[no-any-return]

    hour_one = [failure("alice", FIRST - timedelta(minutes=m)) for m in (50, 40, 30)]
    one = run(FIRST, hour_one)
    assert (one["rows"], one["new"], one["posted"]) == (1, 1, 1)
    # An hour later: the same account keeps failing (count 3 -> 5, LastSeen moves), and a new
    # account starts: only the new account is a new finding.
    second = FIRST + timedelta(hours=1)
    hour_two = hour_one + [failure("alice", second - timedelta(minutes=m)) for m in (20, 10)]
    hour_two += [failure("bob", second - timedelta(minutes=m)) for m in (15, 14, 13)]
    two = run(second, hour_two)
    assert two["rows"] == 2
    assert (two["new"], two["posted"]) == (1, 1)
    assert len(webhook.payloads) == 2
    assert "bob" in json.dumps(webhook.payloads[1])
    assert "alice" not in json.dumps(webhook.payloads[1])
