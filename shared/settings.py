"""App settings: read and validated once at start, one clear message per problem."""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

from .credentials import is_loopback
from .errors import ConfigurationError

APP_ROOT = Path(__file__).resolve().parents[1]
"""The folder of function_app.py: relative defaults live beside it."""
DEFAULT_HUNTS_DIR = APP_ROOT / "hunts"
DEFAULT_SUPPRESSIONS_DIR = APP_ROOT / "suppressions"
DEFAULT_SCHEDULE = "0 0 * * * *"
DEFAULT_GRAPH_ENDPOINT = "https://graph.microsoft.com"
DEFAULT_LOGS_ENDPOINT = "https://api.loganalytics.io"
DEFAULT_HEARTBEAT_HOUR: int | None = 8
DEFAULT_INCIDENT_WINDOW = timedelta(hours=2)
DEFAULT_INCIDENT_STORM_LIMIT = 10
DEFAULT_WORKERS = 4
"""Hunts queried at once in one invocation; per-tenant lanes and pacing bound it further."""

HUNTS_DIR = "HUNTWIRE_HUNTS_DIR"
SCHEDULE = "HUNTWIRE_SCHEDULE"
GRAPH_ENDPOINT = "HUNTWIRE_GRAPH_ENDPOINT"
LOGS_ENDPOINT = "HUNTWIRE_LOGS_ENDPOINT"
SENTINEL_WORKSPACE_ID = "HUNTWIRE_SENTINEL_WORKSPACE_ID"
SENTINEL_WORKSPACE_RESOURCE_ID = "HUNTWIRE_SENTINEL_WORKSPACE_RESOURCE_ID"
TENANT_ID = "HUNTWIRE_TENANT_ID"
STORAGE = "HUNTWIRE_STORAGE"
STORAGE_TABLE_URI = "HUNTWIRE_STORAGE__tableServiceUri"
TEAMS_WEBHOOK_URL = "HUNTWIRE_TEAMS_WEBHOOK_URL"
HEALTH_WEBHOOK_URL = "HUNTWIRE_HEALTH_WEBHOOK_URL"
SUPPRESSIONS_DIR = "HUNTWIRE_SUPPRESSIONS_DIR"
HEARTBEAT_HOUR = "HUNTWIRE_HEARTBEAT_HOUR"
INCIDENT_WINDOW = "HUNTWIRE_INCIDENT_WINDOW"
INCIDENT_STORM_LIMIT = "HUNTWIRE_INCIDENT_STORM_LIMIT"
SNOOZE_KEY = "HUNTWIRE_SNOOZE_KEY"
PUBLIC_URL = "HUNTWIRE_PUBLIC_URL"
CLIENT_ID = "AZURE_CLIENT_ID"
WORKERS = "HUNTWIRE_WORKERS"
FANOUT = "HUNTWIRE_FANOUT"
STORAGE_QUEUE_URI = "HUNTWIRE_STORAGE__queueServiceUri"
STORAGE_CREDENTIAL = "HUNTWIRE_STORAGE__credential"
STORAGE_CLIENT_ID = "HUNTWIRE_STORAGE__clientId"
"""The queue triggers' identity-based connection (read by the Functions host, docs/fanout.md)."""
TENANTS_FILE = "HUNTWIRE_TENANTS_FILE"

APP_SETTING_NAMES = frozenset({
    HUNTS_DIR, SCHEDULE, GRAPH_ENDPOINT, LOGS_ENDPOINT, SENTINEL_WORKSPACE_ID,
    SENTINEL_WORKSPACE_RESOURCE_ID, TENANT_ID, STORAGE, STORAGE_TABLE_URI, TEAMS_WEBHOOK_URL,
    HEALTH_WEBHOOK_URL, SUPPRESSIONS_DIR, HEARTBEAT_HOUR, INCIDENT_WINDOW, INCIDENT_STORM_LIMIT,
    SNOOZE_KEY, PUBLIC_URL, CLIENT_ID, WORKERS, FANOUT, STORAGE_QUEUE_URI, STORAGE_CREDENTIAL,
    STORAGE_CLIENT_ID, TENANTS_FILE,
})
"""Every setting the code reads; infra/ must set exactly these (test_infra checks)."""

