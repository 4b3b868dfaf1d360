"""Teams faults: the webhook answering 401, 404, 413, 429 with a long Retry-After, 500, 200 with
an error body, hanging and dripping. Each run that could not deliver fails and says why, within
the notifier's budget; the next run delivers every finding; nothing is lost or posted twice."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from devtools.azurite import Azurite
from devtools.webhook import Answer, Drip, Hang, Reply, WebhookReceiver
from shared.sources.local import LocalSource
from tests.faults_world import Events, World, duplicates, lost, make_hunt, table_names

pytestmark = pytest.mark.faults

JSON = {"Content-Type": "application/json"}
FAULTS: dict[str, tuple[Answer, str]] = {
    "401 sig rotated": (Reply(401, JSON, b'{"error":{"code":"DirectApiAuthorizationRequired"}}'),
                        "permanent"),
    "404 flow deleted": (Reply(404, JSON, b'{"error":{"code":"WorkflowNotFound"}}'), "permanent"),
    "413 too large": (Reply(413, JSON, b'{"error":{"code":"RequestEntityTooLarge"}}'),
                      "permanent"),
    "429 retry in an hour": (Reply(429, {"Retry-After": "3600"}), "transient"),
    "500": (Reply(500), "transient"),
    "200 error body": (Reply(200, body=b"Microsoft Teams endpoint returned HTTP error 413"),
                       "failed"),
    "hang": (Hang(seconds=20), "transient"),
    "drip": (Drip(200, b"1" * 200, 0.1), "transient"),
}


@pytest.fixture
def webhook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as hook:
        yield hook


@pytest.mark.parametrize("case", list(FAULTS))
def test_teams_fault_fails_the_run_then_the_next_run_delivers_everything_once(
        case: str, azurite: Azurite, tmp_path: Path, webhook: WebhookReceiver) -> None:
    answer, kind = FAULTS[case]
    events = Events(tmp_path / "DeviceProcessEvents.jsonl")
    world = World(make_hunt(), {"defender": LocalSource({"DeviceProcessEvents": events.path})},
                  webhook, azurite.connection_string, table_names())
    tokens = events.add(1, 3)
    webhook.default = answer
    first = world.run(1)
    outcome = first.outcomes[0]
    assert not first.ok  # exit code 1
    assert outcome.delivery_failed
    assert outcome.pending == 3
    assert "notification failed" in (outcome.error or "")
    assert kind in (outcome.error or "")
    assert outcome.seconds < 12  # the notifier's 6-second budget, whole replies included
    assert lost(world.posts_per_token(tokens)) == tokens  # nothing shown yet

    webhook.default = Reply(202)
    tokens += events.add(2, 2)
    second = world.run(2)
    assert second.ok
    assert second.outcomes[0].posted == 5
    counts = world.posts_per_token(tokens)
    assert lost(counts) == []
    assert duplicates(counts) == 0
