"""Delivery to a Teams Workflows webhook, against a real local HTTP server (devtools.webhook)."""

from __future__ import annotations

import itertools
import json
import logging
import socket
import time
import traceback
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from devtools.clock import ManualClock
from devtools.webhook import Answer, Drip, Hang, Reply, WebhookReceiver
from shared.cards import MAX_PAYLOAD_BYTES, PortalLinks, card_of, serialize, summarize_digest
from shared.errors import ConfigurationError, NotifyError
from shared.hunt import Hunt
from shared.incidents.model import IncidentPost
from shared.incidents.preview import incident_preview
from shared.notify import NOTIFIERS, Notice, build_notifier
from shared.notify import teams as teams_module
from shared.notify.teams import TeamsDeliveryError, TeamsNotifier, TeamsWebhook
from shared.retry import parse_retry_after
from shared.settings import Settings

PAYLOAD: dict[str, Any] = {"type": "message", "attachments": [{
    "contentType": "application/vnd.microsoft.card.adaptive",
    "content": {"type": "AdaptiveCard", "version": "1.4",
                "body": [{"type": "TextBlock", "text": "hunt: 1 new finding"}]}}]}


@pytest.fixture
def clock() -> ManualClock:
    """Real time plus the skipped waits: request timeouts against the server stay real."""
    return ManualClock(real=True)


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with WebhookReceiver() as server:
        yield server


def webhook(url: str, clock: ManualClock, **options: Any) -> TeamsWebhook:
    options.setdefault("timeout_seconds", 0.5)
    return TeamsWebhook(url, clock=clock, **options)


def secret_parts(receiver: WebhookReceiver) -> list[str]:
    return [receiver.sig, receiver.workflow, receiver.url]


def assert_hides_url(text: str, receiver: WebhookReceiver) -> None:
    for secret in secret_parts(receiver):
        assert secret not in text


# --- success ---------------------------------------------------------------------------------

def test_202_is_success_and_the_server_receives_the_exact_payload(
        receiver: WebhookReceiver, clock: ManualClock) -> None:
    result = webhook(receiver.url, clock).post(PAYLOAD)

    assert result.status == 202
    assert result.attempts == 1
    assert result.payload_bytes == len(serialize(PAYLOAD))
    assert receiver.payloads == [PAYLOAD]
    assert receiver.posts[0].headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("status", [200, 201, 204])
def test_any_2xx_is_success(clock: ManualClock, status: int) -> None:
    with WebhookReceiver([Reply(status)]) as receiver:
        assert webhook(receiver.url, clock).post(PAYLOAD).status == status


# --- retries ---------------------------------------------------------------------------------

def test_429_is_retried_after_the_retry_after_seconds(clock: ManualClock) -> None:
    with WebhookReceiver([Reply(429, {"Retry-After": "7"}), Reply(202)]) as receiver:
        result = webhook(receiver.url, clock).post(PAYLOAD)

    assert result.attempts == 2
    assert 7.0 in clock.sleeps
    assert len(receiver.posts) == 2


def test_5xx_is_retried_with_growing_back_off(clock: ManualClock) -> None:
    with WebhookReceiver([Reply(500), Reply(502), Reply(503), Reply(202)]) as receiver:
        result = webhook(receiver.url, clock, min_interval_seconds=0).post(PAYLOAD)

    assert result.attempts == 4
    backoffs = [s for s in clock.sleeps if s > 0]
    assert len(backoffs) == 3
    assert backoffs[0] < backoffs[1] < backoffs[2]


def test_a_hanging_server_times_out_and_is_retried(clock: ManualClock) -> None:
    with WebhookReceiver([Hang(), Reply(202)]) as receiver:
        result = webhook(receiver.url, clock, timeout_seconds=0.3).post(PAYLOAD)

    assert result.attempts == 2
    assert [type(p.answer).__name__ for p in receiver.posts] == ["Hang", "Reply"]


def test_the_issue_sequence_202_then_429_500_and_a_hang_fails_without_the_url(
        clock: ManualClock) -> None:
    answers: list[Answer] = [Reply(202), Reply(429, {"Retry-After": "1"}), Reply(500), Hang()]
    with WebhookReceiver(answers) as receiver:
        hook = webhook(receiver.url, clock, max_attempts=3, timeout_seconds=0.3)
        first = hook.post(PAYLOAD)
        with pytest.raises(TeamsDeliveryError) as failure:
            hook.post(PAYLOAD)

    assert first.status == 202
    assert failure.value.attempts == 3
    assert failure.value.retryable
    assert "timed out" in str(failure.value)
    assert 1.0 in clock.sleeps
    assert len(receiver.posts) == 4
    assert_hides_url(" ".join(traceback.format_exception(failure.value)), receiver)


