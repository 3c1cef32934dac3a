"""How a stop judges trouble (leases.Runner with Retries.call): Google refusing ends it at once,
Google failing for a while is waited out until half an hour after the request, and Slack being
down is waited out for as long as it takes, since nothing is wrong with the notebook."""

from __future__ import annotations

import pytest

from bot.adapters.firestore import FirestoreStore
from bot.domain.operations import Operations
from tests.harness import Bot


@pytest.fixture
def bot(firestore_host, firestore_project, monkeypatch):
    store = FirestoreStore.connect(firestore_project)
    with Bot(store, monkeypatch) as bot:
        bot.launch_ready("U0ALICE", "nb-alice")  # its last post (the ping) is over: the failures are the stop's
        yield bot


def stop(bot: Bot) -> dict:
    """Ask for the stop and let the steps the request started finish; the operation's record."""
    bot.driver.command("U0ALICE", "stop nb-alice")
    bot.slack.wait_for(lambda: bot.store.query("operations") and not bot.leased())
    [op] = bot.store.query("operations")
    return op


def shown(bot: Bot, words: str) -> bool:
    return any(words in m.text for m in bot.channel_messages())


def test_a_stop_google_refuses_fails_at_once_with_its_words_and_the_notebook_keeps_running(bot: Bot) -> None:
    bot.workbench.fail_next("stop", 403, "Permission 'notebooks.instances.stop' denied")
    stop(bot)
    [message] = bot.reconcile_until(lambda: [m for m in bot.channel_messages() if "Couldn't stop `nb" in m.text])
    assert bot.workbench.count("stop") == 1, "a refusal is not asked again"
    assert "notebooks.instances.stop" in message.text and "not allowed" in message.text
    assert bot.store.get("notebooks", "nb-alice")["state"] == "ACTIVE"
    assert bot.store.query("operations", open=True) == []


def test_a_stop_google_keeps_failing_is_retried_until_half_an_hour_after_the_request(bot: Bot) -> None:
    bot.workbench.fail_next("stop", 503, "backend unavailable", times=10_000)
    op = stop(bot)
    bot.reconcile_until(lambda: bot.store.get("operations", op["id"])["errors"] >= 4, step=25)
    assert bot.store.get("operations", op["id"])["state"] == "REQUESTED", "not given up yet"
    assert not shown(bot, "Couldn't stop")

    bot.slack.wait_for(lambda: not bot.leased())  # no worker mid-step when the clock jumps
    bot.clock.now = op["created_at"] + Operations.TIMEOUT + 1
    bot.reconcile_until(lambda: shown(bot, "Couldn't stop `nb-alice`"), step=25)
    assert shown(bot, "Workbench is unavailable right now (backend unavailable)")
    assert bot.store.get("notebooks", "nb-alice")["state"] == "ACTIVE"


def test_a_stop_waits_out_slack_being_down_past_the_half_hour_and_then_goes_through(bot: Bot) -> None:
    bot.slack.fail_next("chat.postMessage", "internal_error", times=10_000)  # down until it recovers
    op = stop(bot)
    bot.reconcile_until(lambda: bot.clock() - op["created_at"] > Operations.TIMEOUT + 60, passes=200, step=25)
    assert bot.store.get("operations", op["id"])["state"] != "FAILED", "not given up while Slack is down"
    assert not shown(bot, "Stopped `nb-alice`")

    bot.slack.recover("chat.postMessage")
    bot.reconcile_until(lambda: shown(bot, "Stopped `nb-alice`"), passes=200, step=25)
    assert bot.store.get("notebooks", "nb-alice")["state"] == "STOPPED"
    assert not shown(bot, "Couldn't stop")
