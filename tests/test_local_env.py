"""`make local` (devtools/local_env.py): Azurite and a webhook on this machine, so `run`, `status`
and `suppressions` work by hand from the settings file it writes (issue 22 item 15)."""

from __future__ import annotations

import os
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOCKET_HUNT = "ad877df6-338f-4de5-96ef-63cd9ecf2577"


def _settings(env_file: Path) -> dict[str, str]:
    values = {}
    for line in env_file.read_text().splitlines():
        name, _, value = line.removeprefix("export ").partition("=")
        values[name] = shlex.split(value)[0]
    return values


def _huntwire(env: dict[str, str], *argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shared", *argv], cwd=REPO, env=env, text=True,
                          capture_output=True, timeout=180, check=False)


def test_run_status_and_suppressions_work_against_make_local(tmp_path: Path) -> None:
    env_file = tmp_path / "local.env"
    local = subprocess.Popen([sys.executable, "-m", "devtools.local_env", "--env-file",
                              str(env_file)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 60
        while not env_file.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        clean = {k: v for k, v in os.environ.items() if not k.startswith("HUNTWIRE_")}
        env = {**clean, **_settings(env_file), "HUNTWIRE_HEARTBEAT_HOUR": "off"}
        events = ["--events", f"DeviceProcessEvents={REPO / 'samples/DeviceProcessEvents.jsonl'}"]
        run = _huntwire(env, "run", *events, "--now", "2026-11-28T00:00:00Z", "--since",
                        "2026-11-27T00:00:00Z", "--hunt", SOCKET_HUNT)
        assert run.returncode == 0, run.stderr
        assert "1 ok, 0 failed" in run.stdout
        status = _huntwire(env, "status", "--format", "json")
        assert status.returncode == 0, status.stderr
        assert '"state": "ok"' in status.stdout
        listing = _huntwire(env, "suppressions", "list")
        assert listing.returncode == 0, listing.stderr
        assert listing.stdout.strip().endswith("0 snooze(s)")
    finally:
        local.send_signal(signal.SIGTERM)
        out, _ = local.communicate(timeout=30)
    assert local.returncode == 0
    assert "card: " in out  # the webhook received the run's card
    assert out.rstrip().endswith("stopped")
