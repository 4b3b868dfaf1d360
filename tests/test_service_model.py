"""The stand-ins under load: latency, 429 with Retry-After at the documented rate per tenant,
and our Graph pacing keeping under it (real DefenderSource, compressed clock)."""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime
from pathlib import Path

from azure.core.credentials import TokenCredential

from devtools.fake_graph import FakeGraph, hunting_results
from devtools.fake_loganalytics import FakeLogAnalytics, logs_tables
from devtools.identity import Reply
from devtools.service_model import Latency, ScaledClock, ServiceModel, TenantTokens, token_tenant
from shared.hunt import Hunt
from shared.retry import CallPacer, RetryPolicy
from shared.schedule import Job, Pool
from shared.sources.base import QueryError
from shared.sources.defender import DefenderSource, tenant_lanes, tenant_pacer
from shared.sources.sentinel import SentinelSource, identity_lanes, identity_pacer
from shared.window import Window
from tests.test_schedule import max_in_window

WINDOW = Window(datetime(2026, 12, 6, 11, 0, tzinfo=UTC), datetime(2026, 12, 6, 12, 0, tzinfo=UTC))
SCALE = 600.0
"""Simulated seconds per real second: a minute of Graph in 0.1 s."""
TENANTS = ("tenant-a", "tenant-b")


def hunt(number: int) -> Hunt:
    return Hunt(id=f"h{number}", name=f"h{number}", query="T | take 1", source="defender",
                path=Path("h.yaml"))


def empty(request: object) -> Reply:
    return Reply(200, hunting_results([("DeviceId", "String")], []))


