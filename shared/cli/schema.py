"""``huntwire schema pull``: the tenant's live table schemas into the schema cache file."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..schemas import Flavour, Schema, cache_path


def register(commands: Any) -> None:
    schema = commands.add_parser("schema", help="table schemas: pull the tenant's live ones")
    actions = schema.add_subparsers(metavar="ACTION")
    pull = actions.add_parser("pull", help="read Defender (Graph) and Sentinel (workspace "
                              "metadata) table schemas into the cache validate and eval use")
    pull.add_argument("--source", choices=("defender", "sentinel", "all"), default="all")
    pull.add_argument("--out", type=Path, default=None,
                      help=f"cache file to write (default: {cache_path().name} beside "
                           "function_app.py, which validate and eval read; git-ignored and "
                           "not deployed)")
    pull.add_argument("--format", choices=("text", "json"), default="text")
    pull.set_defaults(handler=cmd_schema_pull)


def cmd_schema_pull(args: argparse.Namespace) -> int:
    from ..credentials import make_credential
    from ..errors import HuntwireError
    from ..schema_pull import pull_defender, pull_sentinel, write_cache
    from ..settings import SettingsError, load_settings

    try:
        settings = load_settings(os.environ, require_storage=False)
    except SettingsError as exc:
        return _fail("; ".join(exc.problems), 2)
    sources = ("defender", "sentinel") if args.source == "all" else (args.source,)
    if "sentinel" in sources and not settings.sentinel_workspace_id:
        if args.source == "sentinel":
            return _fail("--source sentinel needs HUNTWIRE_SENTINEL_WORKSPACE_ID (the "
                         "workspace's customer id); nothing was written", 2)
        print("huntwire schema pull: HUNTWIRE_SENTINEL_WORKSPACE_ID is not set; Sentinel "
              "skipped", file=sys.stderr)
        sources = ("defender",)
    credential = make_credential(settings.client_id)
    pulled: dict[Flavour, Schema] = {}
    try:
        if "defender" in sources:
            pulled["defender"] = pull_defender(credential, settings.graph_endpoint)
        if "sentinel" in sources and settings.sentinel_workspace_id:
            pulled["sentinel"] = pull_sentinel(credential, settings.logs_endpoint,
                                               settings.sentinel_workspace_id)
    except HuntwireError as exc:
        return _fail(exc.message, 1)
    out = args.out or cache_path()
    try:
        note = write_cache(out, pulled)
    except OSError as exc:
        return _fail(f"cannot write {out}: {exc.strerror or type(exc).__name__}", 1)
    if note:
        print(f"huntwire schema pull: {note}", file=sys.stderr)
    counts = {flavour: len(tables) for flavour, tables in pulled.items()}
    if args.format == "json":
        print(json.dumps({"cache": str(out), "tables": counts}))
    else:
        for flavour, count in counts.items():
            print(f"{flavour}: {count} table(s)")
        print(f"written to {out}")
    return 0


def _fail(message: str, code: int) -> int:
    print(f"huntwire schema pull: {message}", file=sys.stderr)
    return code
