"""The findings ledger on a real Azurite (started once per test session by conftest)."""

from __future__ import annotations

import json
import re
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from azure.core.pipeline import PipelineRequest, PipelineResponse
from azure.data.tables import TableServiceClient
from azure.identity import ManagedIdentityCredential

from devtools.azurite import Azurite
from devtools.identity import IdentityServer
from shared.app import load_valid_hunts
from shared.cli import main
from shared.errors import ConfigurationError
from shared.hunt import Hunt
from shared.ledger import (
    MAX_BATCH,
    NOTIFIED,
    PENDING,
    ROW_SUMMARY_MAX_BYTES,
    Checkpoint,
    Finding,
    Ledger,
    LedgerError,
    Operation,
    finding_key,
    identity_includes_time,
    summarize_row,
    transact,
)
from shared.manifest import default_manifest_path
from shared.settings import load_settings
from shared.storage import Storage, open_storage

NOW = datetime(2026, 11, 27, 2, 0, tzinfo=UTC)
DATED = re.compile(r"^\d{8}-[0-9a-f]{32}$")
UNDATED = re.compile(r"^u-[0-9a-f]{32}$")


def keys(findings: Sequence[Finding]) -> list[str]:
    return [finding.key for finding in findings]


def defender_hunt(**changes: Any) -> Hunt:
    fields: dict[str, Any] = {"id": str(uuid.uuid4()), "name": "encoded powershell",
                              "query": "DeviceProcessEvents", "source": "defender",
                              "path": Path("hunt.yaml"), "dedup_by": ("DeviceId", "ReportId"),
                              "dedup_explicit": True}
    return Hunt(**{**fields, **changes})


def sentinel_hunt(**changes: Any) -> Hunt:
    return defender_hunt(**{"source": "sentinel", "dedup_by": ("AccountName",), **changes})


def defender_rows(count: int, start: int = 0, now: datetime = NOW) -> list[dict[str, Any]]:
    """Rows whose event times spread over the 4 hours before *now* (two UTC days)."""
    return [{"Timestamp": now - timedelta(minutes=(number * 7) % 240),
             "DeviceId": f"device-{number % 13}", "ReportId": number,
             "ProcessCommandLine": f"powershell -enc {number:08d}"}
            for number in range(start, start + count)]


@dataclass
class Traffic:
    """What the SDK sent and received, seen through its documented ``raw_response_hook``."""

    requests: list[str] = field(default_factory=list)
    entities_read: int = 0

    def hook(self, response: PipelineResponse[Any, Any]) -> None:
        request = response.http_request
        self.requests.append(f"{request.method} {request.url}")
        if request.method == "GET" and response.http_response.status_code == 200:
            body = json.loads(response.http_response.text())
            self.entities_read += len(body.get("value", [body]))


def table_names() -> dict[str, str]:
    suffix = uuid.uuid4().hex[:12]
    return {"findings_table": f"findings{suffix}", "pending_table": f"pending{suffix}",
            "checkpoints_table": f"checkpoints{suffix}"}


@dataclass
class Interloper:
    """Another run acting just before our first transaction of *method* sub-requests is sent.

    Hooked in with the SDK's documented ``raw_request_hook``, so it strikes at the wire, between
    our read and our write, without touching our code.
    """

    methods: frozenset[str]
    action: Callable[[], Any]
    fired: bool = False

    def hook(self, request: PipelineRequest[Any]) -> None:
        info = getattr(request.http_request, "multipart_mixed_info", None)
        if self.fired or not info:
            return
        changeset = info[0][0]
        methods = {part.method for part in getattr(changeset, "multipart_mixed_info", [[]])[0]}
        if methods and methods <= self.methods:
            self.fired = True
            self.action()


@pytest.fixture
def tables() -> dict[str, str]:
    return table_names()


@pytest.fixture
def make_ledger(storage_connection_string: str,
                tables: dict[str, str]) -> Iterator[Callable[..., Ledger]]:
    """Ledgers on fresh tables; every ledger made in one test shares that test's tables."""
    services: list[Storage] = []

    def make(traffic: Traffic | None = None, interloper: Interloper | None = None,
             **options: Any) -> Ledger:
        hooks: dict[str, Any] = {}
        if traffic:
            hooks["raw_response_hook"] = traffic.hook
        if interloper:
            hooks["raw_request_hook"] = interloper.hook
        storage = Storage.from_connection_string(storage_connection_string, **hooks)
        services.append(storage)
        return Ledger(storage, **{**tables, **options})

    yield make
    for storage in services:
        storage.close()