def test_gives_up_after_max_attempts(clock: ManualClock) -> None:
    with (WebhookReceiver(default=Reply(500)) as receiver,
          pytest.raises(TeamsDeliveryError) as failure):
        webhook(receiver.url, clock, max_attempts=4).post(PAYLOAD)

    assert len(receiver.posts) == 4
    assert failure.value.status == 500
    assert failure.value.retryable


def test_retry_after_beyond_the_time_budget_fails_at_once(clock: ManualClock) -> None:
    with (WebhookReceiver([Reply(429, {"Retry-After": "3600"})]) as receiver,
          pytest.raises(TeamsDeliveryError) as failure):
        webhook(receiver.url, clock, max_total_seconds=60).post(PAYLOAD)

    assert len(receiver.posts) == 1
    assert failure.value.status == 429
    assert clock.sleeps == []


def test_the_time_budget_bounds_retries_of_a_hanging_server(clock: ManualClock) -> None:
    with WebhookReceiver(default=Hang()) as receiver, pytest.raises(TeamsDeliveryError):
        webhook(receiver.url, clock, max_attempts=20, timeout_seconds=0.2,
                max_total_seconds=2).post(PAYLOAD)

    assert 1 <= len(receiver.posts) < 20


@pytest.mark.parametrize("status", [400, 401, 403, 413])
def test_client_errors_are_not_retried(clock: ManualClock, status: int) -> None:
    with (WebhookReceiver([Reply(status)]) as receiver,
          pytest.raises(TeamsDeliveryError) as failure):
        webhook(receiver.url, clock).post(PAYLOAD)

    assert len(receiver.posts) == 1
    assert failure.value.status == status
    assert not failure.value.retryable


def test_a_refused_connection_is_retried_then_reported(clock: ManualClock) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}/workflows/abc/triggers/manual/paths/invoke?sig=SECRETSIG"
    with pytest.raises(TeamsDeliveryError) as failure:
        webhook(url, clock, max_attempts=2).post(PAYLOAD)

    assert failure.value.attempts == 2
    assert "connection failed" in str(failure.value)
    assert "SECRETSIG" not in "".join(traceback.format_exception(failure.value))


def test_an_oversized_payload_is_refused_before_sending(
        receiver: WebhookReceiver, clock: ManualClock) -> None:
    huge = {"type": "message", "text": "x" * MAX_PAYLOAD_BYTES}
    with pytest.raises(TeamsDeliveryError) as failure:
        webhook(receiver.url, clock).post(huge)

    assert receiver.posts == []
    assert not failure.value.retryable


# --- pacing ----------------------------------------------------------------------------------

def test_posts_are_spaced_by_the_minimum_interval(receiver: WebhookReceiver) -> None:
    hook = TeamsWebhook(receiver.url, min_interval_seconds=0.1)
    for _ in range(4):
        hook.post(PAYLOAD)

    arrivals = [post.received_at for post in receiver.posts]
    gaps = [later - earlier for earlier, later in itertools.pairwise(arrivals)]
    assert len(gaps) == 3
    assert min(gaps) >= 0.08


# --- the URL is a secret ---------------------------------------------------------------------

def test_repr_and_errors_never_show_the_url(clock: ManualClock) -> None:
    with WebhookReceiver([Reply(500, {"Content-Type": "application/json"},
                                b'{"error":{"code":"Boom","message":"see /workflows/x"}}')],
                         default=Reply(400)) as receiver:
        hook = webhook(receiver.url, clock, max_attempts=2)
        with pytest.raises(TeamsDeliveryError) as failure:
            hook.post(PAYLOAD)

    assert repr(hook) == "TeamsWebhook(url=<redacted>)"
    assert_hides_url(repr(hook), receiver)
    assert_hides_url(str(failure.value) + repr(failure.value.args), receiver)
    assert failure.value.__cause__ is None
    assert failure.value.__context__ is None


def test_a_wrong_signature_is_a_404_that_does_not_echo_the_url(
        receiver: WebhookReceiver, clock: ManualClock) -> None:
    wrong = receiver.url.replace(receiver.sig, "not-the-sig")
    with pytest.raises(TeamsDeliveryError) as failure:
        webhook(wrong, clock).post(PAYLOAD)

    assert failure.value.status == 404
    assert "not-the-sig" not in str(failure.value)
    assert receiver.posts == []


def test_debug_logs_of_requests_and_urllib3_never_show_the_url(
        caplog: pytest.LogCaptureFixture, clock: ManualClock) -> None:
    caplog.set_level(logging.DEBUG)
    with WebhookReceiver([Reply(503), Reply(202)]) as receiver:
        webhook(receiver.url, clock).post(PAYLOAD)

    assert any("urllib3" in r.name for r in caplog.records), "urllib3 debug log was captured"
    assert_hides_url(caplog.text, receiver)
    assert_hides_url(" ".join(str(r.args) for r in caplog.records), receiver)


