"""Table schemas (column name -> KQL type) for Defender advanced hunting and Sentinel.

One data file, ``table_schemas.json``, feeds both the KQL validator and the local engine.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Literal

Flavour = Literal["defender", "sentinel"]
Schema = dict[str, dict[str, str]]


@cache
def table_schemas(flavour: Flavour) -> Schema:
    """Tables of one flavour as ``{table: {column: kql_type}}``, columns in schema order."""
    data = json.loads(resources.files("shared").joinpath("table_schemas.json").read_text())
    tables: Schema = {}
    for table, columns in data["defender"].items():
        typed = dict(_split(c) for c in columns)
        if flavour == "sentinel":
            dropped = set(data["sentinelDroppedColumns"])
            typed = dict(_split(c) for c in data["sentinelExtraColumns"]) | {
                name: kql_type for name, kql_type in typed.items() if name not in dropped}
        tables[table] = typed
    return tables


def _split(column: str) -> tuple[str, str]:
    name, kql_type = column.split(":", 1)
    return name, kql_type
