"""Health records on Azurite (ETag-guarded) and the notice cards (escaped, Adaptive Card 1.4)."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

import pytest

from shared.cards import build_notice
from shared.cards.payload import with_held_back_note
from shared.health.model import HeartbeatTally, HuntHealth, Notice
from shared.health.notices import health_kind, health_notice, heartbeat_notice
from shared.health.records import ConflictError, HealthStore
from shared.notify.base import Notice as ChannelNotice
from shared.storage import Storage
from tests.card_text import elements, texts

T0 = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)


@pytest.fixture
def store(storage_connection_string: str) -> HealthStore:
    store = HealthStore(Storage.from_connection_string(storage_connection_string))
    store.table.delete_table()
    return HealthStore(Storage.from_connection_string(storage_connection_string))


def test_hunt_record_round_trips(store: HealthStore) -> None:
    record = HuntHealth(hunt_id="h-1", name="One", consecutive_failures=3, first_failure=T0,
                        last_error="see https://hooks.example/secret?sig=abc", disabled=True,
                        disabled_hash="x", notices_sent=frozenset({"failing", "auto-disabled"}))
    saved = store.save_hunt(record)
    loaded = store.hunt("h-1")
    assert loaded == replace(record, last_error="see https://hooks.example/…")
    assert loaded is not None
    assert loaded.etag == saved.etag is not None
    assert store.hunts() == {"h-1": loaded}


def test_stale_etag_loses_and_modify_reapplies(store: HealthStore) -> None:
    first = store.save_hunt(HuntHealth(hunt_id="h-2"))
    store.save_hunt(replace(first, consecutive_failures=1))
    with pytest.raises(ConflictError):
        store.save_hunt(replace(first, consecutive_failures=5))
    with pytest.raises(ConflictError):
        store.save_hunt(HuntHealth(hunt_id="h-2"))  # insert of an existing record
    tally = store.modify(store.heartbeat, lambda t: replace(t or HeartbeatTally(),
                                                            runs=(t.runs if t else 0) + 1),
                         store.save_heartbeat)
    tally = store.modify(store.heartbeat, lambda t: replace(t or HeartbeatTally(),
                                                            runs=(t.runs if t else 0) + 1),
                         store.save_heartbeat)
    assert tally.runs == 2
    stored = store.heartbeat()
    assert stored is not None
    assert stored.runs == 2


HOSTILE = "<at>SOC</at> [click](https://evil.example/x) **bold** javascript:alert(1)"


@pytest.mark.parametrize("kind", ["failing", "auto-disabled", "recovered", "re-enabled",
                                  "incomplete", "access"])
def test_each_notice_is_a_short_escaped_card(kind: str) -> None:
    notice = Notice(kind=kind, hunt_id="h-3", hunt_name=HOSTILE, at=T0,  # type: ignore[arg-type]
                    since=T0, failures=3, error=HOSTILE, advice="Fix it.", source="defender")
    payload = rendered(health_notice(notice))
    card = payload["attachments"][0]["content"]
    assert card["version"] == "1.4"
    assert not any(block.get("type") == "TextBlock" for block in elements(card))  # no Markdown
    assert health_kind(payload) == kind
    text = json.dumps(payload)
    assert "https://evil" not in text
    assert "<at>" not in text
    assert "](" not in text
    assert "javascript:" not in text
    assert len(text) < 3000


def test_heartbeat_card_counts() -> None:
    tally = HeartbeatTally(since=T0, runs=24, hunt_runs={"a": 24, "b": 12}, failures=2,
                           findings=5, incidents=3, suppressed=40)
    payload = rendered(heartbeat_notice(tally, T0.replace(hour=8)))
    text = " ".join(texts(payload))
    assert health_kind(payload) == "heartbeat"
    assert "24 run(s), 2 hunt(s) ran 36 time(s), 2 failure(s)" in text
    assert "5 new finding(s) in 3 incident(s); 40 row(s) suppressed" in text
    assert "huntwire status" not in text  # its readers cannot run the CLI


def test_heartbeat_card_says_what_is_healthy() -> None:
    from shared.health.model import HuntHealth, NotifierHealth

    tally = HeartbeatTally(since=T0, runs=24, hunt_runs={"a": 24, "b": 24},
                           hunt_rows={"a": 7, "b": 3}, hunt_suppressed={"a": 7, "b": 1})
    hunts = {"a": HuntHealth("a", "Alpha"), "b": HuntHealth("b", "Beta", consecutive_failures=2),
             "c": HuntHealth("c", "Gamma", disabled=True)}
    channel = NotifierHealth(state="failing", since=T0, pending=4, last_error="HTTP 404")
    payload = rendered(heartbeat_notice(tally, T0.replace(hour=8), hunts, channel))
    text = " ".join(texts(payload))
    assert "1 ok, 1 failing, 1 disabled. Failing: Beta. Disabled: Gamma" in text
    assert "failing since 2026-01-05 01:00 UTC: 4 finding(s) waiting (HTTP 404)" in text
    assert "every row suppressed since 2026-01-05 01:00 UTC: Alpha (7 row(s))" in text
    assert "Beta (" not in text


def test_held_back_note_goes_under_the_digest_header() -> None:
    digest = {"type": "message", "attachments": [{"content": {"body": [
        {"type": "Container", "items": [{"type": "TextBlock", "text": "title"}]}]}}]}
    noted = with_held_back_note(digest, T0)
    items = noted["attachments"][0]["content"]["body"][0]["items"]
    assert items[0]["text"] == "title"
    assert items[1]["text"].startswith("Held back since 2026-01-05 01:00 UTC")
    assert len(digest["attachments"][0]["content"]["body"][0]["items"]) == 1  # not mutated
    assert health_kind(noted) is None


def rendered(notice: ChannelNotice) -> dict[str, Any]:
    """The payload the Teams notifier posts for *notice*."""
    return build_notice(notice.title, notice.summary, severity=notice.severity,
                        facts=notice.facts, link=notice.link, tag=notice.tag)
