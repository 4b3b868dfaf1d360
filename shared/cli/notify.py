"""``huntwire notify --test``: post one test card through the configured webhook and say what
the channel answered, so a deployer sees a card in Teams before the first hourly run.

The card goes through the same notifier the function uses (``shared.notify``), so a wrong,
deleted or unauthorised webhook fails here exactly as it would at run time. The URL is a
credential and is never printed: errors come from the notifier, which never quotes it.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
from dataclasses import replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..notify import Notice

CHANNELS = ("findings", "health")


def register(commands: Any) -> None:
    notify = commands.add_parser(
        "notify", help="post a test card through the configured webhook and report the answer")
    notify.add_argument("--test", action="store_true", required=True,
                        help="post one test card (the only action so far)")
    notify.add_argument("--channel", choices=CHANNELS, default="findings",
                        help="findings: HUNTWIRE_TEAMS_WEBHOOK_URL; health: "
                             "HUNTWIRE_HEALTH_WEBHOOK_URL (else the findings webhook)")
    notify.add_argument("--format", choices=("text", "json"), default="text")
    notify.set_defaults(handler=cmd_notify)


def cmd_notify(args: argparse.Namespace) -> int:
    from ..errors import HuntwireError
    from ..notify import build_notifier
    from ..settings import SettingsError, load_settings

    try:
        settings = load_settings(os.environ, require_storage=False)
    except SettingsError as exc:
        return _fail(args, "; ".join(exc.problems), code=2)
    if args.channel == "health":
        settings = replace(settings, teams_webhook_url=settings.health_webhook_url)
    try:
        notifier = build_notifier(settings)
    except HuntwireError as exc:
        return _fail(args, exc.message, code=2)
    if notifier is None:
        return _fail(args, "no webhook is configured: set HUNTWIRE_TEAMS_WEBHOOK_URL (in Azure "
                     "it is the Key Vault secret; see docs/deploy.md, send a test card)", code=2)
    try:
        delivery = notifier.post_notice(sample_notice(args.channel))
    except HuntwireError as exc:
        return _fail(args, f"{args.channel} channel: not delivered: {exc.message}", code=1)
    finally:
        notifier.close()
    answer = {"delivered": True, "channel": args.channel, "notifier": delivery.notifier,
              "status": delivery.status, "attempts": delivery.attempts,
              "bytes": delivery.payload_bytes, "seconds": round(delivery.elapsed_seconds, 2)}
    if args.format == "json":
        print(json.dumps(answer))
    else:
        print(f"{args.channel} channel: delivered, HTTP {delivery.status} after "
              f"{delivery.attempts} attempt(s), {delivery.payload_bytes:,} bytes in "
              f"{delivery.elapsed_seconds:.1f} s; look for the card in the channel")
    return 0


def sample_notice(channel: str, now: datetime | None = None) -> Notice:
    """The test card: says what it is, where it came from and that nothing is wrong."""
    from ..notify import Notice

    moment = (now or datetime.now(UTC)).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return Notice(
        kind="info", severity="Informational", tag="notify-test",
        title="huntwire test card",
        summary="This card was sent by `huntwire notify --test`. If you can read it, huntwire "
                "can post to this channel. No hunt ran and nothing needs doing.",
        facts=(("Channel", channel), ("Sent", moment), ("From", platform.node()[:64] or "?")))


def _fail(args: argparse.Namespace, message: str, *, code: int) -> int:
    if args.format == "json":
        print(json.dumps({"delivered": False, "channel": args.channel, "error": message}))
    print(f"huntwire notify: {message}", file=sys.stderr)
    return code