@pytest.fixture
def ledger(make_ledger: Callable[..., Ledger]) -> Ledger:
    return make_ledger()


def stored(ledger: Ledger, hunt: Hunt) -> dict[str, dict[str, Any]]:
    """Every stored finding of *hunt*, from all findings tables."""
    return {entity["RowKey"]: dict(entity) for table in ledger.findings_clients()
            for entity in table.query_entities("PartitionKey eq @pk", parameters={"pk": hunt.id})}


# --- keys ---------------------------------------------------------------------------------------


def test_key_is_stable_across_value_types_and_starts_with_the_event_day() -> None:
    hunt = defender_hunt()
    row = {"Timestamp": datetime(2026, 11, 26, 23, 59, 59, 999999, tzinfo=UTC),
           "DeviceId": "d1", "ReportId": 7, "Other": "x"}
    same = {**row, "Timestamp": "2026-11-26T23:59:59.9999999Z", "Other": "changed"}
    key = finding_key(hunt, row)
    assert DATED.match(key)
    assert key.startswith("20261126-")
    assert finding_key(hunt, same) == key
    assert finding_key(hunt, {**row, "ReportId": 8}) != key
    # Defender's ReportId repeats per device: the same ReportId at another time is another event
    assert finding_key(hunt, {**row, "Timestamp": "2026-11-26T20:00:00Z"}) != key


def test_identity_without_time_uses_undated_keys() -> None:
    hunt = sentinel_hunt()
    first = {"TimeGenerated": "2026-11-26T10:00:00Z", "AccountName": "alice"}
    later = {"TimeGenerated": "2026-11-27T01:00:00Z", "AccountName": "alice"}
    assert not identity_includes_time(hunt)
    assert UNDATED.match(finding_key(hunt, first))
    assert finding_key(hunt, first) == finding_key(hunt, later)
    assert identity_includes_time(sentinel_hunt(dedup_by=()))
    assert identity_includes_time(sentinel_hunt(dedup_by=("AccountName", "TimeGenerated")))


def test_rows_without_a_time_column_fall_back_to_undated_keys() -> None:
    hunt = defender_hunt()
    assert UNDATED.match(finding_key(hunt, {"DeviceId": "d", "ReportId": 1}))
    assert UNDATED.match(finding_key(hunt, {"DeviceId": "d", "ReportId": 1,
                                            "Timestamp": "not a time"}))


def test_missing_dedup_column_is_an_error_naming_it() -> None:
    with pytest.raises(LedgerError, match="ReportId"):
        finding_key(defender_hunt(), {"DeviceId": "d", "Timestamp": NOW})


# --- record, pending, notify -----------------------------------------------------------------


def test_new_then_seen(ledger: Ledger) -> None:
    hunt = defender_hunt()
    rows = defender_rows(30)
    first = ledger.record(hunt, rows, NOW)
    assert len(first.new) == 30
    assert first.seen == 0
    assert first.reopened == 0
    assert len({f.key for f in first.new}) == 30
    assert first.new[0].row["ProcessCommandLine"] == "powershell -enc 00000000"
    assert first.new[0].event_time == NOW
    assert first.new[0].first_seen == NOW

    later = NOW + timedelta(hours=1)
    second = ledger.record(hunt, [*rows[:20], *defender_rows(5, start=30)], later)
    assert second.seen == 20
    assert [f.row["ReportId"] for f in second.new] == [30, 31, 32, 33, 34]
    entities = stored(ledger, hunt)
    assert entities[first.new[0].key]["TimesSeen"] == 2
    assert entities[first.new[0].key]["LastSeen"] == later
    assert entities[first.new[25].key]["TimesSeen"] == 1
    assert {e["State"] for e in entities.values()} == {PENDING}


def test_rows_with_the_same_key_count_once(ledger: Ledger) -> None:
    hunt = defender_hunt()
    row = defender_rows(1)[0]
    result = ledger.record(hunt, [row, dict(row), {**row, "ProcessCommandLine": "other"}], NOW)
    assert len(result.new) == 1
    assert result.seen == 0


