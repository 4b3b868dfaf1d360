"""What ran, under what, as whom, to where: the facts of one row, and chains of rows that really
are one process tree (joined by process id and creation time, never by name or by time).

Pure functions, no escaping (the card does that).
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .correlate import _time_text

_ENCODED_FLAG = re.compile(
    r"(?i)(?:^|\s)[-/\u2013\u2014\u2015]e(?:c|n|nc|nco|ncod|ncode|ncoded|ncodedc|ncodedco|ncodedcom"
    r"|ncodedcomm|ncodedcomma|ncodedcomman|ncodedcommand)?\s+[\"']?([A-Za-z0-9+/]{16,}={0,2})")
_FROM_BASE64 = re.compile(r"(?i)frombase64string\s*\(\s*[\"']([A-Za-z0-9+/]{40,}={0,2})[\"']")
_FIRST_TABLE = re.compile(r"\b(DeviceProcessEvents|imProcessCreate|_Im_ProcessCreate|"
                          r"DeviceNetworkEvents|DeviceFileEvents|DeviceRegistryEvents|"
                          r"DeviceImageLoadEvents|DeviceLogonEvents|DeviceEvents|SecurityEvent|"
                          r"_Im_\w+|im\w+)\b")
_PROCESS_TABLES = frozenset({"DeviceProcessEvents", "imProcessCreate", "_Im_ProcessCreate"})
MAX_DECODE = 200_000
"""Characters of a base64 blob decoded at most (a card never shows more)."""


def text(value: Any) -> str:
    return "" if value is None else str(value).strip()


def first(row: Mapping[str, Any], *columns: str) -> str:
    for column in columns:
        value = text(row.get(column))
        if value:
            return value
    return ""


def endpoint(row: Mapping[str, Any]) -> str:
    """``IP:port (URL)`` of a network row (``[v6]:port`` for IPv6); '' for other rows."""
    address = first(row, "RemoteIP", "DstIpAddr")
    port = first(row, "RemotePort", "DstPortNumber")
    url = first(row, "RemoteUrl", "Url", "DstDomain", "DstHostname")
    if address and port:
        where = f"[{address}]:{port}" if ":" in address else f"{address}:{port}"
    else:
        where = address
    if where and url and url != address:
        return f"{where} ({url})"
    return where or url


def account(row: Mapping[str, Any]) -> str:
    """``domain\\name`` (or the UPN, or an ASIM user name) of the account that ran *row*."""
    name = first(row, "AccountName", "InitiatingProcessAccountName")
    if name:
        domain = first(row, "AccountDomain", "InitiatingProcessAccountDomain")
        return f"{domain}\\{name}" if domain else name
    return first(row, "AccountUpn", "InitiatingProcessAccountUpn", "UserPrincipalName",
                 "Account", "TargetAccount", "ActorUsername", "TargetUsername", "SrcUsername",
                 "TargetUserName", "SubjectUserName")


@dataclass(frozen=True)
class Proc:
    """One process a row names: its name, command line, id and creation time."""

    name: str
    command_line: str
    pid: str
    created: str

    @property
    def key(self) -> str | None:
        """``pid|creation time``: unambiguous only with both (Windows reuses ids)."""
        return f"{self.pid}|{self.created}" if self.pid and self.created else None

    def __bool__(self) -> bool:
        return bool(self.name or self.command_line or self.pid)


def _proc(row: Mapping[str, Any], name: tuple[str, ...], command: tuple[str, ...],
          pid: tuple[str, ...], created: tuple[str, ...]) -> Proc:
    return Proc(first(row, *name), first(row, *command), first(row, *pid),
                _time_text(next((row.get(c) for c in created if row.get(c)), None)))


def is_process_row(row: Mapping[str, Any]) -> bool:
    """A row about a process start (its own ``FileName``/``ProcessId``), not a row that only
    names the process that acted (network, file, registry events)."""
    return bool(first(row, "ProcessCommandLine", "ProcessId", "CommandLine", "NewProcessName",
                      "TargetProcessName") or (first(row, "FileName")
                                               and not first(row, "RemoteIP", "RegistryKey")))


def reads_process_events(query: str) -> bool:
    """Whether the first event table *query* reads is a process-creation table: there the
    initiating process is the parent, elsewhere (network, file, registry) it is the actor."""
    match = _FIRST_TABLE.search(query)
    return match is not None and match.group(1) in _PROCESS_TABLES


def lineage(row: Mapping[str, Any]) -> list[Proc]:
    """The processes of *row*, oldest first: [grandparent, parent, process] for a process row,
    [parent, process] when the row's actor is the initiating process."""
    initiating = _proc(row, ("InitiatingProcessFileName", "ParentProcessName",
                             "ActingProcessName"),
                       ("InitiatingProcessCommandLine", "ParentCommandLine",
                        "ActingProcessCommandLine"),
                       ("InitiatingProcessId", "ParentProcessId", "ActingProcessId"),
                       ("InitiatingProcessCreationTime", "ActingProcessCreationTime"))
    grand = _proc(row, ("InitiatingProcessParentFileName",), (), ("InitiatingProcessParentId",),
                  ("InitiatingProcessParentCreationTime",))
    if not is_process_row(row):
        return [grand, initiating]
    own = _proc(row, ("FileName", "NewProcessName", "TargetProcessName"),
                ("ProcessCommandLine", "CommandLine", "TargetProcessCommandLine"),
                ("ProcessId", "NewProcessId", "TargetProcessId"),
                ("ProcessCreationTime", "TargetProcessCreationTime"))
    return [grand, initiating, own]


@dataclass
class _Node:
    label: str
    parent: str | None = None
    children: set[str] = field(default_factory=set)
    rows: set[int] = field(default_factory=set)
    destinations: list[str] = field(default_factory=list)


