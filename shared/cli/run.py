"""`huntwire run`: one pass of the hourly job, the same code the timer trigger calls.

``run`` never loops: the timer (or cron) repeats it. ``--once`` is accepted and means the same.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from ..hunt import Hunt
from ..settings import Settings, SettingsError, load_settings
from ..suggest import did_you_mean
from . import suppressions as suppress_cli
from .common import add_common, event_files, parse_now, to_json_value

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from ..runner import HuntOutcome, RunSummary


def register(commands: Any) -> None:
    run = commands.add_parser("run", help="one pass of the hourly job (what the timer runs)")
    add_common(run)
    suppress_cli.add_flag(run)
    run.add_argument("--once", action="store_true",
                     help="one pass, then exit (what `run` always does; the timer repeats it)")
    run.add_argument("--hunt", action="append", metavar="ID",
                     help="only this hunt (id or name; repeatable); disabled hunts excluded")
    run.add_argument("--force", action="store_true",
                     help="run the hunts now even if not due (their frequency has not passed)")
    run.add_argument("--dry-run", action="store_true",
                     help="query and print; write nothing to storage, post nothing")
    run.add_argument("--events", action="append", metavar="TABLE=FILE",
                     help="replay JSON-lines events through the local engine instead of "
                          "Defender/Sentinel (demo, offline replay)")
    run.add_argument("--now", type=parse_now, metavar="ISO",
                     help="the run's start time (ISO 8601; default: now); for replays")
    run.add_argument("--since", type=parse_now, metavar="ISO",
                     help="backfill: first window of a hunt with no checkpoint starts here "
                          "(at most 30 days back)")
    run.set_defaults(handler=cmd_run)


def cmd_run(args: argparse.Namespace) -> int:
    from ..app import build_runner

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s",
                        stream=sys.stderr)
    try:
        settings = load_settings(os.environ, require_storage=not args.dry_run,
                                 hunts_dir=args.hunts, suppressions_dir=args.suppressions)
    except SettingsError as error:
        for problem in error.problems:
            print(f"error: {problem}", file=sys.stderr)
        return 2
    if settings.tenants_file is not None:
        return run_tenants_once(args, settings)
    local_events = event_files(args.events, "run") if args.events else None
    credential = None
    if local_events is None:
        from ..credentials import make_credential

        credential = make_credential(settings.client_id)
        missing = credential_problem(settings, credential)
        if missing is not None:
            print(f"error: {missing}", file=sys.stderr)
            return 2
    runner = build_runner(settings, dry_run=args.dry_run, local_events=local_events,
                          since=args.since, credential=credential)
    if args.hunt:
        try:
            runner.hunts = select_hunts(runner.hunts, args.hunt)
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        for hunt in runner.hunts:
            if not hunt.enabled:
                print(f"note: {hunt.name} has `enabled: false` in {hunt.path.name}: not run "
                      "(`huntwire eval` tries a disabled hunt)", file=sys.stderr)
    runner.force = args.force
    summary = runner.run_once(args.now or datetime.now(UTC))
    if args.format == "json":
        print(json.dumps(summary_as_json(summary), indent=2, ensure_ascii=False, default=str))
    else:
        print_summary(summary, dry_run=args.dry_run)
    return 0 if summary.ok else 1


def select_hunts(hunts: Sequence[Hunt], wanted: list[str]) -> list[Hunt]:
    """The hunts named by ``--hunt`` (id or name, any case); ValueError names an unknown one."""
    chosen: list[Hunt] = []
    for name in wanted:
        found = [h for h in hunts if name.casefold() in (h.id.casefold(), h.name.casefold())]
        if not found:
            known = [h.id for h in hunts] + [h.name for h in hunts]
            raise ValueError(f"--hunt: no hunt '{name}'{did_you_mean(name, known)}")
        chosen += [h for h in found if h not in chosen]
    return chosen


def credential_problem(settings: Settings, credential: TokenCredential) -> str | None:
    """One line when *credential* cannot get a token (instead of azure-identity's chain of
    attempts, once per hunt); None when it can (the run then uses it, its token cached)."""
    from azure.core.exceptions import ClientAuthenticationError

    logging.getLogger("azure.identity").setLevel(logging.CRITICAL)
    scope = settings.graph_endpoint.rstrip("/") + "/.default"
    try:
        credential.get_token(scope)
    except ClientAuthenticationError as exc:
        first = str(exc.message or exc).strip().splitlines()[0]
        return (f"no Azure credentials ({first}); sign in with `az login`, run inside Azure "
                "with a managed identity, or replay local events with --events TABLE=FILE")
    return None


def run_tenants_once(args: argparse.Namespace, settings: Settings) -> int:
    """``run --once`` with a tenants file: every tenant, each reported under its name."""
    from ..tenancy import run_tenants

    if args.events:
        print("error: --events replays one tenant's telemetry: unset HUNTWIRE_TENANTS_FILE",
              file=sys.stderr)
        return 2
    run = run_tenants(settings, args.now or datetime.now(UTC), dry_run=args.dry_run,
                      since=args.since)
    if args.format == "json":
        print(json.dumps({"ok": run.ok, "storage_requests": run.storage_requests, "tenants": [
            {"tenant": result.tenant.name, "tenant_id": result.tenant.tenant_id,
             "problems": result.problems,
             **(summary_as_json(result.summary) if result.summary else {})}
            for result in run.results]}, indent=2, ensure_ascii=False, default=str))
        return 0 if run.ok else 1
    for result in run.results:
        print(f"== tenant {result.tenant.name}")
        for kind, problem in result.problems.items():
            print(f"  problem ({kind}): {problem}")
        if result.summary is not None:
            print_summary(result.summary, dry_run=args.dry_run)
    return 0 if run.ok else 1


def summary_as_json(summary: RunSummary) -> dict[str, Any]:
    hunts = []
    for outcome in summary.outcomes:
        entry = dataclasses.asdict(outcome)
        entry["rows_preview"] = [{k: to_json_value(v) for k, v in row.items()}
                                 for row in outcome.rows_preview]
        hunts.append(entry)
    return {"started": summary.started, "ok": summary.ok,
            "stopped_early": summary.stopped_early, "totals": summary.totals(), "hunts": hunts}


def print_summary(summary: RunSummary, *, dry_run: bool) -> None:
    print(f"run started {summary.started}{' (dry run)' if dry_run else ''}")
    for outcome in summary.outcomes:
        print(_outcome_line(outcome))
        for warning in outcome.warnings:
            print(f"    warning: {warning}")
        if dry_run:
            _print_rows(outcome)
    totals = summary.totals()
    print(f"total: {totals['rows']} rows, {totals['new']} new, {totals['posted']} posted, "
          f"{totals['pending']} pending; {totals['ok']} ok, {totals['failed']} failed, "
          f"{totals['not_due']} not due, {totals['skipped']} skipped")
    if totals["not_due"]:
        print(f"hint: {totals['not_due']} hunt(s) ran less than their frequency ago; "
              "`huntwire run --force` runs them now (add --hunt ID for one)")


def _outcome_line(outcome: HuntOutcome) -> str:
    head = f"[{outcome.status:>7}] {outcome.name}"
    if outcome.error:
        return f"{head}: {outcome.error}"
    if outcome.status != "ok":
        return head
    return (f"{head}: {outcome.rows} rows, {outcome.new} new, {outcome.posted} posted, "
            f"{outcome.pending} pending ({outcome.window_start} .. {outcome.window_end}, "
            f"{outcome.seconds:.1f} s)" + suppress_cli.suppressed_text(outcome.suppressed))


def _print_rows(outcome: HuntOutcome) -> None:
    for row in outcome.rows_preview:
        print("    " + json.dumps({k: to_json_value(v) for k, v in row.items()
                                   if v not in (None, "")}, ensure_ascii=False)[:400])