def test_pending_findings_of_a_failed_post_are_listed_by_the_next_run(
        make_ledger: Callable[..., Ledger]) -> None:
    hunt = defender_hunt()
    first_run = make_ledger()
    claimed = first_run.record(hunt, defender_rows(12), NOW).new
    # the Teams post failed: nothing is marked notified; the process ends here

    next_run = make_ledger()
    later = NOW + timedelta(hours=1)
    again = next_run.record(hunt, defender_rows(12), later)
    assert again.new == []
    assert again.seen == 12
    pending = next_run.pending(hunt)
    assert {f.key for f in pending} == {f.key for f in claimed}
    assert all(f.times_seen == 2 for f in pending)

    next_run.mark_notified(hunt.id, keys(pending[:5]), later)
    assert {f.key for f in next_run.pending(hunt)} == {f.key for f in pending[5:]}
    next_run.mark_notified(hunt.id, keys(pending[5:]), later)
    assert next_run.pending(hunt) == []
    entities = stored(next_run, hunt)
    assert {e["State"] for e in entities.values()} == {NOTIFIED}
    assert all(e["NotifiedAt"] == later for e in entities.values())
    assert list(next_run.pending_client.list_entities()) == []  # markers are gone
    assert next_run.record(hunt, defender_rows(12), later).new == []


def test_pending_is_oldest_first(ledger: Ledger) -> None:
    hunt = defender_hunt()
    ledger.record(hunt, defender_rows(3, start=10), NOW + timedelta(hours=2))
    ledger.record(hunt, defender_rows(3, start=0), NOW)
    ledger.record(hunt, defender_rows(3, start=5), NOW + timedelta(hours=1))
    report_ids = [f.row["ReportId"] for f in ledger.pending(hunt)]
    assert [set(report_ids[i:i + 3]) for i in (0, 3, 6)] == [{0, 1, 2}, {5, 6, 7}, {10, 11, 12}]


def test_crash_after_marking_before_claiming_loses_nothing(ledger: Ledger) -> None:
    hunt = defender_hunt()
    rows = defender_rows(4)
    keys = [finding_key(hunt, row) for row in rows]
    ledger.markers.write(hunt.id, keys, NOW)  # the process died right after this write
    assert ledger.pending(hunt) == []  # nothing claimed yet, nothing to post
    result = ledger.record(hunt, rows, NOW + timedelta(hours=1))
    assert sorted(f.key for f in result.new) == sorted(keys)
    assert sorted(f.key for f in ledger.pending(hunt)) == sorted(keys)


def test_markers_of_claims_that_never_happened_are_dropped_after_two_days(
        make_ledger: Callable[..., Ledger]) -> None:
    hunt = defender_hunt()
    clock = [NOW]
    ledger = make_ledger(clock=lambda: clock[0])
    ledger.markers.write(hunt.id, [finding_key(hunt, defender_rows(1)[0])], NOW)
    ledger.pending(hunt)
    assert len(list(ledger.pending_client.list_entities())) == 1
    clock[0] = NOW + timedelta(days=3)
    ledger.pending(hunt)
    assert list(ledger.pending_client.list_entities()) == []


def test_mark_notified_takes_keys_and_touches_only_that_hunt(ledger: Ledger) -> None:
    hunt, other = defender_hunt(), defender_hunt()
    findings = ledger.record(other, defender_rows(2), NOW).new
    ledger.mark_notified(hunt.id, keys(findings), NOW)  # the other hunt's keys: no effect
    assert sorted(keys(ledger.pending(other))) == sorted(keys(findings))
    ledger.mark_notified(other.id, [*keys(findings), "20261127-" + "0" * 32], NOW)
    assert ledger.pending(other) == []  # a key no longer stored is skipped


def test_naive_now_is_refused(ledger: Ledger) -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        ledger.record(defender_hunt(), defender_rows(1), datetime(2026, 11, 27))


# --- overlapping runs ------------------------------------------------------------------------


def run_together(actions: Sequence[Callable[[], Any]]) -> list[Any]:
    """Run *actions* in threads released at the same moment; re-raise the first failure."""
    barrier = threading.Barrier(len(actions))
    results: list[Any] = [None] * len(actions)
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            barrier.wait()
            results[index] = actions[index]()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(actions))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return results


@pytest.mark.parametrize("round_number", range(2))
def test_overlapping_runs_claim_each_finding_exactly_once(
        make_ledger: Callable[..., Ledger], round_number: int) -> None:
    hunt = defender_hunt()
    timer, manual = make_ledger(), make_ledger()
    timer_rows, manual_rows = defender_rows(150), defender_rows(150, start=75)
    results = run_together([lambda: timer.record(hunt, timer_rows, NOW),
                            lambda: manual.record(hunt, manual_rows, NOW)])
    timer_keys = {f.key for f in results[0].new}
    manual_keys = {f.key for f in results[1].new}
    assert not timer_keys & manual_keys
    assert len(timer_keys | manual_keys) == 225
    assert results[0].seen + results[1].seen == 75
    entities = stored(timer, hunt)
    assert len(entities) == 225
    assert sum(e["TimesSeen"] for e in entities.values()) == 300
    assert len(timer.pending(hunt)) == 225


