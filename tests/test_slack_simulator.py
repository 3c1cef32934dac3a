"""The Slack fakes themselves: a real slack_sdk WebClient against SlackSimulator, and a real Bolt
app, served over HTTP, driven by SlackDriver exactly as Slack would drive it."""

from __future__ import annotations

import hashlib
import hmac
import threading
import time
from collections.abc import Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import pytest
from slack_bolt import App
from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler
from slack_sdk.webhook import WebhookClient

from bot.sim.render import picture, render_message, render_view
from bot.sim.slack_api import Message, SlackSimulator
from bot.sim.slack_driver import SlackDriver

SECRET = "test-signing-secret"
BUTTON = {"type": "button", "action_id": "approve", "value": "launch-42", "text": {"type": "plain_text", "text": "OK"}}
FORM = {
    "type": "modal",
    "callback_id": "launch_form",
    "private_metadata": "C0GENERAL",
    "title": {"type": "plain_text", "text": "New notebook"},
    "submit": {"type": "plain_text", "text": "Launch"},
    "blocks": [
        {
            "type": "input",
            "block_id": "name",
            "label": {"type": "plain_text", "text": "Name"},
            "element": {"type": "plain_text_input", "action_id": "name_input"},
        },
        {
            "type": "input",
            "block_id": "gpu",
            "label": {"type": "plain_text", "text": "GPU"},
            "dispatch_action": True,
            "element": {
                "type": "static_select",
                "action_id": "gpu_select",
                "options": [
                    {"text": {"type": "plain_text", "text": "NVIDIA L4"}, "value": "l4"},
                    {"text": {"type": "plain_text", "text": "NVIDIA T4"}, "value": "t4"},
                ],
            },
        },
        {
            "type": "input",
            "block_id": "note",
            "optional": True,
            "label": {"type": "plain_text", "text": "Note"},
            "element": {"type": "plain_text_input", "action_id": "note_input"},
        },
    ],
}


@pytest.fixture
def sim() -> Iterator[SlackSimulator]:
    with SlackSimulator(usergroups={"S0APPROVERS": ["U0APPROVER", "U0ADMIN"]}) as sim:
        yield sim


@pytest.fixture
def client(sim: SlackSimulator) -> WebClient:
    return WebClient(token=sim.bot_token, base_url=sim.base_url)


def slack_error(excinfo: pytest.ExceptionInfo[SlackApiError]) -> str:
    return excinfo.value.response["error"]


# --- the signature ------------------------------------------------------------------------------
def test_signatures_reproduce_slacks_published_example(sim: SlackSimulator) -> None:
    body = (
        b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V"
        b"&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text="
        b"&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN"
        b"&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
    )
    driver = SlackDriver("http://unused", "8f742231b10e8888abcd99yyyzzz85a5", sim)
    headers = driver.signed_headers(body, timestamp=1531420618)
    expected = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
    assert headers == {"X-Slack-Request-Timestamp": "1531420618", "X-Slack-Signature": expected}
    by_hand = hmac.new(b"8f742231b10e8888abcd99yyyzzz85a5", b"v0:1531420618:" + body, hashlib.sha256).hexdigest()
    assert expected == "v0=" + by_hand


# --- the Web API through slack_sdk ------------------------------------------------------------------
def test_messages_are_posted_and_updated_in_place(sim: SlackSimulator, client: WebClient) -> None:
    first = client.chat_postMessage(
        channel="C0GENERAL",
        text="queued",
        blocks=[
            {"type": "section", "text": {"type": "mrkdwn", "text": "queued for <@U0ALICE>"}},
            {"type": "actions", "elements": [BUTTON]},
        ],
    )
    second = client.chat_postMessage(channel="C0GENERAL", text="reply", thread_ts=first["ts"])
    assert first["channel"] == "C0GENERAL" and first["message"]["text"] == "queued"
    assert first["ts"] == "1700000000.000100" and float(second["ts"]) > float(first["ts"])

    client.chat_update(channel="C0GENERAL", ts=first["ts"], text="ready")
    message = sim.message("C0GENERAL", first["ts"])
    assert (message.text, message.updates, message.ephemeral) == ("ready", 1, False)
    assert message.blocks[1]["elements"][0]["action_id"] == "approve", "blocks stay when chat.update omits them"
    assert message.blocks[0]["block_id"], "Slack gives every block a block_id"
    assert [m.thread_ts for m in sim.messages("C0GENERAL")] == [None, first["ts"]]

    with pytest.raises(SlackApiError) as excinfo:
        client.chat_update(channel="C0GENERAL", ts="1.2", text="nope")
    assert slack_error(excinfo) == "message_not_found"
    client.chat_delete(channel="C0GENERAL", ts=second["ts"])
    assert [m.ts for m in sim.messages()] == [first["ts"]]


