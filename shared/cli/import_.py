"""``huntwire import DIR`` and ``huntwire import --sigma DIR``: bring hunting queries or Sigma rules
into the hunts folder and say how each runs, what it is for and the schedule it should get."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any, TextIO

from ..importer import CANNOT_RUN, NEEDS_SETTING, RUNS, ImportItem, import_hunts, printable
from .common import hunts_dir


def register(commands: Any) -> None:
    command = commands.add_parser(
        "import", help="copy hunting-query files (e.g. Azure-Sentinel's) or convert Sigma rules "
        "into the hunts folder")
    command.add_argument("directory", type=Path, metavar="DIR",
                         help="folder of hunting-query YAML files (or Sigma rules with --sigma)")
    command.add_argument("--sigma", action="store_true",
                         help="DIR holds Sigma rules: convert them with pySigma's Kusto backend")
    command.add_argument("--source", choices=("defender", "sentinel"), default="defender",
                         help="with --sigma: Microsoft XDR pipeline (defender, default) or "
                         "Sentinel ASIM pipeline (sentinel)")
    command.add_argument("--to", type=Path, default=None, dest="hunts", metavar="HUNTS",
                         help="hunts folder (default: $HUNTWIRE_HUNTS_DIR or ./hunts)")
    command.add_argument("--dry-run", action="store_true", help="judge only, copy nothing")
    command.add_argument("--format", choices=("text", "json"), default="text")
    command.set_defaults(handler=cmd_import)


def cmd_import(args: argparse.Namespace) -> int:
    if not args.directory.is_dir():
        print(f"huntwire import: not a folder: {printable(str(args.directory))}", file=sys.stderr)
        return 2
    target = hunts_dir(args)
    progress = _Progress(sys.stderr) if sys.stderr.isatty() else None
    if args.sigma:
        from ..sigma_import import SigmaUnavailable, import_sigma

        try:
            items = import_sigma(args.directory, target, pipeline=args.source,
                                 dry_run=args.dry_run, progress=progress)
        except SigmaUnavailable as exc:
            print(f"huntwire import --sigma: {exc}", file=sys.stderr)
            return 2
    else:
        items = import_hunts(args.directory, target, dry_run=args.dry_run, progress=progress)
    if progress:
        progress.done()
    if args.format == "json":
        print(json.dumps({"to": str(target), "dry_run": args.dry_run,
                          "files": [i.as_dict() for i in items]}, indent=2))
    else:
        for item in items:
            _print_item(item, args.dry_run)
        _print_table(items, args.dry_run)
        counts = {v: sum(i.verdict == v for i in items) for v in (RUNS, NEEDS_SETTING, CANNOT_RUN)}
        copied = sum(i.copied for i in items)
        print(", ".join(f"{n} {v}" for v, n in counts.items())
              + f"; {copied} copied to {printable(str(target))}"
              + (" (dry run)" if args.dry_run else ""))
    return 1 if any(i.refused or i.verdict == CANNOT_RUN for i in items) else 0


class _Progress:
    """One line on the terminal, rewritten per file: ``[3/58] judging NAME``."""

    def __init__(self, stream: TextIO):
        self._stream = stream

    def __call__(self, index: int, total: int, name: str) -> None:
        line = f"[{index}/{total}] judging {printable(name)}"[:100]
        self._stream.write("\r\x1b[2K" + line)
        self._stream.flush()

    def done(self) -> None:
        self._stream.write("\r\x1b[2K")
        self._stream.flush()


def _action(item: ImportItem, dry_run: bool) -> str:
    if item.copied:
        return "copied"
    if dry_run and not item.refused and item.verdict != CANNOT_RUN:
        return "would copy"
    return "not copied"


def _print_item(item: ImportItem, dry_run: bool) -> None:
    print(f"{printable(item.file)}: {item.verdict} ({_action(item, dry_run)})")
    for reason in item.reasons:
        print(f"  - {printable(reason)}")
    if item.refused:
        print(f"  - refused: {printable(item.refused)}")
    for note in item.notes:
        print(f"  . {printable(note)}")


def _print_table(items: list[ImportItem], dry_run: bool) -> None:
    rows = [("file", "verdict", "use", "frequency", "lookback", "action")]
    rows += [(printable(i.file)[:48], i.verdict, i.use or "-", i.frequency or "-",
              i.lookback or "-", _action(i, dry_run)) for i in items]
    widths = [max(len(row[c]) for row in rows) for c in range(len(rows[0]))]
    print()
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
              .rstrip())
