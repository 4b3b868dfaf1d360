"""The ``huntwire`` command line: validate, eval, run, preview-card."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .hunt import Hunt, HuntError, load_hunts
from .window import hunt_window, iso

DEFAULT_HUNTS_DIR = Path(__file__).resolve().parents[1] / "hunts"


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "handler"):
        parser.print_help()
        return 2
    result: int = args.handler(args)
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="huntwire",
        description="Scheduled threat hunts on Microsoft Defender XDR and Sentinel, "
                    "deduplicated in Table Storage and posted to Teams.")
    commands = parser.add_subparsers(metavar="COMMAND")

    validate = commands.add_parser("validate", help="check hunt files: schema and KQL")
    _common(validate)
    validate.set_defaults(handler=cmd_validate)

    evaluate = commands.add_parser("eval", help="run hunts locally over JSON-lines events")
    _common(evaluate)
    evaluate.add_argument("--events", action="append", required=True, metavar="TABLE=FILE",
                          help="events of one table, one JSON object a line (repeatable)")
    evaluate.add_argument("--hunt", action="append", metavar="ID",
                          help="only this hunt id (repeatable)")
    evaluate.add_argument("--now", type=_parse_now, help="end of the window (ISO 8601; "
                          "default: the current time)")
    evaluate.set_defaults(handler=cmd_eval)

    from . import cli_preview, cli_run
    from .health import status as health_status

    cli_run.register(commands, _common, _parse_now, _event_files)
    cli_preview.register(commands, _common)
    health_status.register(commands)
    return parser


def _common(sub: argparse.ArgumentParser) -> None:
    sub.add_argument("--hunts", type=Path, default=None,
                     help="folder of hunt YAML files (default: $HUNTWIRE_HUNTS_DIR or ./hunts)")
    sub.add_argument("--format", choices=("text", "json"), default="text")


def hunts_dir(args: argparse.Namespace) -> Path:
    import os

    if args.hunts is not None:
        return Path(args.hunts)
    return Path(os.environ.get("HUNTWIRE_HUNTS_DIR") or DEFAULT_HUNTS_DIR)


def _parse_now(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--now: '{text}' is not ISO 8601") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def cmd_validate(args: argparse.Namespace) -> int:
    from .kql_check import check_hunts

    loaded = load_hunts(hunts_dir(args))
    kql_errors, kql_warnings = check_hunts(loaded.hunts)
    errors = loaded.errors + kql_errors
    bad_files = {e.path for e in errors}
    if args.format == "json":
        print(json.dumps({
            "valid": not errors,
            "hunts": [{"id": h.id, "name": h.name, "file": str(h.path), "source": h.source,
                       "valid": str(h.path) not in bad_files} for h in loaded.hunts],
            "errors": [e.as_dict() for e in errors],
            "warnings": [w.as_dict() for w in kql_warnings] + [{"message": w}
                                                              for w in loaded.warnings],
        }, indent=2))
    else:
        for warning in kql_warnings:
            print(f"warning: {warning}", file=sys.stderr)
        for text in loaded.warnings:
            print(f"warning: {text}", file=sys.stderr)
        for error in errors:
            print(f"error: {error}", file=sys.stderr)
        valid = len([h for h in loaded.hunts if str(h.path) not in bad_files])
        print(f"{valid} hunt(s) valid, {len(errors)} error(s), "
              f"{len(kql_warnings) + len(loaded.warnings)} warning(s)")
    return 1 if errors else 0


def cmd_eval(args: argparse.Namespace) -> int:
    from .sources.base import QueryError
    from .sources.local import LocalSource

    loaded = load_hunts(hunts_dir(args))
    for error in loaded.errors:
        print(f"error: {error}", file=sys.stderr)
    selected = _select(loaded.hunts, args.hunt)
    now = args.now or datetime.now(UTC)
    source = LocalSource(_event_files(args.events))
    report: list[dict[str, Any]] = []
    for hunt in selected:
        entry: dict[str, Any] = {"id": hunt.id, "name": hunt.name, "matches": [], "error": None}
        try:
            result = source.run(hunt, hunt_window(now, hunt.lookback))
            entry["matches"] = [{k: to_json_value(v) for k, v in row.items()}
                                for row in result.rows]
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


def _event_files(specs: list[str]) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for spec in specs:
        table, sep, path = spec.partition("=")
        if not sep or not table or not path:
            raise SystemExit(f"huntwire eval: --events wants TABLE=FILE, got '{spec}'")
        if not Path(path).is_file():
            raise SystemExit(f"huntwire eval: events file not found: {path}")
        files[table] = Path(path)
    return files


def to_json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    return value


def print_eval_table(report: list[dict[str, Any]], now: datetime) -> None:
    print(f"window end: {iso(now)}")
    for entry in report:
        count = len(entry["matches"])
        status = f"ERROR {entry['error']}" if entry["error"] else f"{count} match(es)"
        print(f"\n== {entry['name']} [{entry['id']}]: {status}")
        for match in entry["matches"]:
            when = match.get("Timestamp") or match.get("TimeGenerated") or ""
            device = match.get("DeviceName") or match.get("DeviceId") or ""
            command = str(match.get("ProcessCommandLine") or match.get("RemoteUrl")
                          or match.get("RemoteIP") or "")
            print(f"  {when}  {device:<24.24}  {_shorten(command, 90)}")


def _shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


__all__ = ["HuntError", "main"]
