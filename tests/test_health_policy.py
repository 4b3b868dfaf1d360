"""Hunt health rules (pure): each notice, once; auto-disable and re-enable; heartbeat timing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from shared.health.heartbeat import HuntRun, after_heartbeat, heartbeat_due, tally_run
from shared.health.model import HuntHealth
from shared.health.policy import (
    Limits,
    RunFacts,
    after_run,
    error_kind,
    notifier_after_run,
    reenable,
    should_skip,
    source_after_run,
)

T0 = datetime(2026, 1, 5, 1, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def facts(n: int, status: str = "ok", *, permanent: bool = False, status_code: int | None = None,
          kind: str | None = None, file_hash: str = "h1", **kw: object) -> RunFacts:
    error = "Graph runHuntingQuery refused the query: bad column" if status == "failed" else None
    return RunFacts(hunt_id="hunt-1", name="Hunt <one>", source="defender", file="one.yaml",
                    file_hash=file_hash, now=T0 + n * HOUR, status=status, error=error,
                    error_permanent=permanent, error_kind=kind, error_status=status_code,
                    **kw)  # type: ignore[arg-type]


def run_many(record: HuntHealth | None, runs: list[RunFacts],
             limits: Limits | None = None) -> tuple[HuntHealth, list[list[str]]]:
    kinds: list[list[str]] = []
    for run in runs:
        if record is not None and should_skip(record, run.file_hash):
            kinds.append(["skipped"])
            continue
        if record is not None and record.disabled:
            record = reenable(record)
        record, notices = after_run(record, run, limits or Limits())
        kinds.append([n.kind for n in notices])
    assert record is not None
    return record, kinds


def test_transient_failures_announce_failing_once_at_the_third_then_recovery_once() -> None:
    runs = [facts(i, "failed", status_code=503) for i in range(6)] + [facts(6), facts(7)]
    record, kinds = run_many(None, runs)
    assert kinds == [[], [], ["failing"], [], [], [], ["recovered"], []]
    assert record.consecutive_failures == 0
    assert record.last_success == T0 + 7 * HOUR
    assert not record.disabled  # transient errors never disable


def test_failing_notice_says_since_when_the_error_and_what_to_do() -> None:
    record, _ = run_many(None, [facts(0, "failed", status_code=429),
                                facts(1, "failed", status_code=429)])
    _, (notice,) = after_run(record, facts(2, "failed", status_code=429))
    assert notice.since == T0
    assert notice.failures == 3
    assert notice.error is not None
    assert "refused" in notice.error
    assert "throttling" in notice.advice


def test_short_failure_streak_recovers_silently() -> None:
    _, kinds = run_many(None, [facts(0, "failed", status_code=500), facts(1)])
    assert kinds == [[], []]


def test_permanent_failure_auto_disables_with_one_notice_until_the_file_changes() -> None:
    runs = [facts(i, "failed", permanent=True, status_code=400) for i in range(5)]
    record, kinds = run_many(None, runs)
    assert kinds == [[], [], ["auto-disabled"], ["skipped"], ["skipped"]]
    assert record.disabled
    assert record.disabled_since == T0 + 2 * HOUR
    assert record.consecutive_failures == 3
    assert record.last_error_kind == "bad-query"
    # The file changes: it runs again, and its next success says it was re-enabled.
    record, kinds = run_many(record, [facts(5, file_hash="h2"), facts(6, file_hash="h2")])
    assert kinds == [["re-enabled"], []]
    assert not record.disabled
    assert record.consecutive_failures == 0


def test_reenabled_hunt_that_still_fails_is_disabled_and_announced_again() -> None:
    record, _ = run_many(None, [facts(i, "failed", permanent=True) for i in range(3)])
    later = [facts(3 + i, "failed", permanent=True, file_hash="h2") for i in range(4)]
    record, kinds = run_many(record, later)
    assert kinds == [[], [], ["auto-disabled"], ["skipped"]]
    assert record.disabled_hash == "h2"


def test_failing_and_disable_thresholds_apart_give_two_notices() -> None:
    runs = [facts(i, "failed", permanent=True) for i in range(5)]
    _, kinds = run_many(None, runs, Limits(failing_after=2, disable_after=4))
    assert kinds == [[], ["failing"], [], ["auto-disabled"], ["skipped"]]


def test_missing_permission_never_disables_and_is_announced_once_per_source() -> None:
    record = None
    source = None
    notices = []
    for i in range(5):
        run = facts(i, "failed", permanent=True, status_code=403)
        record, hunt_notices = after_run(record, run)
        assert hunt_notices == []
        source, notice = source_after_run(source, run)
        notices += [notice] if notice else []
    assert record is not None
    assert not record.disabled
    (notice,) = notices
    assert notice.kind == "access"
    assert "ThreatHunting.Read.All" in notice.advice
    sentinel = replace(facts(9, "failed", status_code=403), source="sentinel")
    _, sentinel_notice = source_after_run(None, sentinel)
    assert sentinel_notice is not None
    assert "Log Analytics Reader" in sentinel_notice.advice
    # Access comes back: cleared, so a later loss is a new problem.
    source, _ = source_after_run(source, facts(10))
    _, again = source_after_run(source, facts(11, "failed", status_code=403))
    assert again is not None


def test_source_kind_code_wins_over_status() -> None:
    assert error_kind("forbidden", None, True, "x") == "forbidden"
    assert error_kind(None, 403, True, "x") == "forbidden"
    assert error_kind(None, 400, True, "x") == "bad-query"
    assert error_kind(None, None, False, "read timed out") == "timeout"
    assert error_kind(None, 503, False, "x") == "unavailable"


def test_truncated_result_is_announced_once_until_a_complete_run() -> None:
    runs = [facts(0, rows=100_000, truncated=True), facts(1, rows=100_000, truncated=True),
            facts(2, rows=5), facts(3, partial=True, partial_error="partial result: x")]
    record, kinds = run_many(None, runs)
    assert kinds == [["incomplete"], [], [], ["incomplete"]]
    assert record.partial


def test_not_due_and_disabled_outcomes_change_nothing() -> None:
    record, _ = run_many(None, [facts(0, "failed", status_code=500)])
    same, notices = after_run(record, facts(1, "not-due"))
    assert same == record
    assert notices == []


def test_heartbeat_once_a_day_from_the_configured_hour() -> None:
    tally = tally_run(None, [HuntRun("a", "ok", new=2), HuntRun("b", "failed")], T0)
    tally = tally_run(tally, [HuntRun("a", "ok", suppressed=3),
                              HuntRun("b", "not-due")], T0 + HOUR, incidents=1)
    assert (tally.runs, tally.hunt_runs, tally.failures) == (2, {"a": 2, "b": 1}, 1)
    assert (tally.findings, tally.incidents, tally.suppressed) == (2, 1, 3)
    assert not heartbeat_due(tally, T0.replace(hour=7), 8)
    eight = T0.replace(hour=8)
    assert heartbeat_due(tally, eight, 8)
    sent = after_heartbeat(tally, eight)
    assert sent.runs == 0
    assert sent.since == eight
    assert not heartbeat_due(sent, eight + HOUR, 8)
    assert heartbeat_due(sent, eight + 24 * HOUR, 8)
    assert heartbeat_due(tally, T0.replace(hour=11), 8)  # the 08:00 run was missed
    assert not heartbeat_due(tally, eight, None)


def test_notifier_state_follows_deliveries() -> None:
    failing = notifier_after_run(None, configured=True, delivered=0, failed=["HTTP 503"],
                                 pending=4, held_back_since=T0, now=T0)
    assert (failing.state, failing.since, failing.pending) == ("failing", T0, 4)
    still = notifier_after_run(failing, configured=True, delivered=0, failed=["HTTP 503"],
                               pending=4, held_back_since=T0, now=T0 + HOUR)
    assert still.since == T0
    ok = notifier_after_run(still, configured=True, delivered=2, failed=[], pending=0,
                            held_back_since=None, now=T0 + 2 * HOUR)
    assert (ok.state, ok.since, ok.last_ok, ok.pending) == ("ok", T0 + 2 * HOUR, T0 + 2 * HOUR, 0)
    assert notifier_after_run(None, configured=False, delivered=0, failed=[], pending=1,
                              held_back_since=None, now=T0).state == "unconfigured"


def test_the_tally_finds_a_hunt_whose_every_row_was_suppressed() -> None:
    tally = tally_run(None, [HuntRun("a", "ok", suppressed=5, rows=5),
                             HuntRun("b", "ok", suppressed=1, rows=4),
                             HuntRun("c", "ok")], T0)
    tally = tally_run(tally, [HuntRun("a", "ok", suppressed=2, rows=2),
                              HuntRun("b", "ok", suppressed=0, rows=0)], T0 + HOUR)
    assert tally.fully_suppressed() == {"a": 7}
    assert after_heartbeat(tally, T0.replace(hour=8)).fully_suppressed() == {}
    tally = tally_run(tally, [HuntRun("a", "ok", suppressed=0, rows=1)], T0 + 2 * HOUR)
    assert tally.fully_suppressed() == {}  # one row got through
