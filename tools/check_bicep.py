#!/usr/bin/env python3
"""Parse every .bicep file offline and fail with file:line:col on the first syntax error.

Two parsers, because each catches what the other misses and because checkov silently skips
(exit code 0) any file its parser rejects:

* pycep (the parser checkov's bicep framework uses): a file pycep cannot parse is a file
  checkov never checks, so it must parse here.
* tree-sitter-bicep: an independent grammar, closer to the current language.

Files that declare a Bicep `extension` (the Microsoft Graph template) are unknown to both
parsers. They must be listed in EXTENSION_FILES; they are checked with their `extension`
lines blanked out (line numbers are kept), so the rest of their syntax is still covered.
A file that declares an extension without being listed is an error.

Usage: check_bicep.py [ROOT ...]   (default: infra/ next to this script's parent)
       check_bicep.py --json [ROOT ...]   print {file: pycep tree} as JSON (for tests/test_infra.py)
Exit status: 0 when every file parses, 1 otherwise, 2 on usage/setup errors.
Runs in the separate .venv-infra (requirements-infra.txt).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Relative to the repository root.
EXTENSION_FILES = frozenset({"infra/modules/graph-app-role.bicep"})

_EXTENSION_LINE = re.compile(r"^[ \t]*extension[ \t]+\S.*$", re.MULTILINE)


def _rel(path: Path) -> str:
    try:
        return path.resolve().relative_to(REPO).as_posix()
    except ValueError:
        return path.as_posix()


def blank_extensions(text: str) -> str:
    """Replace each top-level `extension ...` statement by an empty line."""
    return _EXTENSION_LINE.sub("", text)


def tree_sitter_errors(text: str) -> list[tuple[int, int, str]]:
    import tree_sitter_bicep
    from tree_sitter import Language, Node, Parser

    parser = Parser(Language(tree_sitter_bicep.language()))
    source = text.encode("utf-8")
    tree = parser.parse(source)
    errors: list[tuple[int, int, str]] = []

    def walk(node: Node) -> None:
        if node.type == "ERROR" or node.is_missing:
            snippet = source[node.start_byte : node.end_byte].decode("utf-8", "replace")
            snippet = snippet.splitlines()[0][:60] if snippet else ""
            what = f"missing {node.type}" if node.is_missing else f"unexpected {snippet!r}"
            row, column = node.start_point
            errors.append((row + 1, column + 1, f"tree-sitter-bicep: {what}"))
            return
        if node.has_error:
            for child in node.children:
                walk(child)

    walk(tree.root_node)
    return errors


_PYCEP = None


def pycep_errors(text: str) -> list[tuple[int, int, str]]:
    global _PYCEP
    from pycep import BicepParser

    if _PYCEP is None:
        _PYCEP = BicepParser(add_line_numbers=True)
    try:
        _PYCEP.parse(text=text)
    except Exception as exc:  # lark raises several types; all mean "checkov would skip this"
        line = getattr(exc, "line", None) or 1
        column = getattr(exc, "column", None) or 1
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        message = f"pycep (checkov's parser): {type(exc).__name__}: {first}"
        return [(int(line), int(column), message)]
    return []


def check_file(path: Path) -> list[str]:
    rel = _rel(path)
    text = path.read_text(encoding="utf-8")
    problems: list[str] = []
    match = _EXTENSION_LINE.search(text)
    if match:
        if rel not in EXTENSION_FILES:
            line = text[: match.start()].count("\n") + 1
            problems.append(
                f"{rel}:{line}:1: declares a Bicep extension; keep extension templates in "
                "their own file and list it in EXTENSION_FILES"
            )
            return problems
        text = blank_extensions(text)
    for line, column, message in pycep_errors(text) + tree_sitter_errors(text):
        problems.append(f"{rel}:{line}:{column}: {message}")
    return problems


def bicep_files(roots: list[Path]) -> list[Path]:
    files: list[Path] = []
    for root in roots:
        if root.is_file():
            files.append(root)
        else:
            files.extend(sorted(root.rglob("*.bicep")))
    return files


def pycep_trees(files: list[Path]) -> dict[str, object]:
    """``{repo-relative path: pycep's parse tree}`` (extension lines blanked)."""
    from pycep import BicepParser

    parser = BicepParser()
    return {_rel(f): parser.parse(text=blank_extensions(f.read_text(encoding="utf-8")))
            for f in files}


def main(argv: list[str]) -> int:
    if argv[:1] == ["--json"]:
        import json

        trees = pycep_trees(bicep_files([Path(a) for a in argv[1:]] or [REPO / "infra"]))
        print(json.dumps(trees, default=str))
        return 0
    roots = [Path(a) for a in argv] or [REPO / "infra"]
    missing = [r for r in roots if not r.exists()]
    if missing:
        print(f"check_bicep: no such path: {', '.join(map(str, missing))}", file=sys.stderr)
        return 2
    files = bicep_files(roots)
    if not files:
        print("check_bicep: no .bicep files found", file=sys.stderr)
        return 2
    if not argv:
        for listed in sorted(EXTENSION_FILES):
            if not (REPO / listed).is_file():
                print(f"{listed}:1:1: listed in EXTENSION_FILES but missing", file=sys.stderr)
                return 1
    problems = [p for f in files for p in check_file(f)]
    for problem in problems:
        print(problem, file=sys.stderr)
    status = "FAILED" if problems else "ok"
    print(f"check_bicep: {len(files)} file(s) parsed with pycep and tree-sitter-bicep: {status}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
