"""``column_ifexists(name, default)``: the column when the operator's input has it, else *default*.

Resolved at translation time against the input columns duckdb-kql tracks (table schema, view
columns, upstream ``extend``/``project``). Where those columns are unknown, it is refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

_NAME = "column_ifexists"
_INPUT_COLUMNS: list[list[str] | None] = []


def install(translate: Any, errors: Any) -> Any:
    """Register ``column_ifexists`` and make the renderer know each operator's input columns."""
    original_render = translate.render_operator
    original_needs = translate._mv_expand_needs_columns

    def render_operator(op: Any, prev: str, cols: list[str] | None = None) -> str:
        _INPUT_COLUMNS.append(cols)
        try:
            return str(original_render(op, prev, cols))
        finally:
            _INPUT_COLUMNS.pop()

    def needs_columns(op: Any) -> bool:
        return bool(original_needs(op)) or _calls_column_ifexists(op)

    translate.render_operator = render_operator
    translate._mv_expand_needs_columns = needs_columns
    return _ColumnIfExists(errors.KqlUnsupportedError)


def _calls_column_ifexists(node: Any) -> bool:
    if isinstance(node, (list, tuple)):
        return any(_calls_column_ifexists(item) for item in node)
    if not is_dataclass(node):
        return False
    if type(node).__name__ == "FunctionCall" and str(getattr(node, "name", "")).lower() == _NAME:
        return True
    return any(_calls_column_ifexists(getattr(node, f.name)) for f in fields(node))


@dataclass(frozen=True)
class _ColumnIfExists:
    """A function-registry row whose rendering reads the current operator's input columns."""

    unsupported: Any
    name: str = _NAME
    kind: str = "template"
    template: str = ""
    arities: tuple[int, ...] = (2,)
    rules: tuple[str, ...] = ()
    note: str = "huntwire: resolved against the input columns at translation time"

    @property
    def variadic(self) -> bool:
        return False

    def render(self, args: list[str]) -> str:
        if len(args) != 2:
            raise ValueError(f"column_ifexists() takes 2 arguments, got {len(args)}")
        found = re.fullmatch(r"'((?:[^']|'')*)'", args[0].strip())
        if not found:
            raise self.unsupported(_NAME, hint="the column name must be a string literal")
        cols = _INPUT_COLUMNS[-1] if _INPUT_COLUMNS else None
        if cols is None:
            raise self.unsupported(_NAME, hint="the input columns are not known here")
        name = found.group(1).replace("''", "'")
        if name in cols:
            return '"' + name.replace('"', '""') + '"'
        return args[1]
