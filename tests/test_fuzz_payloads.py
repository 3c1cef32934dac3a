"""Property-based fuzzing of interaction payloads through the real HTTP app: properly signed but
malformed block_actions, view_submission and other payloads (actions=[], state as a list, bad
private_metadata, 5,000-digit values, users that are strings...). Every one is answered 200 (acked)
or a plain 4xx, never a 5xx, and nothing is ever sent to a host that is not Slack's: each payload's
response_url points at "elsewhere", a loopback server that must stay untouched.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from bot.adapters.store import SqliteStore
from tests.harness import SECRET, Bot
from tests.support.hostile import Elsewhere, interaction, raw_post, sign

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
ELSEWHERE = "http://elsewhere.invalid/hook"  # replaced by the live "elsewhere" server's URL

junk = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12) | st.just("9" * 5000) | st.just("a/b"),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=6), children, max_size=3),
    max_leaves=8,
)
ACTION_IDS = [
    "approve_launch",
    "deny_launch",
    "review_launch",
    "launch_offer",
    "launch_elsewhere",
    "customize_launch",
    "open_notebook",
    "value",
    "notebook_stop",
    "notebook_start",
    "notebook_delete",
    "notebook_delete_confirm",
    "notebook_delete_cancel",
    "lifecycle_stop",
    "lifecycle_delete",
    "lifecycle_snooze",
    "lifecycle_extend_idle",
    "offhours_keep",
    "no_such_action",
]
action = st.fixed_dictionaries(
    {"action_id": st.sampled_from(ACTION_IDS) | junk},
    optional={
        "value": junk | st.sampled_from(["tf-2-8 gpu=l4", "nb|3600", "nb|" + "9" * 5000, "", "nb|1796162400"]),
        "block_id": junk,
        "type": st.sampled_from(["button", "static_select"]) | junk,
        "selected_option": junk | st.fixed_dictionaries({"value": junk}),
    },
)
view = st.fixed_dictionaries(
    {},
    optional={
        "id": st.just("V0FUZZ") | junk,
        "hash": junk,
        "type": st.sampled_from(["modal", "home"]) | junk,
        "callback_id": st.sampled_from(["launch_modal", "review_modal", "other"]) | junk,
        "private_metadata": junk | st.just('{"form": [], "channel": 5}') | st.just("{" * 3000),
        "state": junk | st.fixed_dictionaries({"values": junk}),
        "blocks": junk,
    },
)
payload = st.fixed_dictionaries(
    {
        "type": st.sampled_from(
            ["block_actions", "view_submission", "view_closed", "shortcut", "message_action", "block_suggestion"]
        )
        | junk
    },
    optional={
        "user": st.fixed_dictionaries({"id": st.sampled_from(["U0ALICE", "U0BOB"]) | junk}) | junk,
        "team": st.fixed_dictionaries({"id": st.just("T0SIM") | junk}) | junk,
        "actions": st.lists(action, max_size=2) | junk,
        "view": view | junk,
        "container": junk | st.just({"type": "message", "channel_id": "C0GENERAL", "message_ts": "1.0"}),
        "channel": junk,
        "trigger_id": st.just("1.2.fuzz") | junk,
        "response_url": st.just(ELSEWHERE),
        "state": junk,
        "message": junk,
        "callback_id": junk,
    },
)


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Bot, Elsewhere]]:
    elsewhere = Elsewhere()
    with Bot(SqliteStore(), monkeypatch) as bot:
        yield bot, elsewhere
    elsewhere.stop()


sent: list[int] = []


@FUZZ
@given(payload=payload)
@example(payload={"type": "block_actions", "user": {"id": "U0BOB"}, "actions": [], "response_url": ELSEWHERE})
@example(
    payload={
        "type": "view_submission",
        "user": {"id": "U0BOB"},
        "view": {"callback_id": "launch_modal", "state": [], "private_metadata": "not json", "id": "V1"},
        "team": {"id": "T0SIM"},
    }
)
@example(
    payload={
        "type": "block_actions",
        "user": "U0BOB",
        "actions": [{"action_id": "value"}],
        "view": {"callback_id": "review_modal", "private_metadata": '{"launch": ["x"]}'},
    }
)
@example(
    payload={
        "type": "block_actions",
        "user": {"id": "U0ALICE"},
        "response_url": ELSEWHERE,
        "actions": [{"action_id": "notebook_stop", "value": "a/b"}],
        "trigger_id": "1.2.3",
    }
)
@example(
    payload={
        "type": "view_submission",
        "user": {"id": "U0ALICE"},
        "team": {"id": "T0SIM"},
        "view": {
            "id": "V2",
            "callback_id": "launch_modal",
            "private_metadata": "{}",
            "blocks": [{"type": "input", "block_id": "disk", "element": {"action_id": "value"}}],
            "state": {"values": {"disk": {"value": {"type": "plain_text_input", "value": "9" * 5000}}}},
        },
    }
)
def test_a_signed_malformed_payload_is_acked_or_refused_and_never_reaches_elsewhere(
    world: tuple[Bot, Elsewhere], payload: dict[str, Any]
) -> None:
    bot, elsewhere = world
    if "response_url" in payload:
        payload = {**payload, "response_url": f"{elsewhere.url}/hook"}
    body = interaction(payload)
    headers = {"Content-Type": "application/x-www-form-urlencoded", **sign(SECRET, body)}
    reply = raw_post(f"{bot.url}/slack/events", body, headers)
    sent.append(reply.status)
    assert reply.status == 200 or 400 <= reply.status < 500, (reply.status, reply.body[:200])
    if reply.status != 200:
        assert "<html" not in reply.body.lower()
    assert elsewhere.requests == []


def test_a_view_submission_with_a_huge_field_is_flagged_on_that_field(world: tuple[Bot, Elsewhere]) -> None:
    """Through HTTP: the 5,000-digit disk comes back as a field error, not a crash."""
    bot, _ = world
    bot.driver.command("U0ALICE", "new")
    [view_id] = bot.slack.wait_for(lambda: list(bot.slack.views()))
    reply = bot.driver.submit("U0ALICE", view_id, {"disk": {"value": "9" * 5000}})
    assert reply.status == 200
    answer = json.loads(reply.body)
    assert answer["response_action"] == "errors" and list(answer["errors"]) == ["disk"]
    assert "digits" in answer["errors"]["disk"] or "characters long" in answer["errors"]["disk"]


@pytest.mark.parametrize(
    "payload",
    [
        {"type": "block_actions", "user": {"id": "U0BOB"}, "actions": [], "trigger_id": "1.2.3"},
        {"type": "block_actions", "user": {"id": "U0BOB"}, "actions": "approve", "trigger_id": "1.2.3"},
    ],
)
def test_regression_a_click_bolt_cannot_read_is_acked_and_the_person_told(
    world: tuple[Bot, Elsewhere], payload: dict[str, Any]
) -> None:
    """actions=[] used to get Bolt's 404 "didn't call ack()" after 3 s (or a 500)."""
    bot, elsewhere = world
    body = interaction({**payload, "response_url": f"{elsewhere.url}/hook"})
    reply = raw_post(
        f"{bot.url}/slack/events", body, {"Content-Type": "application/x-www-form-urlencoded", **sign(SECRET, body)}
    )
    assert reply.status == 200
    [dm] = bot.slack.wait_for(lambda: bot.slack.messages("DU0BOB"))
    assert "couldn't read" in dm.text or "Something went wrong" in dm.text
    assert elsewhere.requests == []
