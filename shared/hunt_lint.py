"""Every problem of a hunt file at once, for ``huntwire validate`` (the loader stops at the
first one; an author should not need one edit-and-rerun round per mistake)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from .hunt import HUNT_SCHEMA, HUNTWIRE_KEYS, SENTINEL_KEYS, HuntError
from .hunt_yaml import YamlProblem, decode, misspelled_key_reason, misspelled_keys, parse
from .suggest import did_you_mean

_DURATION_FIELDS = frozenset({"frequency", "lookback", "realertAfter"})


def file_problems(path: Path) -> list[HuntError]:
    """Every YAML, key and schema problem of the hunt file at *path* (empty: none found)."""
    try:
        document, node = parse(decode(path.read_bytes()))
    except OSError as exc:
        return [HuntError(path, f"cannot read file: {exc.strerror or exc}")]
    except YamlProblem as exc:
        return [HuntError(path, exc.reason, line=exc.line, column=exc.column)]
    if not isinstance(document, dict) or not isinstance(node, yaml.MappingNode):
        return []
    lines = {str(key.value): key.start_mark.line + 1 for key, _ in node.value}
    problems = [HuntError(path, misspelled_key_reason(key, known), key, line=lines.get(key))
                for key, known in misspelled_keys(document, SENTINEL_KEYS | HUNTWIRE_KEYS)]
    validator = jsonschema.Draft202012Validator(HUNT_SCHEMA)
    for error in sorted(validator.iter_errors(document), key=lambda e: list(map(str, e.path))):
        problems.append(_schema_problem(path, error, lines))
    return problems


def _schema_problem(path: Path, error: jsonschema.ValidationError,
                    lines: dict[str, int]) -> HuntError:
    field_path = ".".join(str(p) for p in error.absolute_path) or None
    top = str(error.absolute_path[0]) if error.absolute_path else None
    line = lines.get(top) if top else None
    if error.validator == "required":
        missing = re.search(r"'([^']+)' is a required property", error.message)
        return HuntError(path, "required field is missing", missing.group(1) if missing else None)
    reason = error.message
    if error.validator == "pattern" and top in _DURATION_FIELDS:
        reason = f"'{error.instance}' is not a duration like 15m, 1h or 7d"
    elif error.validator == "enum" and isinstance(error.instance, str):
        values: Any = error.validator_value
        allowed = [str(v) for v in values]
        reason = (f"'{error.instance}' is not one of {', '.join(allowed)}"
                  + did_you_mean(error.instance, allowed))
    elif error.validator == "additionalProperties":
        reason = _unknown_properties(error)
    return HuntError(path, reason, field_path, line=line)


def _unknown_properties(error: jsonschema.ValidationError) -> str:
    instance: Any = error.instance
    schema: Any = error.schema
    known = list(schema.get("properties", {})) if isinstance(schema, dict) else []
    extra = [k for k in instance if k not in known] if isinstance(instance, dict) else []
    return "; ".join(f"unknown key '{k}'{did_you_mean(str(k), known)}" for k in extra) \
        or error.message
