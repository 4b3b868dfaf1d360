"""What huntwire adds to duckdb-kql 1.1.2 so hunting queries run locally with Kusto's semantics.

One place for every registration and translation (docs/hunts.md, "KQL features the local engine
is trusted for"); each is pinned by a test in tests/test_kql_semantics.py. What the engine still
cannot run is reported as ``local engine cannot run X (not your query)`` (``refusals``), never as
a wrong result.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from . import columns, refusals
from .operators import operator_node
from .rendered import RenderedFunction as _RenderedFunction

_INSTALLED: list[bool] = []

unsupported_reason = refusals.unsupported_reason
describe_engine_error = refusals.describe_engine_error


def install() -> None:
    """Register huntwire's functions and translations in duckdb-kql (once per process)."""
    if _INSTALLED:
        return
    from duckdb_kql import errors, ir, lower, schema
    from duckdb_kql import translate as translate_pkg
    from duckdb_kql.translate import functions

    _register_scalars(functions)
    _register_aggregates(functions)
    _install_typeof(lower)
    _install_project_reorder(lower, schema, translate_pkg)
    functions.SCALAR_FUNCTIONS["column_ifexists"] = columns.install(translate_pkg, errors)
    from . import operators, parity, patches

    patches.install(lower, functions, translate_pkg)
    operators.install(lower, functions, translate_pkg, schema)
    parity.install(ir, functions, translate_pkg)
    parity.install_parse_leading_column(lower, translate_pkg)
    _INSTALLED.append(True)


def register_macros(con: Any) -> None:
    """The SQL macros the templates call, on one DuckDB connection."""
    for macro in _MACROS:
        con.execute(f"CREATE OR REPLACE MACRO {macro}")


# -- scalar functions --------------------------------------------------------------------------

_JSON_TYPES = {"string": "VARCHAR", "long": "BIGINT", "int": "INTEGER", "real": "DOUBLE",
               "double": "DOUBLE", "bool": "BOOLEAN", "boolean": "BOOLEAN",
               "datetime": "TIMESTAMP", "dynamic": "JSON", "guid": "VARCHAR"}


def _register_scalars(functions: Any) -> None:
    spec = functions.FunctionSpec
    table = functions.SCALAR_FUNCTIONS
    rows = [
        # Deprecated replace(regex, rewrite, text) is replace_regex(text, regex, rewrite);
        # duckdb-kql 1.1.2 maps it to a plain string replace with the arguments in another order.
        spec("replace", "template", "regexp_replace({2}, {0}, {1}, 'g')", (3,), (),
             "huntwire: deprecated alias of replace_regex(text, regex, rewrite)"),
        _ExtractJson("extract_json", "template", "", (2, 3)),
        _ExtractJson("extractjson", "template", "", (2, 3)),
        spec("ipv4_is_private", "template", "hw_ipv4_is_private(CAST({0} AS VARCHAR))", (1,)),
        spec("ipv4_is_in_range", "template",
             "hw_ipv4_is_in_range(CAST({0} AS VARCHAR), CAST({1} AS VARCHAR))", (2,)),
        _AnyRange("ipv4_is_in_any_range", "template", "", ()),
        _Ipv4IsMatch("ipv4_is_match", "template", "", (2, 3)),
        spec("parse_path", "template", "CAST(hw_parse_path(CAST({0} AS VARCHAR)) AS JSON)", (1,)),
        spec("url_decode", "template", "url_decode(CAST({0} AS VARCHAR))", (1,)),
        spec("bag_keys", "template", "CAST(json_keys(CAST({0} AS JSON)) AS JSON)", (1,)),
    ]
    for row in rows:
        table[row.name] = row


@dataclass(frozen=True)
class _ExtractJson(_RenderedFunction):
    """``extract_json(path, text[, typeof(T)])``: the value at *path*, as T (default string)."""

    def render(self, args: list[str]) -> str:
        if len(args) not in self.arities:
            raise ValueError(f"{self.name}() takes 2 or 3 arguments, got {len(args)}")
        path, text = args[0], f"CAST({args[1]} AS VARCHAR)"
        kql_type = "string"
        if len(args) == 3:
            found = re.fullmatch(r"'typeof:(\w+)'", args[2].strip())
            if not found or found.group(1) not in _JSON_TYPES:
                raise ValueError(f"{self.name}(): the third argument must be typeof(T)")
            kql_type = found.group(1)
        if kql_type == "dynamic":
            return f"json_extract(TRY_CAST({text} AS JSON), {path})"
        value = f"json_extract_string(TRY_CAST({text} AS JSON), {path})"
        if kql_type in ("string", "guid"):
            return f"coalesce({value}, '')"  # Kusto has no null string: absent is ""
        return f"TRY_CAST({value} AS {_JSON_TYPES[kql_type]})"


