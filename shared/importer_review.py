"""What an imported hunting query is for, and the schedule it should get (``huntwire import``).

- ``use``: ``alerting`` (fit to run every hour and page), ``investigation template`` (pinned to
  a fixed datetime, or to one address, host or account someone types in before running it), or
  ``inventory or posture`` (lists machines, software, configuration: a report, not an alert);
- the proposed ``frequency``/``lookback``: the query's own time range; when it sets none, the
  range its portal ran it over (Defender advanced hunting: 7 days by default; Sentinel: the file's
  ``queryPeriod``, else 1 day); a lookback over one day runs daily, not hourly;
- the watchlists it needs, read from the KQL code only (never from ``//`` comments).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

from .hunt import Hunt, parse_duration
from .hunt_time import format_span

ALERTING = "alerting"
TEMPLATE = "investigation template"
INVENTORY = "inventory or posture"

_FIXED_DATE = re.compile(r"\bdatetime\s*\(\s*['\"]?(\d{4}-\d{2}-\d{2}[^)'\"]*)['\"]?\s*\)", re.I)
_ONE_VALUE = re.compile(
    r"\blet\s+\w+\s*=\s*(?:\"|')([^\"'\n]*)(?:\"|')\s*;", re.I)
_PLACEHOLDER = re.compile(r"^(?:<[^>]+>|x{2,}|\.{3}|\d{1,3}(?:\.\d{1,3}){3}|[\w.-]+\.(?:com|local"
                          r"|net|org)|[\w.-]+@[\w.-]+|[A-Za-z]+\\\\?[\w$.-]+)$", re.I)
_INVENTORY_TABLES = re.compile(r"^(?:DeviceInfo|DeviceNetworkInfo|DeviceTvm\w*|Heartbeat|"
                               r"IdentityInfo|ExposureGraph\w*|Update|ConfigurationData|"
                               r"ConfigurationChange)$")
_INVENTORY_WORDS = re.compile(r"\b(?:inventory|uptime|posture|baseline|coverage|census|"
                              r"last seen|health check|list (?:of|all))\b", re.I)
_WATCHLIST = re.compile(r"_GetWatchlist\s*\(\s*['\"]([^'\"]+)['\"]")
_DEFENDER_PORTAL = timedelta(days=7)
_SENTINEL_PORTAL = timedelta(days=1)
DAY = timedelta(days=1)


@dataclass(frozen=True)
class Review:
    use: str
    why: str
    frequency: timedelta
    lookback: timedelta
    schedule_note: str


def review(hunt: Hunt, query_period: str | None = None) -> Review:
    """The use and the proposed schedule of one imported hunt."""
    code = without_comments(hunt.query)
    use, why = _use(hunt, code)
    frequency, lookback, note = _schedule(hunt, query_period)
    return Review(use, why, frequency, lookback, note)


def watchlists(query: str) -> list[str]:
    """Watchlist names the query's code reads (``_GetWatchlist('X')``), sorted."""
    return sorted(set(_WATCHLIST.findall(without_comments(query))))


def without_comments(query: str) -> str:
    """*query* without ``//`` comments; strings (which may hold ``//``) are kept."""
    out, index, quote = [], 0, ""
    while index < len(query):
        char = query[index]
        if quote:
            out.append(char)
            if char == "\\" and index + 1 < len(query) and query[index - 1:index] != "@":
                out.append(query[index + 1])
                index += 2
                continue
            quote = "" if char == quote else quote
        elif query.startswith("//", index):
            end = query.find("\n", index)
            index = len(query) if end < 0 else end
            continue
        else:
            quote = char if char in "'\"" else ""
            out.append(char)
        index += 1
    return "".join(out)


def _use(hunt: Hunt, code: str) -> tuple[str, str]:
    fixed = _FIXED_DATE.search(code)
    if fixed:
        return TEMPLATE, f"pinned to datetime({fixed.group(1).strip()})"
    for found in _ONE_VALUE.finditer(code):
        value = found.group(1).strip()
        if value and _PLACEHOLDER.match(value):
            return TEMPLATE, f"pinned to one value typed into the query ('{value}')"
    tables = set(re.findall(r"(?m)^\s*([A-Z][A-Za-z]+)\s*(?:\||$)", code))
    if tables and all(_INVENTORY_TABLES.match(t) for t in tables):
        return INVENTORY, f"reads only inventory tables ({', '.join(sorted(tables))})"
    if _INVENTORY_WORDS.search(f"{hunt.name} {hunt.description or ''}"):
        return INVENTORY, "its name or description says it lists or counts state"
    return ALERTING, "a behaviour over a time window"


def _schedule(hunt: Hunt, query_period: str | None) -> tuple[timedelta, timedelta, str]:
    lookback = hunt.lookback
    note = f"lookback {format_span(lookback)} ({hunt.lookback_reason})"
    if hunt.lookback_reason.startswith("default"):
        portal = _SENTINEL_PORTAL if hunt.source == "sentinel" else _DEFENDER_PORTAL
        period = _duration(query_period)
        lookback = period or portal
        origin = ("the file's queryPeriod" if period else
                  "Defender advanced hunting's default time range" if hunt.source != "sentinel"
                  else "a day, Sentinel's usual hunting range")
        note = (f"the query sets no time range: proposed lookback {format_span(lookback)} "
                f"({origin}); set `lookback:` to choose")
    frequency = hunt.frequency
    if lookback > DAY and frequency < DAY:
        frequency = DAY
        note += (f"; a {format_span(lookback)} lookback re-reads the same days every hour: "
                 "proposed frequency 1d (set `frequency:`)")
    return frequency, lookback, note


def _duration(text: str | None) -> timedelta | None:
    if not text:
        return None
    try:
        return parse_duration(str(text))
    except ValueError:
        return None
