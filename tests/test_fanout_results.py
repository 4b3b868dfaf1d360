"""What each hunt came to, recorded on the fan-in counter (Azurite tables): it survives the
counter's rewrites, fits Table Storage's limits for thousands of hunts with long errors, and
gives the delivery the outcomes the in-process run would have had."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from azure.data.tables import UpdateMode

from shared.fanout import CycleStore
from shared.fanout.results import CHUNK_CHARS, ERROR_CHARS, HuntResult, encode, error_share
from shared.outcome import HuntOutcome
from shared.storage import Storage
from tests.test_fanout_cycle import hunt_ids

NOW = datetime(2026, 12, 6, 10, 0, tzinfo=UTC)
FORBIDDEN = ("Graph answered 403 Authorization_RequestDenied: Insufficient privileges to "
             "complete the operation. ") * 80


def storage(connection_string: str) -> Storage:
    return Storage.from_connection_string(connection_string).for_tenant(
        "t" + uuid.uuid4().hex[:10])


def test_a_result_keeps_what_problems_and_the_heartbeat_need() -> None:
    outcome = HuntOutcome("h1", "Hunt one", "failed", rows=7, new=3, suppressed={"r1": 2, "r2": 1},
                          error="forbidden\n  by Graph", error_kind="forbidden",
                          error_status=403, error_permanent=True)
    result = HuntResult.of(outcome)
    again = result.outcome("h1", "Hunt one")
    assert (again.status, again.rows, again.new, sum(again.suppressed.values())) == \
        ("failed", 7, 3, 3)
    assert (again.error, again.error_kind, again.error_status, again.error_permanent) == \
        ("forbidden by Graph", "forbidden", 403, True)
    run = result.heartbeat("h1")
    assert (run.status, run.new, run.suppressed, run.rows) == ("failed", 3, 3, 7)


def test_thousands_of_results_with_long_errors_fit_one_counter(
        storage_connection_string: str) -> None:
    tables = storage(storage_connection_string)
    store = CycleStore(tables)
    hunts = hunt_ids(1500)
    store.open("t", "c1", NOW, NOW + timedelta(minutes=20), hunts)
    failed = HuntResult("failed", error=FORBIDDEN, error_kind="forbidden", error_status=403,
                        permanent=True)
    # Every hunt but the last done (as 1,499 workers left it), then the last one's worker
    # rewrites the whole counter with its result.
    done = (1 << (len(hunts) - 1)) - 1
    properties = encode(dict.fromkeys(range(len(hunts) - 1), failed), len(hunts))
    assert all(len(v) <= CHUNK_CHARS for k, v in properties.items() if k.startswith("Results"))
    tables.table("huntwireFanout").update_entity(
        {"PartitionKey": "t", "RowKey": "c1", "Done": format(done, "x"),
         "Failed": format(done, "x"), **properties},
        mode=UpdateMode.MERGE)
    cycle = store.mark_done("t", "c1", hunts[-1], result=HuntResult("ok", new=2, rows=5))
    assert cycle is not None
    assert cycle.complete
    stored = store.get("t", "c1")
    assert stored is not None
    assert len(stored.results) == len(hunts)
    share = error_share(len(hunts))
    assert 0 < share <= ERROR_CHARS
    assert stored.results[0] == HuntResult("failed", error=FORBIDDEN[:share],
                                           error_kind="forbidden", error_status=403,
                                           permanent=True)
    assert stored.results[len(hunts) - 1] == HuntResult("ok", new=2, rows=5)
    assert stored.failed == done  # the rewrite keeps the failures with the results

