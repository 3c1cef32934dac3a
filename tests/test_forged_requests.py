"""Forged and broken requests to /slack/events: every header missing, malformed, stale, future,
replayed or retried, and bodies that don't parse. Each gets a plain 4xx (or, for a retry of an
event already taken, a bare 200) and no effect: no listener runs, nothing is posted anywhere, and
no log line carries the body.

The bot is the real one (tests/harness.py) on an in-memory store; "elsewhere" is a loopback server
standing in for every host that is not Slack's.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any

import pytest
from slack_bolt.request import BoltRequest

from bot.adapters.store import SqliteStore
from handlers import build_app
from tests.harness import SECRET, Bot
from tests.support.hostile import Elsewhere, Reply, form, interaction, raw_post, sign

MARKER = "forged-marker-7f3a"


@pytest.fixture
def elsewhere() -> Iterator[Elsewhere]:
    server = Elsewhere()
    yield server
    server.stop()


@pytest.fixture
def bot(monkeypatch: pytest.MonkeyPatch) -> Iterator[Bot]:
    with Bot(SqliteStore(), monkeypatch) as running:
        yield running


def command_body(elsewhere: Elsewhere, text: str = f"new tf-2-8 name=forged {MARKER}") -> bytes:
    return form(
        {
            "team_id": "T0SIM",
            "channel_id": "C0GENERAL",
            "user_id": "U0BOB",
            "command": "/notebook",
            "text": text,
            "response_url": f"{elsewhere.url}/hook",
            "trigger_id": "1.2.forged",
        }
    )


def effects(bot: Bot) -> list[Any]:
    """Everything a request could have done: Slack calls (other than Bolt's auth.test) and records."""
    calls = [(c.method, c.args) for c in bot.slack.calls() if c.method != "auth.test"]
    return [calls, bot.store.query("launches"), bot.store.query("operations")]


def post(bot: Bot, body: bytes, headers: dict[str, str], **kwargs: Any) -> Reply:
    return raw_post(f"{bot.url}/slack/events", body, headers, **kwargs)


FORM = {"Content-Type": "application/x-www-form-urlencoded"}


def forged_headers(body: bytes) -> dict[str, dict[str, str]]:
    now = int(time.time())
    good = sign(SECRET, body)
    return {
        "no headers": {},
        "no timestamp": {"X-Slack-Signature": good["X-Slack-Signature"]},
        "no signature": {"X-Slack-Request-Timestamp": good["X-Slack-Request-Timestamp"]},
        "timestamp x (was a 500 and a POST to the body's response_url)": {
            **sign("forger", body),
            **{"X-Slack-Request-Timestamp": "x"},
        },
        "timestamp x, signed for it": sign(SECRET, body, "x"),
        "empty timestamp": sign(SECRET, body, ""),
        "negative timestamp": sign(SECRET, body, f"-{now}"),
        "timestamp with spaces": sign(SECRET, body, f" {now}"),
        "arabic-indic digits": sign(SECRET, body, "١٧٠٠٠٠٠٠٠٠"),
        "timestamp of 5,000 digits": sign(SECRET, body, "9" * 5000),
        "float timestamp": sign(SECRET, body, f"{now}.5"),
        "stale by 301 s": sign(SECRET, body, now - 301),
        "future by 301 s": sign(SECRET, body, now + 301),
        "someone else's secret": sign("not-the-secret", body),
        "v1 signature": {**good, "X-Slack-Signature": good["X-Slack-Signature"].replace("v0=", "v1=")},
        "uppercase hex": {**good, "X-Slack-Signature": "v0=" + good["X-Slack-Signature"][3:].upper()},
        "truncated signature": {**good, "X-Slack-Signature": good["X-Slack-Signature"][:-2]},
        "signature of 5,000 characters": {**good, "X-Slack-Signature": "v0=" + "a" * 5000},
        "signature for another body": sign(SECRET, body + b"&x=1"),
    }


CASES = list(forged_headers(b""))


@pytest.mark.parametrize("case", CASES)
def test_forged_headers_get_a_401_and_no_effect(
    bot: Bot, elsewhere: Elsewhere, caplog: pytest.LogCaptureFixture, case: str
) -> None:
    body = command_body(elsewhere)
    before = effects(bot)
    with caplog.at_level(logging.DEBUG):
        reply = post(bot, body, {**FORM, **forged_headers(body)[case]})
    assert reply.status == 401, (reply.status, reply.body)
    assert "<html" not in reply.body.lower() and MARKER not in reply.body
    assert effects(bot) == before and elsewhere.requests == []
    assert MARKER not in caplog.text and "refused a request to /slack/events" in caplog.text


def test_a_properly_signed_request_goes_through(bot: Bot, elsewhere: Elsewhere) -> None:
    """The control for the cases above: the same body, signed by Slack, is answered."""
    body = command_body(elsewhere, "help")
    reply = post(bot, body, {**FORM, **sign(SECRET, body, int(time.time()) - 290)})
    assert reply.status == 200 and "Launch and manage" in reply.body


def test_a_replayed_request_is_refused_the_second_time(bot: Bot, elsewhere: Elsewhere) -> None:
    body = command_body(elsewhere, "help")
    headers = {**FORM, **sign(SECRET, body)}
    assert post(bot, body, headers).status == 200
    again = post(bot, body, headers)
    assert again.status == 401 and "replayed" in again.body


@pytest.mark.parametrize(
    "content_type, body, status",
    [
        ("application/json", b'{"type": "event_callback", ', 400),  # bad JSON
        ("application/json", b"[1, 2, 3]", 400),  # JSON, not an object
        ("application/json", b"[" * 100_000 + b"]" * 100_000, 400),  # nested past the recursion limit
        ("application/x-www-form-urlencoded", b"payload=%7B%22type%22%3A", 400),  # payload is bad JSON
        ("application/x-www-form-urlencoded", b'payload="just a string"', 400),
        ("application/x-www-form-urlencoded", b"text=50%zz&command=%2Fnotebook", 400),  # bad percent-encoding
        ("application/x-www-form-urlencoded", b"text=%ff%fe&command=%2Fnotebook", 400),  # encodes non-UTF-8
        ("application/x-www-form-urlencoded", b"text=\xff\xfe&command=/notebook", 400),  # non-UTF-8 bytes
        ("application/json; charset=latin-1", b"{}", 415),
        ("text/plain", b"command=/notebook&text=help", 415),
        ("multipart/form-data; boundary=x", b"--x--", 415),
    ],
)
def test_signed_bodies_that_do_not_parse_get_a_plain_4xx(
    bot: Bot, elsewhere: Elsewhere, caplog: pytest.LogCaptureFixture, content_type: str, body: bytes, status: int
) -> None:
    before = effects(bot)
    with caplog.at_level(logging.DEBUG):
        reply = post(bot, body, {"Content-Type": content_type, **sign(SECRET, body)})
    assert reply.status == status, (reply.status, reply.body)
    assert reply.headers["content-type"].startswith("text/plain") and "<html" not in reply.body.lower()
    assert effects(bot) == before and elsewhere.requests == []
    assert "%zz" not in caplog.text and "just a string" not in caplog.text


def test_size_limits(bot: Bot, elsewhere: Elsewhere) -> None:
    big = b"text=" + b"a" * (1024 * 1024)
    assert post(bot, big, {**FORM, **sign(SECRET, big)}).status == 413
    small = command_body(elsewhere, "help")
    assert (
        post(bot, small, {**FORM, **sign(SECRET, small), "Content-Length": "12abc"}, content_length=False).status == 400
    )
    assert elsewhere.requests == [] and effects(bot)[1:] == [[], []]


def test_an_events_api_retry_is_acked_without_acting_twice(bot: Bot) -> None:
    event = {"type": "app_home_opened", "user": "U0ALICE", "channel": "DU0ALICE", "tab": "home"}
    assert bot.driver.event(event, event_id="Ev0RETRIED01").status == 200
    bot.slack.wait_for(lambda: bot.slack.calls("views.publish"))
    for attempt in (1, 2, 3):
        retry = bot.driver.event(event, event_id="Ev0RETRIED01", retry_num=attempt)
        assert retry.status == 200 and retry.headers.get("x-slack-no-retry") == "1"
    assert bot.driver.event(event, event_id="Ev0ANOTHER02").status == 200  # a new delivery still acts
    bot.slack.wait_for(lambda: len(bot.slack.calls("views.publish")) == 2)
    assert len(bot.slack.calls("views.publish")) == 2


def test_a_retry_of_an_event_this_process_never_took_is_handled(bot: Bot) -> None:
    """The first delivery may have reached another replica that died: the retry is the only chance."""
    event = {"type": "app_home_opened", "user": "U0ALICE", "channel": "DU0ALICE", "tab": "home"}
    assert bot.driver.event(event, event_id="Ev0ELSEWHERE", retry_num=1).status == 200
    bot.slack.wait_for(lambda: bot.slack.calls("views.publish"))


def test_the_error_hook_acts_only_on_verified_requests(bot: Bot, elsewhere: Elsewhere) -> None:
    """Behind the gate too: a request Bolt's own check chokes on (timestamp `x`) tells nobody anything."""
    app = build_app(bot.services, process_before_response=True)
    body = command_body(elsewhere).decode()
    headers = {"content-type": "application/x-www-form-urlencoded", **sign("forger", body.encode(), "x")}
    response = app.dispatch(BoltRequest(body=body, headers={k.lower(): v for k, v in headers.items()}))
    assert response.status >= 400
    assert elsewhere.requests == [] and effects(bot)[0] == []


def test_a_verified_failure_is_told_only_through_slack(bot: Bot, elsewhere: Elsewhere) -> None:
    """A listener that fails on a (signed) odd payload: acked, and the person told in a DM, since its
    response_url is not Slack's."""
    payload = {
        "type": "block_actions",
        "user": {"id": "U0BOB"},
        "team": {"id": "T0SIM"},
        "response_url": f"{elsewhere.url}/hook",
        "container": {"type": "message", "channel_id": "C0GENERAL", "message_ts": "1.0"},
        "actions": [{"action_id": "customize_launch", "type": "button"}],  # no trigger_id to open the form with
    }
    body = interaction(payload)
    reply = post(bot, body, {**FORM, **sign(SECRET, body)})
    assert reply.status == 200
    dm = bot.slack.wait_for(lambda: [m for m in bot.slack.messages("DU0BOB")])
    assert "Something went wrong" in dm[0].text
    assert elsewhere.requests == []


def test_the_reply_carries_no_body_and_is_plain_text(bot: Bot, elsewhere: Elsewhere) -> None:
    body = json.dumps({"type": "event_callback", "event": {"type": "app_home_opened", "user": MARKER}}).encode()
    reply = post(bot, body, {"Content-Type": "application/json", **sign("forger", body)})
    assert reply.status == 401 and reply.body == "invalid X-Slack-Signature"
