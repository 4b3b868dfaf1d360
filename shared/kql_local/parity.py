"""Parity fixes found on real Azure-Sentinel hunting files (issue 23, docs/hunts.md):

- an outer join's unmatched side is ``""`` in its string columns, as Kusto has no null string
  (``join kind=leftouter ... | where Col1 == ""``); duckdb-kql left SQL's null, so such a hunt
  silently lost its rows. Numbers, datetimes and dynamic values stay null, as in Kusto;
- an aggregate inside an element access in ``summarize`` (``tostring(make_list(X)[0])``);
- ``new_guid()`` (a random GUID string);
- ``percentilesw(x, weight, p)`` with one percentile: ``percentile`` (duckdb-kql's nearest rank,
  ``quantile_disc``) over each value repeated *weight* times, the reference's definition;
- ``union``: a string column one branch lacks is ``""`` in that branch's rows (null in SQL).
"""

from __future__ import annotations

import dataclasses
from typing import Any

_OUTER = {"leftouter": "LEFT", "rightouter": "RIGHT", "fullouter": "FULL OUTER"}
_LEFT_SEEN, _RIGHT_SEEN = '"__hw_left_seen"', '"__hw_right_seen"'


def install(ir: Any, functions: Any, translate: Any) -> None:
    _install_outer_join_strings(translate)
    _install_union_strings(translate)
    _install_lift_through_access(ir, translate)
    functions.SCALAR_FUNCTIONS["new_guid"] = functions.FunctionSpec(
        "new_guid", "template", "CAST(uuid() AS VARCHAR)", (0,), (), "huntwire")
    functions.AGGREGATE_FUNCTIONS["percentilesw"] = functions.AggregateSpec(
        "percentilesw", "list_aggregate(flatten(list(list_resize([{0}], CAST({1} AS BIGINT), {0})) "
        "FILTER (WHERE {0} IS NOT NULL AND {1} > 0)), 'quantile_disc', {2} / 100.0)", (3,),
        name_prefix="percentile", note="huntwire")
    _install_weighted_percentile_name(ir)


def _install_weighted_percentile_name(ir: Any) -> None:
    """Unnamed, ``percentilesw(v, w, 90)`` is ``percentile_v_90`` (Microsoft's parser)."""
    from duckdb_kql.translate import naming

    original = naming._aggregate_name

    def aggregate_name(spec: Any, expr: Any) -> str:
        p = expr.args[2] if spec.name == "percentilesw" and len(expr.args) == 3 else None
        if not (isinstance(p, ir.Literal) and isinstance(p.value, (int, float))):
            return str(original(spec, expr))
        suffix = int(p.value) if float(p.value).is_integer() else p.value
        return f"percentile_{naming.expression_name(expr.args[0]) or ''}_{suffix}"

    naming._aggregate_name = aggregate_name


def _install_outer_join_strings(translate: Any) -> None:
    original_join = translate.render_join
    original_lookup = translate.render_lookup

    def render_join(op: Any, prev: str, left_cols: list[str], right_sql: str,
                    right_cols: list[str]) -> str:
        if op.kind not in _OUTER:
            return str(original_join(op, prev, left_cols, right_sql, right_cols))
        outs = translate._renamed(left_cols, right_cols)
        return _outer_sql(translate, op.kind, prev, left_cols, right_sql,
                          list(zip(right_cols, outs, strict=True)),
                          translate.render_key_equality(op.keys))

    def render_lookup(op: Any, prev: str, left_cols: list[str], right_sql: str,
                      right_cols: list[str]) -> str:
        if op.kind != "leftouter":
            return str(original_lookup(op, prev, left_cols, right_sql, right_cols))
        from duckdb_kql.schema import lookup_output_columns

        dropped = {k.right for k in op.keys}
        kept = [c for c in right_cols if c not in dropped]
        outs = lookup_output_columns(left_cols, right_cols, [k.right for k in op.keys])
        return _outer_sql(translate, "leftouter", prev, left_cols, right_sql,
                          list(zip(kept, outs[len(left_cols):], strict=True)),
                          translate.render_key_equality(op.keys))

    translate.render_join = render_join
    translate.render_lookup = render_lookup