def test_a_claim_lost_to_another_run_counts_as_seen(make_ledger: Callable[..., Ledger]) -> None:
    hunt = defender_hunt()
    rows = defender_rows(5)
    other = make_ledger()
    interloper = Interloper(frozenset({"POST"}), lambda: other.record(hunt, [rows[2]], NOW))
    ours = make_ledger(interloper=interloper)
    result = ours.record(hunt, rows, NOW)
    assert interloper.fired
    assert sorted(f.row["ReportId"] for f in result.new) == [0, 1, 3, 4]
    assert result.seen == 1
    assert stored(ours, hunt)[finding_key(hunt, rows[2])]["TimesSeen"] == 2
    assert len(ours.pending(hunt)) == 5


def test_a_bump_racing_another_run_is_retried_not_lost(make_ledger: Callable[..., Ledger]) -> None:
    hunt = defender_hunt()
    rows = defender_rows(5)
    make_ledger().record(hunt, rows, NOW)
    other = make_ledger()
    interloper = Interloper(frozenset({"PATCH", "MERGE"}),
                            lambda: other.record(hunt, rows[:2], NOW + timedelta(minutes=30)))
    ours = make_ledger(interloper=interloper)
    result = ours.record(hunt, rows, NOW + timedelta(hours=1))
    assert interloper.fired
    assert (result.new, result.seen) == ([], 5)
    times_seen = {key: entity["TimesSeen"] for key, entity in stored(ours, hunt).items()}
    raced = {finding_key(hunt, row) for row in rows[:2]}
    assert {key: times_seen[key] for key in raced} == dict.fromkeys(raced, 3)
    assert [times_seen[key] for key in times_seen.keys() - raced] == [2, 2, 2]


def test_overlapping_posters_each_take_a_pending_finding_once(
        make_ledger: Callable[..., Ledger]) -> None:
    hunt = defender_hunt()
    first, second = make_ledger(), make_ledger()
    first.record(hunt, defender_rows(120), NOW)
    # the claiming run holds the findings for its claim lease (15 minutes)
    assert first.take_pending(hunt, NOW + timedelta(minutes=1)) == []
    later = NOW + timedelta(hours=1)
    taken = run_together([lambda: first.take_pending(hunt, later),
                          lambda: second.take_pending(hunt, later)])
    first_keys, second_keys = {f.key for f in taken[0]}, {f.key for f in taken[1]}
    assert not first_keys & second_keys
    assert len(first_keys | second_keys) == 120
    assert second.take_pending(hunt, later) == []  # leased to whoever took them
    assert len(second.take_pending(hunt, later + timedelta(minutes=16))) == 120


def test_a_run_is_never_handed_the_same_pending_finding_twice(
        make_ledger: Callable[..., Ledger]) -> None:
    hunt = defender_hunt()
    claimer, taker = make_ledger(), make_ledger()
    claimer.record(hunt, defender_rows(7), NOW)
    later = NOW + timedelta(hours=1)
    assert len(taker.take_pending(hunt, later)) == 7
    assert taker.take_pending(hunt, later) == []  # still leased to it, but already handed out


def test_a_released_lease_can_be_taken_at_once_by_another_run(
        make_ledger: Callable[..., Ledger]) -> None:
    hunt = defender_hunt()
    failed, next_run = make_ledger(), make_ledger()
    claimed = failed.record(hunt, defender_rows(12), NOW).new
    soon = NOW + timedelta(minutes=1)
    assert next_run.take_pending(hunt, soon) == []  # still leased to the claiming run
    assert failed.release(hunt.id, keys(claimed)) == 12  # its post failed: give them back
    assert {f.key for f in next_run.take_pending(hunt, soon)} == {f.key for f in claimed}
    assert failed.take_pending(hunt, soon) == []


def test_release_leaves_alone_a_lease_another_run_holds(
        make_ledger: Callable[..., Ledger]) -> None:
    hunt, other = defender_hunt(), defender_hunt()
    slow, taker, third = make_ledger(), make_ledger(), make_ledger()
    claimed = slow.record(hunt, defender_rows(5), NOW).new
    later = NOW + timedelta(minutes=16)  # the claim lease ran out before the slow run gave up
    assert len(taker.take_pending(hunt, later)) == 5
    assert slow.release(hunt.id, keys(claimed)) == 0
    assert third.take_pending(hunt, later + timedelta(minutes=1)) == []
    assert slow.release(other.id, keys(claimed)) == 0  # keys of another hunt: nothing