def test_ephemeral_messages_dms_and_usergroups(sim: SlackSimulator, client: WebClient) -> None:
    ephemeral = client.chat_postEphemeral(channel="C0GENERAL", user="U0BOB", text="only you")
    [message] = sim.messages("C0GENERAL")
    assert (message.ts, message.user, message.ephemeral, message.text) == (
        ephemeral["message_ts"],
        "U0BOB",
        True,
        "only you",
    )
    dm = client.conversations_open(users="U0ALICE")["channel"]["id"]
    assert dm == "DU0ALICE"
    client.chat_postMessage(channel=dm, text="hello")
    assert [m.text for m in sim.messages(dm)] == ["hello"]
    assert client.usergroups_users_list(usergroup="S0APPROVERS")["users"] == ["U0APPROVER", "U0ADMIN"]


def test_users_info_carries_email_and_time_zone(sim: SlackSimulator, client: WebClient) -> None:
    user = client.users_info(user="U0ALICE")["user"]
    assert user["profile"]["email"] == "alice@example.com"
    assert (user["real_name"], user["tz"], user["tz_offset"]) == ("Alice Martin", "Europe/Paris", 3600)
    assert client.users_lookupByEmail(email="bob@example.com")["user"]["id"] == "U0BOB"
    with pytest.raises(SlackApiError) as excinfo:
        client.users_info(user="U0NOBODY")
    assert slack_error(excinfo) == "user_not_found"
    assert sim.calls("users.info")[-1].error == "user_not_found"


def test_without_the_email_scope_users_info_has_no_email() -> None:
    with SlackSimulator(scopes=["chat:write", "users:read"]) as sim:
        client = WebClient(token=sim.bot_token, base_url=sim.base_url)
        assert "email" not in client.users_info(user="U0ALICE")["user"]["profile"]
        with pytest.raises(SlackApiError) as excinfo:
            client.conversations_open(users="U0ALICE")
        assert slack_error(excinfo) == "missing_scope" and excinfo.value.response["needed"] == "im:write"


