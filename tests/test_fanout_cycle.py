"""The fan-in counter on Azurite tables, the queue messages and the fan-out settings."""

from __future__ import annotations

import shutil
import uuid
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from azure.core.credentials import TokenCredential

from shared.errors import ConfigurationError
from shared.fanout import (
    CycleStore,
    DeliveryMessage,
    HuntMessage,
    MessageError,
    decode,
    encode,
    queue_mode,
)
from shared.settings import Settings
from shared.storage import Storage
from shared.storage.queues import QUEUE_URI, open_queues

NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def storage(storage_connection_string: str) -> Storage:
    prefix = "t" + uuid.uuid4().hex[:10]  # a fresh counter table per test
    return Storage.from_connection_string(storage_connection_string).for_tenant(prefix)


def hunt_ids(count: int) -> list[str]:
    return [str(uuid.UUID(int=n + 1)) for n in range(count)]


def test_each_hunt_counts_once_however_often_its_message_comes(storage: Storage) -> None:
    store = CycleStore(storage)
    hunts = hunt_ids(3)
    opened = store.open("default", "c1", NOW, NOW + timedelta(minutes=20), hunts)
    again = store.open("default", "c1", NOW + timedelta(seconds=5), NOW, hunts[:1])  # retried
    assert again.hunts == opened.hunts == tuple(hunts)
    assert again.now == NOW
    for _ in range(3):
        cycle = store.mark_done("default", "c1", hunts[0])
    assert cycle is not None
    assert cycle.done_ids == [hunts[0]]
    assert cycle.missing == hunts[1:]
    assert store.mark_done("default", "c1", "not-a-hunt-of-this-cycle") is not None
    assert store.mark_done("default", "no-such-cycle", hunts[0]) is None
    store.mark_done("default", "c1", hunts[1], failed=True)
    done = store.mark_done("default", "c1", hunts[2])
    assert done is not None
    assert done.complete
    assert done.failed == 0b010


def test_concurrent_workers_are_all_counted(storage: Storage) -> None:
    """Every worker of a cycle may finish at once: ETag conflicts are retried, none is lost."""
    store = CycleStore(storage, sleep=lambda _: None)
    hunts = hunt_ids(24)
    store.open("default", "c2", NOW, NOW + timedelta(minutes=20), hunts)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda h: store.mark_done("default", "c2", h), hunts + hunts[:8]))
    cycle = store.get("default", "c2")
    assert cycle is not None
    assert cycle.complete
    assert sorted(cycle.done_ids) == sorted(hunts)


def test_a_thousand_hunts_fit_one_counter(storage: Storage) -> None:
    store = CycleStore(storage)
    hunts = hunt_ids(1000)  # 37,000 characters of ids: several properties
    store.open("default", "c3", NOW, NOW + timedelta(minutes=20), hunts)
    store.mark_done("default", "c3", hunts[999])
    cycle = store.get("default", "c3")
    assert cycle is not None
    assert cycle.hunts == tuple(hunts)
    assert cycle.done_ids == [hunts[999]]


def test_one_delivery_per_cycle_and_a_crashed_one_is_taken_over(storage: Storage) -> None:
    clock = Clock(NOW + timedelta(minutes=1))
    store = CycleStore(storage, clock=clock)
    hunts = hunt_ids(2)
    store.open("default", "c4", NOW, NOW + timedelta(minutes=20), hunts)
    lease = timedelta(minutes=10)
    assert store.claim_delivery("default", "c4", lease, "a")[0] == "not-due"
    store.mark_done("default", "c4", hunts[0])
    clock.now = NOW + timedelta(minutes=21)  # the deadline passed: deliver what is there
    claim, cycle = store.claim_delivery("default", "c4", lease, "a")
    assert claim == "claimed"
    assert cycle is not None
    assert cycle.missing == [hunts[1]]
    claim, cycle = store.claim_delivery("default", "c4", lease, "b")
    assert claim == "held"
    assert cycle is not None
    assert cycle.delivery_until == clock.now + lease
    clock.now += lease + timedelta(seconds=1)  # "a" crashed: its lease ran out
    assert store.claim_delivery("default", "c4", lease, "b")[0] == "claimed"
    assert store.delivered("default", "c4", "a") is not None  # not a's any more: no effect
    stored = store.get("default", "c4")
    assert stored is not None
    assert stored.delivered_at is None
    store.delivered("default", "c4", "b")
    assert store.claim_delivery("default", "c4", lease, "c")[0] == "delivered"