SECRET_SETTINGS = frozenset({STORAGE, TEAMS_WEBHOOK_URL, HEALTH_WEBHOOK_URL, SNOOZE_KEY})
"""Never echoed in a message, a log line or a repr."""

MIN_SNOOZE_KEY_CHARS = 32

_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_WORKSPACE_RESOURCE_ID = re.compile(
    r"^/subscriptions/[0-9a-fA-F-]{36}/resourceGroups/[-\w.()]{1,90}/providers/"
    r"Microsoft\.OperationalInsights/workspaces/[A-Za-z0-9][-A-Za-z0-9]{2,62}$", re.IGNORECASE)
_DURATION = re.compile(r"^(\d{1,6})([smhd])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_NCRONTAB_FIELD = re.compile(r"^(\*|\d+)(-\d+)?(/\d+)?(,(\d+)(-\d+)?)*$|^\*/\d+$")
_NCRONTAB_RANGES = ((0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6))
_KEY_VAULT_REFERENCE = "@microsoft.keyvault("
T = TypeVar("T")


class SettingsError(ConfigurationError):
    """One or more settings are missing or malformed; ``problems`` has one line each."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        super().__init__("invalid settings:\n  " + "\n  ".join(problems))


@dataclass(frozen=True)
class Settings:
    hunts_dir: Path = DEFAULT_HUNTS_DIR
    schedule: str = DEFAULT_SCHEDULE
    graph_endpoint: str = DEFAULT_GRAPH_ENDPOINT
    logs_endpoint: str = DEFAULT_LOGS_ENDPOINT
    sentinel_workspace_id: str | None = None
    storage_connection_string: str | None = field(default=None, repr=False)
    table_service_uri: str | None = None
    teams_webhook_url: str | None = field(default=None, repr=False)
    client_id: str | None = None
    tenant_id: str | None = None
    sentinel_workspace_resource_id: str | None = None
    suppressions_dir: Path = DEFAULT_SUPPRESSIONS_DIR
    health_webhook_url: str | None = field(default=None, repr=False)
    """Where health notices go: HUNTWIRE_HEALTH_WEBHOOK_URL, else the Teams webhook."""
    heartbeat_hour: int | None = DEFAULT_HEARTBEAT_HOUR
    """UTC hour of the daily heartbeat; None when it is off."""
    incident_window: timedelta = DEFAULT_INCIDENT_WINDOW
    incident_storm_limit: int = DEFAULT_INCIDENT_STORM_LIMIT
    snooze_key: str | None = field(default=None, repr=False)
    public_url: str | None = None
    workers: int = DEFAULT_WORKERS
    tenants_file: Path | None = None
    """An MSSP's tenants (``shared.tenants``); None: the one tenant of these settings."""

    @property
    def has_storage(self) -> bool:
        return bool(self.storage_connection_string or self.table_service_uri)


def resolve_hunts_dir(env: Mapping[str, str], override: Path | str | None = None) -> Path:
    """The hunts folder: *override* (``--hunts``), else HUNTWIRE_HUNTS_DIR, else ``hunts/``."""
    return Path(override or (env.get(HUNTS_DIR) or "").strip() or DEFAULT_HUNTS_DIR)


def resolve_suppressions_dir(env: Mapping[str, str], override: Path | str | None = None) -> Path:
    """The suppressions folder: *override* (``--suppressions``), else the setting, else
    ``suppressions/`` beside function_app.py."""
    return Path(override or (env.get(SUPPRESSIONS_DIR) or "").strip() or DEFAULT_SUPPRESSIONS_DIR)


def load_settings(env: Mapping[str, str] | None = None, *, require_storage: bool = True,
                  hunts_dir: Path | str | None = None,
                  suppressions_dir: Path | str | None = None) -> Settings:
    """Build Settings from environment-like *env* (default ``os.environ``); *hunts_dir* and
    *suppressions_dir* override their settings (command-line flags). Raise SettingsError
    listing every problem."""
    env = os.environ if env is None else env
    value = {name: (env.get(name) or "").strip() or None for name in APP_SETTING_NAMES}
    problems: list[str] = []
    teams_webhook = value[TEAMS_WEBHOOK_URL]
    public_url = value[PUBLIC_URL]
    settings = Settings(
        hunts_dir=resolve_hunts_dir(env, hunts_dir),
        schedule=value[SCHEDULE] or DEFAULT_SCHEDULE,
        graph_endpoint=(value[GRAPH_ENDPOINT] or DEFAULT_GRAPH_ENDPOINT).rstrip("/"),
        logs_endpoint=(value[LOGS_ENDPOINT] or DEFAULT_LOGS_ENDPOINT).rstrip("/"),
        sentinel_workspace_id=value[SENTINEL_WORKSPACE_ID],
        storage_connection_string=value[STORAGE],
        table_service_uri=value[STORAGE_TABLE_URI],
        teams_webhook_url=teams_webhook,
        client_id=value[CLIENT_ID],
        tenant_id=value[TENANT_ID],
        sentinel_workspace_resource_id=value[SENTINEL_WORKSPACE_RESOURCE_ID],
        suppressions_dir=resolve_suppressions_dir(env, suppressions_dir),
        health_webhook_url=value[HEALTH_WEBHOOK_URL] or teams_webhook,
        heartbeat_hour=_parse(_heartbeat_hour, HEARTBEAT_HOUR, value, problems,
                              DEFAULT_HEARTBEAT_HOUR),
        incident_window=_parse(_duration, INCIDENT_WINDOW, value, problems,
                               DEFAULT_INCIDENT_WINDOW),
        incident_storm_limit=_parse(_storm_limit, INCIDENT_STORM_LIMIT, value, problems,
                                    DEFAULT_INCIDENT_STORM_LIMIT),
        snooze_key=value[SNOOZE_KEY],
        public_url=public_url.rstrip("/") if public_url else None,
        workers=_parse(_workers, WORKERS, value, problems, DEFAULT_WORKERS),
        tenants_file=Path(tenants_file) if (tenants_file := value[TENANTS_FILE]) else None,
    )
    problems += _problems(settings, value, require_storage=require_storage,
                          suppressions_given=bool(suppressions_dir or value[SUPPRESSIONS_DIR]))
    if problems:
        raise SettingsError(problems)
    return settings


def _problems(settings: Settings, value: Mapping[str, str | None], *, require_storage: bool,
              suppressions_given: bool) -> list[str]:
    problems = _folder_problems(HUNTS_DIR, settings.hunts_dir, required=True)
    problems += _folder_problems(SUPPRESSIONS_DIR, settings.suppressions_dir,
                                 required=suppressions_given)
    problems += _schedule_problems(settings.schedule)
    if settings.tenants_file is not None and not settings.tenants_file.is_file():
        problems.append(f"{TENANTS_FILE}: '{settings.tenants_file}' is not a file (unset it "
                        "for a single tenant)")
    urls = {**{name: value[name] for name in (STORAGE_TABLE_URI, TEAMS_WEBHOOK_URL,
                                               HEALTH_WEBHOOK_URL, PUBLIC_URL)},
            GRAPH_ENDPOINT: settings.graph_endpoint, LOGS_ENDPOINT: settings.logs_endpoint}
    for name, url in urls.items():
        if url:
            problems += _url_problems(name, url, secret=name in SECRET_SETTINGS)
    for name in (SENTINEL_WORKSPACE_ID, CLIENT_ID, TENANT_ID):
        guid = value[name]
        if guid and not _GUID.match(guid):
            problems.append(f"{name}: '{guid}' is not a GUID")
    resource_id = settings.sentinel_workspace_resource_id
    if resource_id and not _WORKSPACE_RESOURCE_ID.match(resource_id):
        problems.append(f"{SENTINEL_WORKSPACE_RESOURCE_ID}: '{resource_id}' is not a workspace "
                        "resource id (/subscriptions/<id>/resourceGroups/<group>/providers/"
                        "Microsoft.OperationalInsights/workspaces/<name>)")
    if settings.storage_connection_string:
        problems += _connection_string_problems(settings.storage_connection_string)
    problems += _token_over_http_problems(value[STORAGE_TABLE_URI])
    if require_storage and not settings.has_storage:
        problems.append(f"{STORAGE} (connection string) or {STORAGE_TABLE_URI} (managed "
                        "identity) must be set")
    return problems


def _parse(parse: Callable[[str], T], name: str, value: Mapping[str, str | None],
              problems: list[str], default: T) -> T:
    text = value[name]
    if text is None:
        return default
    try:
        return parse(text)
    except ValueError as error:
        problems.append(f"{name}: '{text}' {error}")
        return default


def _heartbeat_hour(text: str) -> int | None:
    if text.lower() == "off":
        return None
    if not text.isdigit() or not 0 <= int(text) <= 23:
        raise ValueError("is not an hour 0-23 (UTC) or 'off'")
    return int(text)


def _duration(text: str) -> timedelta:
    match = _DURATION.match(text.lower())
    if not match or int(match.group(1)) == 0:
        raise ValueError("is not a duration like 90m, 2h or 1d")
    span = timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])
    if span > timedelta(days=30):
        raise ValueError("is longer than 30 days")
    return span


