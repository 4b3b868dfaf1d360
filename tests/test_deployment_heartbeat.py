"""A multi-tenant deployment's one daily heartbeat (shared.health.deployment), on Azurite and a
local Teams webhook: tallies made by each tenant's real RunnerHealth, one notice for all."""

from __future__ import annotations

import json
import re
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from devtools.webhook import Reply, WebhookReceiver
from shared.cards import build_notice
from shared.cards.notice import MAX_FACTS
from shared.cards.payload import MAX_PAYLOAD_BYTES
from shared.health.deployment import TenantHealth, deployment_heartbeat
from shared.health.heartbeat import CLAIM_TTL, HuntRun, after_heartbeat, deduct, tally_run
from shared.health.model import DeploymentBeat, HeartbeatTally, HuntHealth, TenantTally
from shared.health.notices import deployment_notice, health_kind
from shared.health.records import HealthStore
from shared.health.runner_hooks import HealthConfig, RunnerHealth
from shared.hunt import Hunt
from shared.notify.teams import TeamsNotifier
from shared.outcome import HuntOutcome, RunSummary
from shared.storage import Storage
from tests.card_text import elements, texts

DAY = datetime(2026, 3, 2, tzinfo=UTC)
HOUR = 8
HOSTILE = "<at>SOC</at> [click](https://evil.example/x) **bold** javascript:alert(1)"


@dataclass
class Run:
    """One tenant run: (hunt name, status, rows, new, suppressed rows) per hunt."""

    hunts: list[tuple[str, str, int, int, int]]
    opened: int = 0
    undelivered: bool = False
    """The tenant's findings channel refused this run's posts."""


@dataclass
class Tenant:
    name: str
    runs: list[Run] = field(default_factory=list)

    def hunt_times(self) -> int:
        return sum(status in ("ok", "failed") for run in self.runs for _, status, *_ in run.hunts)

    def failures(self) -> int:
        return sum(status == "failed" for run in self.runs for _, status, *_ in run.hunts)

    def findings(self) -> int:
        return sum(new for run in self.runs for *_, new, _ in run.hunts)

    def suppressed(self) -> int:
        return sum(sup for run in self.runs for *_, sup in run.hunts)

    def incidents(self) -> int:
        return sum(run.opened for run in self.runs)


@pytest.fixture
def storage(storage_connection_string: str) -> Storage:
    return Storage.from_connection_string(storage_connection_string)


@pytest.fixture
def hook() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as receiver:
        yield receiver


def fresh(storage: Storage) -> HealthStore:
    """A health table of its own (a tenant's, or the deployment's), new for each test."""
    return HealthStore(storage.for_tenant("t" + uuid.uuid4().hex))


def channel(hook: WebhookReceiver) -> TeamsNotifier:
    return TeamsNotifier(hook.url, max_attempts=1, min_interval_seconds=0)


def tally_runs(store: HealthStore, tenant: Tenant, tmp: Path, notifier: TeamsNotifier | None,
               at: datetime) -> None:
    """*tenant*'s runs through its own RunnerHealth, configured as a multi-tenant deployment
    configures it: tallying, no heartbeat of its own."""
    for index, run in enumerate(tenant.runs):
        health = RunnerHealth(store, notifier, HealthConfig(heartbeat_hour=None),
                              findings_notifier=True)
        now = at + timedelta(hours=index)
        outcomes = []
        for name, status, rows, new, suppressed in run.hunts:
            path = tmp / f"{uuid.uuid5(uuid.NAMESPACE_URL, name)}.yaml"
            path.write_text(name)
            hunt = Hunt(id=path.stem, name=name, query="T", source="defender", path=path)
            assert health.before_hunt(hunt, now) is None
            outcome = HuntOutcome(hunt.id, name, status, rows=rows, new=new,  # type: ignore[arg-type]
                                  suppressed={"rule": suppressed} if suppressed else {},
                                  error="HTTP 500" if status == "failed" else None,
                                  delivery_failed=run.undelivered and new > 0,
                                  pending=new if run.undelivered else 0)
            health.after_hunt(hunt, outcome, now)
            outcomes.append(outcome)
        health.after_run(RunSummary(now.isoformat(), outcomes, incidents={"opened": run.opened}),
                         now)


def heartbeats(hook: WebhookReceiver) -> list[dict[str, Any]]:
    return [p for p in hook.payloads if health_kind(p) == "heartbeat"]


