"""Hunt files: the YAML format, its typed model, and a loader where one bad file stops nothing.

The format is a superset of Azure-Sentinel's hunting-query YAML, so a file from that repository's
``Hunting Queries/`` folder loads unchanged; huntwire's own keys are all optional.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .errors import ConfigurationError
from .hunt_time import effective_lookback
from .hunt_yaml import (
    YamlProblem,
    decode,
    entity_columns,
    misspelled_key_reason,
    misspelled_keys,
    parse,
    printable,
)
from .sources import catalog

Source = str
"""A source name registered in :mod:`shared.sources.catalog` ("defender", "sentinel", ...)."""

DEFAULT_FREQUENCY = timedelta(hours=1)
DEFAULT_LOOKBACK = timedelta(hours=4)
MAX_LOOKBACK = timedelta(days=30)
MAX_REALERT = timedelta(days=365)

_DURATION = re.compile(r"^(\d{1,9})([smhd])$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}
# \Z, not $: Python's $ also matches before a final newline ("guid\n" is not a GUID).
_GUID = r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\Z"

# Keys Azure-Sentinel hunting and analytic YAML files carry that huntwire reads or passes through.
SENTINEL_KEYS = frozenset({
    "id", "name", "description", "severity", "requiredDataConnectors", "tactics",
    "relevantTechniques", "query", "entityMappings", "version", "tags", "kind", "metadata",
    "customDetails", "queryFrequency", "queryPeriod", "triggerOperator", "triggerThreshold",
    "status", "eventGroupingSettings", "alertDetailsOverride", "incidentConfiguration",
    "subTechniques", "requiredTables",
})
METADATA_KEYS = ("description", "tactics", "relevantTechniques", "tags", "version",
                 "requiredDataConnectors")
_MOVED = re.compile(r"\b(?:is|was|has been) moved\b|\bmoved to (?:a )?new location\b", re.I)
_LINK = re.compile(r"https?://\S+?(?=['\"\s]|$)")
HUNTWIRE_KEYS = frozenset({"source", "frequency", "lookback", "dedupBy", "enabled", "teams",
                           "realertAfter", "evidenceOnly"})

HUNT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["id", "name", "query"],
    "properties": {
        "id": {"type": "string", "pattern": _GUID},
        "name": {"type": "string", "minLength": 1, "maxLength": 200},
        "description": {"type": "string"},
        "severity": {"enum": ["Informational", "Low", "Medium", "High"]},
        "requiredDataConnectors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["connectorId"],
                "properties": {"connectorId": {"type": "string"},
                               "dataTypes": {"type": "array", "items": {"type": "string"}}},
            },
        },
        "tactics": {"type": "array", "items": {"type": "string"}},
        "relevantTechniques": {"type": "array", "items": {"type": "string",
                                                           "pattern": r"^T\d{4}(\.\d{3})?$"}},
        "query": {"type": "string", "minLength": 1},
        "version": {"type": "string"},
        "tags": {"type": "array"},
        "source": {"enum": catalog.source_names()},
        "frequency": {"type": "string", "pattern": _DURATION.pattern + "\\Z"},
        "lookback": {"type": "string", "pattern": _DURATION.pattern + "\\Z"},
        "realertAfter": {"type": "string", "pattern": _DURATION.pattern + "\\Z"},
        "dedupBy": {"type": "array", "minItems": 1, "uniqueItems": True,
                    "items": {"type": "string", "pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"}},
        "enabled": {"type": "boolean"},
        "evidenceOnly": {"type": "boolean"},
        "teams": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "maxFindings": {"type": "integer", "minimum": 1, "maximum": 50},
                "columns": {"type": "array", "items": {"type": "string"}},
            },
        },
    },
}


class HuntError(ConfigurationError):
    """A hunt file that cannot be used: names the file, field (or KQL position) and reason."""

    reason: str
    """Here the whole sentence saying what is wrong."""

    def __init__(self, path: Path | str, reason: str, field_name: str | None = None,
                 line: int | None = None, column: int | None = None, code: str | None = None):
        self.path = str(path)
        self.reason = reason
        self.field = field_name
        self.line = line
        self.column = column
        self.code = code
        super().__init__(self.describe())

    def describe(self) -> str:
        """One line, control characters escaped so a file cannot drive the terminal."""
        where = printable(self.path)
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        parts = [where + ":"]
        if self.code:
            parts.append(self.code)
        if self.field:
            parts.append(f"field '{self.field}':")
        parts.append(self.reason)
        return printable(" ".join(parts))

    def as_dict(self) -> dict[str, Any]:
        return {"file": self.path, "line": self.line, "column": self.column, "field": self.field,
                "code": self.code, "message": self.reason}


class HuntMoved(HuntError):
    """A stub that says its query moved elsewhere: reported as a warning, not run."""


@dataclass(frozen=True)
class TeamsOptions:
    max_findings: int = 10
    columns: tuple[str, ...] = ()


@dataclass(frozen=True)
class Hunt:
    id: str
    name: str
    query: str
    source: Source
    path: Path
    description: str = ""
    severity: str = "Medium"
    tactics: tuple[str, ...] = ()
    techniques: tuple[str, ...] = ()
    frequency: timedelta = DEFAULT_FREQUENCY
    lookback: timedelta = DEFAULT_LOOKBACK
    lookback_reason: str = "default"
    """Why the hunt gets this lookback (:func:`shared.hunt_time.effective_lookback`)."""
    dedup_by: tuple[str, ...] = ()
    enabled: bool = True
    realert_after: timedelta | None = None
    evidence_only: bool = False
    """Never opens an incident alone; adds evidence to one another hunt opened."""
    teams: TeamsOptions = field(default_factory=TeamsOptions)
    query_line: int = 1
    """1-based line of the file where the query text starts (for KQL positions)."""
    query_column: int = 1
    dedup_explicit: bool = False
    """True when the file sets ``dedupBy``; otherwise the finding identity is derived."""
    entity_columns: tuple[str, ...] = ()
    """Columns named by ``entityMappings`` (``fieldMappings[].columnName``), in file order."""
    identity: tuple[str, ...] = ()
    """The finding identity settled when the hunts are loaded: ``dedupBy``, else the one
    ``validate`` found (``shared.app.load_valid_hunts`` reads it from the manifest once);
    empty: derived from the columns a result returns (``shared.identity``)."""
    refused: str | None = None
    """Why the validation manifest refuses this file (shared/manifest.py): it fails unrun."""

    @property
    def time_column(self) -> str:
        return catalog.source_kind(self.source).time_column

    def file_position(self, kql_line: int, kql_column: int) -> tuple[int, int]:
        """Map a 1-based KQL line/column to the line/column in the hunt file."""
        if kql_line == 1:
            return self.query_line, self.query_column + kql_column - 1
        return self.query_line + kql_line - 1, self.query_column + kql_column - 1


@dataclass(frozen=True)
class LoadResult:
    hunts: list[Hunt]
    errors: list[HuntError]
    warnings: list[str]


def parse_duration(text: str) -> timedelta:
    """``15m``, ``1h``, ``7d`` as a timedelta; ValueError for anything else or too large."""
    match = _DURATION.fullmatch(text)
    if not match:
        raise ValueError(f"'{text}' is not a duration like 15m, 1h or 7d")
    try:
        return timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    except OverflowError as exc:
        raise ValueError(f"'{text}' is too long a duration") from exc


def infer_source(document: Mapping[str, Any]) -> Source:
    connectors = document.get("requiredDataConnectors") or []
    return catalog.infer_source(c.get("connectorId") for c in connectors if isinstance(c, Mapping))


def hunt_files(root: Path) -> list[Path]:
    """Every ``*.yaml``/``*.yml`` file in *root*, in any letter case, sorted."""
    return sorted(p for p in root.iterdir()
                  if p.suffix.lower() in (".yaml", ".yml") and p.is_file())


def load_hunts(directory: Path | str) -> LoadResult:
    """Load every hunt file in *directory*; a bad file becomes an error and stops nothing."""
    hunts: list[Hunt] = []
    errors: list[HuntError] = []
    warnings: list[str] = []
    root = Path(directory)
    if not root.is_dir():
        return LoadResult([], [HuntError(root, "hunts folder does not exist")], [])
    seen: dict[str, Path] = {}
    for path in hunt_files(root):
        try:
            hunt, file_warnings = load_hunt(path)
        except HuntMoved as moved:
            warnings.append(moved.describe())
            continue
        except HuntError as error:
            errors.append(error)
            continue
        except (Exception, RecursionError, MemoryError) as exc:  # one file never stops others
            errors.append(HuntError(path, f"cannot load: {type(exc).__name__}: {exc}"))
            continue
        warnings.extend(file_warnings)
        if hunt.id in seen:
            errors.append(HuntError(path, f"duplicate id {hunt.id}, already used by "
                                    f"{seen[hunt.id]}", "id"))
            continue
        seen[hunt.id] = path
        hunts.append(hunt)
    return LoadResult(hunts, errors, warnings)


def load_hunt(path: Path) -> tuple[Hunt, list[str]]:
    """One hunt file; HuntError for anything wrong with it."""
    try:
        document, node = parse(decode(path.read_bytes()))
    except OSError as exc:
        raise HuntError(path, f"cannot read file: {exc.strerror or exc}") from exc
    except YamlProblem as exc:
        raise HuntError(path, exc.reason, line=exc.line, column=exc.column) from exc
    if not isinstance(document, dict) or not isinstance(node, yaml.MappingNode):
        kind = type(document).__name__ if document is not None else "empty"
        raise HuntError(path, f"a hunt file must be a YAML mapping, found {kind}")
    lines = _key_lines(node)
    _refuse_moved_stub(path, document)
    warnings = _drop_empty_metadata(path, document)
    _check_schema(path, document, lines)
    for key, known in misspelled_keys(document, SENTINEL_KEYS | HUNTWIRE_KEYS):
        raise HuntError(path, misspelled_key_reason(key, known), key, line=lines.get(key))
    warnings += [printable(f"{path}: unknown key '{key}' ignored") for key in document
                 if key not in SENTINEL_KEYS | HUNTWIRE_KEYS]
    return _build(path, document, lines, _query_position(node)), warnings


def _refuse_moved_stub(path: Path, document: dict[str, Any]) -> None:
    if "query" in document:
        return
    description = str(document.get("description") or "")
    found = _MOVED.search(description)
    if found:
        link = _LINK.search(description)
        where = f": {link.group()}" if link else ""
        raise HuntMoved(path, f"no query: the file says it moved{where}", "query")


def _drop_empty_metadata(path: Path, document: dict[str, Any]) -> list[str]:
    """Informational keys left empty (``tactics:``, ``- ``) are ignored with a warning."""
    warnings = []
    for key in METADATA_KEYS:
        value = document.get(key, ...)
        if value is None:
            del document[key]
            warnings.append(printable(f"{path}: '{key}' is empty; ignored"))
        elif isinstance(value, list) and any(item is None for item in value):
            document[key] = [item for item in value if item is not None]
            warnings.append(printable(f"{path}: '{key}' has empty items; ignored"))
    return warnings


def _key_lines(node: yaml.MappingNode) -> dict[str, int]:
    return {str(key.value): key.start_mark.line + 1 for key, _ in node.value}


def _query_position(node: yaml.MappingNode) -> tuple[int, int]:
    for key, value in node.value:
        if key.value == "query" and isinstance(value, yaml.ScalarNode):
            if value.style in ("|", ">"):
                return _block_scalar_start(value)
            offset = 1 if value.style in ("'", '"') else 0
            return value.start_mark.line + 1, value.start_mark.column + 1 + offset
    return 1, 1


def _block_scalar_start(value: yaml.ScalarNode) -> tuple[int, int]:
    buffer = value.start_mark.buffer or ""
    lines = buffer.split("\n")
    first = value.start_mark.line + 1
    while first < len(lines) and not lines[first].strip():
        first += 1
    indent = len(lines[first]) - len(lines[first].lstrip(" ")) if first < len(lines) else 0
    return first + 1, indent + 1


def _check_schema(path: Path, document: dict[str, Any], lines: dict[str, int]) -> None:
    validator = jsonschema.Draft202012Validator(HUNT_SCHEMA)
    error = jsonschema.exceptions.best_match(validator.iter_errors(document))
    if error is None:
        return
    field_path = ".".join(str(p) for p in error.absolute_path)
    top = str(error.absolute_path[0]) if error.absolute_path else None
    if error.validator == "required":
        missing = re.search(r"'([^']+)' is a required property", error.message)
        field_name = missing.group(1) if missing else None
        raise HuntError(path, "required field is missing", field_name)
    reason = error.message
    if error.validator == "pattern" and top in ("frequency", "lookback", "realertAfter"):
        reason = f"'{error.instance}' is not a duration like 15m, 1h or 7d"
    raise HuntError(path, reason, field_path or None, line=lines.get(top) if top else None)


def _build(path: Path, doc: dict[str, Any], lines: dict[str, int],
           query_at: tuple[int, int]) -> Hunt:
    source: Source = doc.get("source") or infer_source(doc)
    frequency = parse_duration(doc["frequency"]) if "frequency" in doc else DEFAULT_FREQUENCY
    if not timedelta(0) < frequency <= MAX_LOOKBACK:
        raise HuntError(path, f"frequency {doc['frequency']} must be more than 0 and at most "
                        "30 days", "frequency", line=lines.get("frequency"))
    explicit = parse_duration(doc["lookback"]) if "lookback" in doc else None
    lookback, lookback_reason = effective_lookback(doc["query"], explicit, DEFAULT_LOOKBACK,
                                                   frequency)
    if lookback < frequency:
        raise HuntError(path, f"lookback {doc['lookback']} is shorter than frequency "
                        f"{doc.get('frequency', '1h')}: runs would leave gaps", "lookback",
                        line=lines.get("lookback"))
    if lookback > MAX_LOOKBACK:
        raise HuntError(path, "lookback is longer than 30 days, the data retention of "
                        "Defender advanced hunting", "lookback", line=lines.get("lookback"))
    dedup = tuple(doc.get("dedupBy") or catalog.source_kind(source).default_dedup)
    teams = doc.get("teams") or {}
    return Hunt(
        id=doc["id"].lower(),
        name=doc["name"],
        query=doc["query"],
        source=source,
        path=path,
        description=str(doc.get("description") or "").strip(),
        severity=doc.get("severity") or "Medium",
        tactics=_strings(doc.get("tactics")),
        techniques=_strings(doc.get("relevantTechniques")),
        frequency=frequency,
        lookback=lookback,
        lookback_reason=lookback_reason,
        dedup_by=dedup,
        enabled=doc.get("enabled", True),
        realert_after=_realert_after(path, doc, lines),
        evidence_only=doc.get("evidenceOnly", False),
        teams=TeamsOptions(max_findings=teams.get("maxFindings", 10),
                           columns=_strings(teams.get("columns"))),
        query_line=query_at[0],
        query_column=query_at[1],
        dedup_explicit=bool(doc.get("dedupBy")),
        entity_columns=entity_columns(doc.get("entityMappings")),
        identity=dedup if doc.get("dedupBy") else (),
    )


def _realert_after(path: Path, doc: dict[str, Any], lines: dict[str, int]) -> timedelta | None:
    if "realertAfter" not in doc:
        return None
    value = parse_duration(doc["realertAfter"])
    if value > MAX_REALERT:
        raise HuntError(path, "realertAfter is longer than 365 days", "realertAfter",
                        line=lines.get("realertAfter"))
    return value


def _strings(values: Iterable[Any] | None) -> tuple[str, ...]:
    return tuple(str(v) for v in values or ())
