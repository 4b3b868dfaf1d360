"""Operators duckdb-kql 1.1.2 does not lower, with Kusto's documented semantics.

- ``serialize [name = expr, ...]``: marks the (already sorted) input as ordered; with
  expressions it extends like ``extend``. ``prev(col[, offset[, default]])``,
  ``next(...)`` and ``row_number([start])`` read that order (DuckDB's streaming window keeps
  the sorted input's order). ``row_number`` with a restart predicate is refused.
- ``partition [hint.*] by Col (top N by E)``, ``(take N)`` and ``(summarize ... by ...)``: the
  subquery applied to each value of Col; other subqueries are refused.
- ``top-nested [N] of Expr by [Name =] Aggregate [asc|desc], ...``: each level keeps the N best
  values of Expr within each row of the level above; an unnamed aggregate is named
  ``aggregated_<Expr>``; ``with others`` is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

_KEY = "__hw_k"


def install(lower: Any, functions: Any, translate: Any, schema: Any) -> None:
    ir = lower.ir

    @dataclass(frozen=True)
    class PartitionTop(ir.Operator):  # type: ignore[misc, name-defined]
        key: str
        count: int
        order: tuple[Any, ...]

    @dataclass(frozen=True)
    class TopNested(ir.Operator):  # type: ignore[misc, name-defined]
        levels: tuple[tuple[int | None, Any, Any, bool], ...]  # count, key, aggregate, asc

    _register_window_functions(functions)
    original_lower = lower._lower_operator
    original_render = translate.render_operator
    original_columns = schema._operator_columns_unchecked

    def lower_operator(node: Any) -> Any:
        inner = operator_node(lower, node)
        kind = lower._cls(inner)
        if kind == "SerializeOperator":
            named = [lower._lower_named(k) for k in lower._rule_children(inner)]
            return ir.Extend(tuple(named)) if named else None
        if kind == "PartitionOperator":
            return _lower_partition(lower, inner, PartitionTop)
        if kind == "TopNestedOperatorPart":  # one level: collapsed into its only part
            return TopNested((_lower_level(lower, inner),))
        if kind == "TopNestedOperator":
            return TopNested(tuple(_lower_level(lower, part)
                                   for part in lower._rule_children(inner)))
        return original_lower(node)

    def render_operator(op: Any, prev: str, cols: list[str] | None = None) -> str:
        if isinstance(op, PartitionTop):
            return _render_partition_top(translate, op, prev)
        if isinstance(op, TopNested):
            return _render_top_nested(translate, op, prev)
        return str(original_render(op, prev, cols))

    def operator_columns(op: Any, cols: list[str], schema_: Any) -> list[str]:
        if isinstance(op, PartitionTop):
            return list(cols)
        if isinstance(op, TopNested):
            return [name for level in op.levels for name in _level_names(level)]
        return list(original_columns(op, cols, schema_))

    lower._lower_operator = lower_operator
    translate.render_operator = render_operator
    schema._operator_columns_unchecked = operator_columns


def _register_window_functions(functions: Any) -> None:
    table = functions.SCALAR_FUNCTIONS
    for name, sql in (("prev", "lag"), ("hw_next", "lead")):
        table[name] = _Window(name, sql)
    table["row_number"] = _RowNumber()


@dataclass(frozen=True)
class _Window:
    name: str
    sql: str
    kind: str = "template"
    template: str = ""
    arities: tuple[int, ...] = (1, 2, 3)
    rules: tuple[str, ...] = ()
    note: str = "huntwire: in the serialized order"
    variadic: bool = False

    def render(self, args: list[str]) -> str:
        if len(args) not in self.arities:
            raise ValueError(f"{self.name}() takes 1 to 3 arguments, got {len(args)}")
        return f"{self.sql}({', '.join(args)}) OVER ()"


@dataclass(frozen=True)
class _RowNumber(_Window):
    name: str = "row_number"
    sql: str = "row_number"
    arities: tuple[int, ...] = (0, 1)

    def render(self, args: list[str]) -> str:
        if len(args) > 1:
            raise ValueError("row_number() with a restart predicate is not supported locally")
        start = args[0] if args else "1"
        return f"(row_number() OVER () + ({start}) - 1)"


def operator_node(lower: Any, node: Any) -> Any:
    """The operator under a pipe's wrapper nodes, collapsed (what duckdb-kql lowers)."""
    inner = node
    while lower._cls(inner) in ("PipedOperator", "AfterPipeOperator"):
        rules = lower._rule_children(inner)
        if not rules:
            break
        inner = rules[0]
    return lower._collapse(inner)