# --- realertAfter --------------------------------------------------------------------------


def test_realert_after_reopens_a_notified_finding_after_a_quiet_period(ledger: Ledger) -> None:
    hunt = sentinel_hunt(realert_after=timedelta(days=1))
    row = {"TimeGenerated": NOW, "AccountName": "alice", "Count": 3}
    first = ledger.record(hunt, [row], NOW).new
    ledger.mark_notified(hunt.id, keys(first), NOW)

    soon = ledger.record(hunt, [row], NOW + timedelta(hours=12))
    assert (soon.new, soon.seen, soon.reopened) == ([], 1, 0)  # seen again: quiet period restarts

    quiet_until = NOW + timedelta(hours=12) + timedelta(days=1)
    back = ledger.record(hunt, [{**row, "Count": 9}], quiet_until)
    assert back.reopened == 1
    assert back.seen == 0
    assert [f.key for f in back.new] == [first[0].key]
    assert back.new[0].row["Count"] == 9
    assert back.new[0].first_seen == NOW
    assert back.new[0].times_seen == 3
    assert [f.key for f in ledger.pending(hunt)] == [first[0].key]


def test_realert_never_reopens_a_pending_finding_or_a_hunt_without_it(ledger: Ledger) -> None:
    with_realert = sentinel_hunt(realert_after=timedelta(hours=1))
    without = sentinel_hunt()
    row = {"TimeGenerated": NOW, "AccountName": "bob"}
    ledger.record(with_realert, [row], NOW)  # stays pending (never notified)
    notified = ledger.record(without, [row], NOW).new
    ledger.mark_notified(without.id, keys(notified), NOW)
    much_later = NOW + timedelta(days=10)
    assert ledger.record(with_realert, [row], much_later).reopened == 0
    assert ledger.record(without, [row], much_later).reopened == 0


# --- size caps and hostile values ---------------------------------------------------------------


def test_summary_stays_within_its_budget_and_keeps_key_columns_first() -> None:
    row: dict[str, Any] = {f"Column{i:03d}": "x" * 1500 for i in range(100)}
    row.update(DeviceId="device-1", Blob={"nested": ["y" * 100_000]}, Huge="z" * 1_000_000)
    summary, truncated = summarize_row(row, first=("DeviceId",))
    text = json.dumps(summary, ensure_ascii=False, separators=(",", ":"))
    assert truncated
    assert len(text.encode()) <= ROW_SUMMARY_MAX_BYTES
    assert summary["DeviceId"] == "device-1"
    assert "Huge" not in summary or summary["Huge"].endswith("more characters]")
    small, cut = summarize_row({"A": 1, "B": None, "C": [1, {"d": True}]})
    assert small == {"A": 1, "B": None, "C": [1, {"d": True}]}
    assert not cut


def test_summary_budget_holds_for_multibyte_text() -> None:
    summary, _ = summarize_row({f"k{i}": "😀é" * 1000 for i in range(50)})
    text = json.dumps(summary, ensure_ascii=False, separators=(",", ":"))
    assert 0 < len(text.encode()) <= ROW_SUMMARY_MAX_BYTES


def test_oversized_rows_are_stored_capped(ledger: Ledger) -> None:
    hunt = defender_hunt()
    row = {**defender_rows(1)[0], "ProcessCommandLine": "A" * 2_000_000,
           "AdditionalFields": {"deep": ["b" * 70_000] * 20}, "NaN": float("nan"),
           **{f"Extra{i}": "c" * 3000 for i in range(400)}}
    result = ledger.record(hunt, [row], NOW)
    entity = stored(ledger, hunt)[result.new[0].key]
    assert len(entity["Row"].encode("utf-16-le")) <= 64 * 1024
    assert entity["RowTruncated"] is True
    assert json.loads(entity["Row"]) == result.new[0].row
    pending = ledger.pending(hunt)[0]
    assert pending.row["DeviceId"] == row["DeviceId"]
    assert pending.row["ReportId"] == 0
    assert pending.row["ProcessCommandLine"].startswith("AAAA")
    assert pending.row["ProcessCommandLine"].endswith("more characters]")


