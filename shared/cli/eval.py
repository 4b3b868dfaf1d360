"""``huntwire eval``: run hunts locally (duckdb-kql) over JSON-lines events."""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..hunt import Hunt, load_hunts
from ..schemas import table_schemas
from ..sources.catalog import source_kind, time_columns
from ..window import Window, hunt_window, iso
from . import suppressions as suppress_cli
from .common import add_common, event_files, event_span, hunts_dir, parse_now, to_json_value


def register(commands: Any) -> None:
    evaluate = commands.add_parser("eval", help="run hunts locally over JSON-lines events")
    add_common(evaluate)
    suppress_cli.add_flag(evaluate)
    evaluate.add_argument("--events", action="append", required=True, metavar="TABLE=FILE",
                          help="events of one table, one JSON object a line (repeatable)")
    evaluate.add_argument("--hunt", action="append", metavar="ID",
                          help="only this hunt id (repeatable)")
    evaluate.add_argument("--now", type=parse_now, metavar="ISO",
                          help="end of the window (ISO 8601; default: the current time)")
    evaluate.set_defaults(handler=cmd_eval)


def cmd_eval(args: argparse.Namespace) -> int:
    from ..sources.base import QueryError
    from ..sources.local import LocalSource

    loaded = load_hunts(hunts_dir(args))
    for error in loaded.errors:
        print(f"error: {error}", file=sys.stderr)
    selected = _select(loaded.hunts, args.hunt)
    now = args.now or datetime.now(UTC)
    files = event_files(args.events)
    try:
        source = LocalSource(files)
    except ValueError as exc:
        raise SystemExit(f"huntwire eval: {exc}") from None
    suppressor = suppress_cli.eval_suppressor(args, now.date())
    report: list[dict[str, Any]] = []
    spans: dict[str, tuple[str, str] | None] = {}  # per table: each file read once for its span
    for hunt in selected:
        entry: dict[str, Any] = {"id": hunt.id, "name": hunt.name, "matches": [], "error": None,
                                 "notes": []}
        window = hunt_window(now, hunt.lookback)
        try:
            result = source.run(hunt, window)
            applied = suppressor.apply(hunt, result.rows, now.date())
            entry["matches"] = [{k: to_json_value(v) for k, v in row.items()}
                                for row in applied.kept]
            entry["suppressed"] = applied.suppressed
            entry["notes"] = input_notes(hunt, files, source.window_counts(hunt, window), window,
                                         spans)
        except QueryError as exc:
            entry["error"] = exc.message
        report.append(entry)
    if args.format == "json":
        print(json.dumps({"now": iso(now), "hunts": report}, indent=2, ensure_ascii=False))
    else:
        print_eval_table(report, now)
    failed = bool(loaded.errors) or any(e["error"] for e in report)
    return 1 if failed else 0


def input_notes(hunt: Hunt, files: dict[str, Path], counts: dict[str, int], window: Window,
                spans: dict[str, tuple[str, str] | None]) -> list[str]:
    """Why a hunt may have matched nothing: a table it reads was not supplied, or no event of
    a supplied one fell in its window (*spans*: each table's event span, kept across hunts)."""
    notes = []
    read = tables_named(hunt)
    missing = sorted(read - set(files))
    if missing:
        flags = " ".join(f"--events {t}=FILE" for t in missing)
        notes.append(f"table(s) {', '.join(missing)} not supplied ({flags})")
    for table in sorted(read & set(counts)):
        if counts[table]:
            continue
        if table not in spans:
            spans[table] = event_span(files[table], time_columns())
        span = spans[table]
        seen = f"; the file's events span {span[0]} .. {span[1]} (try --now {span[1]})" \
            if span else "; the file has no event with a time"
        notes.append(f"no {table} event in the window {iso(window.start)} .. "
                     f"{iso(window.end)}{seen}")
    return notes


def tables_named(hunt: Hunt) -> set[str]:
    """Tables of the hunt's schema that its KQL names (a word-level scan: no Node needed)."""
    tables = table_schemas(source_kind(hunt.source).schema_flavour)
    return {word for word in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", hunt.query)
            if word in tables}


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
        for note in entry.get("notes") or []:
            print(f"  note: {note}")
        for match in entry["matches"]:
            when = next((match[c] for c in time_columns() if match.get(c)), "")
            device = match.get("DeviceName") or match.get("DeviceId") or ""
            command = str(match.get("ProcessCommandLine") or match.get("RemoteUrl")
                          or match.get("RemoteIP") or "")
            print(f"  {when}  {device:<24.24}  {_shorten(command, 90)}")


def _shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"
