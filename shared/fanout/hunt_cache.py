"""The hunts of a worker process, loaded once and kept while their files are unchanged: a queue
function handles one hunt per message, and parsing a few hundred hunt files per message would
cost more than the hunt (about 60 ms a file)."""

from __future__ import annotations

import threading
from pathlib import Path

from ..app import load_valid_hunts
from ..hunt import Hunt

Signature = tuple[tuple[str, int, int], ...]
_cache: dict[Path, tuple[Signature, list[Hunt]]] = {}
_lock = threading.Lock()


def signature(hunts_dir: Path) -> Signature:
    """Name, size and modification time of every file under *hunts_dir* (the manifest too)."""
    try:
        files = sorted(p for p in hunts_dir.rglob("*") if p.is_file())
    except OSError:
        return ()
    stats = []
    for path in files:
        try:
            stat = path.stat()
        except OSError:
            continue
        stats.append((str(path.relative_to(hunts_dir)), stat.st_size, stat.st_mtime_ns))
    return tuple(stats)


def cached_hunts(hunts_dir: Path) -> list[Hunt]:
    """The valid hunts of *hunts_dir*, parsed again only when a file changed."""
    key = hunts_dir.resolve()
    current = signature(key)
    with _lock:
        kept = _cache.get(key)
        if kept is not None and kept[0] == current:
            return list(kept[1])
        hunts = load_valid_hunts(hunts_dir)
        _cache[key] = (current, hunts)
        return list(hunts)