def _storm_limit(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 1000:
        raise ValueError("is not a whole number from 1 to 1000")
    return int(text)


def _workers(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 64:
        raise ValueError("is not a whole number from 1 to 64")
    return int(text)


def _folder_problems(name: str, folder: Path, *, required: bool) -> list[str]:
    if folder.is_dir() or (not required and not folder.exists()):
        return []
    state = "is not a folder" if folder.exists() else "does not exist"
    return [f"{name}: folder '{folder}' {state}"]


def _url_problems(name: str, url: str, *, secret: bool = False) -> list[str]:
    shown = "the value" if secret else f"'{url}'"
    if url.lower().startswith(_KEY_VAULT_REFERENCE):
        return [f"{name}: the Key Vault reference was not resolved (check the app's identity "
                "and its Key Vault Secrets User role)"]
    try:
        parsed = urlsplit(url)
        port = parsed.port
    except ValueError as error:
        reason = "has an invalid port" if "port" in str(error).lower() else "is not a valid URL"
        return [f"{name}: {shown} {reason}"]
    if parsed.scheme not in ("https", "http") or not parsed.hostname:
        return [f"{name}: {shown} is not an http(s) URL"]
    if port == 0:
        return [f"{name}: {shown} has an invalid port"]
    if parsed.scheme == "http" and not is_loopback(url):
        return [f"{name}: {shown} must use https (plain http is allowed for loopback only)"]
    return _host_problems(name, shown, url, parsed.hostname)


def snooze_key_problems(key: str) -> list[str]:
    """Snoozing is optional: an unusable key turns it off with a warning (suppress.wiring),
    never stops a run."""
    if key.lower().startswith(_KEY_VAULT_REFERENCE):
        return [f"{SNOOZE_KEY}: the Key Vault reference was not resolved (check the app's "
                "identity and its Key Vault Secrets User role)"]
    if len(key) < MIN_SNOOZE_KEY_CHARS:
        return [f"{SNOOZE_KEY}: the key is shorter than {MIN_SNOOZE_KEY_CHARS} characters"]
    return []


def _connection_string_problems(connection_string: str) -> list[str]:
    """The storage connection string parses, names an account and a usable key or endpoint."""
    problem = f"{STORAGE}: the connection string "
    if connection_string.lower().startswith(_KEY_VAULT_REFERENCE):
        return [problem + "is a Key Vault reference that was not resolved"]
    parts = dict(p.split("=", 1) for p in connection_string.split(";") if "=" in p)
    keys = {k.strip().lower(): v.strip() for k, v in parts.items()}
    if keys.get("usedevelopmentstorage", "").lower() == "true":
        return []
    if not keys or any(p.strip() and "=" not in p for p in connection_string.split(";")):
        return [problem + "is not 'Key=Value;...' pairs (or UseDevelopmentStorage=true)"]
    if "accountkey" in keys and not _is_base64(keys["accountkey"]):
        return [problem + "has an AccountKey that is not base64"]
    for name in ("tableendpoint", "blobendpoint", "queueendpoint"):
        if name in keys and _url_problems(STORAGE, keys[name], secret=True):
            return [problem + f"has an invalid {_endpoint_name(name)}"]
    if "accountname" not in keys and "tableendpoint" not in keys:
        return [problem + "names neither AccountName nor TableEndpoint"]
    if not {"accountkey", "sharedaccesssignature"} & set(keys):
        return [problem + "has neither AccountKey nor SharedAccessSignature"]
    return _sdk_problems(connection_string, problem)


def _endpoint_name(lower: str) -> str:
    return {"tableendpoint": "TableEndpoint", "blobendpoint": "BlobEndpoint",
            "queueendpoint": "QueueEndpoint"}[lower]


def _is_base64(text: str) -> bool:
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    return bool(text)


def _sdk_problems(connection_string: str, problem: str) -> list[str]:
    """Whatever else the Tables SDK refuses (no network call is made)."""
    from azure.data.tables import TableServiceClient

    try:
        TableServiceClient.from_connection_string(connection_string).close()
    except ValueError:
        return [problem + "is malformed"]
    return []


def _schedule_problems(schedule: str) -> list[str]:
    fields = schedule.split()
    if len(fields) != 6:
        return [f"{SCHEDULE}: '{schedule}' must be an NCRONTAB expression with six fields "
                "(second minute hour day month day-of-week), e.g. '0 0 * * * *'"]
    for text, (low, high) in zip(fields, _NCRONTAB_RANGES, strict=True):
        numbers = [int(n) for n in re.findall(r"\d+", text.split("/")[0])]
        if not _NCRONTAB_FIELD.match(text) or any(n < low or n > high for n in numbers):
            return [f"{SCHEDULE}: field '{text}' of '{schedule}' is not valid NCRONTAB"]
    return []


_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")


def _host_problems(name: str, shown: str, url: str, host: str) -> list[str]:
    """A URL with whitespace or a host that is neither a DNS name nor an IP address would pass
    urlsplit and fail later, mid-run; refuse it here."""
    if any(char.isspace() or ord(char) < 32 for char in url):
        return [f"{name}: {shown} contains whitespace or control characters"]
    if host.startswith("[") or _is_ip(host):
        return []
    labels = host.rstrip(".").split(".")
    if not all(_HOST_LABEL.match(label) for label in labels):
        return [f"{name}: {shown} has a host that is not a valid host name"]
    return []


def _is_ip(host: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _token_over_http_problems(table_service_uri: str | None) -> list[str]:
    """The managed identity's token goes to the table endpoint: the storage SDK refuses it over
    plain http even on loopback, so say it now rather than fail building the ledger."""
    if table_service_uri and urlsplit(table_service_uri).scheme.lower() == "http":
        return [f"{STORAGE_TABLE_URI}: '{table_service_uri}' must use https: a managed identity "
                f"token is never sent over http (for Azurite over http set {STORAGE} to its "
                "connection string)"]
    return []
