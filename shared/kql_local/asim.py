"""Local stand-ins for Microsoft Sentinel's ASIM unifying parsers, so a hunt written over
``_Im_ProcessEvent(...)`` or ``_Im_NetworkSession(...)`` runs in ``eval`` on raw Windows rows.

Each parser is KQL over the raw tables a SOC without Defender for Endpoint has: Windows Security
4688 (``SecurityEvent``), Sysmon events 1 and 3 (the ``Event`` table, ``Source`` =
``Microsoft-Windows-Sysmon``, fields in the ``EventData`` XML). The columns and values follow
Microsoft's ASIM Process Event and Network Session schemas for the fields hunts use. A call
becomes the parser's table binding (placed before the query) plus one ``where`` per filtering
parameter, inline where the call stands. Parameters the schema does not declare are rejected by
``validate`` (Microsoft's parser) before a hunt ever runs.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from ..kql_text import split_top_level
from .let_functions import masked

_SYSMON = 'Event | where Source == "Microsoft-Windows-Sysmon"'


def _field(name: str) -> str:
    """The unescaped value of ``<Data Name="name">`` in a Sysmon ``EventData`` XML string."""
    raw = f"extract(@'<Data Name=\"{name}\">([^<]*)</Data>', 1, EventData)"
    for entity, char in (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '\\"'), ("&apos;", "'"),
                         ("&#39;", "'"), ("&amp;", "&")):
        raw = f'replace_string({raw}, "{entity}", "{char}")'
    return raw


def _assign(pairs: dict[str, str]) -> str:
    return ",\n        ".join(f"{name} = {value}" for name, value in pairs.items())


def _common(product: str, schema: str, event_type: str, original: str) -> dict[str, str]:
    return {"EventType": f'"{event_type}"', "EventProduct": f'"{product}"',
            "EventVendor": '"Microsoft"', "EventSchema": f'"{schema}"',
            "EventOriginalType": f'"{original}"', "EventResult": '"Success"', "EventCount": "1",
            "Dvc": "Computer", "DvcHostname": "Computer"}


_SUBJECT = 'strcat(SubjectDomainName, "\\\\", SubjectUserName)'
_SECURITY_4688 = {
    "TimeGenerated": "TimeGenerated",
    **_common("Security Events", "ProcessEvent", "ProcessCreated", "4688"),
    "ActorUsername": _SUBJECT, "ActingProcessName": "ParentProcessName",
    "ActingProcessId": "ProcessId", "ActingProcessGuid": '""', "ActingProcessCommandLine": '""',
    "TargetUsername": f'iff(isempty(TargetUserName) or TargetUserName == "-", {_SUBJECT}, '
                      'strcat(TargetDomainName, "\\\\", TargetUserName))',
    "TargetProcessName": "NewProcessName", "TargetProcessId": "NewProcessId",
    "TargetProcessGuid": '""', "TargetProcessCommandLine": "CommandLine",
    "TargetProcessFileOriginalName": '""', "TargetProcessCreationTime": "TimeGenerated",
}
_SYSMON_1 = {
    "TimeGenerated": "TimeGenerated",
    **_common("Sysmon", "ProcessEvent", "ProcessCreated", "1"),
    "ActorUsername": _field("User"), "ActingProcessName": _field("ParentImage"),
    "ActingProcessId": _field("ParentProcessId"), "ActingProcessGuid": _field("ParentProcessGuid"),
    "ActingProcessCommandLine": _field("ParentCommandLine"), "TargetUsername": _field("User"),
    "TargetProcessName": _field("Image"), "TargetProcessId": _field("ProcessId"),
    "TargetProcessGuid": _field("ProcessGuid"), "TargetProcessCommandLine": _field("CommandLine"),
    "TargetProcessFileOriginalName": _field("OriginalFileName"),
    "TargetProcessCreationTime": "TimeGenerated",
}
# One project per source (SecurityEvent has TargetUserName, which DuckDB cannot keep beside
# TargetUsername), the same columns in the same order on both sides of the union.
_PROCESS_EVENT = f"""union
    (SecurityEvent | where EventID == 4688
    | project {_assign(_SECURITY_4688)}),
    ({_SYSMON} and EventID == 1
    | project {_assign(_SYSMON_1)})"""

# Sysmon event 3: Initiated "true" is an outbound connection made by Image (the source side);
# "false" is a connection Image accepted (the destination side; Source* is the remote peer).
_SIDES = {f"{side}{item}": f'iff(Outbound {op} true, {value}, "")'
          for side, op in (("Src", "=="), ("Dst", "!="))
          for item, value in (("ProcessName", "Image"), ("ProcessId", "Pid"),
                              ("ProcessGuid", "Guid"), ("Username", "User"))}
_SYSMON_3 = {
    "TimeGenerated": "TimeGenerated",
    **_common("Sysmon", "NetworkSession", "EndpointNetworkSession", "3"),
    "NetworkDirection": 'iff(Outbound, "Outbound", "Inbound")',
    "NetworkProtocol": f"toupper({_field('Protocol')})",
    "SrcIpAddr": _field("SourceIp"), "SrcPortNumber": f"toint({_field('SourcePort')})",
    "SrcHostname": _field("SourceHostname"), "DstIpAddr": _field("DestinationIp"),
    "DstPortNumber": f"toint({_field('DestinationPort')})",
    "DstHostname": _field("DestinationHostname"), **_SIDES,
}
_PROCESS_FIELDS = {"Image": _field("Image"), "Pid": _field("ProcessId"),
                   "Guid": _field("ProcessGuid"), "User": _field("User")}
_NETWORK_SESSION = f"""{_SYSMON} and EventID == 3
    | extend Outbound = tolower({_field("Initiated")}) == "true"
    | extend {_assign(_PROCESS_FIELDS)}
    | project {_assign(_SYSMON_3)}"""


def _time_filters(arguments: dict[str, str]) -> list[str]:
    filters = []
    if "starttime" in arguments:
        filters.append(f"TimeGenerated >= ({arguments['starttime']})")
    if "endtime" in arguments:
        filters.append(f"TimeGenerated <= ({arguments['endtime']})")
    return filters


def _process_filters(arguments: dict[str, str]) -> list[str]:
    filters = _time_filters(arguments)
    if "eventtype" in arguments:
        filters.append(f"EventType == ({arguments['eventtype']})")
    return filters


PARSERS: dict[str, tuple[str, Callable[[dict[str, str]], list[str]]]] = {
    "_Im_ProcessEvent": (_PROCESS_EVENT, _process_filters),
    "_Im_NetworkSession": (_NETWORK_SESSION, _time_filters),
}
"""function name -> (KQL body over raw tables, filters for the call's named arguments)"""


def _binding(name: str) -> str:
    return f"__hw_asim{name}"


def _call_end(code: str, open_paren: int) -> int:
    depth = 0
    for index in range(open_paren, len(code)):
        depth += {"(": 1, ")": -1}.get(code[index], 0)
        if depth == 0:
            return index
    raise ValueError("unbalanced parentheses in an ASIM parser call")


def _arguments(text: str, code: str) -> dict[str, str]:
    """``starttime=ago(1h), pack=true`` -> {"starttime": "ago(1h)", "pack": "true"} (*code*: the
    same text with strings blanked, so a comma inside a string does not split)."""
    arguments: dict[str, str] = {}
    for part in split_top_level(text, ",", code=code):
        if part.strip():
            name, _, value = part.partition("=")
            arguments[name.strip()] = value.strip()
    return arguments


def expand(query: str) -> str:
    """*query* with every ASIM parser call replaced by its local binding (and filters)."""
    used: list[str] = []
    pattern = re.compile(r"\b(" + "|".join(map(re.escape, PARSERS)) + r")\s*\(")
    while True:
        code = masked(query)
        found = pattern.search(code)
        if not found:
            break
        name = found.group(1)
        end = _call_end(code, found.end() - 1)
        filters = PARSERS[name][1](_arguments(query[found.end():end], code[found.end():end]))
        replacement = _binding(name) + "".join(f" | where {f}" for f in filters)
        query = query[:found.start()] + replacement + query[end + 1:]
        if name not in used:
            used.append(name)
    preamble = "".join(f"let {_binding(n)} = {PARSERS[n][0]};\n" for n in used)
    return preamble + query
