"""``huntwire import --sigma DIR``: Sigma rules become hunts, converted offline by pySigma and
pysigma-backend-kusto (pinned in requirements.txt).

Each rule is converted with the Microsoft XDR pipeline (``--source defender``, the default) or the
Sentinel ASIM pipeline (``--source sentinel``). PowerShell script-block rules (``ps_script``),
which no XDR table carries, go to Sentinel's PowerShell Operational event 4104 in the ``Event``
table. The hunt YAML keeps the rule's id, title, description, level (as severity; informational
and low rules are ``evidenceOnly``), ATT&CK tags, false positives, author, references and licence.
The converted files then take the same road as any imported hunt (``importer.import_hunts``):
validation, verdict, local-engine note, safe placement. A rule the pipeline cannot map is
``cannot run`` with the field or modifier named.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from .importer import CANNOT_RUN, ImportItem, Progress, import_hunts, safe_files

PIPELINES = ("defender", "sentinel")
_SEVERITY = {"informational": "Informational", "low": "Low", "medium": "Medium",
             "high": "High", "critical": "High"}
_TACTICS = {name.replace("_", "-"): name.title().replace("_", "")
            for name in ("reconnaissance", "resource_development", "initial_access", "execution",
                         "persistence", "privilege_escalation", "defense_evasion",
                         "credential_access", "discovery", "lateral_movement", "collection",
                         "command_and_control", "exfiltration", "impact")}
_TECHNIQUE = re.compile(r"^attack\.(t\d{4}(?:\.\d{3})?)$", re.I)
_FIELD = re.compile(r"field name encountered: ([^.\s]+)")
_SCRIPT_BLOCK = ('Event\n| where Source == "Microsoft-Windows-PowerShell" and EventID == 4104\n'
                 '| extend ScriptBlockText = extract(@\'<Data Name="ScriptBlockText">([^<]*)<\', 1,'
                 ' EventData)\n| where {condition}')
_DRL = ("licence: as published with the rule (SigmaHQ rules: Detection Rule License 1.1, which "
        "requires keeping the author's attribution)")


class SigmaUnavailable(RuntimeError):
    """pySigma or its Kusto backend is not installed."""


def import_sigma(source: Path, target: Path, *, pipeline: str = "defender",
                 dry_run: bool = False, env: Mapping[str, str] | None = None,
                 progress: Progress | None = None) -> list[ImportItem]:
    """Convert every Sigma rule of *source*, then import the hunts like community files."""
    try:
        import sigma.backends.kusto.kusto  # noqa: F401
    except ImportError as exc:
        raise SigmaUnavailable("pySigma is not installed: pip install -r requirements-dev.txt "
                               "(or the `sigma` extra)") from exc
    failed: list[ImportItem] = []
    conversions: dict[str, list[str]] = {}
    with tempfile.TemporaryDirectory(prefix="huntwire-sigma-") as staging:
        folder = Path(staging)
        for path, refused in safe_files(source, (".yml", ".yaml")):
            if refused:
                failed.append(ImportItem(path.name, CANNOT_RUN, [refused]))
                continue
            try:
                hunt, notes = convert_rule(path.read_text(encoding="utf-8"), pipeline)
            except SigmaConversionError as error:
                failed.append(ImportItem(path.name, CANNOT_RUN, [f"{path.name}: {error}"]))
                continue
            name = path.with_suffix(".yaml").name
            (folder / name).write_text(_dump(hunt), encoding="utf-8")
            conversions[name] = [f"from Sigma rule {path.name}", *notes]
        items = import_hunts(folder, target, dry_run=dry_run, env=env, progress=progress)
    for item in items:
        item.notes[:0] = conversions.get(item.file, [])
        item.reasons = [r.replace(f"{folder}{os.sep}", "") for r in item.reasons]
    return [*failed, *items]


class _Literal(str):
    """A multi-line string written as a YAML literal block."""


def _literal(dumper: yaml.SafeDumper, value: _Literal) -> yaml.ScalarNode:
    return dumper.represent_scalar("tag:yaml.org,2002:str", str(value), style="|")


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(_Literal, _literal)


def _dump(hunt: dict[str, Any]) -> str:
    blocks = {k: _Literal(v) if isinstance(v, str) and "\n" in v else v for k, v in hunt.items()}
    return yaml.dump(blocks, Dumper=_Dumper, sort_keys=False, width=100, allow_unicode=True)


class SigmaConversionError(ValueError):
    """A rule pySigma could not convert; the message names the field or modifier."""


def convert_rule(text: str, pipeline: str = "defender") -> tuple[dict[str, Any], list[str]]:
    """The hunt document for one Sigma rule, and notes on how it was converted."""
    try:
        from sigma.backends.kusto.kusto import KustoBackend
        from sigma.collection import SigmaCollection
        from sigma.exceptions import SigmaError
    except ImportError as exc:  # pragma: no cover - pinned in requirements.txt
        raise SigmaUnavailable("pySigma is not installed: pip install -r requirements-dev.txt "
                               "(or the `sigma` extra)") from exc
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise SigmaConversionError(f"not YAML: {exc}") from exc
    if not isinstance(doc, dict) or "detection" not in doc or "logsource" not in doc:
        raise SigmaConversionError("not a Sigma rule (no logsource or detection)")
    category = str((doc.get("logsource") or {}).get("category", ""))
    source = "sentinel" if category == "ps_script" or pipeline == "sentinel" else "defender"
    try:
        rules = SigmaCollection.from_yaml(text)
        if category == "ps_script":
            query, notes = _script_block(KustoBackend().convert(rules), doc)
        else:
            backend = KustoBackend(processing_pipeline=_pipeline(pipeline))
            query = _numbers_as_numbers("\n".join(backend.convert(rules)), pipeline)
            notes = [f"converted with pySigma's {_PIPELINE_NAMES[pipeline]}"]
    except SigmaError as error:
        raise SigmaConversionError(_conversion_reason(error, pipeline, category)) from error
    return _hunt(doc, query, source), notes


_PIPELINE_NAMES = {"defender": "Microsoft XDR pipeline",
                   "sentinel": "Sentinel ASIM pipeline"}


def _pipeline(name: str) -> Any:
    if name == "sentinel":
        from sigma.pipelines.sentinelasim.sentinelasim import sentinel_asim_pipeline

        return sentinel_asim_pipeline()
    from sigma.pipelines.microsoftxdr.microsoftxdr import microsoft_xdr_pipeline

    return microsoft_xdr_pipeline()


_STRING_LIST = re.compile(r"\b([A-Za-z_]\w*) in~ \(((?:\"\d+\"(?:, )?)+)\)")
_STRING_EQUAL = re.compile(r"\b([A-Za-z_]\w*) =~ \"(\d+)\"")


def _numbers_as_numbers(query: str, pipeline: str) -> str:
    """pysigma-backend-kusto 1.0.1 writes numbers as strings (``RemotePort in~ ("4444")``), which
    Kusto rejects for a long column (KS107); such comparisons become numeric for the table's
    integer columns."""
    from .schemas import table_schemas

    table = query.split("\n", 1)[0].strip()
    schema = table_schemas("sentinel" if pipeline == "sentinel" else "defender")
    numeric = {name for name, kind in schema.get(table, {}).items()
               if kind in ("long", "int", "real", "double", "decimal")}

    def as_list(found: re.Match[str]) -> str:
        if found.group(1) not in numeric:
            return found.group(0)
        return f"{found.group(1)} in ({found.group(2).replace(chr(34), '')})"

    def as_equal(found: re.Match[str]) -> str:
        if found.group(1) not in numeric:
            return found.group(0)
        return f"{found.group(1)} == {found.group(2)}"

    return _STRING_EQUAL.sub(as_equal, _STRING_LIST.sub(as_list, query))


def _script_block(conditions: list[str], doc: Mapping[str, Any]) -> tuple[str, list[str]]:
    fields = set(re.findall(r"\b([A-Za-z_]\w*)\s+(?:contains|startswith|endswith|has|matches|"
                            r"=~|==|in~|in)\b", " ".join(conditions)))
    other = sorted(fields - {"ScriptBlockText"})
    if other:
        raise SigmaConversionError(f"field {other[0]} has no mapping for PowerShell script "
                                   "blocks (only ScriptBlockText is read from event 4104)")
    condition = " or ".join(f"({c})" for c in conditions)
    return _SCRIPT_BLOCK.format(condition=condition), [
        "ps_script rule: no Defender XDR table carries script blocks; converted to Sentinel's "
        "PowerShell Operational event 4104 in the Event table (script block logging must be "
        "on and collected)"]


def _conversion_reason(error: Exception, pipeline: str, category: str) -> str:
    message = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
    field = _FIELD.search(message)
    if field:
        return (f"the {_PIPELINE_NAMES[pipeline]} has no column for Sigma field "
                f"'{field.group(1)}' (log source {category or 'unknown'})")
    if "table name" in message.lower():
        return (f"the {_PIPELINE_NAMES[pipeline]} has no table for log source category "
                f"'{category or 'unknown'}'")
    return f"pySigma could not convert it: {message}"


def _hunt(doc: Mapping[str, Any], query: str, source: str) -> dict[str, Any]:
    level = str(doc.get("level", "medium")).lower()
    tags = [str(t).lower() for t in doc.get("tags") or []]
    hunt: dict[str, Any] = {
        "id": str(doc.get("id", "")),
        "name": str(doc.get("title", "untitled Sigma rule"))[:200],
        "description": _description(doc),
        "severity": _SEVERITY.get(level, "Medium"),
        "source": source,
        "tactics": list(dict.fromkeys(_TACTICS[t[7:].replace("_", "-")] for t in tags
                                      if t[7:].replace("_", "-") in _TACTICS)),
        "relevantTechniques": [m.group(1).upper() for t in tags if (m := _TECHNIQUE.match(t))],
        # Sigma rules are detections over new events: an hourly run reads the last two hours.
        "frequency": "1h",
        "lookback": "2h",
        "query": query.strip() + "\n",
    }
    if level in ("informational", "low"):
        hunt["evidenceOnly"] = True
    return {k: v for k, v in hunt.items() if v not in ([], "")}


def _description(doc: Mapping[str, Any]) -> str:
    parts = [str(doc.get("description", "")).strip()]
    falsepositives = [str(f) for f in doc.get("falsepositives") or []]
    if falsepositives:
        parts.append("False positives: " + "; ".join(falsepositives) + ".")
    origin = f"Sigma rule {doc.get('id', '?')}"
    if doc.get("author"):
        origin += f" by {doc['author']}"
    if doc.get("date"):
        origin += f" ({doc['date']})"
    licence = f"licence: {doc['license']}" if doc.get("license") else _DRL
    parts.append(f"{origin}; {licence}.")
    references = [str(r) for r in doc.get("references") or []]
    if references:
        parts.append("References: " + " ".join(references))
    return "\n\n".join(p for p in parts if p) + "\n"
