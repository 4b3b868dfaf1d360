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
                           "function_app.py, which validate, eval and run read)")
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
        print(f"huntwire schema pull: {exc}", file=sys.stderr)
        return 2
    credential = make_credential(settings.client_id)
    pulled: dict[Flavour, Schema] = {}
    try:
        if args.source in ("defender", "all"):
            pulled["defender"] = pull_defender(credential, settings.graph_endpoint)
        if args.source in ("sentinel", "all"):
            if not settings.sentinel_workspace_id:
                print("huntwire schema pull: HUNTWIRE_SENTINEL_WORKSPACE_ID is not set; "
                      "Sentinel skipped", file=sys.stderr)
            else:
                pulled["sentinel"] = pull_sentinel(credential, settings.logs_endpoint,
                                                   settings.sentinel_workspace_id)
    except HuntwireError as exc:
        print(f"huntwire schema pull: {exc.message}", file=sys.stderr)
        return 1
    out = args.out or cache_path()
    write_cache(out, pulled)
    counts = {flavour: len(tables) for flavour, tables in pulled.items()}
    if args.format == "json":
        print(json.dumps({"cache": str(out), "tables": counts}))
    else:
        for flavour, count in counts.items():
            print(f"{flavour}: {count} table(s)")
        print(f"written to {out}")
    return 0
