"""``huntwire import DIR``: copy hunting-query files into the hunts folder and say how each runs."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..importer import CANNOT_RUN, ImportItem, import_hunts
from .common import hunts_dir


def register(commands: Any) -> None:
    command = commands.add_parser(
        "import", help="copy hunting-query files (e.g. Azure-Sentinel's) into the hunts folder")
    command.add_argument("directory", type=Path, metavar="DIR",
                         help="folder of hunting-query YAML files")
    command.add_argument("--to", type=Path, default=None, dest="hunts", metavar="HUNTS",
                         help="hunts folder (default: $HUNTWIRE_HUNTS_DIR or ./hunts)")
    command.add_argument("--dry-run", action="store_true", help="judge only, copy nothing")
    command.add_argument("--format", choices=("text", "json"), default="text")
    command.set_defaults(handler=cmd_import)


def cmd_import(args: argparse.Namespace) -> int:
    if not args.directory.is_dir():
        print(f"huntwire import: not a folder: {args.directory}", file=sys.stderr)
        return 2
    target = hunts_dir(args)
    items = import_hunts(args.directory, target, dry_run=args.dry_run)
    if args.format == "json":
        print(json.dumps({"to": str(target), "dry_run": args.dry_run,
                          "files": [i.as_dict() for i in items]}, indent=2))
    else:
        for item in items:
            _print_item(item, args.dry_run)
        counts = {v: sum(i.verdict == v for i in items)
                  for v in ("runs as is", "needs a setting", CANNOT_RUN)}
        copied = sum(i.copied for i in items)
        print(", ".join(f"{n} {v}" for v, n in counts.items())
              + f"; {copied} copied to {target}" + (" (dry run)" if args.dry_run else ""))
    return 1 if any(i.refused or i.verdict == CANNOT_RUN for i in items) else 0


def _print_item(item: ImportItem, dry_run: bool) -> None:
    action = ("copied" if item.copied else "would copy" if dry_run and not item.refused
              and item.verdict != CANNOT_RUN else "not copied")
    print(f"{item.file}: {item.verdict} ({action})")
    for reason in item.reasons:
        print(f"  - {reason}")
    if item.refused:
        print(f"  - refused: {item.refused}")
    for note in item.notes:
        print(f"  . {note}")
