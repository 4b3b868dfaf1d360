"""``huntwire validate``: load every hunt, check its schema and its KQL, check the suppression
rules against the hunts loaded; every problem of every file in one run."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ..hunt import Hunt, HuntError, load_hunts
from ..hunt_lint import file_problems
from ..hunt_time import format_span
from ..identity import Identity
from ..incidents.linkable import lineage_warnings
from ..manifest import remove_stale_manifest, write_manifest
from ..settings import resolve_hunts_dir
from ..suppress.validate import RuleProblem, validate_rules
from . import suppressions as suppress_cli
from .common import add_common, hunts_dir


def register(commands: Any) -> None:
    validate = commands.add_parser("validate", help="check hunt files: schema and KQL")
    add_common(validate)
    suppress_cli.add_flag(validate)
    validate.add_argument("--manifest", type=Path, metavar="FILE",
                          help="when every hunt and rule is valid, write the id and content "
                               "hash of each hunt to FILE (a failed run writes none)")
    validate.set_defaults(handler=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    from ..kql_check import validate_hunts

    folder = hunts_dir(args)
    loaded = load_hunts(folder)
    checked = validate_hunts(loaded.hunts)
    loaded.warnings.extend(lineage_warnings(loaded.hunts, checked.checked))
    kql_warnings = checked.warnings
    errors = every_file_problem(loaded.errors) + checked.errors
    columns = {key: dict(query.columns) for key, query in checked.checked.items()
               if not any(d.severity == "Error" for d in query.diagnostics)}
    rule_problems = rule_check(args, loaded.hunts, folder, columns)
    rule_errors = [p for p in rule_problems if p.severity == "error"]
    rule_warnings = len(rule_problems) - len(rule_errors)
    bad_files = {e.path for e in errors}
    identities = {h.id: checked.identities[h.id] for h in loaded.hunts
                  if h.id in checked.identities and str(h.path) not in bad_files}
    valid = not errors and not rule_errors
    if args.format == "json":
        print(json.dumps({
            "valid": valid,
            "hunts": [{"id": h.id, "name": h.name, "file": str(h.path), "source": h.source,
                       "valid": str(h.path) not in bad_files,
                       "identity": _identity_json(identities.get(h.id)),
                       "lookback": format_span(h.lookback), "lookback_reason": h.lookback_reason}
                      for h in loaded.hunts],
            "errors": [e.as_dict() for e in errors],
            "warnings": [w.as_dict() for w in kql_warnings] + [{"message": w}
                                                              for w in loaded.warnings],
            "suppressions": [p.as_dict() for p in rule_problems],
        }, indent=2))
    else:
        for warning in [*map(str, kql_warnings), *loaded.warnings]:
            print(f"warning: {warning}", file=sys.stderr)
        for error in errors:
            print(f"error: {error}", file=sys.stderr)
        for problem in rule_problems:
            print(f"{problem.severity}: {problem}", file=sys.stderr)
        for hunt in loaded.hunts:
            if hunt.id in identities:
                print(f"identity: {hunt.path.name}: {identities[hunt.id].describe()}")
            print(f"lookback: {hunt.path.name}: {format_span(hunt.lookback)} "
                  f"({hunt.lookback_reason})")
        good = len([h for h in loaded.hunts if str(h.path) not in bad_files])
        warnings = len(kql_warnings) + len(loaded.warnings) + rule_warnings
        print(f"{good} hunt(s) valid, {len(errors) + len(rule_errors)} error(s) "
              f"({len(rule_errors)} in suppression rules), {warnings} warning(s)")
    if args.manifest is not None:
        _manifest(args.manifest, loaded.hunts, identities, valid)
    return 0 if valid else 1


def every_file_problem(load_errors: list[HuntError]) -> list[HuntError]:
    """The loader stops at a file's first problem; list all of them (same file, same order)."""
    problems: list[HuntError] = []
    for error in load_errors:
        path = Path(error.path)
        found = file_problems(path) if error.field != "id" and path.is_file() else []
        problems += found or [error]
    return problems


def rule_check(args: argparse.Namespace, hunts: list[Hunt], folder: Path,
               columns: dict[str, dict[str, str]]) -> list[RuleProblem]:
    """Every problem of every rule file, checked against the hunts loaded and the *columns*
    their queries return (a rule naming a hunt of the configured hunts folder, when another
    folder is validated, is a warning)."""
    directory = suppress_cli.rules_dir(args)
    if args.suppressions is None and not directory.is_dir():
        return []
    configured = resolve_hunts_dir(os.environ, None)
    elsewhere: list[Hunt] = []
    if configured.resolve() != folder.resolve() and configured.is_dir():
        elsewhere = load_hunts(configured).hunts
    return validate_rules(directory, hunts, datetime.now(UTC).date(), columns, elsewhere)


def _manifest(path: Path, hunts: list[Hunt], identities: dict[str, Identity],
              valid: bool) -> None:
    if valid:
        listed = write_manifest(path, hunts, identities)
        print(f"manifest: {listed} valid hunt(s) written to {path}", file=sys.stderr)
        return
    note = "; the old one was removed" if remove_stale_manifest(path) else ""
    print(f"manifest: not written, validation failed{note} ({path})", file=sys.stderr)


def _identity_json(identity: Identity | None) -> dict[str, Any] | None:
    return None if identity is None else {"columns": list(identity.columns),
                                          "basis": identity.basis}
