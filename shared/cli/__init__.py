"""The ``huntwire`` command line: validate, eval, run, status, preview-card,
suppressions, schema, import.

One module per command (each has ``register`` and its ``cmd_*``), helpers in ``common``; the
commands import ``common`` and never this module, so there is no import cycle.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ..errors import ConfigurationError
from . import eval as eval_command
from . import import_, preview, run, schema, status, suppressions, validate
from . import notify as notify_command


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    try:
        result: int = args.handler(args)
    except ConfigurationError as exc:  # e.g. a tampered schema cache: one line, not a traceback
        print(f"huntwire: {exc.message}", file=sys.stderr)
        return 2
    return result


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="huntwire",
        description="Scheduled threat hunts on Microsoft Defender XDR and Sentinel, "
                    "deduplicated in Table Storage and posted to Teams.")
    parser.add_argument("--version", action="version", version=f"huntwire {version()}")
    commands = parser.add_subparsers(metavar="COMMAND")
    for command in (validate, eval_command, run, status, preview, suppressions, schema,
                    import_, notify_command):
        command.register(commands)
    return parser


def version() -> str:
    """The installed package's version (pyproject.toml), or ``unknown`` when not installed."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("huntwire")
    except PackageNotFoundError:
        return "unknown"


__all__ = ["build_parser", "main", "version"]
