"""The Sentinel-native forms of the three command-line hunts, derived from their Defender files.

``asim-<stem>.yaml`` runs the Defender hunt's logic over ASIM process events (``_Im_ProcessEvent``:
Windows Security 4688, Sysmon 1, any source with an ASIM parser); ``scriptblock-<stem>.yaml`` runs
it over PowerShell script blocks (event 4104 in the ``Event`` table), whose text is the script
after PowerShell removed every layer of obfuscation. Only the source rows differ: a prelude maps
them onto the Defender column names the logic reads, and a last ``project`` names the result. The
logic between them is the Defender file's, byte for byte (tests/test_hunts_sentinel_native.py).
Regenerate after editing a Defender hunt: ``python tests/native_hunts.py``.
"""

from __future__ import annotations

from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
HUNTS = REPO / "hunts"
STEMS = ("powershell-socket-reverse-shell", "powershell-encoded-reverse-shell",
         "powershell-download-cradle-stager")
FORMS = ("asim", "scriptblock")
IDS = {
    ("asim", "powershell-socket-reverse-shell"): "0c6e1f3a-8b27-4d95-a4e0-7f2b9c5d1e63",
    ("asim", "powershell-encoded-reverse-shell"): "7a4d2e90-3f5b-4c18-b6a7-e1d0c9f8b254",
    ("asim", "powershell-download-cradle-stager"): "c3f85b12-9e6d-4a07-8d2c-5b1a4e7f0d96",
    ("scriptblock", "powershell-socket-reverse-shell"): "2b9e7d45-1c3a-4f86-9e50-d4a6b8c2f017",
    ("scriptblock", "powershell-encoded-reverse-shell"): "e5a03c68-4d1f-4b92-a7e3-9c6f2d8b1a40",
    ("scriptblock", "powershell-download-cradle-stager"): "9f1d6a27-b58e-4c30-8f4d-2e7a0b9c3d85",
}


def _decode_xml(expression: str) -> str:
    for entity, char in (("&lt;", "<"), ("&gt;", ">"), ("&quot;", '\\"'), ("&apos;", "'"),
                         ("&#39;", "'"), ("&amp;", "&")):
        expression = f'replace_string({expression}, "{entity}", "{char}")'
    return expression


def _data(name: str) -> str:
    return _decode_xml(f"extract(@'<Data Name=\"{name}\">([^<]*)</Data>', 1, EventData)")


PRELUDES = {
    "asim": (
        "_Im_ProcessEvent()\n"
        "| where EventType == \"ProcessCreated\"\n"
        "| extend FileName = tolower(extract(@\"([^\\\\/]+)$\", 1, TargetProcessName)),\n"
        "    ProcessCommandLine = TargetProcessCommandLine,\n"
        "    ProcessVersionInfoOriginalFileName = TargetProcessFileOriginalName\n"),
    "scriptblock": (
        "Event\n"
        "| where Source == \"Microsoft-Windows-PowerShell\" and EventID == 4104\n"
        f"| extend ScriptBlockText = {_data('ScriptBlockText')},\n"
        f"    ScriptBlockId = {_data('ScriptBlockId')}, ScriptPath = {_data('Path')}\n"
        "// the script block is the code itself: the command-line logic reads it as one\n"
        "| extend FileName = \"powershell.exe\", ProcessVersionInfoOriginalFileName = \"\",\n"
        "    ProcessCommandLine = ScriptBlockText\n"),
}
PROJECTS = {
    "asim": ("| project TimeGenerated, DeviceName = DvcHostname, EventProduct,"
             " AccountName = TargetUsername, ActorUsername, FileName, TargetProcessName,"
             " ProcessCommandLine,{decoded} InitiatingProcessFileName = ActingProcessName,"
             " InitiatingProcessCommandLine = ActingProcessCommandLine,"
             " ProcessId = TargetProcessId, ProcessCreationTime = TargetProcessCreationTime,"
             " InitiatingProcessId = ActingProcessId, TargetProcessGuid, ActingProcessGuid,"
             " Signals\n"),
    "scriptblock": ("| project TimeGenerated, DeviceName = Computer, AccountName = UserName,"
                    " ScriptBlockId, ScriptPath, ScriptBlockText,{decoded} Signals\n"),
}
DEDUP = {"asim": "[DeviceName, ProcessId, ProcessCreationTime]",
         "scriptblock": "[DeviceName, ScriptBlockId]"}