def test_views_open_update_and_a_stale_hash(sim: SlackSimulator, client: WebClient) -> None:
    trigger = sim.trigger_id("U0ALICE")
    opened = client.views_open(trigger_id=trigger, view=FORM)["view"]
    assert opened["id"].startswith("V") and opened["hash"] and opened["callback_id"] == "launch_form"
    with pytest.raises(SlackApiError) as excinfo:
        client.views_open(trigger_id=trigger, view=FORM)
    assert slack_error(excinfo) == "exchanged_trigger_id"

    changed = {**FORM, "title": {"type": "plain_text", "text": "Step 2"}}
    updated = client.views_update(view_id=opened["id"], hash=opened["hash"], view=changed)["view"]
    assert updated["id"] == opened["id"] and updated["hash"] != opened["hash"]
    with pytest.raises(SlackApiError) as excinfo:
        client.views_update(view_id=opened["id"], hash=opened["hash"], view=FORM)
    assert slack_error(excinfo) == "hash_conflict"
    assert sim.views()[opened["id"]]["title"]["text"] == "Step 2"

    home = {"type": "home", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": "Your notebooks"}}]}
    client.views_publish(user_id="U0BOB", view=home)
    assert sim.home("U0BOB")["blocks"][0]["text"]["text"] == "Your notebooks" and sim.home("U0ALICE") is None


def test_an_expired_trigger_is_refused() -> None:
    now = [1000.0]
    with SlackSimulator(clock=lambda: now[0]) as sim:
        client = WebClient(token=sim.bot_token, base_url=sim.base_url)
        trigger = sim.trigger_id("U0ALICE")
        now[0] += 3.5
        with pytest.raises(SlackApiError) as excinfo:
            client.views_open(trigger_id=trigger, view=FORM)
        assert slack_error(excinfo) == "expired_trigger_id"


def test_bad_tokens_unknown_methods_and_injected_errors(sim: SlackSimulator, client: WebClient) -> None:
    with pytest.raises(SlackApiError) as excinfo:
        WebClient(token="xoxb-wrong", base_url=sim.base_url).auth_test()
    assert slack_error(excinfo) == "invalid_auth"
    assert sim.calls("auth.test")[0].token == "xoxb-wrong"

    with pytest.raises(SlackApiError) as excinfo:
        client.api_call("notebooks.launch")
    assert slack_error(excinfo) == "unknown_method"

    sim.fail_next("chat.postMessage", "not_in_channel")
    with pytest.raises(SlackApiError) as excinfo:
        client.chat_postMessage(channel="C0PRIVATE", text="hi")
    assert slack_error(excinfo) == "not_in_channel"
    assert client.chat_postMessage(channel="C0PRIVATE", text="hi")["ok"], "only the next call fails"


def test_a_429_is_retried_after_retry_after(sim: SlackSimulator) -> None:
    sim.rate_limit_next("chat.postMessage", retry_after=1)
    patient = WebClient(
        token=sim.bot_token, base_url=sim.base_url, retry_handlers=[RateLimitErrorRetryHandler(max_retry_count=1)]
    )
    started = time.monotonic()
    assert patient.chat_postMessage(channel="C0GENERAL", text="eventually")["ok"]
    assert time.monotonic() - started >= 1.0, "the client waited Retry-After seconds"
    assert [c.error for c in sim.calls("chat.postMessage")] == ["ratelimited", None]
    assert [m.text for m in sim.messages()] == ["eventually"]

    sim.rate_limit_next("chat.postMessage", retry_after=7)
    with pytest.raises(SlackApiError) as excinfo:  # a plain WebClient does not retry 429s
        WebClient(token=sim.bot_token, base_url=sim.base_url).chat_postMessage(channel="C0GENERAL", text="x")
    assert excinfo.value.response.status_code == 429 and excinfo.value.response.headers["Retry-After"] == "7"


def test_response_urls_post_replace_and_delete(sim: SlackSimulator, client: WebClient) -> None:
    posted = client.chat_postMessage(
        channel="C0GENERAL", text="approve?", blocks=[{"type": "actions", "elements": [BUTTON]}]
    )
    url = sim.response_url(channel="C0GENERAL", user="U0BOB", original_ts=posted["ts"])
    hook = WebhookClient(url)
    assert hook.send(text="just for you").status_code == 200
    assert hook.send(text="for everyone", response_type="in_channel").status_code == 200
    assert hook.send(text="approved", replace_original=True).status_code == 200
    by_text = {m.text: m for m in sim.messages("C0GENERAL")}
    assert by_text["just for you"].ephemeral and by_text["just for you"].user == "U0BOB"
    assert not by_text["for everyone"].ephemeral
    assert by_text["approved"].ts == posted["ts"] and by_text["approved"].updates == 1
    assert hook.send(text="", delete_original=True).status_code == 200
    assert posted["ts"] not in [m.ts for m in sim.messages()]
    assert hook.send(text="fifth use").status_code == 200
    assert hook.send(text="sixth use").status_code == 404, "a response_url works five times"
    assert "sixth use" not in [m.text for m in sim.messages()]


# --- a real Bolt app driven over HTTP ---------------------------------------------------------------
class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class BoltUnderTest:
    def __init__(self, sim: SlackSimulator) -> None:
        self.sim = sim
        self.seen: dict[str, list[Any]] = {"command": [], "action": [], "select": [], "submission": [], "home": []}
        app = App(client=WebClient(token=sim.bot_token, base_url=sim.base_url), signing_secret=SECRET)

        @app.command("/notebook")
        def notebook(ack, command, respond) -> None:
            self.seen["command"].append(command)
            if command["text"] == "ack text":
                ack("plain words")
                return
            if command["text"] == "ack blocks":
                ack(text="fallback", blocks=[{"type": "section", "text": {"type": "mrkdwn", "text": "*hi*"}}])
                return
            if command["text"] == "ack button":
                ack(text="approve?", blocks=[{"type": "actions", "elements": [BUTTON]}])
                return
            ack()
            respond(f"Echo: {command['text']}")

        @app.command("/form")
        def form(ack, body, client) -> None:
            ack()
            client.views_open(trigger_id=body["trigger_id"], view=FORM)

        @app.action("approve")
        def approve(ack, body, action, respond) -> None:
            ack()
            self.seen["action"].append((body, action))
            if body.get("response_url"):  # none for clicks in a Home tab or modal
                respond(text=f"Approved {action['value']} by <@{body['user']['id']}>", replace_original=True)

        @app.action("gpu_select")
        def gpu_select(ack, body, action) -> None:
            ack()
            self.seen["select"].append((body, action))

        @app.view("launch_form")
        def submission(ack, view) -> None:
            self.seen["submission"].append(view)
            if view["state"]["values"]["name"]["name_input"]["value"] == "Bad Name":
                ack(response_action="errors", errors={"name": "Use lowercase letters."})
            else:
                ack()

        @app.event("app_home_opened")
        def home_opened(event, client, request) -> None:
            self.seen["home"].append((event, request.headers.get("x-slack-retry-num")))
            client.views_publish(
                user_id=event["user"], view={"type": "home", "blocks": [{"type": "actions", "elements": [BUTTON]}]}
            )

        self.server = make_server(
            "127.0.0.1", 0, SlackRequestHandler(app), server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
        )
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/slack/events"
        self.driver = SlackDriver(self.url, SECRET, sim)

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def bolt(sim: SlackSimulator) -> Iterator[BoltUnderTest]:
    app = BoltUnderTest(sim)
    yield app
    app.stop()


def test_bolt_checks_the_token_once_when_the_app_is_built(sim: SlackSimulator, bolt: BoltUnderTest) -> None:
    assert [c.token for c in sim.calls("auth.test")] == [sim.bot_token]
    bolt.driver.command("U0ALICE", "one")
    bolt.driver.command("U0ALICE", "two")
    sim.wait_for(lambda: len(sim.messages()) == 2)
    assert len(sim.calls("auth.test")) == 1


def test_a_slash_command_reply_arrives_through_the_response_url(sim: SlackSimulator, bolt: BoltUnderTest) -> None:
    response = bolt.driver.command("U0ALICE", "hello there", channel="C0DATA")
    assert (response.status, response.body) == (200, "")
    [reply] = sim.wait_for(lambda: sim.messages("C0DATA"))
    assert (reply.text, reply.ephemeral, reply.user) == ("Echo: hello there", True, "U0ALICE")
    [command] = bolt.seen["command"]
    assert (command["user_id"], command["channel_id"], command["team_id"]) == ("U0ALICE", "C0DATA", "T0SIM")
    assert command["trigger_id"] and command["response_url"].startswith("http://127.0.0.1:")


def test_what_an_acknowledgement_looks_like_over_http(bolt: BoltUnderTest) -> None:
    text_only = bolt.driver.command("U0ALICE", "ack text")
    assert text_only.headers["content-type"].startswith("text/plain") and text_only.body == "plain words"
    assert text_only.json() == {"text": "plain words"}
    with_blocks = bolt.driver.command("U0ALICE", "ack blocks")
    assert with_blocks.headers["content-type"].startswith("application/json")
    assert with_blocks.json()["text"] == "fallback" and with_blocks.json()["blocks"][0]["type"] == "section"


def test_a_forged_signature_is_refused_and_nothing_runs(sim: SlackSimulator, bolt: BoltUnderTest) -> None:
    forger = SlackDriver(bolt.url, "not-the-secret", sim)
    response = forger.command("U0ALICE", "hello")
    assert response.status == 401
    assert bolt.seen["command"] == [] and sim.calls("response_url") == []
    assert bolt.driver.command("U0ALICE", "hello").status == 200, "the same request, properly signed, goes through"


@pytest.mark.parametrize("age, status", [(301, 401), (290, 200)])
def test_a_stale_timestamp_is_refused(sim: SlackSimulator, bolt: BoltUnderTest, age: int, status: int) -> None:
    late = SlackDriver(bolt.url, SECRET, sim, clock=lambda: time.time() - age)
    assert late.command("U0ALICE", "hello").status == status
    assert len(bolt.seen["command"]) == (status == 200)


def test_a_click_reaches_the_action_listener(sim: SlackSimulator, bolt: BoltUnderTest, client: WebClient) -> None:
    posted = client.chat_postMessage(
        channel="C0GENERAL",
        text="approve?",
        blocks=[
            {"type": "section", "text": {"type": "mrkdwn", "text": "Launch 42 needs approval"}},
            {"type": "actions", "block_id": "decide", "elements": [BUTTON]},
        ],
    )
    message = sim.message("C0GENERAL", posted["ts"])
    assert bolt.driver.click("U0APPROVER", message, "approve").status == 200
    updated = sim.wait_for(lambda: (m := sim.message("C0GENERAL", posted["ts"])).updates and m)
    assert updated.text == "Approved launch-42 by <@U0APPROVER>" and updated.blocks == []
    [(body, action)] = bolt.seen["action"]
    assert (action["action_id"], action["block_id"], action["value"], action["type"]) == (
        "approve",
        "decide",
        "launch-42",
        "button",
    )
    assert body["container"] == {
        "type": "message",
        "message_ts": posted["ts"],
        "channel_id": "C0GENERAL",
        "is_ephemeral": False,
    }
    assert body["user"]["id"] == "U0APPROVER" and body["message"]["ts"] == posted["ts"]


def test_a_click_on_an_acknowledgement_replaces_what_the_user_saw(sim: SlackSimulator, bolt: BoltUnderTest) -> None:
    reply = bolt.driver.command("U0BOB", "ack button").json()
    shown = Message(
        channel="C0GENERAL",
        ts="0000000000.000000",
        text=reply["text"],
        blocks=reply["blocks"],
        thread_ts=None,
        user="U0BOB",
        ephemeral=True,
        updates=0,
    )
    assert bolt.driver.click("U0BOB", shown, "approve").status == 200
    [replaced] = sim.wait_for(lambda: sim.messages("C0GENERAL"))
    assert (replaced.ts, replaced.text, replaced.ephemeral) == (shown.ts, "Approved launch-42 by <@U0BOB>", True)
    [(body, action)] = bolt.seen["action"]
    assert "message" not in body and body["container"]["is_ephemeral"] is True and action["block_id"]


def test_a_modal_submission_carries_values_in_slacks_shapes(sim: SlackSimulator, bolt: BoltUnderTest) -> None:
    assert bolt.driver.command("U0ALICE", "", command="/form").status == 200
    [view_id] = sim.wait_for(lambda: list(sim.views()))

    assert bolt.driver.select("U0ALICE", view_id, "gpu", "gpu_select", "t4").status == 200
    [(body, action)] = sim.wait_for(lambda: bolt.seen["select"])
    assert body["container"] == {"type": "view", "view_id": view_id} and "response_url" not in body
    assert action["selected_option"]["value"] == "t4"

    bad = bolt.driver.submit("U0ALICE", view_id, {"name": {"name_input": "Bad Name"}})
    assert bad.json() == {"response_action": "errors", "errors": {"name": "Use lowercase letters."}}
    assert view_id in sim.views(), "the modal stays open to show the error"

    ok = bolt.driver.submit("U0ALICE", view_id, {"name": {"name_input": "my-nb"}, "gpu": {"gpu_select": "l4"}})
    assert ok.status == 200 and sim.views() == {}, "an empty acknowledgement closes the modal"
    view = bolt.seen["submission"][-1]
    assert (view["callback_id"], view["private_metadata"], view["id"]) == ("launch_form", "C0GENERAL", view_id)
    assert view["state"]["values"] == {
        "name": {"name_input": {"type": "plain_text_input", "value": "my-nb"}},
        "gpu": {
            "gpu_select": {
                "type": "static_select",
                "selected_option": {"text": {"type": "plain_text", "text": "NVIDIA L4"}, "value": "l4"},
            }
        },
        "note": {"note_input": {"type": "plain_text_input", "value": None}},
    }
    first = bolt.seen["submission"][0]["state"]["values"]["gpu"]["gpu_select"]["selected_option"]["value"]
    assert first == "t4", "a value picked earlier in the modal is submitted with it"


def test_required_inputs_must_be_filled_before_slack_submits(sim: SlackSimulator, bolt: BoltUnderTest) -> None:
    bolt.driver.command("U0ALICE", "", command="/form")
    [view_id] = sim.wait_for(lambda: list(sim.views()))
    with pytest.raises(ValueError, match="required input 'gpu'"):
        bolt.driver.submit("U0ALICE", view_id, {"name": {"name_input": "my-nb"}})
    assert bolt.seen["submission"] == []


def test_home_tab_opened_published_and_clicked(sim: SlackSimulator, bolt: BoltUnderTest) -> None:
    assert (
        bolt.driver.event({"type": "app_home_opened", "user": "U0BOB", "channel": "DU0BOB"}, retry_num=1).status == 200
    )
    sim.wait_for(lambda: sim.home("U0BOB"))
    assert bolt.seen["home"][0][1] == ["1"], "Bolt passes retried deliveries to listeners"
    assert bolt.driver.click_home("U0BOB", "approve").status == 200
    [(body, action)] = sim.wait_for(lambda: bolt.seen["action"])
    assert body["container"]["type"] == "view" and body["view"]["id"] == sim.home("U0BOB")["id"]
    assert "response_url" not in body and action["value"] == "launch-42"


# --- rendering ----------------------------------------------------------------------------------------
def test_rendering_shows_what_a_person_would_see() -> None:
    message = Message(
        channel="C0GENERAL",
        ts="1.0",
        text="fallback",
        thread_ts=None,
        user=None,
        ephemeral=False,
        updates=0,
        blocks=[
            {"type": "header", "text": {"type": "plain_text", "text": "tf-2-8"}},
            {
                "type": "section",
                "text": {"type": "mrkdwn", "text": "Ready for <@U0ALICE>"},
                "fields": [{"type": "mrkdwn", "text": "*GPU* L4"}],
            },
            {"type": "divider"},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": "see <https://x.io|docs>"}]},
            {
                "type": "actions",
                "elements": [
                    {**BUTTON, "text": {"type": "plain_text", "text": "Open"}, "url": "https://nb.example"},
                    BUTTON,
                ],
            },
        ],
    )
    assert render_message(message).splitlines() == [
        "tf-2-8",
        "══════",
        "Ready for @U0ALICE",
        "  *GPU* L4",
        "─" * 40,
        "see docs (https://x.io)",
        "[1] Open → https://nb.example",
        "[2] OK",
    ]
    view = {
        **FORM,
        "state": {
            "values": {
                "gpu": {
                    "gpu_select": {
                        "type": "static_select",
                        "selected_option": {"text": {"type": "plain_text", "text": "NVIDIA T4"}, "value": "t4"},
                    }
                }
            }
        },
    }
    assert render_view(view).splitlines() == [
        "┌ New notebook",
        "Name: []",
        "GPU: [NVIDIA T4 ▾]",
        "Note (optional): []",
        "└ ( Cancel )  ( Launch )",
    ]


def test_typed_mentions_are_sent_as_slack_escapes_them() -> None:
    """With the command's should_escape, Slack sends `@bob` picked from its list as `<@U0BOB|bob>`."""
    sim = SlackSimulator()
    assert sim.escape("transfer nb @bob") == "transfer nb <@U0BOB|bob>"
    assert sim.escape("@Alice, <@U0BOB> and alice@example.com") == "<@U0ALICE|alice>, <@U0BOB> and alice@example.com"
    assert sim.escape("@nobody") == "@nobody", "a name Slack doesn't know stays text"


def test_menus_outside_forms_are_numbered_with_what_they_offer() -> None:
    menu = {
        "type": "static_select",
        "action_id": "snooze",
        "placeholder": {"type": "plain_text", "text": "Keep it…"},
        "options": [{"text": {"type": "plain_text", "text": f"Keep for {d}"}, "value": d} for d in ("2h", "1d")],
    }
    lines, controls = picture([{"type": "actions", "block_id": "b", "elements": [BUTTON, menu]}], first=7)
    assert lines == ["[7] OK", "[8] Keep it… ▾ (Keep for 2h | Keep for 1d)"]
    assert [(c.number, c.block_id, c.label) for c in controls] == [(7, "b", "OK"), (8, "b", "Keep it…")]
