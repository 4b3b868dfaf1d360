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
