"""Rows and labels of the telemetry corpus: the helpers build.py writes scenarios with."""

from __future__ import annotations

import base64
import html
import json
from collections import defaultdict
from typing import Any

DAY = "2026-11-02"
PS = r"C:\Windows\System32\WindowsPowerShell\v1.0\powershell.exe"
SMA = "System.Management.Automation.ni.dll"
ANY_ADDRESS = "0.0.0.0"  # noqa: S104 (a listener's local address in test rows, not a bind)

Row = dict[str, Any]
defender: dict[str, list[Row]] = defaultdict(list)
sentinel: dict[str, list[Row]] = defaultdict(list)
labels: dict[str, dict[str, str]] = {}
_report = [500_000]


def scenario(sid: str, label: str, form: str, source: str, tolerated: tuple[str, ...] = ()
             ) -> None:
    """*tolerated*: hunts documented to report this benign activity (their known noise)."""
    labels[sid] = {"label": label, "form": form, "source": source, "tolerated": list(tolerated)}


def t(hhmm: str, day: str = DAY) -> str:
    return f"{day}T{hhmm}:00Z"


def enc(script: str) -> str:
    return base64.b64encode(script.encode("utf-16-le")).decode()


def proc(sid: str, pid: int, name: str, folder: str, cmd: str, parent: str = "explorer.exe",
         ppid: int = 1000) -> Row:
    """The Initiating* columns of a Defender row made by process *pid* of device *sid*."""
    return {"DeviceId": sid, "DeviceName": f"{sid}.contoso.local", "InitiatingProcessId": pid,
            "InitiatingProcessCreationTime": t("09:00"), "InitiatingProcessFileName": name,
            "InitiatingProcessFolderPath": folder, "InitiatingProcessCommandLine": cmd,
            "InitiatingProcessParentFileName": parent, "InitiatingProcessParentId": ppid,
            "InitiatingProcessParentCreationTime": t("08:59"),
            "InitiatingProcessAccountDomain": "contoso", "InitiatingProcessAccountName": "user"}


def add(table: str, when: str, action: str, actor: Row, **fields: Any) -> None:
    _report[0] += 1
    defender[table].append({"Timestamp": when, "ActionType": action, "ReportId": _report[0],
                            **actor, **fields})


def image_load(when: str, actor: Row) -> None:
    add("DeviceImageLoadEvents", when, "ImageLoaded", actor, FileName=SMA,
        FolderPath=r"C:\Windows\assembly\NativeImages_v4.0.30319_64\System.Manaa57fc8cc#" + SMA)


def ps_command(when: str, actor: Row, *commands: str) -> None:
    for i, command in enumerate(commands):
        add("DeviceEvents", f"{when[:-3]}{i:02d}Z", "PowerShellCommand", actor,
            AdditionalFields=json.dumps({"Command": command}))


def connect(when: str, actor: Row, ip: str, port: int, action: str = "ConnectionSuccess",
            url: str = "", local_port: int = 50000, ip_type: str = "") -> None:
    add("DeviceNetworkEvents", when, action, actor, RemoteIP=ip, RemotePort=port, RemoteUrl=url,
        LocalIP="10.1.0.20", LocalPort=local_port, Protocol="Tcp",
        RemoteIPType=ip_type or ("Private" if ip.startswith(("10.", "192.168.", "172.")) else
                                 "Public"))


def created(when: str, sid: str, pid: int, name: str, cmd: str, parent: str = "explorer.exe"
            ) -> None:
    add("DeviceProcessEvents", when, "ProcessCreated", proc(sid, 1000, parent, "", ""),
        FileName=name, FolderPath=PS if name == "powershell.exe" else "", ProcessId=pid,
        ProcessCreationTime=when, ProcessCommandLine=cmd, AccountDomain="contoso",
        AccountName="user")


def sysmon(computer: str, when: str, event_id: int, data: dict[str, str]) -> None:
    def esc(value: str) -> str:
        return html.escape(value, quote=True).replace("&#x27;", "'")
    xml = ("<DataItem type=\"System.XmlData\"><EventData xmlns=\"http://schemas.microsoft.com/"
           "win/2004/08/events/event\">"
           + "".join(f'<Data Name="{k}">{esc(v)}</Data>' for k, v in data.items())
           + "</EventData></DataItem>")
    source = "Microsoft-Windows-Sysmon" if event_id in (1, 3) else "Microsoft-Windows-PowerShell"
    log = f"{source}/Operational"
    sentinel["Event"].append({"TimeGenerated": when, "Computer": computer, "EventID": event_id,
                              "Source": source, "EventLog": log, "EventData": xml,
                              "UserName": "CONTOSO\\user"})


def sysmon_process(computer: str, when: str, pid: int, image: str, cmd: str,
                   parent: str = r"C:\Windows\explorer.exe") -> None:
    sysmon(computer, when, 1, {"UtcTime": when, "ProcessGuid": f"{{{pid:08d}-0000-0000-0000-1}}",
                               "ProcessId": str(pid), "Image": image, "CommandLine": cmd,
                               "OriginalFileName": image.rsplit("\\", 1)[-1].upper(),
                               "User": "CONTOSO\\user", "ParentImage": parent,
                               "ParentProcessId": "1000", "ParentCommandLine": parent})


def sysmon_net(computer: str, when: str, pid: int, image: str, outbound: bool, src: str,
               sport: int, dst: str, dport: int) -> None:
    sysmon(computer, when, 3, {"UtcTime": when, "ProcessGuid": f"{{{pid:08d}-0000-0000-0000-1}}",
                               "ProcessId": str(pid), "Image": image, "User": "CONTOSO\\user",
                               "Protocol": "tcp", "Initiated": "true" if outbound else "false",
                               "SourceIp": src, "SourcePort": str(sport), "DestinationIp": dst,
                               "DestinationPort": str(dport), "DestinationHostname": ""})


def script_block(computer: str, when: str, text: str, block: str) -> None:
    sysmon(computer, when, 4104, {"MessageNumber": "1", "MessageTotal": "1",
                                  "ScriptBlockText": text, "ScriptBlockId": block, "Path": ""})


def security_4688(computer: str, when: str, pid: str, image: str, cmd: str,
                  parent: str = r"C:\Windows\explorer.exe") -> None:
    sentinel["SecurityEvent"].append({
        "TimeGenerated": when, "Computer": computer, "EventID": 4688, "Channel": "Security",
        "NewProcessName": image, "NewProcessId": pid, "CommandLine": cmd,
        "ParentProcessName": parent, "ProcessId": "0x3e8", "SubjectUserName": "user",
        "SubjectDomainName": "CONTOSO", "TargetUserName": "-", "Account": "CONTOSO\\user"})