@dataclass(frozen=True)
class _Ipv4IsMatch(_RenderedFunction):
    """``ipv4_is_match(a, b[, prefix])``; without *prefix* the bits are the smaller IP-prefix
    written in *a* or *b* (``10.0.0.1/24``), 32 for plain addresses."""

    def render(self, args: list[str]) -> str:
        if len(args) not in self.arities:
            raise ValueError(f"{self.name}() takes 2 or 3 arguments, got {len(args)}")
        a, b = (f"CAST({x} AS VARCHAR)" for x in args[:2])
        bits = (f"CAST({args[2]} AS BIGINT)" if len(args) == 3
                else f"least(hw_ipv4_bits({a}), hw_ipv4_bits({b}))")
        return f"hw_ipv4_same({a}, {b}, {bits})"


@dataclass(frozen=True)
class _AnyRange(_RenderedFunction):
    """``ipv4_is_in_any_range(ip, range, ...)``; ranges may also be one dynamic array."""

    variadic = True

    def render(self, args: list[str]) -> str:
        if len(args) < 2:
            raise ValueError("ipv4_is_in_any_range() takes an address and ranges")
        ranges = ", ".join(f"CAST({a} AS VARCHAR)" for a in args[1:])
        return f"hw_ipv4_is_in_any_range(CAST({args[0]} AS VARCHAR), [{ranges}])"



# -- aggregates --------------------------------------------------------------------------------

def _register_aggregates(functions: Any) -> None:
    table = functions.AGGREGATE_FUNCTIONS
    aggregate = functions.AggregateSpec
    for old, new in (("makeset", "make_set"), ("makelist", "make_list")):
        spec = table[new]
        table[old] = aggregate(old, spec.template, spec.arities, name_prefix=spec.prefix,
                               note=f"huntwire: deprecated alias of {new}")
    table["make_list_if"] = aggregate(
        "make_list_if", "coalesce(list({0}) FILTER (WHERE {0} IS NOT NULL AND ({1})), [])",
        (2, 3), name_prefix="list", note="huntwire")
    table["make_set_if"] = aggregate(
        "make_set_if", "to_json(coalesce(list(DISTINCT to_json({0})) FILTER (WHERE {0} IS NOT "
        "NULL AND ({1})), []))", (2, 3), name_prefix="set", note="huntwire")
    # Bags merged; where two rows carry one key the first value read wins (Kusto leaves it open).
    table["make_bag"] = aggregate(
        "make_bag", "coalesce(list_reduce(list(CAST({0} AS JSON)) FILTER (WHERE json_type("
        "CAST({0} AS JSON)) = 'OBJECT'), lambda a, b: json_merge_patch(b, a)), '{{}}'::JSON)",
        (1, 2), name_prefix="bag", note="huntwire")


# -- typeof(T) as an argument ------------------------------------------------------------------

def _install_typeof(lower: Any) -> None:
    original = lower._lower_expr
    ir = lower.ir

    def lower_expr(node: Any) -> Any:
        collapsed = lower._collapse(node)
        if lower._cls(collapsed) == "TypeLiteralExpression":
            found = re.fullmatch(r"typeof\((\w+)\)", collapsed.getText().strip())
            if found:
                return ir.Literal(f"typeof:{found.group(1).lower()}", "string")
        return original(node)

    lower._lower_expr = lower_expr


# -- project-reorder ---------------------------------------------------------------------------

def _install_project_reorder(lower: Any, schema: Any, translate: Any) -> None:
    ir = lower.ir

    @dataclass(frozen=True)
    class ProjectReorder(ir.Operator):  # type: ignore[misc, name-defined]
        columns: tuple[str, ...]

    original_lower = lower._lower_operator
    original_render = translate.render_operator
    original_columns = schema._operator_columns_unchecked

    def lower_operator(node: Any) -> Any:
        inner = operator_node(lower, node)
        if lower._cls(inner) != "ProjectReorderOperator":
            return original_lower(node)
        text = inner.getText()
        names = [n for n in lower._find_names(inner) if n.lower() != "project-reorder"]
        if not names or re.search(r"\*|\b(asc|desc|granny-asc|granny-desc)\b", text):
            raise lower._unsupported(inner, "project-reorder with wildcards or ordering")
        return ProjectReorder(tuple(names))

    def render_operator(op: Any, prev: str, cols: list[str] | None = None) -> str:
        if not isinstance(op, ProjectReorder):
            return str(original_render(op, prev, cols))
        first = ", ".join(translate.quote_ident(c) for c in op.columns)
        return f"SELECT {first}, * EXCLUDE ({first}) FROM {prev}"  # noqa: S608 (quoted names)

    def operator_columns(op: Any, cols: list[str], schema_: Any) -> list[str]:
        if isinstance(op, ProjectReorder):
            return [*op.columns, *(c for c in cols if c not in op.columns)]
        return list(original_columns(op, cols, schema_))

    lower._lower_operator = lower_operator
    translate.render_operator = render_operator
    schema._operator_columns_unchecked = operator_columns