def chains(rows: Sequence[Mapping[str, Any]], limit: int = 3) -> list[list[str]]:
    """Process chains that join at least two rows by process id and creation time: each a list
    of ``name`` nodes, a node that connected out followed by ``[ip:port (url)]``, the last
    node's connections last. Rows that share nothing give no chain."""
    nodes: dict[str, _Node] = {}
    for index, row in enumerate(rows):
        procs = lineage(row)
        keys = [p.key or f"row{index}:{level}" for level, p in enumerate(procs)]
        previous: str | None = None
        for proc, key in zip(procs, keys, strict=True):
            if not proc:
                previous = None
                continue
            node = nodes.setdefault(key, _Node(proc.name or f"pid {proc.pid}"))
            node.rows.add(index)
            if not node.label and proc.name:
                node.label = proc.name
            if previous is not None and node.parent is None and previous != key:
                node.parent = previous
                nodes[previous].children.add(key)
            previous = key
        target = endpoint(row)
        if target and previous is not None and target not in nodes[previous].destinations:
            nodes[previous].destinations.append(target)
    found: list[list[str]] = []
    for key, node in nodes.items():
        if node.children:
            continue
        path = _path(nodes, key)
        if len(set().union(*(nodes[k].rows for k in path))) < 2:
            continue
        found.append(_labels(nodes, path))
    found.sort(key=len, reverse=True)
    return found[:limit]


def _path(nodes: Mapping[str, _Node], leaf: str) -> list[str]:
    path = [leaf]
    while (parent := nodes[path[-1]].parent) is not None and parent not in path:
        path.append(parent)
    return path[::-1]


def _labels(nodes: Mapping[str, _Node], path: list[str]) -> list[str]:
    labels = []
    for position, key in enumerate(path):
        node = nodes[key]
        last = position == len(path) - 1
        if node.destinations and not last:
            labels.append(f"{node.label} [{', '.join(node.destinations[:3])}]")
        else:
            labels.append(node.label)
    return labels + nodes[path[-1]].destinations[:5]


def encoded_blob(command: str) -> tuple[str, str] | None:
    """(base64 blob, decoded text) of an ``-EncodedCommand`` argument or ``FromBase64String``
    literal in *command*; None when there is none or it does not decode to text."""
    for pattern in (_ENCODED_FLAG, _FROM_BASE64):
        match = pattern.search(command)
        if match:
            decoded = decode_base64(match.group(1))
            if decoded is not None:
                return match.group(1), decoded
    return None


def decode_base64(blob: str) -> str | None:
    """UTF-16LE (PowerShell's -EncodedCommand) or UTF-8 text of *blob*, when printable."""
    try:
        raw = base64.b64decode(blob[:MAX_DECODE] + "=" * (-len(blob[:MAX_DECODE]) % 4))
    except (binascii.Error, ValueError):
        return None
    for encoding in ("utf-16-le", "utf-8"):
        try:
            decoded = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in decoded)
        if decoded and printable >= 0.95 * len(decoded):
            return decoded
    return None


def blob_as_length(command: str, blob: str) -> str:
    """*command* with *blob* replaced by its length (the decoded text is shown instead)."""
    return command.replace(blob, f"‹base64, {len(blob):,} characters, decoded below›")


PLAIN_SIGNALS = {
    "channel": "opens a network channel",
    "runs-input": "runs what it receives",
    "reads": "reads from the connection",
    "writes": "writes back to it",
    "out-string": "sends command output back",
    "loop": "loops",
    "prompt": "shows a shell prompt",
    "http-poll": "polls a web server for commands",
    "shell-tool": "a known reverse-shell tool",
    "encoded": "encoded command",
    "double-encoded": "command encoded twice",
    "cradle": "downloads code and runs it",
    "ip-literal": "downloads from a bare IP address",
    "url-port": "URL with an unusual port",
    "hidden": "hidden window",
    "odd-downloader": "unusual download method",
    "offensive-tool": "a known attack tool",
    "load-then-call": "loads a module, then calls it",
    "obfuscated": "obfuscated text",
    "amsi-tamper": "tampers with antivirus scanning (AMSI)",
    "registry-loader": "loads code from the registry",
    "compressed-payload": "compressed payload",
    "assembly-load": "loads a .NET assembly in memory",
    "encrypted-payload": "encrypted payload",
    "char-encoded": "payload built from character codes",
    "undecodable-hidden": "hidden encoded command that does not decode",
    "hidden-downloader": "obfuscated code that fetches a URL",
    "user-content-host": "downloads from a paste, gist or tunnel host",
    "launcher": "script piped in or built through cmd",
    "engine-host": "PowerShell engine inside another program",
    "lolbin-host": "engine loaded by a system binary attackers abuse",
    "user-writable-host": "engine loaded by a program in a user-writable folder",
    "unmanaged-host": "engine loaded by an unknown program",
    "fetch-then-exec": "downloads, then runs what it fetched",
    "connects-out": "then connects out",
    "hidden-command-line": "the command line hides what ran",
    "amsi-detection": "antivirus scanning (AMSI) flagged the script",
    "first-seen": "first connection to this internal host in 14 days",
    "uncommon-port": "on a port this host does not serve admins on",
    "beaconing": "repeated connections (beaconing)",
}
"""Analyst words for the pack's ``Signals`` (the machine names stay in the finding row)."""


def plain_signals(words: Sequence[str]) -> str:
    """``opens a network channel, runs what it receives`` for ``channel runs-input``."""
    return ", ".join(PLAIN_SIGNALS.get(w.lower(), w.replace("-", " ").replace("_", " "))
                     for w in words)
