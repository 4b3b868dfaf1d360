"""Column roles: what each column a hunt returns is to the analyst reading the card.

Roles come from the column's name (Defender and Sentinel tables, ASIM, the usual ``summarize``
aggregate names) and from the hunt (``teams.columns`` are always shown; ``entityMappings`` and
the summarize by-keys identify the finding). A column no rule knows is ``other``: shown as
``name: value``, never dropped.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

DEVICE, ACCOUNT, PROCESS, PARENT, GRANDPARENT = "device", "account", "process", "parent", \
    "grandparent"
ENDPOINT, FILE, HASH, REGISTRY, CLOUD = "endpoint", "file", "hash", "registry", "cloud"
ADDRESS = "address"
TIME, COUNT, DECODED, SIGNALS, DETAIL, NOISE, OTHER = "time", "count", "decoded", "signals", \
    "detail", "noise", "other"

_EXACT: dict[str, str] = {
    **dict.fromkeys(("DeviceId", "DeviceName", "Computer", "HostName", "Hostname", "Dvc",
                     "DvcHostname", "DvcId", "DvcFQDN", "SrcHostname", "MachineName"), DEVICE),
    **dict.fromkeys(("AccountName", "AccountDomain", "AccountUpn", "AccountSid",
                     "AccountObjectId", "AccountDisplayName", "UserPrincipalName", "UserId",
                     "Account", "TargetAccount", "TargetUserName", "SubjectUserName",
                     "SubjectDomainName", "TargetDomainName", "ActorUsername", "TargetUsername",
                     "SrcUsername", "DstUsername", "User", "UserName", "Caller", "Identity"),
                    ACCOUNT),
    **dict.fromkeys(("FileName", "ProcessCommandLine", "ProcessId", "ProcessCreationTime",
                     "CommandLine", "NewProcessName", "NewProcessId", "Process",
                     "TargetProcessName", "TargetProcessCommandLine", "TargetProcessId",
                     "TargetProcessCreationTime"), PROCESS),
    **dict.fromkeys(("ParentProcessName", "ParentProcessId", "ParentCommandLine",
                     "ParentFileName", "ActingProcessName", "ActingProcessCommandLine",
                     "ActingProcessId", "ActingProcessCreationTime"), PARENT),
    **dict.fromkeys(("RemoteIP", "RemotePort", "RemoteUrl", "DstIpAddr", "DstPortNumber",
                     "DstDomain", "DstHostname", "Url"), ENDPOINT),
    **dict.fromkeys(("IPAddress", "IpAddress", "SrcIpAddr", "ClientIP", "SourceIP",
                     "RemoteHost"), ADDRESS),
    **dict.fromkeys(("LocalIP", "LocalPort", "Protocol", "RemoteIPType", "LocalIPType",
                     "FolderPath", "ProcessIntegrityLevel", "ProcessTokenElevation", "LogonId",
                     "ActionType", "DirectToIp"), DETAIL),
    **dict.fromkeys(("Timestamp", "TimeGenerated", "LastSeen", "FirstSeen", "StartTime",
                     "EndTime"), TIME),
    **dict.fromkeys(("DecodedCommand", "DecodedScript"), DECODED),
    "Signals": SIGNALS,
    **dict.fromkeys(("ReportId", "TenantId", "Type", "SourceSystem", "_ResourceId", "MG",
                     "ManagementGroupName", "_SubscriptionId", "EventId"), NOISE),
    **dict.fromkeys(("Application", "AppId", "AppDisplayName", "ApplicationId",
                     "ResourceDisplayName", "CloudAppId", "ObjectName", "OperationName",
                     "ResourceId", "AzureResourceId"), CLOUD),
}
_PREFIXES: tuple[tuple[str, str], ...] = (
    ("InitiatingProcessParent", GRANDPARENT),
    ("InitiatingProcessAccount", ACCOUNT),
    ("InitiatingProcessVersionInfo", DETAIL),
    ("InitiatingProcessFolderPath", DETAIL),
    ("InitiatingProcessIntegrityLevel", DETAIL),
    ("InitiatingProcessTokenElevation", DETAIL),
    ("InitiatingProcessLogonId", DETAIL),
    ("InitiatingProcessSessionId", DETAIL),
    ("InitiatingProcessRemoteSession", DETAIL),
    ("InitiatingProcessSignature", DETAIL),
    ("InitiatingProcessSignerType", DETAIL),
    ("InitiatingProcessUniqueId", DETAIL),
    ("InitiatingProcessG", DETAIL),  # InitiatingProcessGrantedAccess ...
    ("InitiatingProcess", PARENT),
    ("ProcessVersionInfo", DETAIL),
    ("Registry", REGISTRY),
    ("ActingProcess", PARENT),
    ("ParentProcess", PARENT),
    ("TargetProcess", PROCESS),
)
_HASH = re.compile(r"(?i)(sha1|sha256|md5|hash)$")
_COUNT = re.compile(r"(?i)^(count_?|dcount_.*|sum_.*|avg_.*|max_.*|min_.*|.*count|connections"
                    r"|total.*|events?|hits)$")
_TIME = re.compile(r"(?:Time|Timestamp|Date)$")
_FILE = re.compile(r"^(File|Folder|Target[Ff]ile)")


def role_of(column: str) -> str:
    """The role of *column* by its name alone."""
    exact = _EXACT.get(column)
    if exact:
        return exact
    for prefix, role in _PREFIXES:
        if column.startswith(prefix):
            if role == PARENT and _HASH.search(column):
                return DETAIL
            return role
    if _HASH.search(column):
        return HASH
    if _COUNT.match(column):
        return COUNT
    if _TIME.search(column):
        return TIME
    if _FILE.match(column):
        return FILE
    return OTHER


def roles(columns: Iterable[str]) -> dict[str, str]:
    """Column -> role for every column."""
    return {column: role_of(column) for column in columns}


def is_empty(value: Any) -> bool:
    return value is None or (isinstance(value, (str, list, tuple, dict)) and not value)


def present(row: Mapping[str, Any], columns: Iterable[str]) -> list[str]:
    """*columns* that *row* has a value for, once each, in order."""
    return [c for c in dict.fromkeys(columns) if not is_empty(row.get(c))]