def three_tenants() -> list[Tenant]:
    steady = Run([("Encoded PowerShell", "ok", 3, 2, 0), ("Socket in PowerShell", "ok", 0, 0, 0)],
                 opened=1)
    return [
        Tenant("Contoso", [steady, steady]),
        Tenant("Fabrikam", [Run([("Bad query", "failed", 0, 0, 0)])] * 3),
        Tenant("Northwind", [Run([("Noisy hunt", "ok", 4, 0, 4)])]),
    ]


def test_one_heartbeat_names_every_tenant_resets_tallies_and_comes_once_a_day(
        storage: Storage, hook: WebhookReceiver, tmp_path: Path) -> None:
    tenants = three_tenants()
    stores = [fresh(storage) for _ in tenants]
    notifier = channel(hook)
    for store, tenant in zip(stores, tenants, strict=True):
        tally_runs(store, tenant, tmp_path, notifier, DAY.replace(hour=HOUR))
    assert heartbeats(hook) == []  # the tenants' own RunnerHealth posts none
    deployment = fresh(storage)
    members = [TenantHealth(t.name, s) for t, s in zip(tenants, stores, strict=True)]
    now = DAY.replace(hour=HOUR + 3)

    assert not deployment_heartbeat(members, notifier, deployment, now.replace(hour=HOUR - 1),
                                    HOUR)
    assert deployment_heartbeat(members, notifier, deployment, now, HOUR)

    (beat,) = heartbeats(hook)
    text = " ".join(texts(beat))
    assert (f"3 tenant(s), hunts ran {sum(t.hunt_times() for t in tenants)} time(s), "
            f"{sum(t.failures() for t in tenants)} failure(s). "
            f"{sum(t.findings() for t in tenants)} new finding(s) in "
            f"{sum(t.incidents() for t in tenants)} incident(s); "
            f"{sum(t.suppressed() for t in tenants)} row(s) suppressed") in text
    labels = fact_labels(beat)
    assert labels[:3] == ["Fabrikam", "Northwind", "Contoso"]  # worst first
    assert "Failing: Bad query" in text
    assert "Every row suppressed: Noisy hunt (4 row(s))" in text
    contoso = tenants[0]
    assert (f"hunts ran {contoso.hunt_times()} time(s), 0 failure(s), {contoso.findings()} new "
            f"finding(s), {contoso.incidents()} incident(s)") in text
    for store in stores:
        tally = store.heartbeat()
        assert tally is not None
        assert (tally.runs, tally.hunt_runs, tally.findings) == (0, {}, 0)

    later = now + timedelta(hours=5)
    assert not deployment_heartbeat(members, notifier, deployment, later, HOUR)
    tally_runs(stores[0], Tenant("Contoso", [contoso.runs[0]]), tmp_path, notifier, later)
    assert not deployment_heartbeat(members, notifier, deployment, later, HOUR)
    assert len(heartbeats(hook)) == 1

    tomorrow = now + timedelta(days=1)
    assert deployment_heartbeat(members, notifier, deployment, tomorrow, HOUR)
    second = " ".join(texts(heartbeats(hook)[1]))
    assert f"hunts ran {len(contoso.runs[0].hunts)} time(s), 0 failure(s)" in second


def fact_labels(payload: dict[str, Any]) -> list[str]:
    """The label of each fact line (the card's "Label: value" rich text blocks)."""
    return [element["inlines"][0]["text"].removesuffix(": ") for element in elements(payload)
            if element.get("type") == "RichTextBlock" and len(element.get("inlines", [])) == 2
            and element["inlines"][0].get("isSubtle")]


