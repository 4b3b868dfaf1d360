"""The registry of query sources: what each one is, as plain data, with no heavy imports.

Hunts, the KQL check, cards and the CLI read a source's facts here (time column, schema flavour,
default dedup, connectors, portal link); :func:`build` makes the live source from settings,
importing its module only then. Adding a source is one module with a ``build`` function and one
:func:`register` call below.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from ..schemas import Flavour

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

    from ..pacing import RateBook
    from ..retry import RetryPolicy
    from ..settings import Settings
    from .base import QuerySource, Timeouts

PortalLink = Literal["advanced-hunting", "sentinel-logs"]
Factory = Callable[["Settings", "TokenCredential", "RetryPolicy", "Timeouts", "RateBook"],
                   "QuerySource | None"]
"""``build(settings, credential, policy, timeouts, book)``: *book* keeps the rate pacers."""


@dataclass(frozen=True)
class SourceKind:
    """One query source, as hunts and cards see it."""

    name: str
    """The hunt file's ``source`` value."""
    title: str
    time_column: str
    schema_flavour: Flavour
    """Key of the ``shared/schemas/`` flavours used by the validator and local engine."""
    default_dedup: tuple[str, ...]
    required_columns: tuple[str, ...]
    """Columns every hunt of this source must return (checked by ``validate``)."""
    connectors: frozenset[str]
    """``requiredDataConnectors`` ids that make a hunt without ``source`` run here."""
    portal_link: PortalLink
    factory: str
    """``module:function`` building the source (a :data:`Factory`), imported on first use."""


SOURCES: dict[str, SourceKind] = {}
DEFAULT_SOURCE = "sentinel"
"""Where a hunt runs when no registered source claims its connectors (Azure-Sentinel files)."""


def register(kind: SourceKind) -> SourceKind:
    if kind.name in SOURCES:
        raise ValueError(f"source {kind.name} is registered twice")
    SOURCES[kind.name] = kind
    return kind


def source_kind(name: str) -> SourceKind:
    """The registered source *name*; KeyError names the known ones."""
    try:
        return SOURCES[name]
    except KeyError:
        raise KeyError(f"unknown source {name!r}; known: {', '.join(SOURCES)}") from None


def source_names() -> list[str]:
    return list(SOURCES)


def time_columns() -> list[str]:
    """Every source's time column, each once, in registration order."""
    return list(dict.fromkeys(kind.time_column for kind in SOURCES.values()))


def infer_source(connector_ids: Iterable[object]) -> str:
    """The first source whose connectors include one of *connector_ids*, else the default."""
    ids = set(connector_ids)
    for kind in SOURCES.values():
        if ids & kind.connectors:
            return kind.name
    return DEFAULT_SOURCE


def factory(name: str) -> Factory:
    module, _, function = source_kind(name).factory.partition(":")
    built: Factory = getattr(importlib.import_module(module), function)
    return built


register(SourceKind(
    name="defender", title="Defender", time_column="Timestamp", schema_flavour="defender",
    default_dedup=("DeviceId", "ReportId"), required_columns=("Timestamp", "DeviceId", "ReportId"),
    connectors=frozenset({"MicrosoftThreatProtection", "Microsoft365Defender",
                          "MicrosoftDefenderAdvancedThreatProtection"}),
    portal_link="advanced-hunting", factory="shared.sources.defender:build"))
register(SourceKind(
    name="sentinel", title="Sentinel", time_column="TimeGenerated", schema_flavour="sentinel",
    default_dedup=(), required_columns=(), connectors=frozenset(),
    portal_link="sentinel-logs", factory="shared.sources.sentinel:build"))