HOSTILE = ["a/b", "a\\b", "#frag", "what?", "tab\there", "nul\x00byte", "\x7f\x9f", "it's",
           "' or RowKey ne '", "%2F%00", "😀 emoji", "lone \ud800 surrogate", "", " ",
           "x" * 20_000, "line\nbreak", "日本語", "<xml>&amp;</xml>", "$filter=", "@pk"]


@pytest.mark.parametrize("hunt_factory", [defender_hunt, sentinel_hunt],
                         ids=["dated-keys", "undated-keys"])
def test_hostile_characters_in_key_columns(ledger: Ledger,
                                           hunt_factory: Callable[..., Hunt]) -> None:
    hunt = hunt_factory()
    rows = [{"Timestamp": NOW, "TimeGenerated": NOW, "DeviceId": value, "ReportId": 1,
             "AccountName": value} for value in HOSTILE]
    rows.append({"Timestamp": NOW, "TimeGenerated": NOW, "DeviceId": None, "ReportId": None,
                 "AccountName": None})
    first = ledger.record(hunt, rows, NOW)
    assert len(first.new) == len(rows)
    assert all(DATED.match(f.key) or UNDATED.match(f.key) for f in first.new)
    again = ledger.record(hunt, rows, NOW + timedelta(hours=1))
    assert again.new == []
    assert again.seen == len(rows)
    listed = {f.row.get("AccountName") for f in ledger.pending(hunt)}
    assert "it's" in listed
    assert "' or RowKey ne '" in listed
    assert None in listed


# --- batches ------------------------------------------------------------------------------


def test_250_findings_in_several_partitions_and_days(ledger: Ledger) -> None:
    hunts = [defender_hunt() for _ in range(3)]
    for hunt in hunts:
        result = ledger.record(hunt, defender_rows(250), NOW)
        assert len(result.new) == 250
    for hunt in hunts:
        entities = stored(ledger, hunt)
        assert len(entities) == 250
        assert {key[:8] for key in entities} == {"20261126", "20261127"}
    again = ledger.record(hunts[0], defender_rows(260), NOW + timedelta(hours=1))
    assert again.seen == 250
    assert len(again.new) == 10
    ledger.mark_notified(hunts[0].id, keys(ledger.pending(hunts[0])), NOW + timedelta(hours=1))
    assert ledger.pending(hunts[0]) == []
    assert len(ledger.pending(hunts[1])) == 250


def test_transactions_are_limited_to_100_operations_in_one_partition(ledger: Ledger) -> None:
    table = ledger.findings_client
    too_many: list[Operation] = [("create", {"PartitionKey": "p", "RowKey": f"r{i}"}, {})
                for i in range(MAX_BATCH + 1)]
    with pytest.raises(LedgerError, match="at most 100"):
        transact(table, too_many)
    two_partitions: list[Operation] = [("create", {"PartitionKey": p, "RowKey": "r"}, {})
                                       for p in ("p1", "p2")]
    with pytest.raises(LedgerError, match="one partition"):
        transact(table, two_partitions)
    transact(table, too_many[:MAX_BATCH])
    assert len(list(table.query_entities("PartitionKey eq 'p'"))) == MAX_BATCH


def test_transactions_stay_below_the_4_mib_body_limit(ledger: Ledger) -> None:
    hunt = defender_hunt()
    rows = [{**row, **{f"Text{i}": "😀" * 2048 for i in range(4)}} for row in defender_rows(150)]
    result = ledger.record(hunt, rows, NOW)  # ~50 KB of escaped JSON per entity
    assert len(result.new) == 150
    assert ledger.record(hunt, rows, NOW + timedelta(hours=1)).seen == 150
    heavy: list[Operation] = [
        ("create", {"PartitionKey": "p", "RowKey": f"r{i}", "Row": "😀" * 10_000}, {})
        for i in range(40)]
    with pytest.raises(LedgerError, match="bytes"):
        transact(ledger.findings_client, heavy)


# --- cost ------------------------------------------------------------------------------------


def test_a_run_reads_only_the_days_of_its_rows(make_ledger: Callable[..., Ledger]) -> None:
    hunt = defender_hunt()
    setup = make_ledger(point_lookup_limit=0)
    for day in range(2, 6):
        setup.record(hunt, defender_rows(150, start=day * 1000, now=NOW - timedelta(days=day)),
                     NOW - timedelta(days=day))
    setup.record(hunt, defender_rows(20), NOW - timedelta(hours=1))
    traffic = Traffic()
    measured = make_ledger(traffic, point_lookup_limit=0)  # force the range reads
    result = measured.record(hunt, defender_rows(40), NOW)
    assert (len(result.new), result.seen) == (20, 20)
    reads = [r for r in traffic.requests if r.startswith("GET")]
    assert len(reads) == 2  # one range query per event day
    assert traffic.entities_read == 20  # none of the 600 older findings