def test_a_poison_notice_is_recorded_once_per_hunt_and_per_delivery(storage: Storage) -> None:
    store = CycleStore(storage)
    hunts = hunt_ids(3)
    store.open("default", "c5", NOW, NOW + timedelta(minutes=20), hunts)
    assert not store.announced("default", "c5", hunts[1])
    assert store.mark_announced("default", "c5", hunts[1]) is not None
    assert store.announced("default", "c5", hunts[1])
    assert not store.announced("default", "c5", hunts[0])
    assert not store.announced("default", "c5", None)  # the delivery's: not yet
    before = store.get("default", "c5")
    assert store.mark_announced("default", "c5", hunts[1]) is not None
    after = store.get("default", "c5")
    assert before is not None
    assert after is not None
    assert after.etag == before.etag  # already recorded: nothing written
    store.mark_announced("default", "c5", None)
    stored = store.get("default", "c5")
    assert stored is not None
    assert stored.delivery_announced
    assert stored.announced == 0b10
    assert stored.done == 0  # announcing counts nothing done
    assert not store.announced("default", "c5", "not-a-hunt-of-this-cycle")
    assert not store.announced("default", "no-such-cycle", hunts[0])
    assert store.mark_announced("default", "no-such-cycle", hunts[0]) is None


def test_messages_round_trip() -> None:
    hunt = HuntMessage("default", "20261206T1000", "h1", NOW.isoformat())
    delivery = DeliveryMessage("default", "20261206T1000", "deadline")
    assert decode(encode(hunt)) == hunt
    assert decode(encode(delivery).encode()) == delivery
    assert decode(encode(hunt)).started == NOW  # type: ignore[union-attr]


@pytest.mark.parametrize(("body", "says"), [
    ("not json", "not JSON"),
    ('{"v": 2, "kind": "hunt"}', "not a huntwire v1 message"),
    ('[1, 2]', "not a huntwire v1 message"),
    ('{"v": 1, "kind": "nope"}', "unknown kind"),
    ('{"v": 1, "kind": "hunt", "tenant": "t", "cycle": "c"}', "do not match"),
    ('{"v": 1, "kind": "hunt", "tenant": "t", "cycle": "c", "hunt": "h", "now": "soon"}',
     "not an ISO 8601 time"),
    ('{"v": 1, "kind": "deliver", "tenant": "t", "cycle": "c", "reason": "why"}',
     "unknown reason"),
    ('{"v": 1, "kind": "deliver", "tenant": 5, "cycle": "c"}', "non-empty string"),
])
def test_bad_messages_say_what_is_wrong(body: str, says: str) -> None:
    with pytest.raises(MessageError, match=says):
        decode(body)


def test_fanout_mode_setting() -> None:
    assert queue_mode({}) is False
    assert queue_mode({"HUNTWIRE_FANOUT": "in-process"}) is False
    assert queue_mode({"HUNTWIRE_FANOUT": " Queue "}) is True
    with pytest.raises(ConfigurationError, match="HUNTWIRE_FANOUT='sqs': use 'queue'"):
        queue_mode({"HUNTWIRE_FANOUT": "sqs"})


def test_queue_settings(credential: TokenCredential) -> None:
    with pytest.raises(ConfigurationError, match=f"HUNTWIRE_STORAGE or {QUEUE_URI}"):
        open_queues(Settings(), {})
    queues = open_queues(Settings(), {QUEUE_URI: "https://account.queue.core.windows.net"},
                         credential=credential)
    assert queues.service.url.startswith("https://account.queue.core.windows.net")


def test_workers_parse_hunt_files_again_only_when_one_changed(tmp_path: Path,
                                                               repo: Path) -> None:
    from shared.fanout.hunt_cache import cached_hunts

    hunts = tmp_path / "hunts"
    hunts.mkdir()
    shutil.copy(repo / "hunts" / "microsoft-powershell-tcpclient.yaml", hunts)
    first = cached_hunts(hunts)
    assert [h.name for h in first] == ["PowerShell TCPClient reverse shell (Microsoft original)"]
    assert cached_hunts(hunts)[0] is first[0]  # not parsed again
    shutil.copy(repo / "hunts" / "powershell-socket-reverse-shell.yaml", hunts)
    assert len(cached_hunts(hunts)) == 2
