"""App settings: read and validated once at start, one clear message per problem."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

from .credentials import is_loopback
from .errors import ConfigurationError

DEFAULT_HUNTS_DIR = Path(__file__).resolve().parents[1] / "hunts"
DEFAULT_SCHEDULE = "0 0 * * * *"
DEFAULT_GRAPH_ENDPOINT = "https://graph.microsoft.com"
DEFAULT_LOGS_ENDPOINT = "https://api.loganalytics.io"

HUNTS_DIR = "HUNTWIRE_HUNTS_DIR"
SCHEDULE = "HUNTWIRE_SCHEDULE"
GRAPH_ENDPOINT = "HUNTWIRE_GRAPH_ENDPOINT"
LOGS_ENDPOINT = "HUNTWIRE_LOGS_ENDPOINT"
SENTINEL_WORKSPACE_ID = "HUNTWIRE_SENTINEL_WORKSPACE_ID"
STORAGE = "HUNTWIRE_STORAGE"
STORAGE_TABLE_URI = "HUNTWIRE_STORAGE__tableServiceUri"
TEAMS_WEBHOOK_URL = "HUNTWIRE_TEAMS_WEBHOOK_URL"
CLIENT_ID = "AZURE_CLIENT_ID"

APP_SETTING_NAMES = frozenset({
    HUNTS_DIR, SCHEDULE, GRAPH_ENDPOINT, LOGS_ENDPOINT, SENTINEL_WORKSPACE_ID, STORAGE,
    STORAGE_TABLE_URI, TEAMS_WEBHOOK_URL, CLIENT_ID,
})
"""Every setting the code reads; infra/ must set exactly these (test_infra checks)."""

_GUID = re.compile(r"^[0-9a-fA-F]{8}-([0-9a-fA-F]{4}-){3}[0-9a-fA-F]{12}$")
_NCRONTAB_FIELD = re.compile(r"^(\*|\d+)(-\d+)?(/\d+)?(,(\d+)(-\d+)?)*$|^\*/\d+$")
_NCRONTAB_RANGES = ((0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (0, 6))


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

    @property
    def has_storage(self) -> bool:
        return bool(self.storage_connection_string or self.table_service_uri)


def load_settings(env: Mapping[str, str], *, require_storage: bool = True) -> Settings:
    """Build Settings from environment-like *env*; raise SettingsError listing every problem."""
    problems: list[str] = []
    value = {name: (env.get(name) or "").strip() or None for name in APP_SETTING_NAMES}
    settings = Settings(
        hunts_dir=Path(value[HUNTS_DIR] or DEFAULT_HUNTS_DIR),
        schedule=value[SCHEDULE] or DEFAULT_SCHEDULE,
        graph_endpoint=(value[GRAPH_ENDPOINT] or DEFAULT_GRAPH_ENDPOINT).rstrip("/"),
        logs_endpoint=(value[LOGS_ENDPOINT] or DEFAULT_LOGS_ENDPOINT).rstrip("/"),
        sentinel_workspace_id=value[SENTINEL_WORKSPACE_ID],
        storage_connection_string=value[STORAGE],
        table_service_uri=value[STORAGE_TABLE_URI],
        teams_webhook_url=value[TEAMS_WEBHOOK_URL],
        client_id=value[CLIENT_ID],
    )
    if not settings.hunts_dir.is_dir():
        problems.append(f"{HUNTS_DIR}: folder '{settings.hunts_dir}' does not exist")
    problems += _schedule_problems(settings.schedule)
    problems += _url_problems(GRAPH_ENDPOINT, settings.graph_endpoint)
    problems += _url_problems(LOGS_ENDPOINT, settings.logs_endpoint)
    if settings.table_service_uri:
        problems += _url_problems(STORAGE_TABLE_URI, settings.table_service_uri)
    if settings.teams_webhook_url:
        problems += _url_problems(TEAMS_WEBHOOK_URL, settings.teams_webhook_url, secret=True)
    for name, guid in ((SENTINEL_WORKSPACE_ID, settings.sentinel_workspace_id),
                       (CLIENT_ID, settings.client_id)):
        if guid and not _GUID.match(guid):
            problems.append(f"{name}: '{guid}' is not a GUID")
    if require_storage and not settings.has_storage:
        problems.append(f"{STORAGE} (connection string) or {STORAGE_TABLE_URI} (managed "
                        "identity) must be set")
    if problems:
        raise SettingsError(problems)
    return settings


def _url_problems(name: str, url: str, *, secret: bool = False) -> list[str]:
    parsed = urlparse(url)
    shown = "the value" if secret else f"'{url}'"
    if parsed.scheme not in ("https", "http") or not parsed.hostname:
        return [f"{name}: {shown} is not an http(s) URL"]
    if parsed.scheme == "http" and not is_loopback(url):
        return [f"{name}: {shown} must use https (plain http is allowed for loopback only)"]
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