def _outer_sql(translate: Any, kind: str, prev: str, left_cols: list[str], right_sql: str,
               right: list[tuple[str, str]], on: str) -> str:
    quote = translate.quote_ident

    def column(side: str, seen: str, source: str, out: str, may_miss: bool) -> str:
        value = f"{side}.{quote(source)}"
        if not may_miss:
            return f"{value} AS {quote(out)}"
        # typeof() is the column's static type; '' takes that type in the branch never taken.
        return (f"CASE WHEN {side}.{seen} IS NULL AND typeof({value}) = 'VARCHAR' THEN '' "
                f"ELSE {value} END AS {quote(out)}")

    left_may_miss = kind in ("rightouter", "fullouter")
    projection = ", ".join(
        [column("_l", _LEFT_SEEN, c, c, left_may_miss) for c in left_cols]
        + [column("_r", _RIGHT_SEEN, src, out, kind != "rightouter") for src, out in right])
    return (f"SELECT {projection} FROM (SELECT *, true AS {_LEFT_SEEN} FROM {prev}) AS _l "  # noqa: S608
            f"{_OUTER[kind]} JOIN (SELECT *, true AS {_RIGHT_SEEN} FROM ({right_sql})) AS _r "
            f"ON {on}")


def _empty_string_when_null(translate: Any, column: str) -> str:
    name = translate.quote_ident(column)
    # typeof() is the column's static type; '' takes that type in the branch never taken.
    return f"CASE WHEN {name} IS NULL AND typeof({name}) = 'VARCHAR' THEN '' ELSE {name} END"


def _install_union_strings(translate: Any) -> None:
    original = translate.render_union

    def render_union(op: Any, prev: str, left_cols: list[str], query: Any, schema: Any,
                     leading: bool) -> str:
        sql = str(original(op, prev, left_cols, query, schema, leading))
        from duckdb_kql.schema import union_output_columns

        columns = union_output_columns(op, left_cols, schema)
        keep = ", ".join(f"{_empty_string_when_null(translate, c)} AS {translate.quote_ident(c)}"
                         for c in columns)
        return f"SELECT {keep} FROM ({sql})"  # noqa: S608 (quoted names)

    translate.render_union = render_union


def _install_lift_through_access(ir: Any, translate: Any) -> None:
    """``summarize X = tostring(make_list(Y)[0])``: duckdb-kql looked for aggregates in calls
    and operators only, not in the base or index of an element access."""
    original = translate._lift_aggregates

    def lift(expr: Any, *, depth: int = 0) -> tuple[Any, int]:
        if not isinstance(expr, ir.PathAccess):
            return tuple(original(expr, depth=depth))
        base, found = lift(expr.base, depth=depth)
        steps = []
        for step in expr.steps:
            if step.index is not None:
                index, more = lift(step.index, depth=depth)
                found += more
                step = dataclasses.replace(step, index=index)
            steps.append(step)
        return dataclasses.replace(expr, base=base, steps=tuple(steps)), found

    original_render = translate.render_aggregate

    def render_aggregate(named: Any) -> str:
        if not isinstance(named.expr, ir.PathAccess):
            return str(original_render(named))
        lifted, found = lift(named.expr)
        if not found:
            return str(original_render(named))
        return str(translate.render_expr(lifted))

    translate._lift_aggregates = lift
    translate.render_aggregate = render_aggregate


def install_parse_leading_column(lower: Any, translate: Any) -> None:
    """``parse X with Col "lit" ...``: the reference lets a pattern start with a column, which
    takes the text from the start up to the first literal (as any string column does up to the
    next one). duckdb-kql's lowering refused it; here it is a first segment with no literal."""
    ir = lower.ir
    original_lower = lower._lower_parse
    original_refuse = translate._refuse_empty_literal

    def lower_parse(node: Any, kids: list[Any], *, drop_unmatched: bool) -> Any:
        pattern = next((k for k in kids if lower._cls(k) == "ParseOperatorPattern"), None)
        parts = lower._rule_children(pattern) if pattern is not None else []
        if pattern is None or not parts or lower._cls(parts[0]) == "ParseOperatorPatternSegment":
            return original_lower(node, kids, drop_unmatched=drop_unmatched)
        lead, rest = parts[0], parts[1:]
        names = lower._find_names(lead)
        if not names or any(lower._cls(p) != "ParseOperatorPatternSegment" for p in rest):
            return original_lower(node, kids, drop_unmatched=drop_unmatched)
        col_type = next((t.getText().strip().lower() for t in lower._rule_children(lead)
                         if lower._cls(t) == "ScalarType"), None)
        pattern.children = [c for c in pattern.children if c is not lead]
        try:
            op = original_lower(node, kids, drop_unmatched=drop_unmatched)
        finally:
            pattern.children.insert(0, lead)
        first = ir.ParseSegment("", False, names[0], col_type)
        return dataclasses.replace(op, segments=(first, *op.segments))

    def refuse_empty_literal(op: Any) -> None:
        lead = op.segments[0] if op.segments else None
        if lead is not None and lead.literal == "" and lead.name and not lead.skip:
            op = dataclasses.replace(op, segments=op.segments[1:])
        original_refuse(op)

    lower._lower_parse = lower_parse
    translate._refuse_empty_literal = refuse_empty_literal
