"""Tabular ``let`` functions expanded before translation (duckdb-kql runs scalar ones only).

``let F = () { T | ... }; F | ...`` and ``let F = (x: string) { T | where A == x }; F("a")``
become ``let __hw_F_1 = T | where A == ("a"); __hw_F_1``: one table binding per call, placed just
before the statement that calls it. Anything else (default or tabular parameters, bodies with
their own statements, calls inside other functions) is left as written, so the engine refuses it.
"""

from __future__ import annotations

import re

from ..kql_text import split_top_level

# `view` only marks the function for `union *`; a call is the same expansion.
_DEFINITION = re.compile(r"\s*let\s+([A-Za-z_]\w*)\s*=\s*(?:view\s*)?\(([^(){}]*)\)\s*\{(.*)\}\s*$",
                         re.S)
_PARAM = re.compile(r"\s*([A-Za-z_]\w*)\s*:\s*(string|long|int|real|double|bool|boolean|"
                    r"datetime|timespan|dynamic|guid|decimal)\s*$")


def masked(query: str) -> str:
    """*query* with string contents and ``//`` comments blanked, same length, quotes kept."""
    out = list(query)
    index = 0
    while index < len(query):
        if query.startswith("//", index):
            end = query.find("\n", index)
            end = len(query) if end < 0 else end
            out[index:end] = " " * (end - index)
            index = end
            continue
        char = query[index]
        if char in "'\"":
            verbatim = index > 0 and query[index - 1] == "@"
            end = index + 1
            while end < len(query) and query[end] != char:
                end += 2 if query[end] == "\\" and not verbatim else 1
            end = min(end, len(query) - 1)
            out[index + 1:end] = " " * (end - index - 1)
            index = end + 1
            continue
        index += 1
    return "".join(out)


def expand(query: str) -> str:
    """*query* with its tabular ``let`` functions expanded; unchanged when that is not safe."""
    statements = split_top_level(query, ";", masked(query))
    for _ in range(20):
        expanded = _expand_first(statements)
        if expanded is None:
            return ";".join(statements)
        statements = expanded
    return query


def _expand_first(statements: list[str]) -> list[str] | None:
    for position, statement in enumerate(statements):
        found = _DEFINITION.match(masked(statement))
        if not found:
            continue
        params = _params(found.group(2))
        open_at, close_at = found.start(3), found.end(3)
        body = statement[open_at:close_at]
        if params is None or not _is_tabular(masked(body)):
            continue
        rest = _replace_calls(found.group(1), params, body, statements[position + 1:])
        if rest is None:
            return None
        return [*statements[:position], *rest]
    return None


def _params(text: str) -> list[str] | None:
    if not text.strip():
        return []
    found = [_PARAM.match(part) for part in text.split(",")]
    return None if not all(found) else [m.group(1) for m in found if m]


def _is_tabular(code: str) -> bool:
    """A body whose last statement (a trailing ``;`` allowed) is one pipeline over a source (a
    top-level ``|``) or a bare table name."""
    parts = [p for p in split_top_level(code, ";") if p.strip()]
    last = parts[-1] if parts else code
    while _wrapped(last):
        last = last.strip()[1:-1]  # `{ (T | where ...); }`: a parenthesised pipeline
    return len(split_top_level(last, "|")) > 1 or bool(re.fullmatch(r"\s*[A-Za-z_]\w*\s*", last))


def _wrapped(code: str) -> bool:
    """Whether *code* is one parenthesised expression: its first ``(`` closes at its end."""
    text = code.strip()
    if not text.startswith("("):
        return False
    depth = 0
    for index, char in enumerate(text):
        depth += char in "([{"
        depth -= char in ")]}"
        if depth == 0:
            return index == len(text) - 1
    return False


def _replace_calls(name: str, params: list[str], body: str,
                   statements: list[str]) -> list[str] | None:
    call = re.compile(rf"(?<![\w.$]){re.escape(name)}\b(\s*\()?")
    out: list[str] = []
    count = 0
    for statement in statements:
        code = masked(statement)
        if _DEFINITION.match(code) and call.search(code):
            return None  # called inside another function: left to the engine
        bindings, pieces, last = [], [], 0
        for found in call.finditer(code):
            if found.start() < last:
                continue
            args, end = _call_args(statement, code, found)
            if args is None or len(args) != len(params):
                return None
            count += 1
            binding = f"__hw_{name}_{count}"
            inner = _hoist(body, binding)
            if inner is None:
                return None
            bindings += [f"\nlet {n} = {_substitute(b, params, args)}" for n, b in inner]
            pieces += [statement[last:found.start()], binding]
            last = end
        pieces.append(statement[last:])
        out += [*bindings, "".join(pieces)]
    return out


def _call_args(text: str, code: str, found: re.Match[str]) -> tuple[list[str] | None, int]:
    if not found.group(1):
        return [], found.end()
    depth, index = 1, found.end()
    while index < len(code) and depth:
        depth += code[index] in "([{"
        depth -= code[index] in ")]}"
        index += 1
    if depth:
        return None, index
    inner = text[found.end():index - 1]
    args = [] if not inner.strip() else [a.strip() for a in
                                         split_top_level(inner, ",", code[found.end():index - 1])]
    return args, index


def _hoist(body: str, binding: str) -> list[tuple[str, str]] | None:
    """The body's own ``let`` statements as renamed bindings, then the pipeline as *binding*."""
    parts = [p for p in split_top_level(body, ";", masked(body)) if p.strip()]
    out: list[tuple[str, str]] = []
    for part in parts[:-1]:
        found = re.match(r"\s*let\s+([A-Za-z_]\w*)\s*=(?!\s*\()", masked(part))
        if not found:
            return None
        out.append((f"{binding}_{found.group(1)}", part[found.end():]))
    out.append((binding, parts[-1] if parts else body))
    for index, new in enumerate(n for n, _ in out[:-1]):
        local = new[len(binding) + 1:]
        pattern = re.compile(rf"(?<![\w.$]){re.escape(local)}\b")
        out = [(n, _rename(b, pattern, new) if i > index else b) for i, (n, b) in enumerate(out)]
    return out


def _rename(text: str, pattern: re.Pattern[str], new: str) -> str:
    for found in reversed(list(pattern.finditer(masked(text)))):
        text = f"{text[:found.start()]}{new}{text[found.end():]}"
    return text


def _substitute(body: str, params: list[str], args: list[str]) -> str:
    code = masked(body).rstrip().rstrip(";")
    body = body[:len(code)]
    for param, arg in zip(params, args, strict=True):
        pattern = re.compile(rf"(?<![\w.$]){re.escape(param)}\b(?!\s*=(?!=))")
        spans = [m.span() for m in pattern.finditer(masked(body))]
        for start, end in reversed(spans):
            body = f"{body[:start]}({arg}){body[end:]}"
    return body
