"""Read one hunt (or suppression rule) file's YAML safely: any encoding with a BOM, no
aliases, no duplicate keys.

A hunt file is operator input; whatever it holds, reading it raises :class:`YamlProblem` (with a
position when known) and never RecursionError, MemoryError or a crash in a later step.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Mapping
from typing import Any

import yaml

MAX_FILE_BYTES = 1_000_000
MAX_DEPTH = 40
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_SURROGATE = re.compile(r"[\ud800-\udfff]")
_BOMS = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),
         (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"),
         (codecs.BOM_UTF16_BE, "utf-16"))


class YamlProblem(ValueError):
    """The file cannot be read as one hunt document."""

    def __init__(self, reason: str, line: int | None = None, column: int | None = None):
        super().__init__(reason)
        self.reason = reason
        self.line = line
        self.column = column


def decode(data: bytes) -> str:
    """Text of a hunt file: UTF-8, or UTF-8/16/32 with a byte-order mark."""
    if len(data) > MAX_FILE_BYTES:
        raise YamlProblem(f"file is {len(data)} bytes, more than the {MAX_FILE_BYTES} allowed")
    encoding = next((name for bom, name in _BOMS if data.startswith(bom)), "utf-8")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise YamlProblem(f"not valid {encoding.upper().removesuffix('-SIG')} text at byte "
                          f"{exc.start} (save the file as UTF-8)") from exc


class _Loader(yaml.SafeLoader):
    """SafeLoader that refuses aliases, duplicate keys and deep nesting."""

    _depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()  # type: ignore[no-untyped-call]
            raise YamlProblem(f"YAML aliases (*{event.anchor}) are not allowed",
                              event.start_mark.line + 1, event.start_mark.column + 1)
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise YamlProblem(f"nested deeper than {MAX_DEPTH} levels", mark.line + 1,
                                  mark.column + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key; SafeLoader reports it below
                continue
            if duplicate:
                raise YamlProblem(f"duplicate key '{key}'", key_node.start_mark.line + 1,
                                  key_node.start_mark.column + 1)
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse(text: str) -> tuple[Any, Any]:
    """Return (document, node) of a single-document YAML text."""
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            document = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except YamlProblem:
        raise
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise YamlProblem(f"not valid YAML: {getattr(exc, 'problem', None) or exc}",
                          mark.line + 1 if mark else None,
                          mark.column + 1 if mark else None) from exc
    except RecursionError as exc:
        raise YamlProblem("nested too deeply to read") from exc
    surrogate = _find_surrogate(document)
    if surrogate is not None:
        raise YamlProblem(f"contains a lone surrogate (U+{ord(surrogate):04X}), which is not "
                          "a character")
    return document, node


def _find_surrogate(value: Any) -> str | None:
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            found = _SURROGATE.search(item)
            if found:
                return found.group()
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def printable(text: str) -> str:
    """*text* with control characters (ANSI escapes, bidi overrides) shown as escapes."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


def misspelled_keys(document: dict[Any, Any], known: frozenset[str]) -> list[tuple[str, str]]:
    """(key, known key) for each unknown key that looks like a known one (``enabeld``,
    ``Enabled``): ignoring it would silently run the hunt with that key's default."""
    from .suggest import closest

    found = []
    for key in document:
        if isinstance(key, str) and key not in known:
            match = closest(key, known, cutoff=0.8)
            if match is not None:
                found.append((key, match))
    return found


def misspelled_key_reason(key: str, known: str) -> str:
    return printable(f"unknown key '{key}' (did you mean '{known}'?): a misspelled key is not "
                     f"read, so the hunt would run with the default '{known}'")


def entity_columns(mappings: Any) -> tuple[str, ...]:
    """``columnName`` of every ``entityMappings[].fieldMappings[]``, once each; tolerant."""
    found: list[str] = []
    for mapping in mappings if isinstance(mappings, list) else ():
        fields = mapping.get("fieldMappings") if isinstance(mapping, Mapping) else None
        for field_map in fields if isinstance(fields, list) else ():
            name = field_map.get("columnName") if isinstance(field_map, Mapping) else None
            if isinstance(name, str) and name and name not in found:
                found.append(name)
    return tuple(found)
