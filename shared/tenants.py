"""The tenants one deployment serves (an MSSP's customers), read from a YAML file.

A single-tenant deployment needs no file: :func:`single_tenant` describes it from the settings.
With a file, each entry names a customer tenant and how huntwire reaches it::

    tenants:
      - name: Contoso                       # shown on cards, notices and `huntwire status`
        tenant_id: 6f1c...                  # the customer's Entra tenant id
        defender:
          client_id: 0a2b...                # the multi-tenant app consented in that tenant; its
                                            # credential is a federated identity credential
                                            # trusting the function's user-assigned identity
        sentinel:
          workspaces:                       # delegated to the function's identity (Lighthouse)
            - id: 5e0c...
              resource_id: /subscriptions/.../workspaces/contoso-sentinel   # optional: links
        teams_webhook_setting: HUNTWIRE_TEAMS_WEBHOOK_CONTOSO  # an app setting (Key Vault
                                            # reference); omitted: the shared webhook
        hunts: all                          # or a list of hunt ids
        suppressions: [suppressions/contoso]  # extra rule folders, relative to this file

Webhook URLs never appear in the file (they are secrets): the file names the app setting. Every
problem is one line naming the file, the entry and the field; one bad tenant refuses the file
(the operator fixes it before deploying), and at run time one failing tenant never blocks others.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import ConfigurationError
from .hunt_yaml import YamlProblem, decode, parse, printable
from .settings import (
    _GUID,
    _WORKSPACE_RESOURCE_ID,
    TEAMS_WEBHOOK_URL,
    Settings,
    _url_problems,
)

_SETTING_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_NAME = re.compile(r"^[^\x00-\x1f\x7f<>\[\]{}|\\`]{1,64}$")
_TENANT_KEYS = frozenset({"name", "tenant_id", "defender", "sentinel", "teams_webhook_setting",
                          "hunts", "suppressions"})
MAX_TENANTS = 500


class TenantsError(ConfigurationError):
    """The tenants file cannot be used; ``problems`` has one line each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid tenants file:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class Workspace:
    id: str
    resource_id: str | None = None


@dataclass(frozen=True)
class Tenant:
    name: str
    tenant_id: str | None
    """None: the function's own tenant (single-tenant deployments)."""
    defender_client_id: str | None = None
    """The multi-tenant app consented in this tenant; None: the function's own identity."""
    workspaces: tuple[Workspace, ...] = ()
    webhook_setting: str | None = None
    """The app setting holding this tenant's Teams webhook; None: the shared one."""
    hunts: frozenset[str] | None = None
    """Hunt ids to run; None: all."""
    suppressions: tuple[Path, ...] = ()

    @property
    def key(self) -> str:
        """Stable id for storage partitions, queues and pacing (phase 2: per-tenant stores)."""
        return self.tenant_id or "default"

    def runs(self, hunt_id: str) -> bool:
        return self.hunts is None or hunt_id in self.hunts

    def webhook_url(self, env: Mapping[str, str], shared: str | None) -> str | None:
        """This tenant's Teams webhook: its own setting's value, else the shared one."""
        if self.webhook_setting is None:
            return shared
        return (env.get(self.webhook_setting) or "").strip() or None


def single_tenant(settings: Settings) -> Tenant:
    """The one tenant of a deployment without a tenants file, from its settings."""
    workspaces = (Workspace(settings.sentinel_workspace_id,
                            settings.sentinel_workspace_resource_id),) \
        if settings.sentinel_workspace_id else ()
    return Tenant(name="default", tenant_id=settings.tenant_id, workspaces=workspaces)


def load_tenants(path: Path, env: Mapping[str, str], *,
                 known_hunts: Collection[str] | None = None) -> list[Tenant]:
    """The tenants of *path*; raises TenantsError listing every problem (one line each).

    *env*: the app settings, to check each tenant's webhook setting exists and is a URL.
    *known_hunts*: hunt ids loaded; a tenant naming another is a problem.
    """
    shown = printable(str(path))
    try:
        document, _ = parse(decode(path.read_bytes()))
    except OSError as exc:
        raise TenantsError([f"{shown}: cannot read ({exc.strerror or exc})"]) from None
    except YamlProblem as exc:
        where = f" line {exc.line}" if exc.line else ""
        raise TenantsError([f"{shown}{where}: {exc.reason}"]) from None
    entries = document.get("tenants") if isinstance(document, dict) else None
    if not isinstance(entries, list) or not entries:
        raise TenantsError([f"{shown}: expected 'tenants:' with a list of tenants"])
    if len(entries) > MAX_TENANTS:
        raise TenantsError([f"{shown}: {len(entries)} tenants, more than the {MAX_TENANTS} "
                            "one deployment serves"])
    problems: list[str] = []
    tenants = [_tenant(entry, f"{shown}: tenants[{index}]", path.parent, env, known_hunts,
                       problems) for index, entry in enumerate(entries)]
    problems += _duplicates(shown, tenants)
    if problems:
        raise TenantsError(problems)
    return tenants


