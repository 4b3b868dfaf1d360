"""`huntwire status [--format json]`: each hunt's health and the notifier's state, read from the
health records (same storage settings as ``run``)."""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from ..errors import ConfigurationError, HuntwireError
from ..health.model import HuntHealth, NotifierHealth
from ..health.records import HealthStore
from ..health.runner_hooks import store_from_settings
from ..hunt import Hunt, load_hunts
from ..settings import TENANTS_FILE, Settings, SettingsError, load_settings
from ..storage import open_storage
from ..tenants import Tenant, single_tenant

State = Literal["ok", "failing", "auto-disabled", "never-run"]


def register(commands: Any) -> None:
    """Add ``status`` to the CLI's subparsers (``commands = parser.add_subparsers()``)."""
    status = commands.add_parser("status", help="each hunt's health and the Teams channel's")
    status.add_argument("--hunts", type=Path, default=None, metavar="DIR",
                        help="folder of hunt YAML files (default: $HUNTWIRE_HUNTS_DIR or ./hunts)")
    status.add_argument("--format", choices=("text", "json"), default="text")
    status.add_argument("--tenant", metavar="NAME",
                        help="one tenant of $HUNTWIRE_TENANTS_FILE, by name or tenant id "
                             "(default: every tenant)")
    status.set_defaults(handler=cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(os.environ, require_storage=True, hunts_dir=args.hunts)
    except SettingsError as error:
        for problem in error.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    loaded = load_hunts(settings.hunts_dir)
    for broken in loaded.errors:
        print(f"warning: skipped {broken}", file=sys.stderr)
    try:
        reports = [{"tenant": tenant.name, **status_report(
                       [h for h in loaded.hunts if tenant.runs(h.id)], store)}
                   for tenant, store in tenant_stores(settings, args.tenant)]
    except ConfigurationError as exc:  # a tenants file or --tenant to fix
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except HuntwireError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
        return 1
    if args.format == "json":
        document = reports[0] if settings.tenants_file is None else {"tenants": reports}
        print(json.dumps(document, indent=2, ensure_ascii=False))
    else:
        for report in reports:
            if settings.tenants_file is not None:
                print(f"tenant {report['tenant']}:")
            print_status(report)
    return 0


def tenant_stores(settings: Settings, wanted: str | None) -> list[tuple[Tenant, HealthStore]]:
    """Each tenant's health records (the one tenant's without a tenants file), or *wanted*'s."""
    from ..tenancy import tenant_tables, tenants_of

    if settings.tenants_file is None:
        if wanted is not None:
            raise ConfigurationError(f"--tenant {wanted}: {TENANTS_FILE} is not set (this "
                                     "deployment has one tenant)")
        return [(single_tenant(settings), store_from_settings(settings))]
    tenants = tenants_of(settings, None)
    if wanted is not None:
        tenants = [t for t in tenants if wanted.casefold() in (t.name.casefold(), t.tenant_id)]
        if not tenants:
            raise ConfigurationError(f"--tenant {wanted}: no tenant of that name or id in "
                                     f"{settings.tenants_file}")
    storage = open_storage(settings)
    return [(tenant, HealthStore(tenant_tables(storage, settings, tenant))) for tenant in tenants]


def status_report(hunts: list[Hunt], store: HealthStore) -> dict[str, Any]:
    """``{"hunts": [...], "notifier": {...}}`` as documented in the product notes."""
    records = store.hunts()
    return {"hunts": [hunt_status(hunt, records.get(hunt.id)) for hunt in hunts],
            "notifier": notifier_status(store.notifier())}


def state_of(record: HuntHealth | None) -> State:
    if record is None or record.last_run is None:
        return "never-run"
    if record.disabled:
        return "auto-disabled"
    return "failing" if record.consecutive_failures else "ok"


def hunt_status(hunt: Hunt, record: HuntHealth | None) -> dict[str, Any]:
    rec = record or HuntHealth(hunt_id=hunt.id)
    return {
        "id": hunt.id, "name": hunt.name, "enabled": hunt.enabled and not rec.disabled,
        "state": state_of(record), "consecutive_failures": rec.consecutive_failures,
        "last_success": _iso(rec.last_success), "last_error": rec.last_error,
        "pending": rec.pending, "last_run": _iso(rec.last_run),
        "failing_since": _iso(rec.first_failure), "error_kind": rec.last_error_kind,
        "error_permanent": rec.last_error_permanent,
        "disabled_since": _iso(rec.disabled_since), "truncated": rec.truncated,
        "partial": rec.partial, "rows": rec.rows,
    }


def notifier_status(record: NotifierHealth | None) -> dict[str, Any]:
    rec = record or NotifierHealth()
    return {"state": rec.state, "since": _iso(rec.since), "last_ok": _iso(rec.last_ok),
            "last_failure": _iso(rec.last_failure), "last_error": rec.last_error,
            "pending": rec.pending, "held_back_since": _iso(rec.held_back_since)}


def print_status(report: dict[str, Any]) -> None:
    for hunt in report["hunts"]:
        line = f"[{hunt['state']:>13}] {hunt['name']}"
        if hunt["consecutive_failures"]:
            line += f": {hunt['consecutive_failures']} failure(s) in a row: {hunt['last_error']}"
        elif hunt["last_success"]:
            line += f": last success {hunt['last_success']}, {hunt['pending']} pending"
        print(line)
    notifier = report["notifier"]
    print(f"notifier: {notifier['state']}" + (f" since {notifier['since']}"
                                             if notifier["since"] else "")
          + f", {notifier['pending']} finding(s) pending")


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat().replace("+00:00", "Z") if moment else None
