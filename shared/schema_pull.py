"""``huntwire schema pull``: read the tenant's live table schemas into the schema cache file.

Defender XDR: one Graph ``runHuntingQuery`` whose query is a fuzzy union of ``T | getschema`` for
every table huntwire knows (tables the tenant lacks drop out). Sentinel: the Log Analytics
workspace metadata API (``GET {logs}/v1/workspaces/{id}/metadata``), which lists every table of
the workspace with its columns, custom ``_CL`` tables included. The cache is what the validator
and the local engine lay over the generated schemas.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from azure.core.credentials import TokenCredential
from azure.core.exceptions import ClientAuthenticationError

from .credentials import https_required
from .errors import ConfigurationError, SourceError
from .schemas import CACHE_FORMAT, FLAVOURS, Flavour, Schema, builtin_schemas, read_cache

TIMEOUT_SECONDS = 60
HUNTING_PATH = "/v1.0/security/runHuntingQuery"
# Graph and Log Analytics name types the .NET way in places; the cache keeps KQL's names.
TYPE_NAMES = {"system.string": "string", "string": "string", "system.datetime": "datetime",
              "datetime": "datetime", "system.int64": "long", "long": "long", "int64": "long",
              "system.int32": "int", "int": "int", "int32": "int", "system.boolean": "bool",
              "bool": "bool", "boolean": "bool", "system.double": "real", "real": "real",
              "double": "real", "system.object": "dynamic", "dynamic": "dynamic",
              "object": "dynamic", "system.guid": "guid", "guid": "guid",
              "system.timespan": "timespan", "timespan": "timespan", "system.sbyte": "bool",
              "system.decimal": "decimal", "decimal": "decimal"}


class SchemaPullError(SourceError):
    """The live schema could not be read; the message says from where and why."""


def getschema_query(tables: Iterable[str]) -> str:
    """One query returning ``TableName, ColumnName, ColumnType`` for every table that exists."""
    parts = [f'({name} | getschema | extend TableName = "{name}")' for name in sorted(tables)]
    return ("union isfuzzy=true " + ", ".join(parts) +
            "\n| project TableName, ColumnName, ColumnType, ColumnOrdinal"
            "\n| order by TableName asc, ColumnOrdinal asc")


def pull_defender(credential: TokenCredential, endpoint: str,
                  session: requests.Session | None = None) -> Schema:
    """The Defender tables huntwire knows, as the tenant has them (one hunting query)."""
    body = {"Query": getschema_query(builtin_schemas("defender"))}
    reply = _call(session, "POST", f"{endpoint}{HUNTING_PATH}", credential, endpoint, json=body)
    rows = _key(reply, "results")
    tables: Schema = {}
    for row in rows if isinstance(rows, list) else []:
        table, column, kind = (row.get(k) for k in ("TableName", "ColumnName", "ColumnType"))
        if isinstance(table, str) and isinstance(column, str):
            tables.setdefault(table, {})[column] = _kql_type(kind)
    return tables


def pull_sentinel(credential: TokenCredential, endpoint: str, workspace_id: str,
                  session: requests.Session | None = None) -> Schema:
    """Every table of the workspace with its columns (workspace metadata API)."""
    url = f"{endpoint}/v1/workspaces/{workspace_id}/metadata"
    reply = _call(session, "GET", url, credential, endpoint)
    tables: Schema = {}
    for table in reply.get("tables") or []:
        name = table.get("name") if isinstance(table, dict) else None
        if isinstance(name, str):
            tables[name] = {str(c["name"]): _kql_type(c.get("type"))
                            for c in table.get("columns") or [] if "name" in c}
    return tables


def write_cache(path: Path, pulled: dict[Flavour, Schema], now: datetime | None = None) -> None:
    """Write *pulled* flavours into the cache at *path*, keeping flavours not pulled this time."""
    kept = read_cache(path) if path.is_file() else {}
    tables = {flavour: pulled.get(flavour, kept.get(flavour, {})) for flavour in FLAVOURS}
    moment = (now or datetime.now(UTC)).astimezone(UTC).isoformat().replace("+00:00", "Z")
    document = {"format": CACHE_FORMAT, "pulled": moment, "tables": tables}
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")


def _call(session: requests.Session | None, method: str, url: str, credential: TokenCredential,
          endpoint: str, **kwargs: Any) -> dict[str, Any]:
    if https_required(endpoint) and not url.lower().startswith("https://"):
        raise ConfigurationError(f"refusing to send a token over plain http to {endpoint}")
    try:
        token = credential.get_token(f"{endpoint}/.default").token
    except ClientAuthenticationError as exc:
        raise SchemaPullError(f"no token for {endpoint}: {exc.message}", permanent=True) from exc
    http = session or requests.Session()
    try:
        reply = http.request(method, url, headers={"Authorization": f"Bearer {token}"},
                             timeout=TIMEOUT_SECONDS, **kwargs)
    except requests.RequestException as exc:
        raise SchemaPullError(f"{method} {url}: {type(exc).__name__}", permanent=False) from exc
    finally:
        if session is None:
            http.close()
    if reply.status_code != 200:
        raise SchemaPullError(f"{method} {url}: HTTP {reply.status_code}: {_error(reply)}",
                              permanent=reply.status_code not in (429, 500, 502, 503, 504))
    try:
        document = reply.json()
    except ValueError as exc:
        raise SchemaPullError(f"{method} {url}: the reply is not JSON") from exc
    if not isinstance(document, dict):
        raise SchemaPullError(f"{method} {url}: unexpected reply")
    return document


def _error(reply: requests.Response) -> str:
    try:
        error = reply.json().get("error") or {}
        return str(error.get("message") or error.get("code") or "")[:300]
    except (ValueError, AttributeError):
        return reply.text[:300]


def _key(document: dict[str, Any], name: str) -> Any:
    """Graph's keys vary in case between its docs and replies."""
    return next((v for k, v in document.items() if k.lower() == name), None)


def _kql_type(name: object) -> str:
    return TYPE_NAMES.get(str(name or "string").lower(), "string")