def _lower_partition(lower: Any, node: Any, partition_top: Any) -> Any:
    ir = lower.ir
    kids = lower._rule_children(node)
    keys = [k for k in kids if lower._cls(k) == "EntityExpression"]
    bodies = [k for k in kids if lower._cls(k).startswith("PartitionOperator")]
    names = lower._find_names(keys[0]) if keys else []
    operators = _operators_in(lower, bodies[0]) if bodies else []
    if len(names) != 1 or len(operators) != 1:
        raise lower._unsupported(node, "partition (only one top, take or summarize inside)")
    key, inner = names[0], lower._collapse(operators[0])
    kind = lower._cls(inner)
    if kind == "TopOperator":
        top = lower._lower_operator(inner)
        return partition_top(key, top.count, top.keys)
    if kind == "TakeOperator":
        return partition_top(key, lower._lower_operator(inner).count, ())
    if kind == "SummarizeOperator":
        summarize = lower._lower_operator(inner)
        by = (ir.NamedExpr(ir.ColumnRef(key), "__hw_partition"), *summarize.by)
        # Kusto returns only the subquery's columns: the key is grouped on, then dropped.
        return [ir.Summarize(summarize.aggregates, by), ir.ProjectAway(("__hw_partition",))]
    raise lower._unsupported(node, f"partition (with {kind.removesuffix('Operator')} inside)")


def _operators_in(lower: Any, node: Any) -> list[Any]:
    found: list[Any] = []
    for child in lower._rule_children(node):
        kind = lower._cls(child)
        if kind.endswith("Operator") and kind not in ("PipedOperator", "AfterPipeOperator"):
            found.append(child)
        else:
            found.extend(_operators_in(lower, child))
    return found


def _render_partition_top(translate: Any, op: Any, prev: str) -> str:
    key = translate.quote_ident(op.key)
    order = f"ORDER BY {translate.render_sort_keys(op.order)}" if op.order else ""
    return (f"SELECT * EXCLUDE (__hw_rank) FROM (SELECT *, row_number() OVER "  # noqa: S608
            f"(PARTITION BY {key} {order}) AS __hw_rank FROM {prev}) "
            f"WHERE __hw_rank <= {max(op.count, 0)}")


def _lower_level(lower: Any, part: Any) -> tuple[int | None, Any, Any, bool]:
    children = lower._children(part)
    rules = [c for c in children if type(c).__name__.endswith("Context")]
    if any(lower._cls(r) == "TopNestedOperatorWithOthersClause" for r in rules):
        raise lower._unsupported(part, "top-nested with others")
    ordered = [r for r in rules if lower._cls(r) == "OrderedExpression"]
    named = [r for r in rules if lower._cls(r) == "NamedExpression"]
    if not ordered or not named:
        raise lower._unsupported(part, "top-nested")
    count = None
    if len(named) == 2:
        literal = lower._lower_expr(named[0])
        if not isinstance(getattr(literal, "value", None), int):
            raise lower._unsupported(part, "top-nested (the count must be a number)")
        count = int(literal.value)
    key = lower._lower_named(named[-1])
    inner = lower._rule_children(ordered[0])
    aggregate = lower._lower_named(inner[0])
    ascending = ordered[0].getText().lower().endswith("asc")
    return count, key, aggregate, ascending


def _level_names(level: tuple[int | None, Any, Any, bool]) -> tuple[str, str]:
    _, key, aggregate, _ = level
    key_name = key.name or getattr(key.expr, "name", None) or "Column1"
    return key_name, aggregate.name or f"aggregated_{key_name}"


def _render_top_nested(translate: Any, op: Any, prev: str) -> str:
    q = translate.quote_ident
    base = ", ".join(f"{translate.render_expr(key.expr)} AS {_KEY}{i}"
                     for i, (_, key, _, _) in enumerate(op.levels))
    source = f"(SELECT *, {base} FROM {prev})"  # noqa: S608
    kept = source
    carried: list[str] = []
    for index, (count, _, aggregate, ascending) in enumerate(op.levels):
        keys = [f"{_KEY}{i}" for i in range(index + 1)]
        outer = keys[:-1]
        value = translate.render_aggregate(aggregate)
        direction = "ASC" if ascending else "DESC"
        partition = f"PARTITION BY {', '.join(outer)} " if outer else ""
        group = ", ".join(keys + carried)
        select = ", ".join([*keys, *carried])
        limit = f"WHERE __hw_rank <= {count}" if count is not None else ""
        ranked = (f"SELECT {select}, {value} AS __hw_a{index}, row_number() OVER ({partition}"  # noqa: S608
                  f"ORDER BY {value} {direction}) AS __hw_rank FROM {kept} GROUP BY {group}")
        level = f"(SELECT * EXCLUDE (__hw_rank) FROM ({ranked}) {limit})"  # noqa: S608
        carried.append(f"__hw_a{index}")
        if index + 1 < len(op.levels):
            kept = (f"(SELECT b.*, l.* EXCLUDE ({', '.join(keys)}) FROM {source} b JOIN {level} l "  # noqa: S608
                    f"ON {' AND '.join(f'b.{k} IS NOT DISTINCT FROM l.{k}' for k in keys)})")
        else:
            kept = level
    names = [name for level in op.levels for name in _level_names(level)]
    parts = [f"{_KEY}{i}" for i in range(len(op.levels))]
    columns = [c for pair in zip(parts, carried, strict=True) for c in pair]
    select = ", ".join(f"{c} AS {q(n)}" for c, n in zip(columns, names, strict=True))
    return f"SELECT {select} FROM {kept}"  # noqa: S608