@pytest.mark.parametrize("round_", range(4))
def test_instances_racing_at_the_due_hour_post_one_heartbeat(
        storage_connection_string: str, hook: WebhookReceiver, tmp_path: Path,
        round_: int) -> None:
    setup = Storage.from_connection_string(storage_connection_string)
    tenant = Tenant("Contoso", [Run([("Encoded PowerShell", "ok", 1, 1, 0)])])
    tenant_table = "t" + uuid.uuid4().hex
    deployment_table = "t" + uuid.uuid4().hex
    tally_runs(HealthStore(setup.for_tenant(tenant_table)), tenant, tmp_path, None,
               DAY.replace(hour=HOUR))
    if round_ % 2:  # a record from yesterday exists: the claims are ETag-conditional updates
        yesterday = (DAY - timedelta(days=1)).date().isoformat()
        HealthStore(setup.for_tenant(deployment_table)).save_deployment_beat(
            DeploymentBeat(last_sent_day=yesterday))
    start = threading.Barrier(3)
    posted: list[bool] = []

    def instance() -> None:
        own = Storage.from_connection_string(storage_connection_string)  # its own clients
        members = [TenantHealth(tenant.name, HealthStore(own.for_tenant(tenant_table)))]
        start.wait()
        posted.append(deployment_heartbeat(members, channel(hook),
                                           HealthStore(own.for_tenant(deployment_table)),
                                           DAY.replace(hour=HOUR), HOUR))

    threads = [threading.Thread(target=instance) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(posted) == [False, False, True]
    assert len(heartbeats(hook)) == 1


def test_a_claim_holds_off_others_until_it_expires(
        storage: Storage, hook: WebhookReceiver) -> None:
    deployment = fresh(storage)
    now = DAY.replace(hour=HOUR)
    deployment.save_deployment_beat(DeploymentBeat(claimed_day=now.date().isoformat(),
                                                   claimed_at=now))  # an instance posting now
    members = [TenantHealth("Contoso", fresh(storage))]

    assert not deployment_heartbeat(members, channel(hook), deployment,
                                    now + CLAIM_TTL - timedelta(seconds=1), HOUR)
    assert hook.posts == []
    assert deployment_heartbeat(members, channel(hook), deployment, now + CLAIM_TTL, HOUR)
    (beat,) = heartbeats(hook)
    assert fact_labels(beat)[0] == "Contoso"
    assert "no runs recorded yet" in " ".join(texts(beat))


def test_a_refused_post_resets_nothing_and_is_tried_again(
        storage: Storage, hook: WebhookReceiver, tmp_path: Path) -> None:
    store, deployment = fresh(storage), fresh(storage)
    tenant = Tenant("Contoso", [Run([("Encoded PowerShell", "ok", 2, 2, 0)])] * 2)
    tally_runs(store, tenant, tmp_path, None, DAY.replace(hour=HOUR))
    before = store.heartbeat()
    members = [TenantHealth(tenant.name, store)]
    now = DAY.replace(hour=HOUR + 1)
    hook.default = Reply(500)

    assert not deployment_heartbeat(members, channel(hook), deployment, now, HOUR)
    assert len(hook.posts) == 1
    assert store.heartbeat() == before
    record = deployment.deployment_beat()
    assert record is not None
    assert (record.last_sent_day, record.claimed_day) == (None, None)  # released

    hook.default = Reply(202)
    assert not deployment_heartbeat(members, None, deployment, now, HOUR)  # no channel: none
    assert store.heartbeat() == before
    assert deployment_heartbeat(members, channel(hook), deployment, now + timedelta(minutes=1),
                                HOUR)
    text = " ".join(texts(hook.payloads[-1]))
    assert f"hunts ran {tenant.hunt_times()} time(s)" in text
    after = store.heartbeat()
    assert after is not None
    assert after.runs == 0


def test_an_unreadable_tenant_is_named_and_the_others_counted(
        storage: Storage, hook: WebhookReceiver, tmp_path: Path) -> None:
    good = fresh(storage)
    tenant = Tenant("Contoso", [Run([("Encoded PowerShell", "ok", 1, 1, 0)])])
    tally_runs(good, tenant, tmp_path, None, DAY.replace(hour=HOUR))
    garbled = fresh(storage)
    garbled.table.upsert_entity({"PartitionKey": "heartbeat", "RowKey": "latest", "Runs": 3,
                                 "HuntRuns": "{not json"})
    bad_name = HealthStore(storage.for_tenant("t" + "0" * 60))  # a name over 63: refused
    members = [TenantHealth("Garbled", garbled), TenantHealth("Gone", bad_name),
               TenantHealth("Contoso", good)]

    assert deployment_heartbeat(members, channel(hook), fresh(storage), DAY.replace(hour=HOUR),
                                HOUR)
    (beat,) = heartbeats(hook)
    text = " ".join(texts(beat))
    assert "3 tenant(s) (2 unreadable), hunts ran 1 time(s)" in text
    assert sorted(fact_labels(beat)[:2]) == ["Garbled", "Gone"]
    assert text.count("UNREADABLE") == 2
    assert "creating the health table failed" in text
    assert "does not decode" in text
    tally = good.heartbeat()
    assert tally is not None
    assert tally.runs == 0
    assert garbled.table.get_entity("heartbeat", "latest")["HuntRuns"] == "{not json"


def test_hostile_tenant_and_hunt_names_render_inert(
        storage: Storage, hook: WebhookReceiver, tmp_path: Path) -> None:
    store = fresh(storage)
    tenant = Tenant(HOSTILE, [Run([(HOSTILE, "failed", 0, 0, 0)])] * 3
                    + [Run([("[x](javascript:alert(1))", "ok", 2, 0, 2)])])
    tally_runs(store, tenant, tmp_path, None, DAY.replace(hour=HOUR))

    assert deployment_heartbeat([TenantHealth(HOSTILE, store)], channel(hook), fresh(storage),
                                DAY.replace(hour=HOUR), HOUR)
    (beat,) = heartbeats(hook)
    assert "Failing: " in " ".join(texts(beat))
    assert not any(block.get("type") == "TextBlock" for block in elements(beat))  # no Markdown
    text = json.dumps(beat)
    for dangerous in ("https://evil", "<at>", "](", "javascript:"):
        assert dangerous not in text


def test_a_tenant_whose_findings_channel_fails_is_named_first(
        storage: Storage, hook: WebhookReceiver, tmp_path: Path) -> None:
    tenants = [Tenant("Flaky", [Run([("Hunt A", "failed", 0, 0, 0)])]),
               Tenant("Muted", [Run([("Hunt B", "ok", 3, 3, 0)], undelivered=True)]),
               Tenant("Calm", [Run([("Hunt C", "ok", 0, 0, 0)])])]
    stores = [fresh(storage) for _ in tenants]
    for store, tenant in zip(stores, tenants, strict=True):
        tally_runs(store, tenant, tmp_path, None, DAY.replace(hour=HOUR))
    members = [TenantHealth(t.name, s) for t, s in zip(tenants, stores, strict=True)]

    assert deployment_heartbeat(members, channel(hook), fresh(storage), DAY.replace(hour=HOUR),
                                HOUR)
    (beat,) = heartbeats(hook)
    assert fact_labels(beat)[:3] == ["Muted", "Flaky", "Calm"]
    assert "Findings channel: failing since 2026-03-02 08:00 UTC: 3 finding(s) waiting" in \
        " ".join(texts(beat))


def test_sixty_tenants_stay_within_the_card_and_say_how_many_more() -> None:
    long_name = "Ünïcödé Tenant 🛡️ " * 8
    hunts = {f"h{i}": HuntHealth(f"h{i}", f"{long_name} hunt {i}", consecutive_failures=3)
             for i in range(20)}
    tally = HeartbeatTally(since=DAY, runs=24, hunt_runs={h: 24 for h in hunts}, failures=24,
                           hunt_rows={h: 5 for h in hunts}, hunt_suppressed={h: 5 for h in hunts})
    tenants = [TenantTally(f"{long_name} {i:02d}", tally, hunts) for i in range(60)]
    notice = deployment_notice(tenants, DAY.replace(hour=HOUR))
    payload = build_notice(notice.title, notice.summary, severity=notice.severity,
                           facts=notice.facts, tag=notice.tag)

    size = len(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode())
    assert size <= MAX_PAYLOAD_BYTES
    assert len(notice.facts) <= MAX_FACTS
    label, rest = next(fact for fact in notice.facts if fact[0].endswith("more tenant(s)"))
    listed = len(notice.facts) - 2  # one fact per listed tenant, then the rest, then "Sent"
    assert label == f"{60 - listed} more tenant(s)"
    compact = len(re.findall(r"\(\d+ ran, \d+ failed\)", rest))
    assert rest.endswith(f"; and {60 - listed - compact} more")
    assert 0 < compact < 60 - listed


def test_a_run_tallied_while_the_heartbeat_posts_is_kept_for_the_next() -> None:
    runs = [HuntRun("a", "ok", new=2, rows=3), HuntRun("b", "failed")]
    sent = tally_run(None, runs, DAY)
    meanwhile = [HuntRun("a", "ok", new=1, suppressed=4, rows=4)]
    current = tally_run(sent, meanwhile, DAY + timedelta(hours=1))
    now = DAY + timedelta(hours=2)

    left = deduct(current, sent, now)
    assert left == tally_run(HeartbeatTally(since=now, last_sent_day=now.date().isoformat()),
                             meanwhile, now)
    assert deduct(sent, sent, now) == after_heartbeat(sent, now)


def test_tenants_equally_well_are_listed_in_natural_order() -> None:
    tally = HeartbeatTally(since=DAY, runs=1, hunt_runs={"a": 1})
    names = ["Tenant 10", "tenant 2", "Tenant 1"]
    notice = deployment_notice([TenantTally(name, tally) for name in names], DAY)
    assert [label for label, _ in notice.facts[:3]] == ["Tenant 1", "tenant 2", "Tenant 10"]
    assert notice.severity == "Informational"
