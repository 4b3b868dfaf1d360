"""The fictitious contoso estate: names, versions, sites, binaries, accounts, processes."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

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