_ASIM_NOTES = """\
  Source rows: ASIM process-creation events through the unifying parser _Im_ProcessEvent,
  which covers Windows Security event 4688 (SecurityEvent, through the Windows Security
  Events via AMA connector with a DCR that collects 4688, and the audit policy 'Audit
  Process Creation' plus 'Include command line in process creation events' on the
  endpoints), Sysmon event 1 (Event table, a DCR collecting
  Microsoft-Windows-Sysmon/Operational!*) and every other ASIM process source deployed in
  the workspace. Lineage: ProcessId/InitiatingProcessId are the ASIM
  TargetProcessId/ActingProcessId (hexadecimal for 4688, decimal for Sysmon); Sysmon also
  gives TargetProcessGuid.
"""
_SCRIPTBLOCK_NOTES = """\
  Source rows: PowerShell script-block logging, event 4104 of
  Microsoft-Windows-PowerShell/Operational in the Event table (a DCR collecting
  'Microsoft-Windows-PowerShell/Operational!*[System[(EventID=4104)]]', and the policy
  'Turn on PowerShell Script Block Logging' on the endpoints). A script block is the code
  PowerShell compiled, after every -EncodedCommand, string and compression layer was
  removed, so obfuscation that hides a command line does not hide it here. Cannot see:
  the host process (4104 has no process id: join on DeviceName and time), a script split
  over several 4104 events (MessageTotal > 1) whose signs fall in different parts, and
  hosts where logging is off or was disabled by the attacker (the cradle hunt reports
  that tampering).
"""
SOURCES = {
    "asim": ("ASIM process events (_Im_ProcessEvent)", _ASIM_NOTES),
    "scriptblock": ("PowerShell script blocks (4104)", _SCRIPTBLOCK_NOTES),
}


def _split(query: str) -> tuple[str, str]:
    """(lets before the source table, logic after it up to the final project)."""
    lines = query.splitlines(keepends=True)
    start = next(i for i, line in enumerate(lines) if line.strip() == "DeviceProcessEvents")
    end = max(i for i, line in enumerate(lines) if line.startswith("| project "))
    return "".join(lines[:start]), "".join(lines[start + 1:end])


def logic(text: str) -> str:
    """The part of a hunt's query between its source rows and its final project."""
    query = str(yaml.safe_load(text)["query"])
    if "DeviceProcessEvents" in query:
        return _split(query)[1]
    lines = query.splitlines(keepends=True)
    start = max(i for i, line in enumerate(lines) if line.startswith("    ProcessCommandLine = ")
                or line.startswith("    ProcessVersionInfoOriginalFileName = "))
    end = max(i for i, line in enumerate(lines) if line.startswith("| project "))
    return "".join(lines[start + 1:end])


def render(form: str, stem: str) -> str:
    source = (HUNTS / f"{stem}.yaml").read_text(encoding="utf-8")
    document = yaml.safe_load(source)
    lets, body = _split(str(document["query"]))
    decoded = " DecodedCommand," if "DecodedCommand" in body else ""
    query = lets + PRELUDES[form] + body + PROJECTS[form].format(decoded=decoded)
    label, notes = SOURCES[form]
    name = document["name"]
    description = (f"  Sentinel-native form of the huntwire hunt \"{name}\" ({stem}.yaml)\n"
                   f"  over {label}, for workspaces without Defender for Endpoint: the same logic\n"
                   "  (generated by tests/native_hunts.py; do not edit by hand).\n" + notes + "\n"
                   + "".join(f"  {line}\n" if line else "\n"
                             for line in str(document["description"]).rstrip("\n").split("\n")))
    connectors = ("  - connectorId: SecurityEvents\n    dataTypes:\n      - SecurityEvent\n"
                  "  - connectorId: WindowsForwardedEvents\n    dataTypes:\n      - Event\n"
                  if form == "asim" else
                  "  - connectorId: WindowsForwardedEvents\n    dataTypes:\n      - Event\n")
    lists = "".join(f"{key}:\n" + "".join(f"  - {v}\n" for v in document[key])
                    for key in ("tactics", "relevantTechniques"))
    return (f"id: {IDS[(form, stem)]}\n"
            f"name: {document['name']} - Sentinel, {label}\n"
            f"description: |\n{description}"
            f"severity: {document['severity']}\n"
            f"requiredDataConnectors:\n{connectors}{lists}"
            "query: |\n" + _indent(query) +
            "version: 1.0.0\ntags:\n  - sentinel-native\n" +
            "".join(f"  - {t}\n" for t in document.get("tags", [])) +
            "source: sentinel\nfrequency: 1h\nlookback: 4h\n"
            f"dedupBy: {DEDUP[form]}\n")


