"""Assemble the day and write the JSON-lines files, the manifest and the README."""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from shared.schemas import table_schemas

from .attacks import (
    scenario_engineer,
    scenario_finance,
    scenario_hr,
    scenario_it,
    scenario_sales,
    scenario_server,
)
from .benign import Day, Marker, admin_of, boot, person
from .catalog import (
    C2_ENCODED,
    C2_PLAIN,
    DC01,
    DEFAULT_DAY,
    DNS_SUFFIX,
    DOMAIN,
    FS01,
    INTRANET,
    NETWORK_TABLE,
    PROCESS_TABLE,
    SEED,
    SQL01,
)
from .device import Device

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
        "columns named and typed as in `shared/schemas/defender.json` (Defender XDR advanced "
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