def test_point_lookups_read_only_the_wanted_keys(make_ledger: Callable[..., Ledger]) -> None:
    hunt = sentinel_hunt()
    setup = make_ledger()
    setup.record(hunt, [{"TimeGenerated": NOW, "AccountName": f"user{i}"} for i in range(200)],
                 NOW)
    traffic = Traffic()
    measured = make_ledger(traffic)
    rows = [{"TimeGenerated": NOW, "AccountName": f"user{i}"} for i in range(190, 220)]
    result = measured.record(hunt, rows, NOW + timedelta(hours=1))
    assert (len(result.new), result.seen) == (20, 10)
    assert traffic.entities_read == 10
    assert len([r for r in traffic.requests if r.startswith("GET")]) == 3  # 30 keys, 14 a query


# --- checkpoints and settings ------------------------------------------------------------------


def test_checkpoint_round_trip(ledger: Ledger) -> None:
    hunt_id = str(uuid.uuid4())
    assert ledger.checkpoint(hunt_id) is None
    saved = Checkpoint(hunt_id, last_success_end=NOW, last_run_start=NOW - timedelta(minutes=1),
                       last_error=None, rows=12, new=3, posted=2)
    ledger.save_checkpoint(saved)
    assert ledger.checkpoint(hunt_id) == saved
    failed = Checkpoint(hunt_id, last_run_start=NOW,
                        last_error="Teams refused https://prod.westeurope.logic.azure.com/work"
                                   "flows/abc/triggers/manual/run?sig=SECRET123 " + "e" * 5000)
    ledger.save_checkpoint(failed)
    loaded = ledger.checkpoint(hunt_id)
    assert loaded is not None
    assert loaded.last_success_end is None
    assert loaded.rows == 0
    assert loaded.last_error is not None
    assert "SECRET123" not in loaded.last_error
    assert "https://prod.westeurope.logic.azure.com/" in loaded.last_error
    assert len(loaded.last_error) <= 2000


def test_tables_are_created_on_first_use_from_settings(storage_connection_string: str) -> None:
    names = table_names()
    settings = load_settings({"HUNTWIRE_STORAGE": storage_connection_string})
    ledger = Ledger(open_storage(settings), **names)
    service = TableServiceClient.from_connection_string(storage_connection_string)
    existing = {t.name for t in service.list_tables()}
    assert names["findings_table"] not in existing
    ledger.record(defender_hunt(), defender_rows(1), NOW)
    ledger.save_checkpoint(Checkpoint(str(uuid.uuid4())))
    existing = {t.name for t in service.list_tables()}
    assert {names["findings_table"] + "20261127", names["pending_table"],
            names["checkpoints_table"]} <= existing


def test_findings_live_in_one_table_per_event_day(ledger: Ledger) -> None:
    hunt, undated = defender_hunt(), sentinel_hunt()
    ledger.record(hunt, defender_rows(40), NOW)  # events on 26 and 27 November
    ledger.record(undated, [{"TimeGenerated": NOW, "AccountName": "carol"}], NOW)
    tables = {table.table_name: table for table in ledger.findings_clients()}
    base = ledger.findings_client.table_name
    assert sorted(tables) == [base, base + "20261126", base + "20261127"]
    for day in ("20261126", "20261127"):
        keys = [e["RowKey"] for e in tables[base + day].query_entities(
            "PartitionKey eq @pk", parameters={"pk": hunt.id})]
        assert keys
        assert all(key.startswith(day + "-") for key in keys)
    assert [e["RowKey"][:2] for e in tables[base].list_entities()] == ["u-"]


def test_settings_errors_never_echo_the_connection_string() -> None:
    with pytest.raises(ConfigurationError, match="no storage configured"):
        open_storage(load_settings({}, require_storage=False))
    secret = "AccountName=x;AccountKey=SECRETKEY;Nonsense"
    with pytest.raises(ConfigurationError) as caught:
        Storage.from_connection_string(secret)
    assert "SECRETKEY" not in str(caught.value)


