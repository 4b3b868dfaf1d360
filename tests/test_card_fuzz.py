"""Hostile values through the incident card builder, in every place a value is shown: process,
parent and grandparent names and command lines, decoded scripts, accounts, endpoints, by-keys,
aggregates and lists, ``teams.columns``, unknown column names and values, signals, chains,
snooze labels, related-incident notes and the storm summary. Seeded random mixes of markdown,
links, mentions, tags, control and bidirectional characters, text functions and 100 KB strings:
nothing may link, mention, format or hide, and every card stays a 1.4 card within 28 KB.
"""

from __future__ import annotations

import random
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.cards import MAX_PAYLOAD_BYTES, card_of, payload_size
from shared.cards.incident import build_incident_post
from shared.hunt import Hunt, TeamsOptions
from shared.incidents.model import IncidentPost, StormLine
from shared.incidents.preview import incident_preview
from tests.card_text import elements

PIECES = ("[click](https://evil.example/x)", "![p](http://evil.example/p.png)", "<at>SOC</at>",
          "<img src=x onerror=alert(1)>", "**bold**", "# head", "{{DATE(2017-02-14T06:08:39Z)}}",
          "javascript:alert(1)", "www.evil.example", "hTtPs://evil.example", "\u202egpj.exe",
          "\u200b", "\x00", "\x1b[31m", "\r\n", "\u2066", "\ufeff", "[ref]: http://evil.example",
          "data:text/html,x", "//evil.example/a", "`code`", "|table|", "> quote", "a" * 300)
INVISIBLE = set("\u202e\u200b\x00\x1b\u2066\ufeff")
FORBIDDEN = re.compile(r"(?i)(\]\(|\]\[|<at>|<img|https?://|javascript:|(?<![a-z])data:text|"
                       r"\{\{DATE|(?<![a-z0-9])www\.evil\.example|//evil\.example)")
"""What no shown text may hold (``data:`` or ``www.`` glued to a word is no link: GFM and
CommonMark autolinks start at a word boundary; see ``shared/cards/escape.py``)."""
START = datetime(2026, 3, 2, 9, tzinfo=UTC)


def hostile(rng: random.Random) -> str:
    text = "".join(rng.choice(PIECES) for _ in range(rng.randint(1, 8)))
    return text * (100_000 // len(text) + 1) if rng.random() < 0.15 else text


def hostile_row(rng: random.Random, index: int) -> dict[str, Any]:
    row: dict[str, Any] = {
        "Timestamp": (START + timedelta(seconds=index)).isoformat(), "DeviceId": "ab" * 20,
        "DeviceName": "ws-fuzz", "ReportId": index, "ProcessId": 100 + index,
        "ProcessCreationTime": (START + timedelta(seconds=index)).isoformat(),
        "InitiatingProcessId": 99 + index,
        "InitiatingProcessCreationTime": (START + timedelta(seconds=index - 1)).isoformat()}
    for column in ("FileName", "ProcessCommandLine", "InitiatingProcessFileName",
                   "InitiatingProcessCommandLine", "InitiatingProcessParentFileName",
                   "DecodedCommand", "AccountName", "AccountDomain", "RemoteIP", "RemoteUrl",
                   "RemotePort", "SHA256", "RegistryKey", "Application", "Signals",
                   "Connections", "Listed", "DeviceName"):
        if rng.random() < 0.8:
            row[column] = hostile(rng)
    row[hostile(rng)[:200]] = hostile(rng)  # an unknown column, its name hostile too
    row["Tree"] = [hostile(rng) for _ in range(rng.randint(0, 30))]
    row["TreeText"] = "[" + ",".join(f'"{hostile(rng)[:50]}"' for _ in range(3)) + "]"
    return row


def telemetry_texts(payload: dict[str, Any]) -> list[str]:
    found = []
    for element in elements(card_of(payload)):
        for key in ("text", "title"):
            if isinstance(element.get(key), str):
                found.append(element[key])
    return found


def assert_inert(payload: dict[str, Any]) -> None:
    assert payload_size(payload) <= MAX_PAYLOAD_BYTES
    card = card_of(payload)
    assert card["version"] == "1.4"
    for element in elements(card):
        if element.get("type") == "TextBlock":
            assert not FORBIDDEN.search(element["text"]), element  # only our own text there
    for text in telemetry_texts(payload):
        assert not FORBIDDEN.search(text), text[:300]
        assert not set(text) & INVISIBLE, text[:300]
    for element in elements(card):
        url = element.get("url") or (element.get("selectAction") or {}).get("url")
        if url:
            assert url.startswith(("https://security.microsoft.com/",
                                   "https://attack.mitre.org/", "https://huntwire.example/")), url


@pytest.mark.parametrize("seed", range(12))
def test_hostile_values_stay_inert_in_every_place_of_the_incident_card(seed: int) -> None:
    rng = random.Random(seed)
    hunt = Hunt(id="0d3c8b1e-0000-4000-8000-00000000f022", name=hostile(rng)[:300],
                query="DeviceProcessEvents | take 1", source="defender", path=Path("f.yaml"),
                severity="High", teams=TeamsOptions(columns=("Listed", hostile(rng)[:40])),
                entity_columns=("AccountName", "Application"))
    rows = [hostile_row(rng, index) for index in range(rng.choice((1, 3, 40)))]
    _, _, post = incident_preview([hunt], {hunt.id: rows})
    labels = tuple((hostile(rng), f"https://huntwire.example/api/snooze?t={n}") for n in range(3))
    related = tuple(hostile(rng) for _ in range(2))
    for kind in ("opened", "updated"):
        shown = IncidentPost(kind, post.incident, post.evidence, snooze=labels,  # type: ignore[arg-type]
                             related=related, suppressed=((hostile(rng)[:100], 3),))
        assert_inert(build_incident_post(shown))


def test_hostile_storm_lines_stay_inert() -> None:
    rng = random.Random(99)
    hunt = Hunt(id="0d3c8b1e-0000-4000-8000-00000000f023", name="x", query="x",
                source="defender", path=Path("f.yaml"), severity="High")
    _, _, post = incident_preview([hunt], {hunt.id: [hostile_row(rng, 0)]})
    assert post.incident is not None
    lines = tuple(StormLine(post.incident, "opened", hostile(rng), 3) for _ in range(300))
    assert_inert(build_incident_post(IncidentPost("storm", storm=lines, storm_limit=10)))
