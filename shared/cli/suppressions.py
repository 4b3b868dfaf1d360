"""Suppressions on the command line: the ``--suppressions DIR`` flag of validate, eval and run,
the calls those commands make, and ``huntwire suppressions list|remove ID [--tenant NAME]``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError
from ..settings import TENANTS_FILE, Settings, resolve_suppressions_dir
from ..suppress.apply import Suppressor, notices
from ..suppress.loader import load_rule_files
from ..suppress.store import Snooze, SnoozeRows, SnoozeStore, SnoozeStoreError
from ..suppress.wiring import snooze_store


def add_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--suppressions", type=Path, default=None, metavar="DIR",
                        help="folder of suppression rule files (default: "
                             "$HUNTWIRE_SUPPRESSIONS_DIR or ./suppressions)")


def rules_dir(args: argparse.Namespace) -> Path:
    flag = getattr(args, "suppressions", None)
    return resolve_suppressions_dir(os.environ, flag)


def eval_suppressor(args: argparse.Namespace, today: date) -> Suppressor:
    """``eval``: the file rules (snoozes live in storage, which eval does not use)."""
    directory = rules_dir(args)
    if args.suppressions is not None and not directory.is_dir():
        raise SystemExit(f"huntwire eval: suppressions folder not found: {directory}")
    loaded = load_rule_files(directory, today)
    for error in loaded.errors:
        print(f"error: {error}: its rules are not applied", file=sys.stderr)
    for line in notices(loaded.rules, today).lines(today):
        print(f"warning: {line}", file=sys.stderr)
    return Suppressor(loaded.rules, log_notices=False)


def register(commands: Any) -> None:
    parser = commands.add_parser("suppressions", help="list or remove snoozes (Table Storage)")
    actions = parser.add_subparsers(metavar="ACTION")
    listing = actions.add_parser("list", help="every snooze, with who, why and until when")
    listing.add_argument("--format", choices=("text", "json"), default="text")
    listing.add_argument("--tenant", metavar="NAME",
                         help=f"one tenant of ${TENANTS_FILE}, by name or tenant id (default: "
                              "every tenant)")
    listing.set_defaults(handler=cmd_list)
    remove = actions.add_parser("remove", help="delete one snooze by its id")
    remove.add_argument("id")
    remove.add_argument("--tenant", metavar="NAME",
                        help=f"the tenant of ${TENANTS_FILE} whose snooze it is, by name or "
                             "tenant id (required with a tenants file)")
    remove.set_defaults(handler=cmd_remove)
    parser.set_defaults(handler=lambda _args: parser.print_help() or 2)


def _stores(wanted: str | None, *, one: bool = False) -> list[tuple[str | None, SnoozeStore]]:
    """The snooze tables to act on: (tenant name, store); the name is None without a tenants
    file. *wanted*: one tenant by name or id; *one*: a tenants file needs --tenant."""
    from ..settings import SettingsError, load_settings

    try:
        settings = load_settings(dict(os.environ))
    except SettingsError as error:
        for problem in error.problems:
            print(f"error: {problem}", file=sys.stderr)
        raise SystemExit(2) from None
    store = snooze_store(settings)
    if store is None:
        print("error: no storage configured (set HUNTWIRE_STORAGE or "
              "HUNTWIRE_STORAGE__tableServiceUri)", file=sys.stderr)
        raise SystemExit(2)
    try:
        return _tenant_stores(settings, store, wanted, one)
    except ConfigurationError as exc:  # a tenants file or --tenant to fix
        for line in f"error: {exc.message}".splitlines():
            print(_clean(line), file=sys.stderr)
        raise SystemExit(2) from None


def _tenant_stores(settings: Settings, store: SnoozeStore, wanted: str | None,
                   one: bool) -> list[tuple[str | None, SnoozeStore]]:
    if settings.tenants_file is None:
        if wanted is not None:
            raise ConfigurationError(f"--tenant {wanted}: {TENANTS_FILE} is not set (this "
                                     "deployment has one tenant)")
        return [(None, store)]
    if wanted is None and one:
        raise ConfigurationError(f"--tenant NAME is required: {TENANTS_FILE} lists the "
                                 "tenants, and each has its own snoozes")
    from ..suppress.snooze_page import HOME_TENANT
    from ..tenancy import snooze_tenants

    tenants = snooze_tenants(settings, store.storage)
    chosen = [(t.name, t.store) for key, t in tenants.items()  # the home tenant's alias: once
              if key != HOME_TENANT
              and (wanted is None or wanted.casefold() in (str(t.name).casefold(), key))]
    if not chosen:
        raise ConfigurationError(f"--tenant {wanted}: no tenant of that name or id in "
                                 f"{settings.tenants_file}")
    return chosen


def cmd_list(args: argparse.Namespace) -> int:
    listed: list[dict[str, Any]] = []
    for tenant, store in _stores(args.tenant):
        try:
            rows = store.load()
        except SnoozeStoreError as exc:
            print(_clean(f"error: {f'tenant {tenant}: ' if tenant else ''}{exc}"),
                  file=sys.stderr)
            return 1
        if args.format == "json":
            named = {"tenant": tenant} if tenant is not None else {}
            listed += [{**named, **_as_dict(s, datetime.now(UTC).date())}
                       for s in rows.snoozes]
            listed += [{**named, "id": row_key, "active": False, "error": why}
                       for row_key, why in rows.skipped]
            continue
        if tenant is not None:
            print(_clean(f"tenant {tenant}:"))
        _print_rows(rows)
    if args.format == "json":
        print(json.dumps(listed, indent=2, ensure_ascii=False))
    return 0


def _print_rows(rows: SnoozeRows) -> None:
    today = datetime.now(UTC).date()
    for s in rows.snoozes:
        state = "active" if s.expires >= today else "expired"
        where = ", ".join(f"{c} = {v[:60]!r}" for c, v in s.values.items())
        print(_clean(f"{s.id}  {state:<7} until {s.expires}  hunt {s.hunt_id}  by {s.owner}: "
                     f"{s.reason}") + f"\n    {_clean(where)}")
    for row_key, why in rows.skipped:
        print(_clean(f"{row_key}  invalid (not applied): {why}"))
    print(f"{len(rows.snoozes)} snooze(s)"
          + (f", {len(rows.skipped)} invalid row(s): remove them with 'huntwire suppressions "
             "remove ID'" if rows.skipped else ""))


def cmd_remove(args: argparse.Namespace) -> int:
    ((tenant, store),) = _stores(args.tenant, one=True)
    try:
        removed = store.remove(args.id)
    except SnoozeStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    if not removed:
        where = f" for tenant {tenant}" if tenant else ""
        print(_clean(f"error: no snooze with id {args.id}{where}"), file=sys.stderr)
        return 1
    print(_clean(f"removed {args.id}{f' (tenant {tenant})' if tenant else ''}; the links sent "
                 "for it no longer work"))
    return 0


def _as_dict(s: Snooze, today: date) -> dict[str, Any]:
    return {"id": s.id, "hunt": s.hunt_id, "where": s.values, "reason": s.reason,
            "owner": s.owner, "created": s.created.isoformat(),
            "expires": s.expires.isoformat(), "active": s.expires >= today}


def _clean(text: str) -> str:
    """Text for a terminal: control characters (escape sequences) shown as \\xNN."""
    return "".join(c if c.isprintable() or c == " " else f"\\x{ord(c):02x}" if ord(c) < 256
                   else f"\\u{ord(c):04x}" for c in text)


def suppressed_text(counts: dict[str, int]) -> str:
    """``; suppressed 3 (rule-a 2, rule-b 1)`` for a run's text output, or nothing."""
    if not counts:
        return ""
    detail = ", ".join(f"{rule} {n}" for rule, n in sorted(counts.items()))
    return f"; suppressed {sum(counts.values())} ({detail})"
