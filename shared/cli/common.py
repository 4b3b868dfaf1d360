"""Helpers every command shares: common flags, the hunts folder, times, events and JSON values."""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..settings import resolve_hunts_dir
from ..window import iso


def add_common(sub: argparse.ArgumentParser) -> None:
    """``--hunts`` and ``--format``, on every command."""
    sub.add_argument("--hunts", type=Path, default=None,
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


def event_files(specs: list[str]) -> dict[str, Path]:
    """``--events TABLE=FILE`` values as table -> file; a bad one ends the command."""
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
