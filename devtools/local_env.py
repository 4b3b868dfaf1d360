"""``make local``: Table Storage (Azurite) and a Teams webhook on this machine, so ``huntwire
run``, ``status`` and ``suppressions`` can be tried by hand without Azure.

It writes the settings to ``out/local.env`` (source it in another shell), prints the commands
to try, then prints each card the webhook receives until Ctrl-C. Storage lives in memory: it is
gone when this stops. Queries run on the local engine over the sample day (``--events``), so no
Azure credential is needed.
"""

from __future__ import annotations

import argparse
import shlex
import signal
import time
from pathlib import Path

from devtools.azurite import Azurite
from devtools.webhook import WebhookReceiver, _title

REPO = Path(__file__).resolve().parents[1]
ENV_FILE = REPO / "out" / "local.env"
SAMPLE_NOW = "2026-11-28T00:00:00Z"
SAMPLE_SINCE = "2026-11-27T00:00:00Z"


def settings(azurite: Azurite, webhook: WebhookReceiver) -> dict[str, str]:
    return {"HUNTWIRE_STORAGE": azurite.connection_string,
            "HUNTWIRE_TEAMS_WEBHOOK_URL": webhook.url,
            "HUNTWIRE_HUNTS_DIR": str(REPO / "hunts"),
            "HUNTWIRE_SUPPRESSIONS_DIR": str(REPO / "suppressions")}


def write_env_file(values: dict[str, str], path: Path = ENV_FILE) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(f"export {k}={shlex.quote(v)}\n" for k, v in values.items()))
    path.chmod(0o600)
    return path


def commands(env_file: Path) -> list[str]:
    events = " ".join(f"--events {t}=samples/{t}.jsonl"
                      for t in ("DeviceProcessEvents", "DeviceNetworkEvents"))
    return [f". {env_file}",
            f"huntwire run {events} --now {SAMPLE_NOW} --since {SAMPLE_SINCE}",
            f"huntwire run {events} --now {SAMPLE_NOW}            # again: every hunt not due",
            f"huntwire run {events} --now {SAMPLE_NOW} --force --hunt <id>",
            "huntwire status",
            "huntwire suppressions list"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--storage-port", type=int, default=0, help="Azurite's table port")
    parser.add_argument("--webhook-port", type=int, default=0)
    parser.add_argument("--env-file", type=Path, default=ENV_FILE)
    args = parser.parse_args(argv)
    with Azurite(port=args.storage_port) as azurite, \
            WebhookReceiver(port=args.webhook_port) as webhook:
        path = write_env_file(settings(azurite, webhook), args.env_file)
        print(f"Azurite tables on 127.0.0.1:{azurite.port}, Teams webhook on "
              f"127.0.0.1:{webhook.port}; settings in {path}.\n"
              "In another shell, from the repository root (with .venv/bin on PATH):")
        for line in commands(path):
            print(f"  {line}")
        print("Cards posted to the webhook appear below. Ctrl-C stops (storage is in memory).",
              flush=True)
        watch(webhook)
    return 0


def _stop(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def watch(webhook: WebhookReceiver) -> None:
    """Print each card's title until Ctrl-C or SIGTERM (both stop Azurite cleanly)."""
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    seen = 0
    try:
        while True:
            time.sleep(0.5)
            posts = webhook.posts
            for post in posts[seen:]:
                print(f"card: {_title(post.json())}", flush=True)
            seen = len(posts)
    except KeyboardInterrupt:
        print("stopped")


if __name__ == "__main__":
    raise SystemExit(main())