def _tenant(entry: Any, where: str, folder: Path, env: Mapping[str, str],
            known_hunts: Collection[str] | None, problems: list[str]) -> Tenant:
    if not isinstance(entry, dict):
        problems.append(f"{where}: expected a mapping with name and tenant_id")
        return Tenant(name="?", tenant_id=None)
    unknown = sorted(str(key) for key in entry if key not in _TENANT_KEYS)
    if unknown:
        problems.append(f"{where}: unknown field(s) {', '.join(map(printable, unknown))}; "
                        f"known: {', '.join(sorted(_TENANT_KEYS))}")
    name = entry.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        problems.append(f"{where}.name: a display name of 1-64 characters is required "
                        "(no control characters or markup)")
        name = "?"
    where = f"{where} ({printable(name)})"
    return Tenant(
        name=name,
        tenant_id=_guid(entry.get("tenant_id"), f"{where}.tenant_id", problems, required=True),
        defender_client_id=_defender(entry.get("defender"), f"{where}.defender", problems),
        workspaces=_workspaces(entry.get("sentinel"), f"{where}.sentinel", problems),
        webhook_setting=_webhook(entry.get("teams_webhook_setting"),
                                 f"{where}.teams_webhook_setting", env, problems),
        hunts=_hunts(entry.get("hunts", "all"), f"{where}.hunts", known_hunts, problems),
        suppressions=_folders(entry.get("suppressions", []), f"{where}.suppressions", folder,
                              problems))


def _guid(value: Any, where: str, problems: list[str], *, required: bool) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not _GUID.match(value):
        shown = f"'{printable(str(value))[:60]}'" if value is not None else "missing"
        problems.append(f"{where}: {shown} is not a GUID")
        return None
    return value.lower()


def _defender(value: Any, where: str, problems: list[str]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict) or set(value) != {"client_id"}:
        problems.append(f"{where}: expected 'client_id:' of the multi-tenant app (its "
                        "credential is the function's managed identity; no secret goes here)")
        return None
    return _guid(value["client_id"], f"{where}.client_id", problems, required=True)


def _workspaces(value: Any, where: str, problems: list[str]) -> tuple[Workspace, ...]:
    if value is None:
        return ()
    listed = value.get("workspaces") if isinstance(value, dict) else None
    if not isinstance(listed, list) or set(value) != {"workspaces"}:
        problems.append(f"{where}: expected 'workspaces:' with a list of {{id, resource_id}}")
        return ()
    found: list[Workspace] = []
    for index, item in enumerate(listed):
        at = f"{where}.workspaces[{index}]"
        if not isinstance(item, dict) or not set(item) <= {"id", "resource_id"}:
            problems.append(f"{at}: expected id (the workspace GUID) and optional resource_id")
            continue
        workspace_id = _guid(item.get("id"), f"{at}.id", problems, required=True)
        resource_id = item.get("resource_id")
        if resource_id is not None and (not isinstance(resource_id, str)
                                        or not _WORKSPACE_RESOURCE_ID.match(resource_id)):
            problems.append(f"{at}.resource_id: not a workspace resource id (/subscriptions/<id>"
                            "/resourceGroups/<group>/providers/Microsoft.OperationalInsights/"
                            "workspaces/<name>)")
            resource_id = None
        if workspace_id is not None:
            found.append(Workspace(workspace_id, resource_id))
    return tuple(found)


def _webhook(value: Any, where: str, env: Mapping[str, str], problems: list[str]) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _SETTING_NAME.match(value):
        looks_like_url = isinstance(value, str) and "://" in value
        problems.append(f"{where}: " + (
            "a webhook URL is a secret and never goes in this file: store it in an app setting "
            "(a Key Vault reference) and put the setting's name here" if looks_like_url
            else "expected the name of an app setting"))
        return None
    url = (env.get(value) or "").strip()
    if not url:
        problems.append(f"{where}: app setting {value} is not set (set it to the tenant's "
                        f"webhook, or remove the field to use {TEAMS_WEBHOOK_URL})")
        return value
    problems += _url_problems(f"{where} ({value})", url, secret=True)
    return value


def _hunts(value: Any, where: str, known: Collection[str] | None,
           problems: list[str]) -> frozenset[str] | None:
    if value == "all":
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        problems.append(f"{where}: expected 'all' or a list of hunt ids")
        return frozenset()
    unknown = sorted(set(value) - set(known)) if known is not None else []
    if unknown:
        problems.append(f"{where}: no hunt with id {', '.join(map(printable, unknown[:5]))}"
                        + (f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else ""))
    return frozenset(value)


def _folders(value: Any, where: str, folder: Path, problems: list[str]) -> tuple[Path, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        problems.append(f"{where}: expected a list of folders")
        return ()
    found = []
    for text in value:
        path = (folder / text).resolve()
        if not path.is_dir():
            problems.append(f"{where}: folder '{printable(text)}' does not exist "
                            f"(relative to {printable(str(folder))})")
        found.append(path)
    return tuple(found)


def _duplicates(shown: str, tenants: Sequence[Tenant]) -> list[str]:
    problems = []
    for label, values in (("tenant_id", [t.tenant_id for t in tenants if t.tenant_id]),
                          ("name", [t.name.casefold() for t in tenants if t.name != "?"])):
        repeated = sorted({v for v in values if values.count(v) > 1})
        if repeated:
            problems.append(f"{shown}: {label} listed more than once: "
                            f"{', '.join(map(printable, repeated))}")
    return problems
