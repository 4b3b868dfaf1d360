"""Text safety: telemetry as plain text that cannot link, mention, embed, format or hide anything.

Invisible, control and bidirectional characters become visible ``{U+XXXX}`` markers; every URL
scheme is defanged wherever it occurs (``hxxps[:]//evil[.]com/x``, also inside another URL, glued
to a letter or in any letter case) and so are the dots of the host after it; markdown link syntax
is broken by a space and a tag-like ``<`` becomes U+2039. Long values are cut with a visible
``…[truncated: N chars]`` marker. Rules and examples: ``docs/teams-card.md``.
"""

from __future__ import annotations

import json
import re
import unicodedata
from datetime import UTC, date, datetime
from typing import Any

from ..window import iso

_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co", "Zl", "Zp"})
"""Control, format (zero-width, bidi, BOM, tags), surrogate, private-use, line/para separators."""
_BLANK_LETTERS = frozenset({0x115F, 0x1160, 0x3164, 0xFFA0, 0x2800, 0x034F, 0x180E})
"""Letters and marks that render as nothing (Hangul fillers, braille blank, grapheme joiner)."""
_MAX_COMBINING_RUN = 2
"""Stacked combining marks ("zalgo") can paint over neighbouring lines; longer runs are shown."""
_NOT_PLAIN_ASCII = re.compile(r"[^\x20-\x7e\n\t]+")
_BLANK_LINES = re.compile(r"\n{3,}")

_SEPARATOR = re.compile(r":(?=/[/\\]|\\/)")
"""The ``:`` of ``://`` (and of ``:/\\``, ``:\\/``, which browsers read alike), anywhere."""
_WEB_SCHEME = re.compile(r"(?i)(h)tt(ps?)(?=:|\[:\])|(f)t(ps?)(?=:|\[:\])")
"""``http``/``https``/``ftp``/``ftps`` before a colon, even glued to a letter (``xhttps:``)."""
_BARE_SCHEME = re.compile(r"(?i)((?:\b(?:data|mailto|file|ms-[a-z\-]+|tel|sip))"
                          r"|javascript|vbscript|hxxps?|fxps?):")
_HOST = re.compile(r"(?:\[:\][/\\]+|//)([^\s/?#\\\"'<>]+)")
"""The authority after every ``[:]//`` and ``//`` (``//host/path`` is a link relative to the
page's scheme); its dots are defanged."""
_BARE_DOT = re.compile(r"(?<!\[)\.(?!\])")
"""A dot not already defanged, so defanging twice changes nothing."""
_WWW = re.compile(r"(?i)\bwww\.[a-z0-9\-.]+")
_TAG_OPEN = re.compile(r"<(?=[A-Za-z/!?])")
_LINK_SYNTAX = re.compile(r"\](?=[(\[])")
"""``[text](url)``, ``![alt](src)`` and ``[text][ref]``: CommonMark wants nothing between."""
_LINK_DEFINITION = re.compile(r"(?m)^(\s{0,3}\[[^\]\n]*\])(?=:)")
"""``[ref]: url`` at the start of a line (only multiline values keep line starts)."""
_TEXT_FUNCTION = re.compile(r"(?i)\{(?=\{(?:DATE|TIME)\()")
"""Adaptive Cards' ``{{DATE(…)}}`` / ``{{TIME(…)}}`` text functions."""


def escape_text(value: Any, *, limit: int = 500, multiline: bool = False) -> str:
    """Telemetry value as text that cannot link, mention, embed, format or hide anything.

    *limit* bounds the result in characters (a visible marker says how long the original was);
    *multiline* keeps line breaks (scripts), otherwise each becomes a visible ``↵``.
    """
    raw = to_text(value)
    head = raw[: limit + 16]
    text = _neutralise_invisible(head.replace("\r\n", "\n").replace("\r", "\n"))
    text = _BLANK_LINES.sub("\n\n", text) if multiline else text.replace("\n", "↵")
    text = defang(text)
    return _truncate(text, limit, len(raw), cut=len(head) < len(raw))


def to_text(value: Any) -> str:
    """Any result value as a string: datetimes in ISO 8601 UTC, containers as compact JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return iso(value if value.tzinfo else value.replace(tzinfo=UTC))
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return str(value)


def defang(text: str) -> str:
    """Break every URL, link, mention, tag and text function in *text*; idempotent."""
    text = _SEPARATOR.sub("[:]", text)
    text = _WEB_SCHEME.sub(_defang_scheme, text)
    text = _BARE_SCHEME.sub(lambda m: m.group(1) + "[:]", text)
    text = _HOST.sub(lambda m: m.group(0)[: m.start(1) - m.start(0)] + defang_host(m.group(1)),
                     text)
    text = _WWW.sub(lambda m: defang_host(m.group(0)), text)
    text = _TAG_OPEN.sub("\u2039", text)
    text = _LINK_SYNTAX.sub("] ", text)
    text = _LINK_DEFINITION.sub(r"\1 ", text)
    return _TEXT_FUNCTION.sub("{ ", text)


def defang_host(host: str) -> str:
    return _BARE_DOT.sub("[.]", host)


def _defang_scheme(match: re.Match[str]) -> str:
    if match.group(1):
        return f"{match.group(1)}xx{match.group(2)}"
    return f"{match.group(3)}x{match.group(4)}"


def _neutralise_invisible(text: str) -> str:
    """Replace invisible and control characters with visible ``{U+XXXX}`` markers."""
    return _NOT_PLAIN_ASCII.sub(_neutralise_run, text)


def _neutralise_run(match: re.Match[str]) -> str:
    out: list[str] = []
    combining = 0
    for char in match.group(0):
        code = ord(char)
        category = unicodedata.category(char)
        combining = combining + 1 if category in ("Mn", "Me") else 0
        if (category in _INVISIBLE_CATEGORIES or code in _BLANK_LETTERS
                or _is_noncharacter(code) or combining > _MAX_COMBINING_RUN):
            out.append(f"{{U+{code:04X}}}")
        else:
            out.append(char)
    return "".join(out)


def _is_noncharacter(code: int) -> bool:
    return 0xFDD0 <= code <= 0xFDEF or (code & 0xFFFE) == 0xFFFE


def _truncate(text: str, limit: int, original_length: int, *, cut: bool) -> str:
    if len(text) <= limit and not cut:
        return text
    marker = f" …[truncated: {original_length:,} chars]"
    end = max(0, min(len(text), limit - len(marker)))
    marker_start = text.rfind("{U+", max(0, end - 9), end)
    if marker_start != -1 and text.find("}", marker_start, end) == -1:
        end = marker_start
    return text[:end] + marker
