"""Check hunt KQL with Microsoft's own parser (Kusto.Language, in Node) against our schemas."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from .hunt import Hunt, HuntError
from .schemas import table_schemas
from .sources.catalog import source_kind, source_names

SCRIPT = Path(__file__).with_name("kql_check.js")
NODE_TIMEOUT_SECONDS = 120


class KqlCheckerUnavailable(RuntimeError):
    """Node or the npm package @kusto/language-service-next is missing."""


@dataclass(frozen=True)
class Diagnostic:
    code: str
    severity: str
    start: int
    length: int
    message: str


@dataclass(frozen=True)
class CheckedQuery:
    diagnostics: list[Diagnostic]
    columns: list[tuple[str, str]]


def analyse(queries: dict[str, str], flavour: str) -> dict[str, CheckedQuery]:
    """Run Kusto.Language on each query (keyed by any id): diagnostics and result columns."""
    node = shutil.which("node")
    if node is None:
        raise KqlCheckerUnavailable("node is not on PATH; run `make setup`")
    request = {"tables": table_schemas(source_kind(flavour).schema_flavour),
               "queries": [{"id": key, "query": text} for key, text in queries.items()]}
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
    answers = json.loads(completed.stdout)
    return {a["id"]: CheckedQuery([Diagnostic(**d) for d in a["diagnostics"]],
                                  [(c["name"], c["type"]) for c in a["columns"]])
            for a in answers}


def check_hunts(hunts: list[Hunt]) -> tuple[list[HuntError], list[HuntError]]:
    """Return (errors, warnings) for the hunts' KQL, positioned in the hunt files."""
    errors: list[HuntError] = []
    warnings: list[HuntError] = []
    for flavour in source_names():
        group = {h.id: h for h in hunts if h.source == flavour}
        if not group:
            continue
        results = analyse({key: h.query for key, h in group.items()}, flavour)
        for key, hunt in group.items():
            checked = results[key]
            for diagnostic in checked.diagnostics:
                target = errors if diagnostic.severity == "Error" else warnings
                target.append(_positioned(hunt, diagnostic))
            errors.extend(_missing_columns(hunt, checked))
    return errors, warnings


def _positioned(hunt: Hunt, diagnostic: Diagnostic) -> HuntError:
    before = hunt.query[: diagnostic.start]
    kql_line = before.count("\n") + 1
    kql_column = diagnostic.start - (before.rfind("\n") + 1) + 1
    line, column = hunt.file_position(kql_line, kql_column)
    return HuntError(hunt.path, diagnostic.message, "query", line=line, column=column,
                     code=diagnostic.code)


def _missing_columns(hunt: Hunt, checked: CheckedQuery) -> list[HuntError]:
    if any(d.severity == "Error" for d in checked.diagnostics):
        return []
    returned = {name for name, _ in checked.columns}
    kind = source_kind(hunt.source)
    required = list(kind.required_columns)
    required += [c for c in hunt.dedup_by if c not in required]
    missing = [c for c in required if c not in returned]
    if not missing:
        return []
    *first, last = kind.required_columns or ("",)
    why = (f"{kind.title} hunts must return {', '.join(first)} and {last}"
           if kind.required_columns else "dedupBy columns must be returned")
    return [HuntError(hunt.path, f"query does not return {', '.join(missing)} ({why})", "query",
                      line=hunt.query_line, code="HW001")]
