"""``huntwire import``: bring hunting-query files (e.g. Azure-Sentinel's) into ``hunts/``.

Files are copied byte for byte, never rewritten. Each gets a verdict:
- ``runs as is``: loads, passes validation, and the settings it needs are set;
- ``needs a setting``: valid, but it needs something configured first (Sentinel's workspace id,
  the schema cache for custom ``_CL`` tables, a watchlist);
- ``cannot run``: does not load or fails validation (the reason names file, line and column),
  or says its query moved. Such files are not copied.
Not running on the local engine is a note, never a reason to refuse: production runs in
Defender or Sentinel.
"""

from __future__ import annotations

import filecmp
import os
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .hunt import Hunt, HuntError, HuntMoved, hunt_files, load_hunt, load_hunts
from .hunt_time import format_span

RUNS = "runs as is"
NEEDS_SETTING = "needs a setting"
CANNOT_RUN = "cannot run"
_WATCHLIST = re.compile(r"_GetWatchlist\s*\(\s*['\"]([^'\"]+)['\"]")
_CUSTOM_TABLE = re.compile(r"\b([A-Za-z][A-Za-z0-9_]*_CL)\b")


@dataclass
class ImportItem:
    file: str
    verdict: str
    reasons: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    hunt_id: str | None = None
    copied: bool = False
    refused: str | None = None
    """Why the file was not copied although it could run (name clash, duplicate id)."""

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "id": self.hunt_id, "verdict": self.verdict,
                "reasons": self.reasons, "notes": self.notes, "copied": self.copied,
                "refused": self.refused}


def import_hunts(source: Path, target: Path, *, dry_run: bool = False,
                 env: Mapping[str, str] | None = None) -> list[ImportItem]:
    """Judge every hunt file in *source*; copy the runnable ones into *target* unless dry run."""
    env = os.environ if env is None else env
    items: list[ImportItem] = []
    loaded: dict[str, Hunt] = {}
    for path in hunt_files(source):
        item = ImportItem(path.name, RUNS)
        items.append(item)
        try:
            hunt, _ = load_hunt(path)
        except HuntMoved as moved:
            _cannot(item, moved.describe())
            continue
        except HuntError as error:
            _cannot(item, error.describe())
            continue
        except (Exception, RecursionError) as exc:  # one file never stops the others
            _cannot(item, f"{path.name}: cannot load: {type(exc).__name__}: {exc}")
            continue
        item.hunt_id = hunt.id
        item.notes.append(f"source {hunt.source}; lookback {format_span(hunt.lookback)} "
                          f"({hunt.lookback_reason})")
        loaded[path.name] = hunt
    _validate(loaded, items)
    for item in items:
        judged = loaded.get(item.file)
        if judged is not None and item.verdict != CANNOT_RUN:
            _settings(judged, item, env)
            _local_note(judged, item)
    _place(source, target, items, dry_run)
    return items


def _cannot(item: ImportItem, reason: str) -> None:
    item.verdict = CANNOT_RUN
    item.reasons.append(reason)


def _validate(loaded: dict[str, Hunt], items: list[ImportItem]) -> None:
    from .kql_check import KqlCheckerUnavailable, validate_hunts

    by_file = {item.file: item for item in items}
    try:
        checked = validate_hunts(list(loaded.values()))
    except KqlCheckerUnavailable as exc:
        for name in loaded:
            by_file[name].notes.append(f"KQL not validated: {exc}")
        return
    for error in checked.errors:
        item = by_file[Path(error.path).name]
        if _is_custom_table_error(error):
            item.verdict = NEEDS_SETTING if item.verdict != CANNOT_RUN else item.verdict
            item.reasons.append(f"{error.describe()} (custom table: run `huntwire schema "
                                "pull` so its schema is known)")
        else:
            _cannot(item, error.describe())
    for warning in checked.warnings:
        by_file[Path(warning.path).name].notes.append("warning: " + warning.describe())


def _is_custom_table_error(error: HuntError) -> bool:
    return bool(_CUSTOM_TABLE.search(error.reason)) and "does not refer" in error.reason


def _settings(hunt: Hunt, item: ImportItem, env: Mapping[str, str]) -> None:
    if hunt.source == "sentinel" and not env.get("HUNTWIRE_SENTINEL_WORKSPACE_ID"):
        item.reasons.append("Sentinel hunt: set HUNTWIRE_SENTINEL_WORKSPACE_ID")
    for name in sorted(set(_WATCHLIST.findall(hunt.query))):
        item.reasons.append(f"needs the Sentinel watchlist '{name}' in the workspace")
    if item.reasons and item.verdict == RUNS:
        item.verdict = NEEDS_SETTING


def _local_note(hunt: Hunt, item: ImportItem) -> None:
    """Whether ``huntwire eval`` can run it: a note only, production runs in the cloud."""
    try:
        from .sources.base import QueryError
        from .sources.local import LocalSource
        from .window import hunt_window
    except ImportError:  # duckdb-kql is optional
        return
    engine = LocalSource({})
    try:
        engine.run(hunt, hunt_window(datetime.now(UTC), hunt.lookback))
        item.notes.append("runs on the local engine (huntwire eval)")
    except QueryError as exc:
        item.notes.append(f"does not run on the local engine: {exc.message}")
    finally:
        engine.close()


def _place(source: Path, target: Path, items: list[ImportItem], dry_run: bool) -> None:
    existing = {h.id: h.path.name for h in load_hunts(target).hunts} if target.is_dir() else {}
    seen: dict[str, str] = {}
    for item in items:
        if item.verdict == CANNOT_RUN:
            continue
        destination = target / item.file
        if item.hunt_id in seen:
            item.refused = f"duplicate id {item.hunt_id}: also in {seen[item.hunt_id]}"
            continue
        if destination.exists():
            if filecmp.cmp(source / item.file, destination, shallow=False):
                item.notes.append("already in the hunts folder, unchanged")
                seen[str(item.hunt_id)] = item.file
                continue
            item.refused = (f"{destination} exists with different content; not overwritten "
                            "(rename one of them)")
            continue
        if item.hunt_id in existing:
            item.refused = (f"duplicate id {item.hunt_id}: already used by "
                            f"{existing[str(item.hunt_id)]} in {target}")
            continue
        seen[str(item.hunt_id)] = item.file
        if not dry_run:
            target.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / item.file, destination)
            item.copied = True
