"""``huntwire eval``: run hunts locally (duckdb-kql) over JSON-lines events."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from typing import Any

from ..hunt import Hunt, load_hunts
from ..sources.catalog import time_columns
from ..window import hunt_window, iso
from . import suppressions as suppress_cli
from .common import add_common, event_files, hunts_dir, parse_now, to_json_value


def register(commands: Any) -> None:
    evaluate = commands.add_parser("eval", help="run hunts locally over JSON-lines events")
    add_common(evaluate)
    suppress_cli.add_flag(evaluate)
    evaluate.add_argument("--events", action="append", required=True, metavar="TABLE=FILE",
                          help="events of one table, one JSON object a line (repeatable)")
    evaluate.add_argument("--hunt", action="append", metavar="ID",
                          help="only this hunt id (repeatable)")
    evaluate.add_argument("--now", type=parse_now, help="end of the window (ISO 8601; "
                          "default: the current time)")
    evaluate.set_defaults(handler=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from ..sources.base import QueryError
    from ..sources.local import LocalSource

    loaded = load_hunts(hunts_dir(args))
    for error in loaded.errors:
        print(f"error: {error}", file=sys.stderr)
    selected = _select(loaded.hunts, args.hunt)
    now = args.now or datetime.now(UTC)
    source = LocalSource(event_files(args.events))
    suppressor = suppress_cli.eval_suppressor(args, now.date())
    report: list[dict[str, Any]] = []
    for hunt in selected:
        entry: dict[str, Any] = {"id": hunt.id, "name": hunt.name, "matches": [], "error": None}
        try:
            result = source.run(hunt, hunt_window(now, hunt.lookback))
            applied = suppressor.apply(hunt, result.rows, now.date())
            entry["matches"] = [{k: to_json_value(v) for k, v in row.items()}
                                for row in applied.kept]
            entry["suppressed"] = applied.suppressed
        except QueryError as exc:
            entry["error"] = exc.message
        report.append(entry)
    if args.format == "json":
        print(json.dumps({"now": iso(now), "hunts": report}, indent=2, ensure_ascii=False))
    else:
        print_eval_table(report, now)
    failed = bool(loaded.errors) or any(e["error"] for e in report)
    return 1 if failed else 0


def _select(hunts: list[Hunt], ids: list[str] | None) -> list[Hunt]:
    """Every hunt, disabled ones too: eval is where a hunt is tried before it is enabled."""
    if not ids:
        return hunts
    wanted = {i.lower() for i in ids}
    unknown = wanted - {h.id for h in hunts}
    if unknown:
        raise SystemExit(f"huntwire eval: unknown hunt id(s): {', '.join(sorted(unknown))}")
    return [h for h in hunts if h.id in wanted]


def print_eval_table(report: list[dict[str, Any]], now: datetime) -> None:
    print(f"window end: {iso(now)}")
    for entry in report:
        count = len(entry["matches"])
        status = f"ERROR {entry['error']}" if entry["error"] else f"{count} match(es)"
        status += suppress_cli.suppressed_text(entry.get("suppressed") or {})
        print(f"\n== {entry['name']} [{entry['id']}]: {status}")
        for match in entry["matches"]:
            when = next((match[c] for c in time_columns() if match.get(c)), "")
            device = match.get("DeviceName") or match.get("DeviceId") or ""
            command = str(match.get("ProcessCommandLine") or match.get("RemoteUrl")
                          or match.get("RemoteIP") or "")
            print(f"  {when}  {device:<24.24}  {_shorten(command, 90)}")


def _shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
