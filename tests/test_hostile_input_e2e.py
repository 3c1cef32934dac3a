"""Regression tests for hostile and broken input through the whole bot (real Bolt app over HTTP,
Firestore emulator, Slack and Workbench simulators): names that are paths, numbers past Python's
int digit limit, replies that quote long input, and a first post Slack fails.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bot.adapters.firestore import FirestoreStore
from bot.run.config import load_config
from tests.harness import Bot
from tests.test_block_kit_limits import valid_message

SORRY = "Something went wrong"


@pytest.fixture
def bot(firestore_host: str, firestore_project: str, monkeypatch: pytest.MonkeyPatch, tmp_path) -> Iterator[Bot]:
    config = tmp_path / "config.toml"
    config.write_text('[access]\nadmins = ["U0ADMIN"]\n')
    store = FirestoreStore.connect(firestore_project)
    with Bot(store, monkeypatch, config=load_config(config)) as running:
        yield running


def reply_of(bot: Bot, user: str, text: str) -> str:
    """What the person is shown: the acknowledgement, else the first reply through the response URL."""
    before = len(bot.slack.calls("response_url"))
    ack = bot.driver.command(user, text)
    assert ack.status == 200
    if ack.json().get("text"):
        valid_message((ack.json()["text"], ack.json().get("blocks") or [{"type": "divider"}]))
        return ack.json()["text"]
    later = bot.slack.wait_for(lambda: bot.slack.calls("response_url")[before:])
    return later[0].args.get("text", "")


@pytest.mark.parametrize(
    "text",
    [
        "delete a/b",
        "stop a/b",
        "start a/b",
        "stop ../../etc",
        "delete __name__",
        "transfer a/b <@U0BOB>",
        "stop " + "x" * 2000,
    ],
)
def test_a_name_that_is_a_path_is_refused_clearly(bot: Bot, text: str) -> None:
    """These raised Firestore's "even number of path elements" and the person got "Something went wrong"."""
    reply = reply_of(bot, "U0ALICE", text)
    assert "can't be a notebook name" in reply and SORRY not in reply
    assert [c for c in bot.workbench.calls() if c.kind != "list"] == []  # (list: the cloud sync of `list`)


def test_adopting_a_path_or_a_bad_zone_is_refused_before_any_api_call(bot: Bot) -> None:
    assert "can't be a notebook name" in reply_of(bot, "U0ADMIN", "adopt a/b <@U0BOB>")
    assert "not a zone name" in reply_of(bot, "U0ADMIN", "adopt fine-name <@U0BOB> zone=../../x")
    assert bot.workbench.calls() == []


@pytest.mark.parametrize("option", ["disk=", "boot-disk=", "idle=", "gpu=l4x"])
def test_thousands_of_digits_get_a_clear_refusal(bot: Bot, option: str) -> None:
    reply = reply_of(bot, "U0ALICE", "new tf-2-8 " + option + "9" * 5000)
    assert "characters long" in reply and SORRY not in reply
    assert len(reply) < 1000 and "…" in reply
    assert bot.launches() == []


def test_a_reply_quoting_long_input_fits_slack_s_limits(bot: Bot) -> None:
    ack = bot.driver.command("U0ALICE", "new " + "é" * 90 + " " + "q" * 20_000).json()
    valid_message((ack["text"], ack["blocks"]))


def test_when_slack_fails_the_first_post_the_launch_goes_on_and_nobody_is_told_it_failed(bot: Bot) -> None:
    bot.slack.fail_next("chat.postMessage", "internal_error")
    assert bot.driver.command("U0ALICE", "new tf-2-8").status == 200
    bot.slack.wait_for(lambda: bot.launches())
    message = bot.reconcile_until(lambda: [m for m in bot.channel_messages() if "ready" in m.text])
    assert message, "the reconciler posted the launch message Slack refused the first time"
    told = [c.args.get("text", "") for c in bot.slack.calls() if c.method in ("response_url", "chat.postMessage")]
    assert not any(SORRY in t for t in told), told
    assert bot.workbench.count("create") == 1


def test_a_command_that_mentions_payload_is_read_as_a_command(bot: Bot) -> None:
    """Bolt took any form body containing "payload" for an interaction and found nothing in it."""
    assert "Launch and manage" in bot.driver.command("U0ALICE", "help payload").json()["text"]
    assert bot.driver.command("U0ALICE", "new tf-2-8 name=payload-model").status == 200
    bot.slack.wait_for(lambda: bot.launches())
    assert bot.launches()[0]["instance_id"] == "payload-model"