# -- SQL macros (no Python UDFs: DuckDB's need numpy) -------------------------------------------

_OCTET = r"(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_MACROS = [
    # An IPv4 address (optionally with /prefix) as a number; null when it is not one.
    "hw_ipv4_num(s) AS CASE WHEN regexp_full_match(trim(CAST(s AS VARCHAR)), "
    f"'{_OCTET}(\\.{_OCTET}){{3}}(/(3[0-2]|[12]?\\d))?') THEN "
    "CAST(split_part(split_part(trim(s), '/', 1), '.', 1) AS BIGINT) * 16777216 + "
    "CAST(split_part(split_part(trim(s), '/', 1), '.', 2) AS BIGINT) * 65536 + "
    "CAST(split_part(split_part(trim(s), '/', 1), '.', 3) AS BIGINT) * 256 + "
    "CAST(split_part(split_part(trim(s), '/', 1), '.', 4) AS BIGINT) END",
    "hw_ipv4_bits(s) AS CASE WHEN contains(CAST(s AS VARCHAR), '/') THEN "
    "CAST(split_part(trim(s), '/', 2) AS BIGINT) ELSE 32 END",
    "hw_ipv4_same(a, b, bits) AS CASE WHEN hw_ipv4_num(a) IS NULL OR hw_ipv4_num(b) IS NULL "
    "OR bits IS NULL OR bits < 0 OR bits > 32 THEN NULL ELSE "
    "hw_ipv4_num(a) // CAST(pow(2, 32 - bits) AS BIGINT) = "
    "hw_ipv4_num(b) // CAST(pow(2, 32 - bits) AS BIGINT) END",
    "hw_ipv4_is_in_range(ip, net) AS hw_ipv4_same(ip, net, hw_ipv4_bits(net))",
    "hw_ipv4_is_private(ip) AS CASE WHEN hw_ipv4_num(ip) IS NULL THEN NULL ELSE "
    "hw_ipv4_is_in_range(ip, '10.0.0.0/8') OR hw_ipv4_is_in_range(ip, '172.16.0.0/12') OR "
    "hw_ipv4_is_in_range(ip, '192.168.0.0/16') END",
    "hw_ipv4_is_in_any_range(ip, ranges) AS CASE WHEN hw_ipv4_num(ip) IS NULL THEN NULL ELSE "
    "coalesce(list_bool_or(list_transform(flatten(list_transform(ranges, lambda a: CASE WHEN "
    "starts_with(trim(a), '[') THEN from_json(a, '[\"VARCHAR\"]') ELSE [a] END)), "
    "lambda r: hw_ipv4_is_in_range(ip, r))), false) END",
    # parse_path: Kusto's seven fields.
    "hw_parse_path(p) AS CASE WHEN p IS NULL THEN NULL ELSE json_object("
    r"'Scheme', regexp_extract(p, '^([A-Za-z][A-Za-z0-9+.-]+)://', 1), "
    r"'RootPath', regexp_extract(p, '^([A-Za-z]:)[\\/]', 1), "
    r"'DirectoryPath', regexp_extract(p, '^(.*)[\\/][^\\/]*$', 1), "
    r"'DirectoryName', regexp_extract(regexp_extract(p, '^(.*)[\\/][^\\/]*$', 1), "
    r"'([^\\/]*)$', 1), "
    r"'Filename', regexp_extract(p, '([^\\/:]*)(:[^\\/:]*)?$', 1), "
    r"'Extension', regexp_extract(regexp_extract(p, '([^\\/:]*)(:[^\\/:]*)?$', 1), "
    r"'[^.]\.([^.]*)$', 1), "
    r"'AlternateDataStreamName', regexp_extract(p, '[^\\/:]:([^\\/:]*)$', 1)) END",
]


def prepare(query: str) -> str:
    """The query text the engine is given: tabular ``let`` functions expanded, then rewrites."""
    from . import let_functions, rewrite

    return rewrite.rewrite(let_functions.expand(query))
