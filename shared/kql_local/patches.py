"""Fixes to duckdb-kql 1.1.2's lowering and more function registrations (docs/hunts.md lists them).

- ``join ... on A and $left.B == $right.C``: Kusto takes ``and`` between join keys as it takes
  ``,``; duckdb-kql glued the text into one column name (``Aand$left.B``).
- ``project-away A, A``: the same column named twice made DuckDB refuse a duplicate EXCLUDE
  entry; Kusto removes it once.
- ``timespan / number`` is a timespan (duckdb-kql divided epochs: ``epoch(BIGINT)``).
- ``range(start, stop, step)`` (inclusive), ``split(text, delimiter, index)``,
  ``has_any_ipv4_prefix``, ``parse_command_line``,
  ``unixtime_*_todatetime`` and the deprecated ``argmin``/``argmax`` (aliases of
  ``arg_min``/``arg_max``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .rendered import RenderedFunction as _RenderedFunction

_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_IPV4 = _OCTET + r"(\." + _OCTET + r"){3}"


def install(lower: Any, functions: Any, translate: Any) -> None:
    _install_timespan_division(lower.ir, translate)
    _install_join_and(lower)
    _install_project_away_once(lower)
    _register(functions)


def _install_timespan_division(ir: Any, translate: Any) -> None:
    """``timespan / number`` is a timespan (``20min / 2`` is 10 minutes); duckdb-kql divided
    the epochs of both sides, which DuckDB refuses for a number (``epoch(BIGINT)``)."""
    original_render = translate.render_expr
    original_is_timespan = translate._is_timespan_expr

    def halves_a_timespan(node: Any) -> bool:
        return (isinstance(node, ir.BinaryOp) and node.op == "/"
                and original_is_timespan(node.left) and not original_is_timespan(node.right))

    def render_expr(node: Any) -> str:
        if halves_a_timespan(node):
            return (f"to_microseconds(CAST(epoch({render_expr(node.left)}) * 1000000 / "
                    f"({render_expr(node.right)}) AS BIGINT))")
        return str(original_render(node))

    def is_timespan(node: Any) -> bool:
        return halves_a_timespan(node) or bool(original_is_timespan(node))

    original_bin = translate.render_bin

    def render_bin(node: Any, name: str = "bin") -> str:
        # duckdb-kql bins by time only for a timespan *literal*; `bin(t, lookupBin)` with
        # `let lookupBin = 10m / 2.0` is a timespan too.
        if len(node.args) == 2 and not isinstance(node.args[1], ir.Literal) \
                and is_timespan(node.args[1]) and not is_timespan(node.args[0]):
            value, size = render_expr(node.args[0]), render_expr(node.args[1])
            floored = f"floor(epoch({value}) / epoch({size})) * epoch({size})"
            return f"to_timestamp({floored}) AT TIME ZONE 'UTC'"
        return str(original_bin(node, name))

    translate.render_expr = render_expr
    translate._is_timespan_expr = is_timespan
    translate.render_bin = render_bin


def _install_join_and(lower: Any) -> None:
    original_key = lower._lower_join_key
    original_join = lower._lower_join
    ir = lower.ir

    def join_key(node: Any) -> Any:
        collapsed = lower._collapse(node)
        if lower._cls(collapsed) in ("LogicalAndExpression", "LogicalAndOperation"):
            return [join_key(child) for child in lower._rule_children(collapsed)]
        return original_key(node)

    def flat(keys: Any) -> list[Any]:
        out: list[Any] = []
        for key in keys:
            out.extend(flat(key) if isinstance(key, list) else [key])
        return out

    def lower_join(node: Any, kids: list[Any]) -> Any:
        joined = original_join(node, kids)
        return ir.Join(joined.right, tuple(flat(joined.keys)), joined.kind)

    lower._lower_join_key = join_key
    lower._lower_join = lower_join


def _install_project_away_once(lower: Any) -> None:
    original = lower._lower_operator
    ir = lower.ir

    def lower_operator(node: Any) -> Any:
        lowered = original(node)
        if isinstance(lowered, ir.ProjectAway):
            return ir.ProjectAway(tuple(dict.fromkeys(lowered.columns)))
        if isinstance(lowered, ir.Summarize):
            return _deprecated_arg_extremes(ir, lowered)
        return lowered

    lower._lower_operator = lower_operator


def _deprecated_arg_extremes(ir: Any, summarize: Any) -> Any:
    """``argmax(X, Y)`` is ``arg_max(X, Y)`` with Kusto's old names ``max_X``, ``max_X_Y``
    (what Microsoft's parser reports for the alias)."""
    renames: list[tuple[str, str]] = []
    aggregates = []
    for named in summarize.aggregates:
        call = named.expr
        name = str(getattr(call, "name", "")).lower()
        if isinstance(call, ir.FunctionCall) and name == "percentiles" and len(call.args) == 2:
            # one percentile is percentile(x, p), named percentile_x_p; several stay refused
            named = ir.NamedExpr(ir.FunctionCall("percentile", call.args), named.name)
        elif isinstance(call, ir.FunctionCall) and name in ("argmax", "argmin"):
            new = "arg_" + name[3:]
            columns = [getattr(a, "name", None) for a in call.args]
            if named.name is None and all(isinstance(c, str) for c in columns):
                prefix = f"{name[3:]}_{columns[0]}"
                renames += [(str(c), prefix if i == 0 else f"{prefix}_{c}")
                            for i, c in enumerate(columns)]
            named = ir.NamedExpr(ir.FunctionCall(new, call.args), named.name)
        aggregates.append(named)
    lowered = ir.Summarize(tuple(aggregates), summarize.by)
    if len(renames) != len({old for old, _ in renames}):
        return lowered  # two aliases over one column: duckdb-kql's arg_max names (X, X1) stay
    return [lowered, ir.ProjectRename(tuple(renames))] if renames else lowered


def _register(functions: Any) -> None:
    spec = functions.FunctionSpec
    scalars = functions.SCALAR_FUNCTIONS
    rows = [
        _Split("split", "template", "", (2, 3)),
        _AnyIpv4Prefix("has_any_ipv4_prefix", "template", "", ()),
        spec("parse_command_line", "template",
             "to_json(list_transform(regexp_extract_all(CAST({0} AS VARCHAR), "
             "'(?:\"[^\"]*\"|[^\\s\"])+'), lambda t: replace(t, '\"', '')))", (2,), (),
             "huntwire: Windows rules without backslash escapes"),
        # range(start, stop, step): the inclusive series, as the 2-argument split is a list
        spec("range", "template", "generate_series({0}, {1}, {2})", (3,), (),
             "huntwire: stop included, as Kusto"),
        spec("unixtime_seconds_todatetime", "template",
             "make_timestamp(CAST(({0}) * 1000000 AS BIGINT))", (1,)),
        spec("unixtime_milliseconds_todatetime", "template",
             "make_timestamp(CAST(({0}) * 1000 AS BIGINT))", (1,)),
        spec("unixtime_microseconds_todatetime", "template",
             "make_timestamp(CAST({0} AS BIGINT))", (1,)),
    ]
    for row in rows:
        scalars[row.name] = row
    for old, new in (("arraylength", "array_length"),):  # deprecated aliases
        spec_new = scalars[new]
        scalars[old] = spec(old, spec_new.kind, spec_new.template, spec_new.arities,
                            spec_new.rules, f"huntwire: deprecated alias of {new}")


@dataclass(frozen=True)
class _Split(_RenderedFunction):
    """``split(text, delimiter[, index])``: with an index, an array of that one part (or empty)."""

    def render(self, args: list[str]) -> str:
        if len(args) not in self.arities:
            raise ValueError(f"split() takes 2 or 3 arguments, got {len(args)}")
        parts = f"str_split({args[0]}, {args[1]})"
        if len(args) == 2:
            return parts
        index = f"CAST({args[2]} AS BIGINT)"
        return (f"CASE WHEN {index} < 0 THEN CAST([] AS VARCHAR[]) ELSE "
                f"list_slice({parts}, {index} + 1, {index} + 1) END")


@dataclass(frozen=True)
class _AnyIpv4Prefix(_RenderedFunction):
    """``has_any_ipv4_prefix(text, prefix, ...)`` (prefixes may be one dynamic array): an IPv4
    address delimited in the text that equals a whole-address prefix or starts with one ending
    in a dot."""

    variadic = True

    def render(self, args: list[str]) -> str:
        if len(args) < 2:
            raise ValueError("has_any_ipv4_prefix() takes a text and prefixes")
        prefixes = ", ".join(f"CAST({a} AS VARCHAR)" for a in args[1:])
        listed = (f"flatten(list_transform([{prefixes}], lambda a: CASE WHEN starts_with(trim(a), "
                  "'[') THEN from_json(a, '[\"VARCHAR\"]') ELSE [a] END))")
        tokens = f"regexp_extract_all(CAST({args[0]} AS VARCHAR), '[0-9A-Za-z.]+')"
        found = (f"list_filter(list_transform({tokens}, lambda t: trim(t, '.')), "
                 f"lambda t: regexp_full_match(t, '{_IPV4}'))")
        return (f"coalesce(list_bool_or(list_transform({found}, lambda ip: list_bool_or("
                f"list_transform({listed}, lambda p: CASE WHEN ends_with(p, '.') THEN "
                "starts_with(ip, p) ELSE ip = p END)))), false)")