def run_hunts(graph: FakeGraph, clock: ScaledClock, pacers: dict[str, CallPacer],
              hunts_per_tenant: int) -> list[str]:
    """Each tenant's hunts from 4 threads; returns the failures."""
    failures: list[str] = []
    policy = RetryPolicy(max_attempts=30, max_total_seconds=3600, base_delay=2, max_delay=60)

    def worker(tenant: str, numbers: range) -> None:
        source = DefenderSource(TenantTokens(tenant), graph.url, audience=graph.url,
                                policy=policy, pacer=pacers[tenant], clock=clock,
                                rng=random.Random(1))
        for number in numbers:
            try:
                source.run(hunt(number), WINDOW)
            except Exception as exc:
                failures.append(f"{tenant}: {exc}")

    threads = [threading.Thread(target=worker, args=(t, range(n, hunts_per_tenant, 4)))
               for t in TENANTS for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return failures


def test_paced_calls_never_pass_45_a_minute_per_tenant_and_are_rarely_throttled() -> None:
    clock = ScaledClock(120)  # the pacer's 2 s margin is 17 ms of real jitter
    model = ServiceModel(latency=Latency(2, 20, 5), calls=45, period=60, clock=clock)
    with FakeGraph(model=model) as graph:
        graph.handler = empty
        slots: dict[str, list[float]] = {t: [] for t in TENANTS}
        pacers = {t: tenant_pacer(clock, record=slots[t]) for t in TENANTS}
        failures = run_hunts(graph, clock, pacers, hunts_per_tenant=100)
    assert failures == []
    for tenant in TENANTS:
        assert len(model.accepted[tenant]) == 100
        assert max_in_window(slots[tenant], 60.0) <= 45  # what the client sent, by its pacer
        # arrival jitter (compressed x120 on a shared machine) may cost a rare 429, no more
        assert model.refused.get(tenant, 0) <= 2


def test_an_unpaced_client_is_answered_429_with_retry_after_and_recovers() -> None:
    clock = ScaledClock(SCALE)
    model = ServiceModel(calls=10, period=60, clock=clock)  # a tight quota, so 429s come fast
    with FakeGraph(model=model) as graph:
        graph.handler = empty
        pacers = {t: CallPacer(calls=10_000, period_seconds=60, clock=clock) for t in TENANTS}
        failures = run_hunts(graph, clock, pacers, hunts_per_tenant=40)
        statuses = [r for r in graph.requests if token_tenant(r.headers.get("authorization"))
                    == "tenant-a"]
    assert failures == []  # Retry-After was honoured: every hunt got its answer
    assert model.refused["tenant-a"] > 0
    assert len(statuses) == 40 + model.refused["tenant-a"]
    for tenant in TENANTS:
        assert max_in_window(model.accepted[tenant], 60.0) <= 10  # the stand-in's own limit
        # honouring Retry-After (held pacer), the client never hammered: few 429s per call
        assert model.refused[tenant] < 2 * 40


def test_latency_is_between_its_bounds_with_the_mean_asked_for() -> None:
    latency, chance = Latency(2, 20, 5), random.Random(5)
    draws = [latency.draw(chance) for _ in range(20_000)]
    assert min(draws) >= 2
    assert max(draws) <= 20
    assert 4.8 < sum(draws) / len(draws) < 5.2


def test_log_analytics_lane_keeps_under_the_per_user_concurrent_query_limit(
        credential: TokenCredential) -> None:
    """The service runs 5 queries of one user at once (429 beyond): the identity's lane (4)
    keeps a pool of 12 workers under it; the same 12 threads without the pool are refused."""
    clock = ScaledClock(60)
    workspace = "5e0c1b2a-0000-4000-8000-00000000beef"
    model = ServiceModel(latency=Latency(2, 20, 5), concurrent=5, clock=clock)
    hunts = [Hunt(id=f"s{n}", name="s", query="T | take 1", source="sentinel",
                  path=Path("s.yaml")) for n in range(24)]
    with FakeLogAnalytics(workspace, model=model) as logs:
        logs.handler = lambda request: Reply(200, logs_tables([("A", "string")], []))
        pacer = identity_pacer(clock)
        source = SentinelSource(credential, workspace, logs.url, clock=clock, pacer=pacer,
                                lanes=identity_lanes(pacer=pacer),
                                policy=RetryPolicy(max_attempts=1, max_total_seconds=600))
        results = Pool[Hunt, int](12).run(
            [Job(h, source.lanes) for h in hunts],
            lambda h: len(source.run(h, WINDOW).rows), lambda h: None)
        pooled_refusals = sum(model.refused.values())
        failures: list[str] = []

        def unpooled(h: Hunt) -> None:
            try:
                source.run(h, WINDOW)
            except QueryError as exc:
                failures.append(exc.reason)

        threads = [threading.Thread(target=unpooled, args=(h,)) for h in hunts[:12]]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert results == [0] * 24
    assert pooled_refusals == 0
    assert sum(model.refused.values()) > 0
    assert set(failures) == {"throttled"}


def test_a_tenant_over_its_cpu_quota_waits_out_retry_after_and_others_keep_running() -> None:
    """Tenant A exhausts the 15-minute CPU quota: its in-flight queries get 429 with a
    Retry-After of minutes; its pacer holds, so its other hunts do not call again (no hammering),
    they are late for this run, and tenant B's hunts all run meanwhile."""
    clock = ScaledClock(120)
    model = ServiceModel(latency=Latency(2, 3, 2.5), calls=45, period=60, cpu_seconds=30,
                         clock=clock)
    policy = RetryPolicy(max_attempts=4, max_total_seconds=180, base_delay=2, max_delay=60)
    with FakeGraph(model=model) as graph:
        graph.handler = empty
        sources = {}
        for tenant in TENANTS:
            pacer = tenant_pacer(clock)
            sources[tenant] = DefenderSource(TenantTokens(tenant), graph.url, policy=policy,
                                             pacer=pacer, clock=clock,
                                             lanes=tenant_lanes(tenant, pacer))
        jobs = [Job(("tenant-a", n), sources["tenant-a"].lanes) for n in range(30)] + \
            [Job(("tenant-b", n), sources["tenant-b"].lanes) for n in range(5)]
        deadline = clock.monotonic() + 300

        def work(item: tuple[str, int]) -> str:
            try:
                sources[item[0]].run(hunt(item[1]), WINDOW)
            except QueryError as exc:
                return exc.reason
            return "ok"

        results = Pool[tuple[str, int], str](4).run(
            jobs, work, lambda item: "late" if clock.monotonic() > deadline else None)
    a, b = results[:30], results[30:]
    assert b == ["ok"] * 5
    assert 8 <= a.count("ok") <= 15  # 30 s of quota at 2-3 s a query
    assert a.count("late") >= 10  # waited out the hold, then the run's time was up
    assert set(a) <= {"ok", "late", "throttled"}
    assert model.refused["tenant-a"] <= 4  # the queries in flight then: no call after the hold


def test_the_stand_in_counts_every_arrival_and_unshared_pacers_overrun_the_tenant() -> None:
    """A pacer per queue message (what the product did before ``shared.pacing.RateBook``): 12 of
    one tenant's hunts at once send more than 45 calls a minute; the stand-in accepts 45 and
    refuses the rest, and its arrivals show what was sent (the scale bench's "sent/min")."""
    clock = ScaledClock(60)  # a minute in 1 s real: HTTP overhead stays small beside it
    model = ServiceModel(latency=Latency(1, 4, 2), calls=45, period=60, clock=clock)
    policy = RetryPolicy(max_attempts=30, max_total_seconds=3600, base_delay=2, max_delay=60)
    failures: list[str] = []

    def message_slot(numbers: range) -> None:
        for number in numbers:
            source = DefenderSource(TenantTokens("tenant-a"), graph.url, audience=graph.url,
                                    policy=policy, pacer=tenant_pacer(clock), clock=clock,
                                    rng=random.Random(number))
            try:
                source.run(hunt(number), WINDOW)
            except QueryError as exc:
                failures.append(str(exc))
            finally:
                source.close()

    with FakeGraph(model=model) as graph:
        graph.handler = empty
        threads = [threading.Thread(target=message_slot, args=(range(n, 120, 12),))
                   for n in range(12)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert failures == []
    arrivals, accepted = model.arrivals["tenant-a"], model.accepted["tenant-a"]
    assert len(accepted) == 120
    assert model.refused.get("tenant-a", 0) > 0
    assert len(arrivals) == len(accepted) + model.refused["tenant-a"]
    assert max_in_window(accepted, 60.0) <= 45
    assert max_in_window(arrivals, 60.0) > 45
