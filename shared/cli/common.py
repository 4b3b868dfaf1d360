"""Helpers every command shares: common flags, the hunts folder, times, events and JSON values."""

from __future__ import annotations

import argparse
import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..settings import resolve_hunts_dir
from ..suggest import did_you_mean
from ..window import iso


def add_common(sub: argparse.ArgumentParser) -> None:
    """``--hunts`` and ``--format``, on every command."""
    sub.add_argument("--hunts", type=Path, default=None, metavar="DIR",
                     help="folder of hunt YAML files (default: $HUNTWIRE_HUNTS_DIR or ./hunts)")
    sub.add_argument("--format", choices=("text", "json"), default="text")


def hunts_dir(args: argparse.Namespace) -> Path:
    """``--hunts`` if given, else the setting (shared/settings.py decides the default)."""
    return resolve_hunts_dir(os.environ, args.hunts)


def parse_now(text: str) -> datetime:
    """An ISO 8601 flag value; a time without zone is UTC."""
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"--now: '{text}' is not ISO 8601") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def event_files(specs: list[str], command: str = "eval") -> dict[str, Path]:
    """``--events TABLE=FILE`` values as table -> file; a bad one ends the command with one line
    (unknown table with a suggestion, missing or unreadable file, a line that is not a JSON
    object, named by file:line)."""
    from ..schemas import FLAVOURS, table_schemas

    known = {table for flavour in FLAVOURS for table in table_schemas(flavour)}
    files: dict[str, Path] = {}
    for spec in specs:
        table, sep, path = spec.partition("=")
        if not sep or not table or not path:
            raise SystemExit(f"huntwire {command}: --events wants TABLE=FILE, got '{spec}'")
        if table not in known:
            raise SystemExit(f"huntwire {command}: --events: no table '{table}'"
                             f"{did_you_mean(table, known)}")
        files[table] = Path(path)
        check_events_file(files[table], command)
    return files


def check_events_file(path: Path, command: str) -> None:
    """Every non-empty line of *path* must be one JSON object."""
    try:
        with path.open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, 1):
                if line.strip():
                    _check_line(path, number, line, command)
    except FileNotFoundError:
        raise SystemExit(f"huntwire {command}: events file not found: {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise SystemExit(f"huntwire {command}: cannot read events file {path}: {reason}") \
            from None


def _check_line(path: Path, number: int, line: str, command: str) -> None:
    try:
        value = json.loads(line)
    except ValueError as exc:
        raise SystemExit(f"huntwire {command}: {path}:{number}: not JSON ({exc}); the file "
                         "wants one JSON object a line") from None
    if not isinstance(value, dict):
        raise SystemExit(f"huntwire {command}: {path}:{number}: a {type(value).__name__}, not "
                         "a JSON object; the file wants one object a line")


def event_span(path: Path, time_columns: list[str]) -> tuple[str, str] | None:
    """The first and last time (as written) of the events in *path*, or None."""
    times: list[str] = []
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                event = json.loads(line)
                found = next((event[c] for c in time_columns if isinstance(event.get(c), str)),
                             None)
                if found:
                    times.append(found)
    return (min(times), max(times)) if times else None


def to_json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso(value)
    return value
