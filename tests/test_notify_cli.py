"""`huntwire notify --test`: one test card through the configured webhook, the answer reported,
the URL never printed. Against the local Workflows stand-in (devtools/webhook.py)."""

from __future__ import annotations

import json

import pytest

from devtools.webhook import Reply, WebhookReceiver
from shared.cli import main


def _secret_parts(hook: WebhookReceiver) -> list[str]:
    return [hook.url, hook.sig, hook.workflow, hook.path]


def _assert_no_url(hook: WebhookReceiver, *texts: str) -> None:
    for text in texts:
        for part in _secret_parts(hook):
            assert part not in text


def test_posts_one_card_and_reports_the_answer(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    with WebhookReceiver([Reply(202)]) as hook:
        monkeypatch.setenv("HUNTWIRE_TEAMS_WEBHOOK_URL", hook.url)
        assert main(["notify", "--test"]) == 0
        (post,) = hook.posts
    out, err = capsys.readouterr()
    assert out.count("\n") == 1
    assert "findings channel: delivered, HTTP 202 after 1 attempt(s)" in out
    _assert_no_url(hook, out, err)
    card = post.json()["attachments"][0]["content"]
    assert card["type"] == "AdaptiveCard"
    text = json.dumps(card)
    assert "huntwire test card" in text
    assert "notify --test" in text


def test_health_channel_uses_the_health_webhook(monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    with WebhookReceiver() as findings, WebhookReceiver() as health:
        monkeypatch.setenv("HUNTWIRE_TEAMS_WEBHOOK_URL", findings.url)
        monkeypatch.setenv("HUNTWIRE_HEALTH_WEBHOOK_URL", health.url)
        assert main(["notify", "--test", "--channel", "health", "--format", "json"]) == 0
        assert (len(findings.posts), len(health.posts)) == (0, 1)
    answer = json.loads(capsys.readouterr().out)
    assert answer | {"seconds": 0} == {"delivered": True, "channel": "health",
                                       "notifier": "Teams", "status": 202, "attempts": 1,
                                       "bytes": len(health.posts[0].body), "seconds": 0}


@pytest.mark.parametrize(("reply", "reason"), [
    (Reply(404, body=b'{"error":{"code":"WorkflowNotFound","message":"x"}}'), "HTTP 404"),
    (Reply(200, body=b"Microsoft Teams endpoint returned HTTP error 400"), "error in the body"),
    (Reply(400, body=b'{"error":{"code":"TriggerInputSchemaMismatch"}}'),
     "TriggerInputSchemaMismatch"),
])
def test_a_refused_card_is_one_line_and_a_failure(reply: Reply, reason: str,
                                                  monkeypatch: pytest.MonkeyPatch,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with WebhookReceiver(default=reply) as hook:
        monkeypatch.setenv("HUNTWIRE_TEAMS_WEBHOOK_URL", hook.url)
        assert main(["notify", "--test"]) == 1
        assert len(hook.posts) == 1  # permanent refusals are not retried
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert err.startswith("huntwire notify: findings channel: not delivered: ")
    assert reason in err
    _assert_no_url(hook, err)


def test_an_unreachable_webhook_fails_without_printing_it(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    with WebhookReceiver() as hook:
        url = hook.url
    # The receiver is gone: connections are refused; retries end within the notifier's budget.
    monkeypatch.setenv("HUNTWIRE_TEAMS_WEBHOOK_URL", url)
    assert main(["notify", "--test", "--format", "json"]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out)["delivered"] is False
    assert "connection failed" in err
    _assert_no_url(hook, out, err)


def test_no_webhook_configured_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["notify", "--test"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "HUNTWIRE_TEAMS_WEBHOOK_URL" in err


def test_a_malformed_webhook_url_is_named_but_not_quoted(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("HUNTWIRE_TEAMS_WEBHOOK_URL", "http://example.com/workflows/s3cr3t-sig")
    assert main(["notify", "--test"]) == 2
    err = capsys.readouterr().err
    assert "HUNTWIRE_TEAMS_WEBHOOK_URL" in err
    assert "s3cr3t" not in err


def test_notify_needs_the_test_flag(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["notify"])
    assert exit_.value.code == 2
    assert "--test" in capsys.readouterr().err
