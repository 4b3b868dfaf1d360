"""The ordinary day: boots, logons, services, scheduled tasks, users at work."""

from __future__ import annotations

import base64
import random
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from .catalog import (
    BINARIES,
    DC01,
    DEFENDER_SITES,
    DOMAIN,
    DOMAIN_SID,
    EDGE_EXE,
    EDGE_SITES,
    INTRANET,
    LOCAL_SERVICE,
    NETWORK_SERVICE,
    NETWORK_TABLE,
    OFFICE_DIR,
    OUTLOOK_SITES,
    PLATFORM_DIR,
    PROCESS_TABLE,
    SENSE_SITES,
    SYSTEM,
    TEAMS_SITES,
    UPN_SUFFIX,
    WU_SITES,
    Account,
    Person,
    Proc,
)
from .device import Device, edge_cmd, exact, guid, iso, svchost, webview_cmd

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