@pytest.mark.parametrize("url", ["http://example.com/hook?sig=SECRETSIG", "not a url SECRETSIG",
                                 "ftp://h/x?sig=SECRETSIG", "https://[::1/x?sig=SECRETSIG"])
def test_unusable_urls_are_rejected_without_quoting_them(url: str) -> None:
    with pytest.raises(ValueError, match="Teams webhook URL") as failure:
        TeamsWebhook(url)

    assert "SECRETSIG" not in "".join(traceback.format_exception(failure.value))


# --- Retry-After -----------------------------------------------------------------------------

@pytest.mark.parametrize(("header", "seconds"), [
    ("5", 5.0), (" 12 ", 12.0), ("Fri, 27 Nov 2026 23:00:30 GMT", 30.0),
    ("Fri, 27 Nov 2026 22:59:00 GMT", 0.0), ("soon", None), (None, None), ("", None)])
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    now = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)
    assert parse_retry_after(header, now) == seconds


def test_the_receiver_rejects_bodies_that_are_not_json(receiver: WebhookReceiver) -> None:
    import requests

    response = requests.post(receiver.url, data=b"{not json", timeout=5)
    assert response.status_code == 400
    assert json.loads(response.content)["error"]["code"] == "InvalidRequestContent"


# --- dead webhooks and 2xx answers that are errors (issue 16) --------------------------------

@pytest.mark.parametrize("status", [401, 403, 404, 410, 413])
def test_a_dead_or_refusing_webhook_is_a_permanent_notify_error(clock: ManualClock,
                                                               status: int) -> None:
    with (WebhookReceiver(default=Reply(status)) as receiver,
          pytest.raises(NotifyError) as failure):
        webhook(receiver.url, clock).post(PAYLOAD)

    assert isinstance(failure.value, TeamsDeliveryError)
    assert failure.value.permanent
    assert len(receiver.posts) == 1
    assert f"HTTP {status}" in str(failure.value)
    assert_hides_url(str(failure.value), receiver)
    if status != 413:
        assert "set a new webhook URL" in str(failure.value)


@pytest.mark.parametrize("answer", [Reply(429, {"Retry-After": "0"}), Reply(500), Reply(503),
                                    Hang()])
def test_throttling_server_errors_and_timeouts_are_transient(clock: ManualClock,
                                                             answer: Answer) -> None:
    with (WebhookReceiver(default=answer) as receiver,
          pytest.raises(NotifyError) as failure):
        webhook(receiver.url, clock, max_attempts=2, timeout_seconds=0.3).post(PAYLOAD)

    assert failure.value.transient
    assert len(receiver.posts) == 2


@pytest.mark.parametrize(("body", "permanent"), [
    (b"Microsoft Teams endpoint returned HTTP error 413", True),
    (b"Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error "
     b"403 with ContextId tcid=0", True),
    (b'{"error":{"code":"BadRequest","message":"Summary or Text is required."}}', False),
    (b"Webhook message delivery failed with error: Microsoft Teams endpoint returned HTTP error "
     b"429 with ContextId tcid=0", False),
    (b'"Microsoft Teams endpoint returned HTTP error 502"', False),
])
def test_a_2xx_whose_body_is_an_error_is_not_delivered(clock: ManualClock, body: bytes,
                                                       permanent: bool) -> None:
    with (WebhookReceiver(default=Reply(200, {}, body)) as receiver,
          pytest.raises(NotifyError) as failure):
        webhook(receiver.url, clock, max_attempts=2).post(PAYLOAD)

    assert failure.value.permanent is permanent
    assert len(receiver.posts) == (1 if permanent else 2)
    assert "error in the body" in str(failure.value)
    assert "ContextId" not in str(failure.value), "the body is never quoted"


@pytest.mark.parametrize("reply", [Reply(202), Reply(200, {}, b"1"), Reply(200, {}, b"{}"),
                                   Reply(200, {}, b'{"status":"accepted"}')])
def test_empty_one_and_plain_json_2xx_bodies_are_delivered(clock: ManualClock,
                                                           reply: Reply) -> None:
    with WebhookReceiver([reply]) as receiver:
        assert webhook(receiver.url, clock).post(PAYLOAD).status == reply.status
    assert len(receiver.posts) == 1


def test_an_error_body_then_a_clean_202_is_delivered_on_the_retry(clock: ManualClock) -> None:
    answers: list[Answer] = [Reply(200, {}, b"Microsoft Teams endpoint returned HTTP error 500"),
                             Reply(202)]
    with WebhookReceiver(answers) as receiver:
        result = webhook(receiver.url, clock).post(PAYLOAD)

    assert (result.status, result.attempts) == (202, 2)