def test_storage_failures_become_ledger_errors_without_the_key() -> None:
    unreachable = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
                   "AccountKey=U0VDUkVUS0VZ;TableEndpoint=http://127.0.0.1:9/devstoreaccount1;")
    storage = Storage.from_connection_string(unreachable, retry_total=0, connection_timeout=2)
    ledger = Ledger(storage)
    with pytest.raises(LedgerError, match="creating table huntwireFindings") as caught:
        ledger.record(defender_hunt(), defender_rows(1), NOW)
    assert "U0VDUkVUS0VZ" not in str(caught.value)
    assert caught.value.reason == "unreachable"


def test_finding_is_a_plain_frozen_record(ledger: Ledger) -> None:
    finding = ledger.record(defender_hunt(), defender_rows(1), NOW).new[0]
    assert isinstance(finding, Finding)
    with pytest.raises(AttributeError):
        finding.key = "other"  # type: ignore[misc]


# --- managed identity (HUNTWIRE_STORAGE__tableServiceUri) ---------------------------------------


@pytest.fixture(scope="module")
def https_azurite() -> Iterator[Azurite]:
    """Azurite's Table service over HTTPS with bearer-token checks (``--oauth basic``)."""
    with Azurite(https=True) as server:
        yield server


@pytest.fixture
def identity(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], IdentityServer]]:
    """Start the managed-identity endpoint; its tokens name the given audience."""
    servers: list[IdentityServer] = []

    def start(audience: str) -> IdentityServer:
        server = IdentityServer(audience=audience).start()
        servers.append(server)
        for name, value in server.env.items():
            monkeypatch.setenv(name, value)
        return server

    yield start
    for server in servers:
        server.stop()


def test_managed_identity_ledger_over_https(https_azurite: Azurite,
                                            identity: Callable[[str], IdentityServer]) -> None:
    endpoint = identity("https://storage.azure.com")
    credential = ManagedIdentityCredential()
    settings = load_settings({"HUNTWIRE_STORAGE__tableServiceUri": https_azurite.table_endpoint})
    storage = open_storage(settings, credential, connection_verify=str(https_azurite.certificate))
    assert storage.credential is credential  # the run's one credential, not a new one
    ledger = Ledger(storage, **table_names())
    hunt = defender_hunt()
    assert len(ledger.record(hunt, defender_rows(3), NOW).new) == 3
    assert len(ledger.pending(hunt)) == 3
    assert endpoint.requests
    assert endpoint.requests[0].query["resource"] == "https://storage.azure.com"
    assert endpoint.requests[0].headers["x-identity-header"] == endpoint.identity_header


def test_a_token_for_another_audience_is_refused(https_azurite: Azurite,
                                                 identity: Callable[[str], IdentityServer]
                                                 ) -> None:
    identity("https://vault.azure.net")
    storage = Storage.from_endpoint(https_azurite.table_endpoint, ManagedIdentityCredential(),
                                    connection_verify=str(https_azurite.certificate),
                                    retry_total=0)
    ledger = Ledger(storage, **table_names())
    with pytest.raises(LedgerError, match="HTTP 403") as caught:
        ledger.record(defender_hunt(), defender_rows(1), NOW)
    assert "eyJ" not in str(caught.value)  # no token in the message
    assert (caught.value.reason, caught.value.status) == ("forbidden", 403)


# --- identity settled at load --------------------------------------------------------------------


@pytest.mark.skipif(shutil.which("node") is None, reason="validate runs Kusto.Language in node")
def test_the_identity_is_settled_when_hunts_load_and_keys_never_read_the_manifest(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    hunts_dir = tmp_path / "hunts"
    hunts_dir.mkdir()
    (hunts_dir / "logons.yaml").write_text(
        "id: 00000000-0000-0000-0000-00000000a11d\nname: failed logons\nsource: sentinel\n"
        "query: |\n  SecurityEvent\n  | where EventID == 4625\n"
        "  | summarize Attempts = count(), Last = max(TimeGenerated) by Account, Computer\n")
    manifest = default_manifest_path(hunts_dir)
    assert main(["validate", "--hunts", str(hunts_dir), "--suppressions", str(tmp_path),
                 "--manifest", str(manifest)]) == 0
    capsys.readouterr()
    (hunt,) = load_valid_hunts(hunts_dir)
    assert hunt.identity == ("Account", "Computer")  # what validate found, on the Hunt
    row = {"Account": "alice", "Computer": "ws-1", "Attempts": 3,
           "Last": "2026-11-27T01:00:00Z", "ExtraColumn": "x"}
    key = finding_key(hunt, row)
    manifest.unlink()  # keys come from the loaded hunt, never from the file
    assert finding_key(hunt, {**row, "Attempts": 9, "ExtraColumn": "y"}) == key
