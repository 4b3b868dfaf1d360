"""``huntwire validate``: load every hunt, check its schema and its KQL."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..hunt import load_hunts
from ..hunt_time import format_span
from ..identity import Identity
from ..incidents.linkable import lineage_warnings
from ..manifest import write_manifest
from . import suppressions as suppress_cli
from .common import add_common, hunts_dir


def register(commands: Any) -> None:
    validate = commands.add_parser("validate", help="check hunt files: schema and KQL")
    add_common(validate)
    suppress_cli.add_flag(validate)
    validate.add_argument("--manifest", type=Path, metavar="FILE",
                          help="write the id and content hash of every valid hunt to FILE")
    validate.set_defaults(handler=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    from ..kql_check import validate_hunts

    loaded = load_hunts(hunts_dir(args))
    checked = validate_hunts(loaded.hunts)
    loaded.warnings.extend(lineage_warnings(loaded.hunts, checked.checked))
    kql_warnings = checked.warnings
    errors = loaded.errors + checked.errors
    rule_problems = suppress_cli.validate(args, loaded.hunts)
    rule_errors = [p for p in rule_problems if p.severity == "error"]
    bad_files = {e.path for e in errors}
    identities = {h.id: checked.identities[h.id] for h in loaded.hunts
                  if h.id in checked.identities and str(h.path) not in bad_files}
    if args.format == "json":
        print(json.dumps({
            "valid": not errors and not rule_errors,
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
        for warning in kql_warnings:
            print(f"warning: {warning}", file=sys.stderr)
        for text in loaded.warnings:
            print(f"warning: {text}", file=sys.stderr)
        for error in errors:
            print(f"error: {error}", file=sys.stderr)
        for problem in rule_problems:
            print(f"{problem.severity}: {problem}", file=sys.stderr)
        for hunt in loaded.hunts:
            if hunt.id in identities:
                print(f"identity: {hunt.path.name}: {identities[hunt.id].describe()}")
            print(f"lookback: {hunt.path.name}: {format_span(hunt.lookback)} "
                  f"({hunt.lookback_reason})")
        valid = len([h for h in loaded.hunts if str(h.path) not in bad_files])
        print(f"{valid} hunt(s) valid, {len(errors)} error(s), "
              f"{len(kql_warnings) + len(loaded.warnings)} warning(s)")
    if args.manifest is not None:
        listed = write_manifest(args.manifest, loaded.hunts, identities)
        print(f"manifest: {listed} valid hunt(s) written to {args.manifest}", file=sys.stderr)
    return 1 if errors or rule_errors else 0


def _identity_json(identity: Identity | None) -> dict[str, Any] | None:
    return None if identity is None else {"columns": list(identity.columns),
                                          "basis": identity.basis}
