"""Generate shared/schemas/{defender,sentinel}.json from tools/schema_tables.txt.

Usage: ``python tools/gen_schemas.py [--check]``. ``--check`` exits 1 when the checked-in JSON
files differ from what the listing gives (CI keeps them in step).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LISTING = ROOT / "tools" / "schema_tables.txt"
OUT = ROOT / "shared" / "schemas"
READ_ON = "2026-11"
TYPES = {"": "string", "dt": "datetime", "l": "long", "i": "int", "b": "bool", "d": "dynamic",
         "r": "real", "g": "guid", "ts": "timespan"}
SENTINEL_FIRST = (("TenantId", "string"), ("TimeGenerated", "datetime"),
                  ("SourceSystem", "string"), ("Type", "string"))
SENTINEL_DROPPED = ("Timestamp",)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FUNCTION = re.compile(r"^function\s+([A-Za-z_]\w*)\s*(\(.*\))$")  # defaults may hold (...)

Columns = dict[str, str]


class ListingError(ValueError):
    """A line of the listing that cannot be read; names the line."""


def entries(text: str) -> list[tuple[int, str]]:
    """Logical lines (continuations joined), with their first line number; comments dropped."""
    out: list[tuple[int, str]] = []
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].rstrip()
        if not line.strip():
            continue
        if line[0].isspace():
            if not out:
                raise ListingError(f"line {number}: continuation without an entry")
            out[-1] = (out[-1][0], out[-1][1] + " " + line.strip())
        else:
            out.append((number, line))
    return out


def columns(spec: str, defines: dict[str, Columns], where: str) -> Columns:
    """``A B:dt @MACRO`` as ``{column: kql_type}``; refuses duplicates and unknown types."""
    result: Columns = {}
    for token in spec.split():
        if token.startswith("@"):
            if token[1:] not in defines:
                raise ListingError(f"{where}: unknown define {token}")
            items = list(defines[token[1:]].items())
        else:
            name, _, short = token.partition(":")
            if short not in TYPES or not _NAME.match(name):
                raise ListingError(f"{where}: bad column '{token}'")
            items = [(name, TYPES[short])]
        for name, kql_type in items:
            # DuckDB (the local engine) folds case: Kusto's clientIP_s and clientIp_s collide.
            if name.lower() in (n.lower() for n in result):
                raise ListingError(f"{where}: column {name} listed twice (letter case aside)")
            result[name] = kql_type
    return result


def parse_listing(text: str) -> dict[str, dict[str, Columns]]:
    """Sections ``xdr``, ``sentinel``, ``defender`` and ``functions`` of the listing."""
    defines: dict[str, Columns] = {}
    found: dict[str, dict[str, Columns]] = {"xdr": {}, "sentinel": {}, "defender": {},
                                            "functions": {}}
    section = ""
    for number, line in entries(text):
        where = f"{LISTING.name}:{number}"
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1]
            if section not in ("xdr", "sentinel", "defender"):
                raise ListingError(f"{where}: unknown section {line}")
            continue
        if line.startswith("function "):
            head, sep, spec = line.partition("):")
            head += ")"
        else:
            head, sep, spec = line.partition(":")
        if not sep:
            raise ListingError(f"{where}: expected 'Name: columns'")
        if head.startswith("define "):
            defines[head[7:].strip()] = columns(spec, defines, where)
            continue
        function = _FUNCTION.match(head)
        if function:
            found["functions"][function.group(1) + function.group(2)] = columns(spec, defines,
                                                                                where)
            continue
        if not section or not _NAME.match(head) or head in found[section]:
            raise ListingError(f"{where}: '{head}' is not a new table in a section")
        found[section][head] = columns(spec, defines, where)
    return found


def sentinel_form(table: str, defender: Columns) -> Columns:
    """An XDR table as streamed to Log Analytics: TimeGenerated for Timestamp, LA columns."""
    derived = dict(SENTINEL_FIRST)
    if table.startswith("Device"):
        derived["MachineGroup"] = "string"
    derived.update((n, t) for n, t in defender.items() if n not in SENTINEL_DROPPED)
    return derived


def flavours(found: dict[str, dict[str, Columns]]) -> dict[str, dict[str, object]]:
    defender = dict(found["xdr"]) | found["defender"]
    sentinel = {name: sentinel_form(name, cols) for name, cols in found["xdr"].items()}
    sentinel |= found["sentinel"]
    functions = found["functions"]
    return {
        "defender": _document("defender", defender, {}),
        "sentinel": _document("sentinel", sentinel, functions),
    }


def _document(flavour: str, tables: dict[str, Columns], functions: dict[str, Columns]
              ) -> dict[str, object]:
    source = ("Microsoft Defender XDR advanced hunting schema reference "
              "(learn.microsoft.com/defender-xdr/advanced-hunting-schema-tables)"
              if flavour == "defender" else
              "Azure Monitor Logs table reference (learn.microsoft.com/azure/azure-monitor/"
              "reference/tables); Defender XDR tables as streamed to Log Analytics")
    return {
        "$comment": f"Generated by tools/gen_schemas.py from tools/schema_tables.txt; do not "
                    f"edit. Table and column names and types of the {flavour} flavour.",
        "source": source,
        "read": READ_ON,
        "tables": dict(sorted(tables.items())),
        "functions": {signature: {"columns": cols}
                      for signature, cols in sorted(functions.items())},
    }


def render(document: dict[str, object]) -> str:
    return json.dumps(document, indent=1) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--check", action="store_true", help="compare, do not write")
    args = parser.parse_args(argv)
    documents = flavours(parse_listing(LISTING.read_text(encoding="utf-8")))
    stale = []
    for flavour, document in documents.items():
        path = OUT / f"{flavour}.json"
        text = render(document)
        if args.check:
            if not path.is_file() or path.read_text(encoding="utf-8") != text:
                stale.append(str(path.relative_to(ROOT)))
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"out of date (run python tools/gen_schemas.py): {', '.join(stale)}",
              file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
