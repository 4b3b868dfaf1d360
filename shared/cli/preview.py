"""``huntwire preview-card``: write the incident card Teams would get for sample findings (or
``huntwire eval`` output) as JSON, as an HTML page rendered by the ``adaptivecards`` renderer,
and as a PNG. It is the card production posts: the most severe incident the findings make."""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..cards.incident import build_incident_post
from ..hunt import Hunt, Source, load_hunts
from ..incidents.preview import incident_preview
from ..preview import (
    SAMPLE_NOW,
    PreviewError,
    PreviewFiles,
    many_sample_rows,
    sample_hunt,
    sample_rows,
    write_preview,
)
from .common import add_common, hunts_dir

DEFAULT_OUT = Path("out/preview")


class PreviewInputError(Exception):
    """The ``--from-eval`` file or ``--hunt`` selection cannot be used."""


def register(commands: Any) -> None:
    """Add ``preview-card`` to the ``huntwire`` command line."""
    sub = commands.add_parser(
        "preview-card", help="write the Teams card for sample findings as JSON, HTML and PNG")
    add_common(sub)
    sub.add_argument("--out", type=Path, default=DEFAULT_OUT, metavar="DIR",
                     help=f"output folder (default: {DEFAULT_OUT})")
    sub.add_argument("--from-eval", type=Path, metavar="FILE",
                     help="JSON written by `huntwire eval --format json` instead of samples")
    sub.add_argument("--hunt", metavar="ID",
                     help="with --from-eval: the hunt to preview (default: the first with "
                          "matches); otherwise a hunt from --hunts to preview samples with")
    sub.add_argument("--findings", type=int, metavar="N",
                     help="number of findings (samples: default 4; eval: default all)")
    sub.add_argument("--incident", action="store_true",
                     help="kept for compatibility: the card is always the incident card")
    sub.add_argument("--no-png", action="store_true",
                     help="skip the browser: no screenshot, no renderer check")
    sub.set_defaults(handler=cmd_preview_card)


def cmd_preview_card(args: argparse.Namespace) -> int:
    try:
        hunt, rows, _ = _inputs(args)
        try:
            top, findings, post = incident_preview([hunt], {hunt.id: rows})
        except ValueError as error:
            raise PreviewInputError(str(error)) from error
        files = write_preview(build_incident_post(post), Path(args.out), png=not args.no_png)
    except (PreviewError, PreviewInputError) as error:
        print(f"huntwire preview-card: {error}", file=sys.stderr)
        return 1
    problems = files.check.problems if files.check else ()
    _report(args.format, top, findings, files, problems)
    return 1 if problems else 0


def _inputs(args: argparse.Namespace) -> tuple[Hunt, list[dict[str, Any]], datetime]:
    if args.findings is not None and args.findings < 0:
        raise PreviewInputError("--findings must be 0 or more")
    if args.from_eval:
        return _eval_inputs(args)
    hunt = _hunt_by_id(args, args.hunt) if args.hunt else sample_hunt()
    count = 4 if args.findings is None else args.findings
    rows = sample_rows()[:count] if count <= 4 else many_sample_rows(count)
    return hunt, rows, SAMPLE_NOW


def _eval_inputs(args: argparse.Namespace) -> tuple[Hunt, list[dict[str, Any]], datetime]:
    report = _read_eval(Path(args.from_eval))
    entry = _select_entry(report["hunts"], args.hunt)
    rows = [dict(match) for match in entry.get("matches") or []]
    if args.findings is not None:
        rows = rows[: args.findings]
    hunt = _known_hunt(args, str(entry["id"])) or _hunt_from_eval(entry, rows, args.from_eval)
    return hunt, rows, _parse_now(report.get("now"))


def _read_eval(path: Path) -> dict[str, Any]:
    try:
        report = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise PreviewInputError(f"cannot read {path}: {exc}") from exc
    if not isinstance(report, dict) or not isinstance(report.get("hunts"), list):
        raise PreviewInputError(f"{path} is not `huntwire eval --format json` output")
    return report


def _select_entry(entries: list[dict[str, Any]], hunt_id: str | None) -> dict[str, Any]:
    if hunt_id:
        for entry in entries:
            if str(entry.get("id", "")).lower() == hunt_id.lower():
                return entry
        raise PreviewInputError(f"hunt {hunt_id} is not in the eval output")
    for entry in entries:
        if entry.get("matches"):
            return entry
    raise PreviewInputError("no hunt in the eval output has matches (choose one with --hunt)")


def _known_hunt(args: argparse.Namespace, hunt_id: str) -> Hunt | None:
    directory = hunts_dir(args)
    if not directory.is_dir():
        return None
    return next((h for h in load_hunts(directory).hunts if h.id == hunt_id.lower()), None)


def _hunt_by_id(args: argparse.Namespace, hunt_id: str) -> Hunt:
    hunt = _known_hunt(args, hunt_id)
    if hunt is None:
        raise PreviewInputError(f"hunt {hunt_id} not found in the hunts folder")
    return hunt


def _hunt_from_eval(entry: dict[str, Any], rows: list[dict[str, Any]], path: Path) -> Hunt:
    """A stand-in when the hunt file is not at hand: the eval output has only id and name."""
    source: Source = "defender" if any("DeviceId" in row for row in rows) else "sentinel"
    return Hunt(id=str(entry["id"]), name=str(entry.get("name") or entry["id"]), query="",
                source=source, path=path)


def _parse_now(text: Any) -> datetime:
    if not isinstance(text, str):
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise PreviewInputError(f"eval output has an invalid 'now': {text!r}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def _report(output_format: str, hunt: Hunt, findings: int, files: PreviewFiles,
            problems: tuple[str, ...]) -> None:
    if output_format == "json":
        print(json.dumps({
            "hunt": hunt.id, "findings": findings, "payload_bytes": files.payload_bytes,
            "json": str(files.json), "html": str(files.html),
            "png": str(files.png) if files.png else None,
            "checked": files.check is not None, "problems": list(problems),
        }, indent=2))
        return
    print(f"{hunt.name}: {findings} finding(s), payload {files.payload_bytes:,} bytes")
    for path in (files.json, files.html, files.png):
        if path:
            print(f"  wrote {path}")
    for problem in problems:
        print(f"  problem: {problem}", file=sys.stderr)
