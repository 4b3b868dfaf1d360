"""The timer function end to end: Azurite, a local Graph, a local managed-identity endpoint and
a local Teams webhook, all over real HTTP. Nothing of ours or of the Azure SDKs is mocked."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import azure.functions as func
import pytest
from azure.functions.timer import TimerRequest

from devtools.fake_graph import FakeGraph
from devtools.identity import IdentityServer
from devtools.webhook import Hang, Reply, WebhookReceiver
from shared.cards import summarize_digest
from shared.health.notices import health_kind
from shared.hunt import load_hunts
from shared.storage import Storage
from tests.fanout_world import REPO, clear_tables, write_sample_events

BROKEN_HUNT = """\
id: 99999999-0000-0000-0000-000000000001
name: Broken on the service side
source: defender
query: |
  DeviceProcessEvents
  | where NoSuchColumn == "x"
"""


@pytest.fixture(scope="module")
def function() -> Any:
    import function_app

    # A second call raises: read once per module. The app also serves the snooze page.
    (only,) = [f for f in function_app.app.get_functions()
               if f.get_function_name() == "hourly_hunts"]
    return only


@pytest.fixture(scope="module")
def user_function(function: Any) -> Callable[[func.TimerRequest], None]:
    user: Callable[[func.TimerRequest], None] = function.get_user_function()
    return user


@pytest.fixture
def world(tmp_path: Path, storage_connection_string: str,
          monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    now = datetime.now(UTC).replace(microsecond=0)
    events = write_sample_events(tmp_path / "DeviceProcessEvents.jsonl", now)
    hunts = tmp_path / "hunts"
    shutil.copytree(REPO / "hunts", hunts)
    (hunts / "broken.yaml").write_text(BROKEN_HUNT)
    clear_tables(storage_connection_string)
    with IdentityServer() as identity, FakeGraph({"DeviceProcessEvents": events}) as graph, \
            WebhookReceiver() as webhook:
        env = {**identity.env, "HUNTWIRE_STORAGE": storage_connection_string,
               "HUNTWIRE_GRAPH_ENDPOINT": graph.url, "HUNTWIRE_TEAMS_WEBHOOK_URL": webhook.url,
               "HUNTWIRE_HUNTS_DIR": str(hunts), "HUNTWIRE_SCHEDULE": "0 0 * * * *"}
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        import function_app

        function_app.settings.cache_clear()
        yield {"graph": graph, "webhook": webhook, "env": env, "hunts": hunts}
        function_app.settings.cache_clear()


def run_timer(user_function: Callable[[func.TimerRequest], None]) -> str | None:
    """Call the function as the host would; return the error it raised, if any."""
    try:
        user_function(TimerRequest(past_due=False))
    except RuntimeError as error:
        return str(error)
    return None


def hunt_names(payloads: list[Any]) -> list[str]:
    """Every hunt each findings post among *payloads* names (health notices left out)."""
    return [name for p in payloads if health_kind(p) is None
            for name, _ in summarize_digest(p).hunts]


def incident_ids(payloads: list[Any]) -> list[str | None]:
    """The incident each findings post among *payloads* opens or updates."""
    return [summarize_digest(p).incident_id for p in payloads if health_kind(p) is None]


def digest_posts(webhook: WebhookReceiver) -> list[Any]:
    """Posts of findings (incident posts; health notices and the heartbeat left out)."""
    return [post for post in webhook.posts if health_kind(post.json()) is None]


def test_function_binding_is_a_timer_on_the_schedule_setting(function: Any) -> None:
    (binding,) = [b.get_dict_repr() for b in function.get_bindings()]
    assert binding["type"] == "timerTrigger"
    assert binding["schedule"] == "%HUNTWIRE_SCHEDULE%"
    assert binding["useMonitor"] is True
    assert binding["runOnStartup"] is False
    assert function.get_function_name() == "hourly_hunts"


def test_default_schedule_is_valid_hourly_ncrontab() -> None:
    from shared.settings import DEFAULT_SCHEDULE, load_settings

    example = json.loads((REPO / "local.settings.json.example").read_text())["Values"]
    assert example["HUNTWIRE_SCHEDULE"] == DEFAULT_SCHEDULE == "0 0 * * * *"
    dev = {"HUNTWIRE_STORAGE": "UseDevelopmentStorage=true"}
    assert load_settings(dev).schedule == DEFAULT_SCHEDULE


SEED = "PowerShell TCPClient reverse shell (Microsoft original)"


def test_first_run_names_every_hunt_once_second_run_posts_nothing(
        world: dict[str, Any], user_function: Callable[[func.TimerRequest], None]) -> None:
    webhook: WebhookReceiver = world["webhook"]
    error = run_timer(user_function)
    # The broken hunt fails (Graph answers 400) and makes the invocation fail, visibly...
    assert error is not None
    assert "99999999-0000-0000-0000-000000000001" in error
    # ...but did not stop the others: every hunt with findings is named in exactly one post
    # (one incident: all the events are on one device within minutes).
    first = [post.json() for post in digest_posts(webhook)]
    names = hunt_names(first)
    assert len(names) == len(set(names)) >= 2
    assert SEED in names
    assert len(first) == 1
    assert all(p["attachments"][0]["content"]["version"] == "1.4" for p in first)
    assert all(dict(summarize_digest(p).hunts)[SEED] == 2 for p in first)
    assert "Get-Service" not in json.dumps(first)
    queries = [r.json()["Query"] for r in world["graph"].requests if r.path.endswith("Query")]
    assert len(queries) >= 3
    # Second hourly run: the same events are seen again, nothing new is posted.
    _forget_last_run(world)
    run_timer(user_function)
    assert len(digest_posts(webhook)) == len(first)
    assert len(world["graph"].requests) > len(queries)  # it did query again


def test_failed_post_loses_nothing_and_next_run_posts_once(
        world: dict[str, Any], user_function: Callable[[func.TimerRequest], None]) -> None:
    webhook: WebhookReceiver = world["webhook"]
    webhook.default = Reply(503, {"Retry-After": "0"})  # fail fast: retries still all happen
    error = run_timer(user_function)
    assert error is not None
    assert "were not delivered (they stay pending)" in error
    assert world["webhook"].sig not in error
    failed_attempts = len(digest_posts(webhook))
    posts_after_failure = len(webhook.posts)
    assert failed_attempts >= 2  # tried, retried, gave up: findings stay pending
    webhook.default = Reply(202)
    _forget_last_run(world)
    run_timer(user_function)
    delivered = hunt_names(webhook.payloads[posts_after_failure:])
    assert len(delivered) == len(set(delivered)) >= 2
    assert SEED in delivered
    delivered_posts = len(digest_posts(webhook)) - failed_attempts
    assert delivered_posts == 1  # the incident post that failed, once
    _forget_last_run(world)
    run_timer(user_function)
    assert len(digest_posts(webhook)) == failed_attempts + delivered_posts


def _forget_last_run(world: dict[str, Any]) -> None:
    """Make the hunts due again now, as an hour passing would (windows stay as they were, and
    leases on pending findings and on incident posts, at most 15 minutes, run out)."""
    from shared.incidents import IncidentStore
    from shared.ledger import Ledger

    ledger = Ledger(Storage.from_connection_string(world["env"]["HUNTWIRE_STORAGE"]))
    an_hour_later = datetime.now(UTC) + timedelta(hours=1)
    for hunt in load_hunts(world["hunts"]).hunts:
        checkpoint = ledger.checkpoint(hunt.id)
        if checkpoint is not None:
            checkpoint.last_run_start = datetime(2000, 1, 1, tzinfo=UTC)
            ledger.save_checkpoint(checkpoint)
        ledger.release(hunt.id, [f.key for f in ledger.take_pending(hunt, an_hour_later)])
    store = IncidentStore(Storage.from_connection_string(world["env"]["HUNTWIRE_STORAGE"]))
    for item in store.outbox():
        if store.lease(item, "an-hour-later", an_hour_later):
            store.release(item, failed=item.failed)


def test_process_killed_between_claim_and_notify_posts_next_run(
        world: dict[str, Any], user_function: Callable[[func.TimerRequest], None]) -> None:
    from shared.ledger import Ledger

    webhook: WebhookReceiver = world["webhook"]
    webhook.default = Hang(30)
    child = subprocess.Popen(
        [sys.executable, "-c", "import azure.functions.timer as t, function_app as a; "
         "a.app.get_functions()[0].get_user_function()(t.TimerRequest())"],
        cwd=REPO, env={**os.environ, **world["env"]}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while not webhook.posts and time.monotonic() < deadline:
        time.sleep(0.05)
    assert webhook.posts, "the child never reached the Teams post"
    child.send_signal(signal.SIGKILL)  # its findings are claimed; notify never completes
    child.wait()
    (hung,) = incident_ids([webhook.posts[0].json()])
    assert hung is not None
    hung_hunt = summarize_digest(webhook.posts[0].json()).hunt_name
    hung_id = next(h.id for h in load_hunts(world["hunts"]).hunts if h.name == hung_hunt)
    ledger = Ledger(Storage.from_connection_string(world["env"]["HUNTWIRE_STORAGE"]))
    assert len(ledger.pending(next(h for h in load_hunts(world["hunts"]).hunts
                                   if h.id == hung_id))) >= 1
    posts_before = len(webhook.posts)
    webhook.default = Reply(202)
    _forget_last_run(world)
    run_timer(user_function)
    delivered = incident_ids(webhook.payloads[posts_before:])
    assert delivered.count(hung) == 1
    assert len(delivered) == 1  # the card the killed run was posting, nothing else
    checkpoint = ledger.checkpoint(hung_id)
    assert checkpoint is not None
    assert checkpoint.new == 0  # nothing new this run: what was posted came from pending
    assert checkpoint.posted >= 1
