"""``huntwire import``: bring hunting-query files (e.g. Azure-Sentinel's) into ``hunts/``.

Files are copied byte for byte, never rewritten. Each gets a verdict:
- ``runs as is``: loads, passes validation, and the settings it needs are set;
- ``needs a setting``: valid, but it needs something configured first (Sentinel's workspace id,
  the schema cache for custom ``_CL`` tables, a watchlist);
- ``cannot run``: does not load or fails validation (the reason names file, line and column),
  or says its query moved. Such files are not copied.
Not running on the local engine is a note, never a reason to refuse: production runs in
Defender or Sentinel. Each file also gets its use (alerting, investigation template, inventory or
posture) and a proposed frequency/lookback (``importer_review``).

Links are not followed out of DIR, and nothing is written through a link: a symlink in DIR that
points outside it is refused, and a file is created in the hunts folder only where no file or
link of that name exists (``O_EXCL | O_NOFOLLOW``).
"""

from __future__ import annotations

import filecmp
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import importer_review
from .hunt import Hunt, HuntError, HuntMoved, load_hunt, load_hunts
from .hunt_time import format_span

RUNS = "runs as is"
NEEDS_SETTING = "needs a setting"
CANNOT_RUN = "cannot run"
_QUERY_PERIOD = re.compile(r"(?m)^queryPeriod:\s*['\"]?([0-9]+[smhd])")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
Progress = Callable[[int, int, str], None]
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
    use: str | None = None
    use_reason: str | None = None
    frequency: str | None = None
    lookback: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.file, "id": self.hunt_id, "verdict": self.verdict,
                "reasons": self.reasons, "notes": self.notes, "copied": self.copied,
                "refused": self.refused, "use": self.use, "use_reason": self.use_reason,
                "frequency": self.frequency, "lookback": self.lookback}


def printable(text: str) -> str:
    """*text* with control characters (terminal escapes included) shown as ``\\xNN``."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def safe_files(source: Path, suffixes: tuple[str, ...] = (".yaml", ".yml")
               ) -> list[tuple[Path, str | None]]:
    """Files of *source* with one of *suffixes*, sorted, each with why it is refused (or None):
    a link that leads out of *source* or nowhere, or something that is not a regular file."""
    root = source.resolve()
    found: list[tuple[Path, str | None]] = []
    for path in sorted(source.iterdir()):
        if path.suffix.lower() not in suffixes:
            continue
        refused = None
        if path.is_symlink():
            real = path.resolve()
            if not real.is_relative_to(root):
                refused = (f"{path.name}: a link to {real}, outside {source}; links are not "
                           "followed out of the folder")
            elif not real.is_file():
                refused = f"{path.name}: a link to nothing readable"
        elif not path.is_file():
            refused = f"{path.name}: not a regular file"
        found.append((path, refused))
    return found


def import_hunts(source: Path, target: Path, *, dry_run: bool = False,
                 env: Mapping[str, str] | None = None,
                 progress: Progress | None = None) -> list[ImportItem]:
    """Judge every hunt file in *source*; copy the runnable ones into *target* unless dry run.
    *progress* is told (index, total, file name) as each file is judged."""
    env = os.environ if env is None else env
    items: list[ImportItem] = []
    loaded: dict[str, Hunt] = {}
    files = safe_files(source)
    for index, (path, refused) in enumerate(files, 1):
        if progress:
            progress(index, len(files), path.name)
        item = ImportItem(path.name, RUNS)
        items.append(item)
        if refused:
            _cannot(item, refused)
            continue
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
        _review(hunt, item, path)
        loaded[path.name] = hunt
    _validate(loaded, items)
    for item in items:
        judged = loaded.get(item.file)
        if judged is not None and item.verdict != CANNOT_RUN:
            _settings(judged, item, env)
            _local_note(judged, item)
    _place(source, target, items, dry_run)
    return items


def _review(hunt: Hunt, item: ImportItem, path: Path) -> None:
    period = _QUERY_PERIOD.search(path.read_text(encoding="utf-8", errors="replace"))
    judged = importer_review.review(hunt, period.group(1) if period else None)
    item.use, item.use_reason = judged.use, judged.why
    item.frequency, item.lookback = format_span(judged.frequency), format_span(judged.lookback)
    item.notes.append(f"source {hunt.source}; {judged.schedule_note}")
    if judged.use != importer_review.ALERTING:
        item.notes.append(f"{judged.use}: {judged.why}; not hourly alerting material as it is")


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
    for name in importer_review.watchlists(hunt.query):
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
        if destination.is_symlink():
            item.refused = (f"{destination} is a link (to {os.readlink(destination)}); nothing "
                            "is written through a link: remove it first")
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
            try:
                _write_new(source / item.file, target, destination)
            except OSError as exc:
                item.refused = f"cannot create {destination}: {exc.strerror or exc}"
                continue
            item.copied = True


def _write_new(origin: Path, target: Path, destination: Path) -> None:
    """Copy *origin* to a new file *destination*: never through a link, never over a file."""
    if target.is_symlink():
        raise OSError(0, f"the hunts folder {target} is a link; give its real path")
    target.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    data = origin.read_bytes()
    descriptor = os.open(destination, flags, 0o644)
    with os.fdopen(descriptor, "wb") as out:
        out.write(data)
