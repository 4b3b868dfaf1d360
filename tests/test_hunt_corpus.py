"""The reverse-shell pack against the development corpus of real public command lines.

``tests/corpus`` is a copy of the development part of the corpus (sources and licences in
``tests/corpus/SOURCES.md``; every row names its own source). Each row becomes one
DeviceProcessEvents event and all hunts run once through `huntwire eval`. The pack must catch
every reverse-shell and bind-shell line and match no benign line; the seed hunt's numbers are
computed the same way and shown beside the pack's (run this file with ``python`` to print the
table).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "corpus"
HUNTS = REPO / "hunts"
NOW = "2026-11-02T12:00:00Z"
SEED = "microsoft-powershell-tcpclient"
PACK = ("powershell-socket-reverse-shell", "powershell-encoded-reverse-shell",
        "powershell-download-cradle-stager")
SHELL_CATEGORIES = ("reverse-shell", "bind-shell")
MALICIOUS_CATEGORIES = ("reverse-shell", "bind-shell", "download-cradle", "c2-stager")
FIRST_REPORT_ID = 100_000


def corpus_rows() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for name in ("malicious.jsonl", "benign.jsonl"):
        text = (CORPUS / name).read_text(encoding="utf-8")
        rows += [json.loads(line) for line in text.splitlines() if line.strip()]
    return rows


def process_event(index: int, row: dict[str, Any]) -> dict[str, Any]:
    """A DeviceProcessEvents event for one corpus line, inside the window that ends at NOW."""
    return {
        "Timestamp": f"2026-11-02T{9 + index // 60:02d}:{index % 60:02d}:00Z",
        "DeviceId": f"corpus-{index:03d}", "DeviceName": f"corpus-{index:03d}.contoso.local",
        "ReportId": FIRST_REPORT_ID + index, "ActionType": "ProcessCreated",
        "FileName": row["FileName"], "ProcessCommandLine": row["ProcessCommandLine"],
        "ProcessId": 4000 + index, "AccountDomain": "contoso", "AccountName": f"user{index}",
        "InitiatingProcessFileName": "explorer.exe",
        "InitiatingProcessCommandLine": "C:\\Windows\\Explorer.EXE",
    }


@dataclass(frozen=True)
class CorpusRun:
    rows: list[dict[str, Any]]
    matches: dict[str, set[str]]
    """hunt file stem -> corpus row ids it matched"""

    def caught_by(self, stems: Iterable[str]) -> set[str]:
        return set().union(*(self.matches[s] for s in stems))

    def ids(self, *categories: str) -> set[str]:
        return {r["id"] for r in self.rows if r["category"] in categories}


@cache
def run_corpus(events_dir: str) -> CorpusRun:
    rows = corpus_rows()
    events = Path(events_dir) / "corpus-process-events.jsonl"
    events.write_text("".join(json.dumps(process_event(i, r)) + "\n" for i, r in enumerate(rows)),
                      encoding="utf-8")
    completed = subprocess.run(
        [sys.executable, "-m", "shared", "eval", "--hunts", str(HUNTS), "--events",
         f"DeviceProcessEvents={events}", "--now", NOW, "--format", "json"],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False)
    assert completed.returncode == 0, completed.stderr
    report = json.loads(completed.stdout)
    stems = {str(yaml.safe_load(p.read_text(encoding="utf-8"))["id"]).lower(): p.stem
             for p in HUNTS.glob("*.yaml")}
    by_report_id = {FIRST_REPORT_ID + i: r["id"] for i, r in enumerate(rows)}
    matches: dict[str, set[str]] = {}
    for entry in report["hunts"]:
        assert entry["error"] is None, f"{entry['name']}: {entry['error']}"
        matches[stems[entry["id"]]] = {by_report_id[int(m["ReportId"])] for m in entry["matches"]}
    return CorpusRun(rows, matches)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> CorpusRun:
    return run_corpus(str(tmp_path_factory.mktemp("corpus")))


def test_the_copied_corpus_is_labelled_and_sourced(corpus: CorpusRun) -> None:
    assert corpus.ids("benign")
    assert corpus.ids(*SHELL_CATEGORIES)
    for row in corpus.rows:
        assert row["category"] in (*MALICIOUS_CATEGORIES, "benign"), row["id"]
        assert row["source"], row["id"]
        assert row["derivation"], row["id"]
    assert "## Sources" in (CORPUS / "SOURCES.md").read_text(encoding="utf-8")


def test_every_reverse_and_bind_shell_line_is_caught_by_the_pack(corpus: CorpusRun) -> None:
    missed = sorted(corpus.ids(*SHELL_CATEGORIES) - corpus.caught_by(PACK))
    assert missed == []


def test_no_benign_line_matches_any_pack_hunt(corpus: CorpusRun) -> None:
    pack = [s for s in corpus.matches if s != SEED]
    assert set(PACK) <= set(pack)
    assert len(pack) >= 6
    for stem in pack:
        assert sorted(corpus.matches[stem] & corpus.ids("benign")) == [], stem


def test_cradle_and_stager_lines_are_caught(corpus: CorpusRun) -> None:
    missed = sorted(corpus.ids("download-cradle", "c2-stager") - corpus.caught_by(PACK))
    assert missed == []


def test_encoded_lines_are_caught_by_the_encoded_hunt(corpus: CorpusRun) -> None:
    encoded = {r["id"] for r in corpus.rows if r["family"] == "encoded-command"}
    assert encoded
    assert encoded <= corpus.matches["powershell-encoded-reverse-shell"]


def test_sentinel_twins_match_the_same_lines(corpus: CorpusRun) -> None:
    for stem in PACK:
        assert corpus.matches[f"sentinel-{stem}"] == corpus.matches[stem], stem


def test_the_pack_beats_the_seed_and_the_seed_numbers_are_measured(corpus: CorpusRun) -> None:
    shells = corpus.ids(*SHELL_CATEGORIES)
    seed = corpus.matches[SEED]
    pack = corpus.caught_by(PACK)
    assert seed <= corpus.ids(*MALICIOUS_CATEGORIES, "benign")
    assert len(seed & shells) < len(pack & shells)
    assert shells - seed, "the seed misses shells the pack catches"
    print("\n" + summary(corpus))


def summary(corpus: CorpusRun) -> str:
    """A Markdown table: per hunt, lines caught per category and benign matches."""
    categories = [c for c in MALICIOUS_CATEGORIES if corpus.ids(c)]
    header = "| hunt | " + " | ".join(f"{c} ({len(corpus.ids(c))})" for c in categories) + \
        f" | benign matched ({len(corpus.ids('benign'))}) |"
    lines = [header, "|" + "---|" * (len(categories) + 2)]

    def row(label: str, caught: set[str]) -> str:
        cells = [f"{len(caught & corpus.ids(c))}" for c in categories]
        return f"| {label} | " + " | ".join(cells) + f" | {len(caught & corpus.ids('benign'))} |"

    lines.append(row(f"seed `{SEED}`", corpus.matches[SEED]))
    for stem in PACK:
        lines.append(row(f"`{stem}`", corpus.matches[stem]))
    lines.append(row("**pack (any hunt)**", corpus.caught_by(PACK)))
    return "\n".join(lines)


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as scratch:
        print(summary(run_corpus(scratch)))