def write_all() -> None:
    for form in FORMS:
        for stem in STEMS:
            (HUNTS / f"{form}-{stem}.yaml").write_text(render(form, stem), encoding="utf-8")



NETWORK_ID = "8e2c4f71-0b9d-4a36-95e8-c7d1a3f6b402"
NETWORK_STEM = "powershell-outbound-public-connection"
NETWORK_BODY = """_Im_NetworkSession()
| where NetworkDirection == "Outbound"
| extend FileName = tolower(extract(@"([^\\\\/]+)$", 1, SrcProcessName))
| where FileName in ("powershell.exe", "pwsh.exe", "powershell_ise.exe")
| extend Ip = parse_ipv4(replace_string(DstIpAddr, "::ffff:", ""))
| where isnotnull(Ip) and not(IsPrivateOrReserved(Ip) or IsMicrosoft365(Ip) or IsAllowedRange(Ip))
| extend RemoteHost = tolower(DstHostname)
| where not(RemoteHost matches regex AllowedHosts)
| summarize arg_min(TimeGenerated, *), Connections = count(), LastSeen = max(TimeGenerated)
    by Dvc, SrcProcessId, SrcProcessGuid, DstIpAddr, DstPortNumber
| project TimeGenerated, DeviceName = DvcHostname, EventProduct, AccountName = SrcUsername,
    FileName, SrcProcessName, ProcessId = SrcProcessId, ProcessGuid = SrcProcessGuid,
    RemoteIP = DstIpAddr, RemotePort = DstPortNumber, RemoteUrl = DstHostname, Connections,
    LastSeen
"""


_NETWORK_NOTES = """\
  Sentinel-native form of the huntwire hunt "PowerShell outbound connection to a public
  address" (powershell-outbound-public-connection.yaml) over ASIM network sessions
  (_Im_NetworkSession: Sysmon event 3 in the Event table, through a DCR collecting
  Microsoft-Windows-Sysmon/Operational!*, and every other ASIM network source with process
  names), for workspaces without Defender for Endpoint. The same excluded ranges and host
  names (generated by tests/native_hunts.py from the Defender file; do not edit by hand).
  One finding per PowerShell process and destination; ProcessGuid (Sysmon) joins the
  process-creation event of the ASIM process hunts.

  Triage, false positives and limits: as the Defender hunt. Sysmon's DestinationHostname
  is a reverse lookup, so the host-name exclusions apply only when it resolves; Sysmon
  records connections only for the images its configuration includes (include
  powershell.exe and pwsh.exe in the NetworkConnect rules).
"""


def _indent(text: str) -> str:
    return "".join(f"  {line}\n" if line else "\n" for line in text.split("\n")[:-1])


def render_network() -> str:
    """The public-connection hunt over ASIM network sessions, with the Defender file's lists."""
    document = yaml.safe_load((HUNTS / f"{NETWORK_STEM}.yaml").read_text(encoding="utf-8"))
    query = str(document["query"])
    lets = query[:query.index("DeviceNetworkEvents\n")]
    body = lets + NETWORK_BODY
    return (f"id: {NETWORK_ID}\n"
            f"name: {document['name']} - Sentinel, ASIM network sessions (_Im_NetworkSession)\n"
            "description: |\n"
            + _NETWORK_NOTES
            + f"severity: {document['severity']}\n"
            "requiredDataConnectors:\n  - connectorId: WindowsForwardedEvents\n    dataTypes:\n"
            "      - Event\n"
            + "".join(f"{key}:\n" + "".join(f"  - {v}\n" for v in document[key])
                      for key in ("tactics", "relevantTechniques"))
            + "query: |\n" + _indent(body)
            + "version: 1.0.0\ntags:\n  - sentinel-native\n  - network\n"
            "source: sentinel\nfrequency: 1h\nlookback: 4h\n"
            "dedupBy: [DeviceName, ProcessId, ProcessGuid, RemoteIP, RemotePort]\n")


def write_network() -> None:
    (HUNTS / f"asim-{NETWORK_STEM}.yaml").write_text(render_network(), encoding="utf-8")


if __name__ == "__main__":
    write_all()
    write_network()
