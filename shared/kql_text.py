"""Lexical helpers over KQL text, for the few places that read a query without a parser."""

from __future__ import annotations


def code_only(query: str) -> str:
    """The query with every string literal replaced by ``""`` and ``//`` comments removed, so
    text inside strings and comments is never mistaken for code. Verbatim strings (``@"..."``)
    take backslashes literally."""
    out, index = [], 0
    while index < len(query):
        char = query[index]
        if query.startswith("//", index):
            end = query.find("\n", index)
            index = len(query) if end < 0 else end
            continue
        if char in "'\"":
            verbatim = index > 0 and query[index - 1] == "@"
            end = index + 1
            while end < len(query) and query[end] != char:
                end += 2 if query[end] == "\\" and not verbatim else 1
            out.append('""')
            index = end + 1
            continue
        out.append(char)
        index += 1
    return "".join(out)


def split_top_level(text: str, separator: str, code: str | None = None) -> list[str]:
    """*text* split at *separator* outside brackets. Brackets and separators are read from
    *code* when given: the same text, same length, with strings and comments blanked, so a
    separator inside a string does not split."""
    scanned = text if code is None else code
    parts, depth, start = [], 0, 0
    for index, char in enumerate(scanned):
        depth += char in "([{"
        depth -= char in ")]}"
        if char == separator and depth == 0:
            parts.append(text[start:index])
            start = index + 1
    parts.append(text[start:])
    return parts
