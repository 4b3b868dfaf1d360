"""``huntwire schema pull``: read the tenant's live table schemas into the schema cache file.

Defender XDR: one Graph ``runHuntingQuery`` whose query is a fuzzy union of ``T | getschema`` for
every table huntwire knows (tables the tenant lacks drop out). Sentinel: the Log Analytics
workspace metadata API (``GET {logs}/v1/workspaces/{id}/metadata``), which lists every table of
the workspace with its columns, custom ``_CL`` tables included. The cache is what the validator
and the local engine lay over the generated schemas.

The answer is not trusted: it is read streamed up to :data:`MAX_ANSWER_BYTES`, and its shape,
names and types are checked (:mod:`shared.schemas.cache`) before anything is written; a
malformed answer writes nothing. Error messages never carry the token, even when a service
echoes the request's ``Authorization`` header back.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import requests
from azure.core.credentials import TokenCredential
from azure.core.exceptions import ClientAuthenticationError

from .credentials import https_required
from .errors import ConfigurationError, SourceError
from .files import write_atomically
from .schemas import CACHE_FORMAT, FLAVOURS, Flavour, Schema, builtin_schemas, read_cache
from .schemas.cache_check import MAX_ANSWER_BYTES, SchemaCacheError, check_tables, shown

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
_BEARER = re.compile(r"(?i)\bbearer\s+[A-Za-z0-9\-._~+/]+=*")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


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
    where = "Graph runHuntingQuery answer"
    rows = _key(reply, "results")
    if not isinstance(rows, list):
        raise _malformed(f"{where}: 'results' is {shown(rows)}, not a list")
    tables: dict[str, dict[Any, Any]] = {}
    for number, row in enumerate(rows, 1):
        if not isinstance(row, dict):
            raise _malformed(f"{where}: row {number} is {shown(row)}, not an object")
        table, column, kind = (row.get(k) for k in ("TableName", "ColumnName", "ColumnType"))
        if not isinstance(table, str):
            raise _malformed(f"{where}: row {number}: TableName is {shown(table)}")
        tables.setdefault(table, {})[column] = _kql_type(kind)
    return _checked(tables, where)


def pull_sentinel(credential: TokenCredential, endpoint: str, workspace_id: str,
                  session: requests.Session | None = None) -> Schema:
    """Every table of the workspace with its columns (workspace metadata API)."""
    url = f"{endpoint}/v1/workspaces/{workspace_id}/metadata"
    reply = _call(session, "GET", url, credential, endpoint)
    where = "workspace metadata answer"
    listed = reply.get("tables")
    if not isinstance(listed, list):
        raise _malformed(f"{where}: 'tables' is {shown(listed)}, not a list")
    tables: dict[Any, dict[str, Any]] = {}
    for number, table in enumerate(listed, 1):
        columns = table.get("columns") if isinstance(table, dict) else None
        if not isinstance(columns, list) or not all(isinstance(c, dict) for c in columns):
            raise _malformed(f"{where}: table {number} is not an object with a list of column "
                             "objects")
        tables[table.get("name")] = {c.get("name"): _kql_type(c.get("type")) for c in columns}
    return _checked(tables, where)


def write_cache(path: Path, pulled: dict[Flavour, Schema],
                now: datetime | None = None) -> str | None:
    """Write *pulled* flavours into the cache at *path*, keeping flavours not pulled this time.

    The file is replaced atomically. An existing cache that is unreadable is replaced too (this
    is how it is repaired); the returned note says what was dropped, else None."""
    note = None
    try:
        kept = read_cache(path)
    except SchemaCacheError as exc:
        kept = {}
        dropped = [f for f in FLAVOURS if f not in pulled]
        note = (f"the old cache was unusable and is replaced ({exc.message.split('; ')[0]})"
                + (f"; pull {' and '.join(dropped)} again" if dropped else ""))
    tables = {flavour: pulled.get(flavour, kept.get(flavour, {})) for flavour in FLAVOURS}
    moment = (now or datetime.now(UTC)).astimezone(UTC).isoformat().replace("+00:00", "Z")
    document = {"format": CACHE_FORMAT, "pulled": moment, "tables": tables}
    write_atomically(path, json.dumps(document, indent=1) + "\n")
    return note


def _checked(tables: dict[Any, dict[Any, Any]], where: str) -> Schema:
    try:
        return check_tables(tables, where)
    except SchemaCacheError as exc:
        raise _malformed(exc.message) from None


def _malformed(problem: str) -> SchemaPullError:
    return SchemaPullError(f"{problem}; refused, nothing was written", permanent=True)


def _call(session: requests.Session | None, method: str, url: str, credential: TokenCredential,
          endpoint: str, **kwargs: Any) -> dict[str, Any]:
    if https_required(endpoint) and not url.lower().startswith("https://"):
        raise ConfigurationError(f"refusing to send a token over plain http to {endpoint}")
    try:
        token = credential.get_token(f"{endpoint}/.default").token
    except ClientAuthenticationError as exc:
        first = (exc.message or type(exc).__name__).strip().splitlines()[0][:200]
        raise SchemaPullError(f"no token for {endpoint}: {first} (sign in with `az login`, or "
                              "run where a managed identity is)", permanent=True) from None
    http = session or requests.Session()
    try:
        status, body = _fetch(http, method, url, token, **kwargs)
    finally:
        if session is None:
            http.close()
    if status != 200:
        raise SchemaPullError(f"{method} {url}: HTTP {status}: {_error(body, token)}",
                              permanent=status not in (429, 500, 502, 503, 504))
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        raise _malformed(f"{method} {url}: the answer is not JSON") from None
    if not isinstance(document, dict):
        raise _malformed(f"{method} {url}: the answer is {shown(document)}, not an object")
    return document


def _fetch(http: requests.Session, method: str, url: str, token: str,
           **kwargs: Any) -> tuple[int, bytes]:
    """Status and body, the body read in chunks and refused past :data:`MAX_ANSWER_BYTES`."""
    try:
        with http.request(method, url, headers={"Authorization": f"Bearer {token}"},
                          timeout=TIMEOUT_SECONDS, stream=True, allow_redirects=False,
                          **kwargs) as reply:
            declared = reply.headers.get("Content-Length", "")
            if declared.isdigit() and int(declared) > MAX_ANSWER_BYTES:
                raise _too_large(method, url)
            chunks: list[bytes] = []
            size = 0
            for chunk in reply.iter_content(chunk_size=64 * 1024):
                size += len(chunk)
                if size > MAX_ANSWER_BYTES:
                    raise _too_large(method, url)
                chunks.append(chunk)
            return reply.status_code, b"".join(chunks)
    except requests.RequestException as exc:
        raise SchemaPullError(f"{method} {url}: {type(exc).__name__}", permanent=False) from None


def _too_large(method: str, url: str) -> SchemaPullError:
    return SchemaPullError(f"{method} {url}: the answer is over {MAX_ANSWER_BYTES // 2**20} MB; "
                           "refused, nothing was written", permanent=True)


def _error(body: bytes, token: str) -> str:
    """The service's error code and message, cut short, with credentials and control
    characters removed (a service may echo the request, Authorization header included)."""
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        document = None
    error = document.get("error") if isinstance(document, dict) else None
    if isinstance(error, dict):
        text = " ".join(str(error.get(k) or "") for k in ("code", "message")).strip()
    else:
        text = body[:2000].decode("utf-8", "replace")
    return redact(text, token)[:300]


def redact(text: str, token: str) -> str:
    """*text* without *token*, any bearer credential or JWT, and without control characters."""
    if token:
        text = text.replace(token, "<redacted>")
    text = _JWT.sub("<redacted>", _BEARER.sub("Bearer <redacted>", text))
    return _UNPRINTABLE.sub(" ", text)


def _key(document: dict[str, Any], name: str) -> Any:
    """Graph's keys vary in case between its docs and replies."""
    return next((v for k, v in document.items() if k.lower() == name), None)


def _kql_type(name: object) -> object:
    """KQL's name for a service's type name; anything unknown is kept as is, to be refused."""
    return TYPE_NAMES.get(name.lower(), name) if isinstance(name, str) else name
