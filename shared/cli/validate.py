"""``huntwire validate``: load every hunt, check its schema and its KQL."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from ..hunt import load_hunts
from . import suppressions as suppress_cli
from .common import add_common, hunts_dir


def register(commands: Any) -> None:
    validate = commands.add_parser("validate", help="check hunt files: schema and KQL")
    add_common(validate)
    suppress_cli.add_flag(validate)
    validate.set_defaults(handler=cmd_validate)


def cmd_validate(args: argparse.Namespace) -> int:
    from ..kql_check import check_hunts

    loaded = load_hunts(hunts_dir(args))
    kql_errors, kql_warnings = check_hunts(loaded.hunts)
    errors = loaded.errors + kql_errors
    rule_problems = suppress_cli.validate(args, loaded.hunts)
    rule_errors = [p for p in rule_problems if p.severity == "error"]
    bad_files = {e.path for e in errors}
    if args.format == "json":
        print(json.dumps({
            "valid": not errors and not rule_errors,
            "hunts": [{"id": h.id, "name": h.name, "file": str(h.path), "source": h.source,
                       "valid": str(h.path) not in bad_files} for h in loaded.hunts],
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
        valid = len([h for h in loaded.hunts if str(h.path) not in bad_files])
        print(f"{valid} hunt(s) valid, {len(errors)} error(s), "
              f"{len(kql_warnings) + len(loaded.warnings)} warning(s)")
    return 1 if errors or rule_errors else 0