def test_a_dripping_reply_is_cut_at_the_attempts_time(clock: ManualClock) -> None:
    with WebhookReceiver(default=Drip(200, b"1" * 200, interval=0.1)) as receiver:
        started = time.monotonic()
        with pytest.raises(NotifyError) as failure:
            webhook(receiver.url, clock, max_attempts=2, timeout_seconds=0.5).post(PAYLOAD)
        elapsed = time.monotonic() - started

    assert "timed out reading the reply" in str(failure.value)
    assert failure.value.transient
    assert len(receiver.posts) == 2
    assert elapsed < 3, "two attempts of 0.5 s, not 2 x 20 s of dripping"


def test_retry_after_uses_the_one_shared_parser(clock: ManualClock) -> None:
    """``shared.retry.parse_retry_after`` reads fractional seconds; Teams honours them."""
    with WebhookReceiver([Reply(429, {"Retry-After": "1.5"}), Reply(202)]) as receiver:
        webhook(receiver.url, clock).post(PAYLOAD)

    assert 1.5 in clock.sleeps
    assert not hasattr(teams_module, "parse_retry_after")


# --- the notifier ----------------------------------------------------------------------------

WORKSPACE = ("/subscriptions/0000/resourceGroups/soc/providers/"
             "Microsoft.OperationalInsights/workspaces/sentinel")


def sample_post() -> IncidentPost:
    chosen = Hunt(id="6f1d3a52-8c1e-4c47-9a0e-2f6b1c9d7e01", name="Sign-ins from evil",
                  query="SigninLogs | take 1", source="defender", path=Path("hunts/x.yaml"))
    rows = [{"Timestamp": f"2026-11-27T22:0{n}:00Z", "DeviceId": "ab" * 20, "DeviceName": "ws1",
             "UserPrincipalName": "a@contoso.example", "Url": "https://evil.example/x",
             "ReportId": n} for n in range(3)]
    _, _, post = incident_preview([chosen], {chosen.id: rows})
    return post


def test_the_notifier_renders_and_posts_the_incident_with_the_portal_links_it_was_given(
        receiver: WebhookReceiver, clock: ManualClock) -> None:
    portal = PortalLinks.from_ids(tenant_id="contoso-tenant",
                                  sentinel_workspace_resource_id=WORKSPACE)
    notifier = TeamsNotifier(receiver.url, portal=portal, clock=clock)
    delivery = notifier.post_incident(notifier.render_incident(sample_post()))

    payload = receiver.payloads[0]
    assert delivery.status == 202
    assert delivery.notifier == "Teams"
    assert summarize_digest(payload).total_new == 3
    url = card_of(payload)["actions"][0]["url"]
    assert url.startswith("https://security.microsoft.com/machines/v2/" + "ab" * 20)
    assert "tid=contoso-tenant" in url
    assert "evil.example" not in json.dumps(payload)
    assert_hides_url(repr(notifier), receiver)


def test_the_notifier_posts_an_escaped_notice(receiver: WebhookReceiver,
                                              clock: ManualClock) -> None:
    notice = Notice(kind="health", title="Hunt <at>x</at> is failing", severity="High",
                    summary="Graph said: see https://evil.example/help",
                    facts=(("Hunt", "encoded.yaml"), ("Failing since", "2026-11-27T20:00Z")),
                    link=("Open hunt", "https://security.microsoft.com/v2/advanced-hunting"))
    TeamsNotifier(receiver.url, clock=clock).post_notice(notice)

    card = card_of(receiver.payloads[0])
    dump = json.dumps(card)
    assert card["version"] == "1.4"
    assert "HIGH" in dump
    assert "<at>" not in dump
    assert "https://evil" not in dump
    assert "hxxps[:]//evil[.]example/help" in dump
    assert "Failing since" in dump
    assert card["actions"][0]["url"] == "https://security.microsoft.com/v2/advanced-hunting"


def test_the_registry_builds_the_teams_notifier_only_when_its_url_is_set(
        receiver: WebhookReceiver) -> None:
    assert build_notifier(Settings()) is None
    portal = PortalLinks.from_ids(tenant_id="t")
    built = build_notifier(Settings(teams_webhook_url=receiver.url), portal)

    assert isinstance(built, TeamsNotifier)
    assert built.portal is portal
    assert set(NOTIFIERS) == {"teams"}


def test_a_bad_webhook_url_is_a_configuration_error() -> None:
    with pytest.raises(ConfigurationError, match="Teams webhook URL") as failure:
        TeamsNotifier("http://example.com/hook?sig=SECRETSIG")

    assert failure.value.permanent
