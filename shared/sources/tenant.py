"""A tenant's query sources: Defender through the multi-tenant app, Sentinel through Lighthouse.

Defender XDR of a customer tenant is reached with the multi-tenant app consented there. The app
has no secret: its credential is a federated identity credential that trusts the function's
user-assigned managed identity, so the token request carries, as client assertion, a managed
identity token for the audience ``api://AzureADTokenExchange``
(azure-identity's ``ClientAssertionCredential``). Sentinel workspaces of customer tenants are
delegated to the managed identity itself (Azure Lighthouse), so they use its own credential, and
one Log Analytics query covers all of a tenant's workspaces.

Each tenant gets its own Graph pacer (45 calls a minute) and lane; every tenant shares the one
identity's Log Analytics pacer and lane (its limits are per user). The pacers come from the
run's :class:`shared.pacing.RateBook`: kept for the run, or shared by every instance.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from azure.core.credentials import TokenCredential
from azure.identity import ClientAssertionCredential

from ..pacing import RateBook
from ..retry import SYSTEM_CLOCK, CallPacer, Clock, Lane, RetryPolicy
from .base import QuerySource, Timeouts
from .defender import DefenderSource, graph_pacer, tenant_lanes
from .sentinel import SentinelSource, identity_lanes, logs_pacer

if TYPE_CHECKING:
    from ..settings import Settings
    from ..tenants import Tenant

TOKEN_EXCHANGE_SCOPE = "api://AzureADTokenExchange/.default"  # noqa: S105 - a scope, not a secret
"""The audience a federated identity credential trusting a managed identity expects."""


def defender_credential(tenant: Tenant, identity: TokenCredential) -> TokenCredential:
    """The token source for *tenant*'s Graph calls: the multi-tenant app signed in to that
    tenant with the managed identity's token as assertion; the identity itself when the tenant
    names no app (the function's own tenant)."""
    if tenant.defender_client_id is None or tenant.tenant_id is None:
        return identity
    return ClientAssertionCredential(tenant.tenant_id, tenant.defender_client_id,
                                     ManagedIdentityAssertion(identity))


@dataclass(frozen=True)
class ManagedIdentityAssertion:
    """The client assertion: a fresh managed identity token for the token-exchange audience
    (azure-identity caches and renews it)."""

    identity: TokenCredential

    def __call__(self) -> str:
        return self.identity.get_token(TOKEN_EXCHANGE_SCOPE).token


@dataclass
class SharedLimits:
    """The pacers and lanes shared across tenants: one per deployment and run (or process).
    *book*: where the pacers are kept (by default a book of this object's own, on *clock*)."""

    clock: Clock = SYSTEM_CLOCK
    book: RateBook | None = None
    logs_pacer: CallPacer = field(init=False)
    logs_lanes: tuple[Lane, ...] = field(init=False)

    def __post_init__(self) -> None:
        if self.book is None:
            self.book = RateBook(clock=self.clock)
        self.logs_pacer = logs_pacer(self.book, None, "logs")
        self.logs_lanes = identity_lanes(pacer=self.logs_pacer)

    def graph_pacer(self, tenant: Tenant, endpoint: str) -> CallPacer:
        assert self.book is not None
        return graph_pacer(self.book, tenant.key, endpoint)


def tenant_sources(tenant: Tenant, settings: Settings, identity: TokenCredential,
                   policy: RetryPolicy, timeouts: Timeouts,
                   shared: SharedLimits, *,
                   graph_credential: TokenCredential | None = None) -> dict[str, QuerySource]:
    """*tenant*'s sources by source name (Sentinel only when it has workspaces).
    *graph_credential*: the tenant's Graph token source (default :func:`defender_credential`;
    local stand-ins pass their own)."""
    pacer = shared.graph_pacer(tenant, settings.graph_endpoint)
    graph = graph_credential or defender_credential(tenant, identity)
    sources: dict[str, QuerySource] = {
        "defender": DefenderSource(graph, settings.graph_endpoint,
                                   policy=policy, timeouts=timeouts, clock=shared.clock,
                                   pacer=pacer, lanes=tenant_lanes(tenant.key, pacer))}
    if tenant.workspaces:
        first, *others = (workspace.id for workspace in tenant.workspaces)
        sources["sentinel"] = SentinelSource(
            identity, first, settings.logs_endpoint, server_timeout_seconds=180, policy=policy,
            connect_timeout_seconds=timeouts.connect_seconds,
            read_timeout_seconds=timeouts.read_seconds, clock=shared.clock,
            pacer=shared.logs_pacer, lanes=shared.logs_lanes, additional_workspaces=others)
    return sources
