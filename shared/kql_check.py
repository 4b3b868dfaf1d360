"""Check hunt KQL with Microsoft's own parser (Kusto.Language, in Node) against our schemas."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .hunt import Hunt, HuntError
from .identity import Identity, Summarize, finding_identity
from .kql_lint import hint, regex_problems, root_causes
from .schemas import function_schemas, table_schemas
from .sources.catalog import source_kind, source_names

SCRIPT = Path(__file__).with_name("kql_check.js")
NODE_TIMEOUT_SECONDS = 120
# Sentinel's hunting-query placeholders, filled with the window when a hunt runs. For checking,
# a datetime of the same length keeps every diagnostic's position.
PLACEHOLDERS = {"{{StartTimeISO}}": "2026-01-01T00:00", "{{EndTimeISO}}": "2026-01-02    "}
UNKNOWN_TABLE = "KS204"


class KqlCheckerUnavailable(RuntimeError):
    """Node or the npm package @kusto/language-service-next is missing."""


@dataclass(frozen=True)
class Diagnostic:
    code: str
    severity: str
    start: int
    length: int
    message: str
    syntax: bool = False
    """Reported by the parser itself (a root cause that later errors cascade from)."""


@dataclass(frozen=True)
class CheckedQuery:
    diagnostics: list[Diagnostic]
    columns: list[tuple[str, str]]
    summarize: Summarize | None = None
    tables: tuple[str, ...] = ()


@dataclass
class Validation:
    """What ``validate`` learns about the hunts: problems, and each valid hunt's identity."""

    errors: list[HuntError] = field(default_factory=list)
    warnings: list[HuntError] = field(default_factory=list)
    identities: dict[str, Identity] = field(default_factory=dict)
    checked: dict[str, CheckedQuery] = field(default_factory=dict)


def for_checking(query: str) -> str:
    """The query with Sentinel's ``{{StartTimeISO}}``/``{{EndTimeISO}}`` filled, same length."""
    for placeholder, value in PLACEHOLDERS.items():
        query = query.replace(placeholder, value)
    return query


def analyse(queries: dict[str, str], flavour: str) -> dict[str, CheckedQuery]:
    """Run Kusto.Language on each query (keyed by any id): diagnostics and result columns."""
    node = shutil.which("node")
    if node is None:
        raise KqlCheckerUnavailable("node is not on PATH; run `make setup`")
    chosen = source_kind(flavour).schema_flavour
    request = {"tables": table_schemas(chosen), "functions": function_schemas(chosen),
               "queries": [{"id": key, "query": for_checking(text)}
                           for key, text in queries.items()]}
    env = dict(os.environ)
    env.setdefault("NODE_PATH", str(Path(__file__).resolve().parents[1] / "node_modules"))
    completed = subprocess.run([node, str(SCRIPT)], input=json.dumps(request), text=True,
                               capture_output=True, timeout=NODE_TIMEOUT_SECONDS, env=env,
                               check=False)
    if completed.returncode != 0:
        if "Cannot find module" in completed.stderr:
            raise KqlCheckerUnavailable("@kusto/language-service-next is not installed; run "
                                        "`make setup`")
        raise RuntimeError(f"KQL checker failed: {completed.stderr.strip()[-2000:]}")
    return {a["id"]: _checked(a) for a in json.loads(completed.stdout)}


def _checked(answer: dict[str, Any]) -> CheckedQuery:
    shape = answer.get("summarize")
    summarize = (Summarize(tuple(shape["keys"]), tuple(shape["aggregates"]))
                 if isinstance(shape, dict) else None)
    tables = answer.get("tables")
    return CheckedQuery([Diagnostic(**d) for d in answer["diagnostics"]],
                        [(c["name"], c["type"]) for c in answer["columns"]], summarize,
                        tuple(tables) if isinstance(tables, list) else ())


