"""How a stand-in service behaves under load: latency, rate limits with 429 + Retry-After, a cap
on concurrent queries, and a compressed clock so a bench can run an hour in a minute.

``ServiceModel(latency=Latency(2, 20, 5), calls=45, period=60, clock=ScaledClock(60))`` makes
:class:`devtools.fake_graph.FakeGraph` answer each accepted query after 2-20 simulated seconds
(mean 5; at scale 60 that is 33-333 ms of real time) and answer 429 with ``Retry-After`` (in
simulated seconds, as every client clock on the same ScaledClock reads them) once a key (the
token's tenant for Graph, the caller for Log Analytics) has had *calls* accepted in the last
*period* seconds. Every accepted call is recorded per key for the bench to check.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


class ScaledClock:
    """Simulated seconds running *scale* times faster than real ones (``shared.retry.Clock``):
    ``monotonic()`` reads simulated seconds since creation; ``sleep(s)`` sleeps s / scale."""

    def __init__(self, scale: float = 1.0) -> None:
        if scale <= 0:
            raise ValueError("scale must be positive")
        self.scale = scale
        self._start = time.monotonic()

    def monotonic(self) -> float:
        return (time.monotonic() - self._start) * self.scale

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.scale)

    def real(self, seconds: float) -> float:
        """Real seconds for *seconds* of simulated time."""
        return seconds / self.scale


@dataclass(frozen=True)
class Latency:
    """Query time in simulated seconds: *minimum* plus an exponential tail, capped at *maximum*,
    with mean close to *mean* (most queries are quick, a few are slow)."""

    minimum: float = 2.0
    maximum: float = 20.0
    mean: float = 5.0

    def __post_init__(self) -> None:
        if not 0 <= self.minimum < self.mean < self.maximum:
            raise ValueError("latency needs 0 <= minimum < mean < maximum")

    def draw(self, rng: random.Random) -> float:
        return min(self.minimum + rng.expovariate(1 / (self.mean - self.minimum)), self.maximum)


@dataclass
class ServiceModel:
    """Latency, a rate limit per key and a cap on concurrent queries per key."""

    latency: Latency | None = None
    calls: int | None = None
    """Calls accepted per key in any *period* seconds; beyond: 429 with Retry-After."""
    period: float = 60.0
    concurrent: int | None = None
    """Queries of one key running at once; beyond: 429 (Log Analytics' per-user limit)."""
    cpu_seconds: float | None = None
    """Query time one key may use per *cpu_period* (Graph's CPU quota per 15 minutes, whose
    size Microsoft does not publish: here each query costs its latency); beyond: 429 with
    Retry-After until enough of it has aged out."""
    cpu_period: float = 900.0
    clock: ScaledClock = field(default_factory=ScaledClock)
    seed: int = 1
    accepted: dict[str, list[float]] = field(default_factory=dict)
    """Simulated time of every accepted call, per key."""
    refused: dict[str, int] = field(default_factory=dict)
    """429s answered, per key."""
    arrivals: dict[str, list[float]] = field(default_factory=dict)
    """Simulated time of every call that reached the service, accepted or refused, per key: what
    the clients sent, which the service's limit does not cap."""
    _recent: dict[str, deque[float]] = field(default_factory=dict, repr=False)
    _spent: dict[str, deque[tuple[float, float]]] = field(default_factory=dict, repr=False)
    _running: dict[str, int] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _rng: random.Random = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    def admit(self, key: str, cost: float = 0.0) -> float | None:
        """None: the call is accepted (and counted running); else Retry-After in seconds."""
        with self._lock:
            now = self.clock.monotonic()
            self.arrivals.setdefault(key, []).append(now)
            recent = self._recent.setdefault(key, deque())
            while recent and now - recent[0] >= self.period:
                recent.popleft()
            wait: float | None = None
            if self.calls is not None and len(recent) >= self.calls:
                wait = recent[0] + self.period - now
            elif self.concurrent is not None and self._running.get(key, 0) >= self.concurrent:
                wait = 1.0
            else:
                wait = self._over_quota(key, now, cost)
            if wait is not None:
                self.refused[key] = self.refused.get(key, 0) + 1
                return max(wait, 0.001)
            recent.append(now)
            self._spent.setdefault(key, deque()).append((now, cost))
            self.accepted.setdefault(key, []).append(now)
            self._running[key] = self._running.get(key, 0) + 1
            return None

    def _over_quota(self, key: str, now: float, cost: float) -> float | None:
        """Seconds until *cost* more fits in the key's CPU quota; None when it fits now."""
        if self.cpu_seconds is None:
            return None
        spent = self._spent.setdefault(key, deque())
        while spent and now - spent[0][0] >= self.cpu_period:
            spent.popleft()
        used = sum(amount for _, amount in spent)
        if used + cost <= self.cpu_seconds:
            return None
        for moment, amount in spent:  # the oldest costs age out first
            used -= amount
            if used + cost <= self.cpu_seconds:
                return moment + self.cpu_period - now
        return self.cpu_period

    def finish(self, key: str) -> None:
        with self._lock:
            self._running[key] -= 1

    def draw(self) -> float:
        """Simulated seconds the next query will take."""
        if self.latency is None:
            return 0.0
        with self._lock:
            return self.latency.draw(self._rng)

    def run(self, key: str, answer: Callable[[], Any], throttled: Callable[[str], Any],
            sleep: Callable[[float], Any] = time.sleep) -> Any:
        """Admit, wait the latency (in the request's own thread, with *sleep*), answer."""
        cost = self.draw()
        wait = self.admit(key, cost)
        if wait is not None:
            return throttled(str(max(1, math.ceil(wait))))
        try:
            sleep(self.clock.real(cost))
            return answer()
        finally:
            self.finish(key)


def token_claims(authorization: str | None) -> dict[str, Any]:
    """The payload of a ``Bearer`` JWT-shaped token (unsigned stand-in tokens), or {}."""
    if not authorization or not authorization.startswith("Bearer "):
        return {}
    parts = authorization.removeprefix("Bearer ").split(".")
    if len(parts) != 3:
        return {}
    try:
        payload = json.loads(base64.urlsafe_b64decode(parts[1] + "=" * (-len(parts[1]) % 4)))
    except (binascii.Error, ValueError):
        return {}
    return payload if isinstance(payload, dict) else {}


def token_tenant(authorization: str | None) -> str:
    """The tenant a token was issued in: its ``tid``, else the GUID in its issuer."""
    claims = token_claims(authorization)
    tenant = claims.get("tid")
    if isinstance(tenant, str) and tenant:
        return tenant
    issuer = str(claims.get("iss") or "")
    return issuer.rstrip("/").rsplit("/", 1)[-1] or "unknown"


class TenantTokens:
    """Stand-in for Entra issuing the multi-tenant app's tokens: a ``TokenCredential`` whose
    unsigned tokens carry ``tid`` (the customer tenant), ``aud`` (the scope's resource) and
    ``sub`` (the app). Production gets them through ``shared.tenants.defender_credential``
    (a federated credential over the managed identity), which needs the real login service."""

    def __init__(self, tenant_id: str, client_id: str = "huntwire-app") -> None:
        self.tenant_id = tenant_id
        self.client_id = client_id

    def get_token(self, *scopes: str, **kwargs: Any) -> Any:
        from azure.core.credentials import AccessToken

        audience = scopes[0].removesuffix("/.default") if scopes else ""
        now = int(time.time())
        payload = {"aud": audience, "tid": self.tenant_id, "sub": self.client_id,
                   "iss": f"https://sts.windows.net/{self.tenant_id}/", "iat": now,
                   "nbf": now - 60, "exp": now + 3600}
        body = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
        head = base64.urlsafe_b64encode(b'{"alg":"none","typ":"JWT"}').decode().rstrip("=")
        return AccessToken(f"{head}.{body}.", now + 3600)
