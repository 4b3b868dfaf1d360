"""The base of function-registry entries whose SQL is rendered by code, not a template."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class RenderedFunction:
    """A duckdb-kql function-registry entry whose SQL is rendered by code, not a template."""

    name: str
    kind: str
    template: str
    arities: tuple[int, ...]
    rules: tuple[str, ...] = ()
    note: str = "huntwire"
    variadic = False