def validate_hunts(hunts: list[Hunt]) -> Validation:
    """Check every hunt's KQL; give each hunt without KQL errors its finding identity."""
    result = Validation()
    for flavour in source_names():
        group = {h.id: h for h in hunts if h.source == flavour}
        if not group:
            continue
        answers = analyse({key: h.query for key, h in group.items()}, flavour)
        for key, hunt in group.items():
            checked = answers[key]
            result.checked[key] = checked
            hunt_errors = _kql_errors(hunt, checked, result.warnings)
            if not hunt_errors:
                hunt_errors = _missing_columns(hunt, checked)
            hunt_errors += _regex_errors(hunt)
            if not hunt_errors:
                result.identities[key] = finding_identity(hunt, checked.columns,
                                                          checked.summarize)
            result.errors.extend(hunt_errors)
    return result


def check_hunts(hunts: list[Hunt]) -> tuple[list[HuntError], list[HuntError]]:
    """Return (errors, warnings) for the hunts' KQL, positioned in the hunt files."""
    result = validate_hunts(hunts)
    return result.errors, result.warnings


def _kql_errors(hunt: Hunt, checked: CheckedQuery, warnings: list[HuntError]) -> list[HuntError]:
    """One error per root cause (cascades after a syntax error left out), with hints."""
    errors = []
    for diagnostic in checked.diagnostics:
        if diagnostic.severity == "Error" and not _runtime_table(hunt, diagnostic):
            errors.append(diagnostic)
        else:
            warnings.append(_positioned(hunt, diagnostic))
    kept, hidden = root_causes(errors)
    problems = [_positioned(hunt, d, checked.tables) for d in kept]
    if hidden and problems:
        first = problems[0]
        problems[0] = HuntError(first.path, f"{first.reason} ({hidden} follow-on error(s) "
                                "not shown: fix this one first)", first.field, line=first.line,
                                column=first.column, code=first.code)
    return problems


def _regex_errors(hunt: Hunt) -> list[HuntError]:
    """Regular expressions in KQL literals, compiled with RE2 as the service would."""
    errors = []
    for offset, reason in regex_problems(hunt.query):
        line, column = _query_position(hunt, offset)
        errors.append(HuntError(hunt.path, reason, "query", line=line, column=column,
                                code="HW002"))
    return errors


def _runtime_table(hunt: Hunt, diagnostic: Diagnostic) -> bool:
    """``table("X")`` names its table at run time: an unknown one is a warning, not an error."""
    if diagnostic.code != UNKNOWN_TABLE:
        return False
    text = for_checking(hunt.query)
    named = text[diagnostic.start: diagnostic.start + diagnostic.length]
    before = text[: diagnostic.start].rstrip()
    return named[:1] in ("'", '"') and before.endswith("(")


def _query_position(hunt: Hunt, offset: int) -> tuple[int, int]:
    before = hunt.query[:offset]
    kql_line = before.count("\n") + 1
    kql_column = offset - (before.rfind("\n") + 1) + 1
    return hunt.file_position(kql_line, kql_column)


def _positioned(hunt: Hunt, diagnostic: Diagnostic,
                tables_read: tuple[str, ...] | None = None) -> HuntError:
    line, column = _query_position(hunt, diagnostic.start)
    message = diagnostic.message
    if _runtime_table(hunt, diagnostic):
        message += " (table() is resolved when the hunt runs)"
    elif tables_read is not None:
        message = hint(message, source_kind(hunt.source).schema_flavour, tables_read)
    return HuntError(hunt.path, message, "query", line=line, column=column,
                     code=diagnostic.code)


def _missing_columns(hunt: Hunt, checked: CheckedQuery) -> list[HuntError]:
    """Only an explicit ``dedupBy`` requires columns; otherwise the identity is derived.

    A source's ``required_columns`` (Defender's Timestamp, DeviceId, ReportId) are a rule of
    custom detections, not of hunting queries: they are no longer required here.
    """
    if not hunt.dedup_explicit:
        return []
    returned = {name for name, _ in checked.columns}
    missing = [c for c in hunt.dedup_by if c not in returned]
    if not missing:
        return []
    return [HuntError(hunt.path, f"query does not return {', '.join(missing)} (dedupBy columns "
                      "must be returned)", "query", line=hunt.query_line, code="HW001")]
