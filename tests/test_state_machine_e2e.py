"""The launch as one state machine, tried the way it breaks in production: racing passes, Slack
replies that never arrive, Google failing mid-creation, many launches at once, people changing
their mind, and double clicks. Signed Slack requests in; Firestore (emulator) in between."""

from __future__ import annotations

import threading

import pytest

from bot.adapters.store import SqliteStore
from bot.domain import leases
from bot.run.config import load_config
from tests.harness import Bot, ephemeral

APPROVAL_CONFIG = (
    '[access]\nadmins = ["U0ADMIN"]\napprovers = ["U0APPROVER"]\napproval_channel = "C0APPROVALS"\n'
    "[policy]\napproval_over_usd_per_hour = 1.0\n"
)
A100 = "new gpu=a100 name=big"  # ≈$3.70/h: needs an approver under APPROVAL_CONFIG


@pytest.fixture
def bot(store, monkeypatch, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(APPROVAL_CONFIG)
    with Bot(store, monkeypatch, config=load_config(config)) as bot:
        yield bot


def top_level(bot: Bot, channel: str = "C0GENERAL") -> list:
    return [m for m in bot.channel_messages(channel) if m.thread_ts is None]


def thread_of(bot: Bot, message) -> list[str]:
    return [m.text for m in bot.channel_messages(message.channel) if m.thread_ts == message.ts]


def ephemerals(bot: Bot, user: str) -> list:
    return [m for m in bot.slack.messages() if m.ephemeral and m.user == user]


def ready(bot: Bot) -> bool:
    return any("is ready for" in m.text for m in top_level(bot))


def launch_doc(bot: Bot, name: str) -> dict:
    [doc] = [d for d in bot.store.query("launches") if d["instance_id"] == name]
    return doc


def idle(bot: Bot) -> None:
    """Wait until the steps a request or a click started are over."""
    bot.slack.wait_for(bot.settled)


# --- the race: a pass and the request's own steps --------------------------------------------------
def test_a_pass_racing_the_requests_first_step_posts_no_second_message(bot: Bot) -> None:
    gate = bot.slack.hold("chat.postMessage")  # the request's step stops just before Slack posts
    assert bot.driver.command("U0ALICE", "new name=raced").status == 200
    assert gate.arrived.wait(10), "the request's step reached Slack"
    assert bot.services.reconcile()["launches"] == 0, "the pass finds the launch leased and leaves it"
    assert bot.services.reconcile()["launches"] == 0
    gate.release()
    bot.slack.wait_for(lambda: top_level(bot))
    idle(bot)
    bot.reconcile_until(lambda: ready(bot))
    assert len(top_level(bot)) == 1, [m.text for m in top_level(bot)]


def test_a_pass_that_takes_over_an_expired_lease_recovers_the_post_instead_of_repeating_it(bot: Bot) -> None:
    gate = bot.slack.hold("chat.postMessage")
    bot.driver.command("U0ALICE", "new name=slowpost")
    assert gate.arrived.wait(10)
    bot.clock.advance(31)  # the request's step outlives its lease (a stalled replica)
    taker = threading.Thread(target=bot.services.reconcile)
    taker.start()  # takes the launch over and finds the intent to post: it looks before posting
    gate.release()
    taker.join(20)
    idle(bot)
    bot.reconcile_until(lambda: ready(bot))
    assert len(top_level(bot)) == 1, [m.text for m in top_level(bot)]


# --- Slack's reply lost -------------------------------------------------------------------------------
def test_a_lost_reply_to_the_launch_message_is_recovered_not_posted_again(bot: Bot) -> None:
    bot.slack.lose_next_reply("chat.postMessage")  # Slack posts it; the bot never hears so
    bot.driver.command("U0ALICE", "new name=lost")
    bot.slack.wait_for(lambda: top_level(bot))
    idle(bot)
    bot.reconcile_until(lambda: ready(bot))
    [message] = top_level(bot)
    assert message.updates >= 1, "the recovered message is the one updated with the link"
    posts_with_link = [c for c in bot.slack.calls("chat.postMessage") if "Open JupyterLab" in str(c.args)]
    assert [c.args.get("thread_ts") for c in posts_with_link] == [message.ts], "only the ping in its thread"
    assert len([t for t in thread_of(bot, message) if "is ready" in t]) == 1
    assert bot.slack.calls("conversations.history"), "it looked for its own post"


def test_a_lost_reply_to_the_ready_ping_is_recovered_not_pinged_again(bot: Bot) -> None:
    bot.driver.command("U0ALICE", "new name=pinged")
    bot.slack.wait_for(lambda: top_level(bot))
    idle(bot)
    bot.slack.lose_next_reply("chat.postMessage")  # the next post is the ping in the thread
    bot.reconcile_until(lambda: not launch_doc(bot, "pinged")["open"])
    [message] = top_level(bot)
    assert len([t for t in thread_of(bot, message) if "is ready" in t]) == 1
    assert bot.slack.calls("conversations.replies")


def test_a_lost_launch_message_of_a_launch_that_turns_ready_first_is_found_and_shows_the_link(bot: Bot) -> None:
    bot.workbench.op_polls_until_done = 10_000  # the creation waits for settle()
    bot.slack.lose_next_reply("chat.postMessage")  # Slack posts "Creating…"; the bot never hears so
    bot.driver.command("U0ALICE", "new name=busy")
    bot.slack.wait_for(lambda: top_level(bot))
    idle(bot)
    bot.workbench.settle()  # the instance turns ACTIVE
    bot.clock.advance(60)  # the message's retry is due
    while bot.services.slack.pacing.post("C0GENERAL", urgent=True):
        pass  # a busy channel: no post token, so the pass sees the instance ready before the retry
    bot.services.reconcile()
    assert launch_doc(bot, "busy")["state"] == "READY"
    bot.reconcile_until(lambda: not launch_doc(bot, "busy")["open"])
    [message] = [m for m in top_level(bot) if m.metadata["event_payload"]["marker"].endswith("/message")]
    assert "is ready for" in message.text, "the message Slack did post shows the outcome, not 'Creating…'"
    assert "Cancel" not in str(message.blocks)


def test_without_the_history_scope_a_lost_post_is_given_up_rather_than_repeated(store, monkeypatch, tmp_path) -> None:
    from bot.sim.slack_api import DEFAULT_SCOPES

    scopes = [s for s in DEFAULT_SCOPES if not s.endswith(":history")]
    with Bot(store, monkeypatch, scopes=scopes) as bot:
        bot.slack.lose_next_reply("chat.postMessage")
        bot.driver.command("U0ALICE", "new name=scopeless")
        bot.slack.wait_for(lambda: top_level(bot))
        idle(bot)
        bot.reconcile_until(lambda: not bot.store.query("launches", open=True))
        launch_messages = [m for m in top_level(bot) if m.metadata["event_payload"]["marker"].endswith("/message")]
        assert len(launch_messages) == 1, "at most once wins over being seen"
        [told] = [m for m in top_level(bot) if m not in launch_messages]
        assert "<@U0ALICE>" in told.text and "Open JupyterLab" in str(told.blocks), "the link still reaches her"


# --- Google failing while a creation takes its time -----------------------------------------------------
def test_a_slow_creation_that_meets_transient_errors_still_ends_ready(bot: Bot) -> None:
    bot.workbench.op_polls_until_done = 12  # twelve looks before the operation is done
    bot.driver.command("U0ALICE", "new name=slow")
    bot.slack.wait_for(lambda: bot.workbench.count("create") == 1)
    idle(bot)
    bot.workbench.fail_next("get_operation", 503, "backend unavailable")
    bot.workbench.fail_next("get_operation", 429, "rate limited")
    bot.workbench.fail_next("get_operation", 503, "connection reset", times=4)
    bot.reconcile_until(lambda: ready(bot), passes=120)
    notebook = bot.store.get("notebooks", "slow")
    assert notebook["state"] == "ACTIVE" and launch_doc(bot, "slow")["state"] == "READY"
    assert bot.workbench.count("create") == 1


def test_a_launch_that_gives_up_after_its_create_keeps_the_record_for_the_cloud_sync(bot: Bot) -> None:
    bot.workbench.op_polls_until_done = 10_000  # never done in this test
    bot.driver.command("U0ALICE", "new name=stuck")
    bot.slack.wait_for(lambda: bot.workbench.count("create") == 1)
    idle(bot)
    bot.workbench.fail_next("get_operation", 503, "backend unavailable", times=10_000)
    bot.clock.advance(bot.services.launcher.CREATE_TIMEOUT + 1)
    bot.reconcile_until(lambda: launch_doc(bot, "stuck")["state"] == "FAILED")
    notebook = bot.store.get("notebooks", "stuck")
    assert notebook is not None and notebook["state"] == "PROVISIONING", "the instance may exist: not forgotten"
    bot.workbench.settle()  # the instance turns out to exist
    bot.services.notebooks.sync(force=True)
    assert bot.store.get("notebooks", "stuck")["state"] == "ACTIVE"


# --- many at once -----------------------------------------------------------------------------------------
def test_twelve_simultaneous_launches_by_one_person_take_exactly_the_quota(store, monkeypatch, tmp_path) -> None:
    config = tmp_path / "config.toml"
    config.write_text("[policy]\nmax_notebooks_per_user = 5\n")
    with Bot(store, monkeypatch, config=load_config(config)) as bot:
        barrier = threading.Barrier(12)
        replies: list[dict] = []

        def launch(i: int) -> None:
            barrier.wait()
            replies.append(bot.driver.command("U0ALICE", f"new name=nb-{i:02d}").json())

        threads = [threading.Thread(target=launch, args=(i,)) for i in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        accepted = [r for r in replies if "Launching" in r.get("text", "")]
        bot.slack.wait_for(lambda: not bot.leased() and len(bot.launches()) == len(accepted))
        bot.reconcile_until(lambda: all(not d["open"] for d in bot.launches()), step=5)
        assert len(bot.store.query("notebooks")) == 5 and len(bot.workbench.instances()) == 5
        refused_at_once = [r for r in replies if "count towards the limit of 5" in r.get("text", "")]
        refused_later = [d for d in bot.launches() if d["state"] == "FAILED"]
        assert len(refused_at_once) + len(refused_later) == 7
        assert all("count towards the limit of 5" in d["error"] for d in refused_later)


# --- changing one's mind: cancel in each state -------------------------------------------------------------
def test_cancel_while_waiting_for_approval_withdraws_the_request_for_the_approvers(bot: Bot) -> None:
    bot.driver.command("U0ALICE", A100)
    request = bot.slack.wait_for(lambda: bot.slack.messages("C0APPROVALS"))[0]
    idle(bot)
    assert "cancel" in bot.driver.command("U0ALICE", "cancel big").json()["text"].lower()
    withdrawn = bot.slack.wait_for(
        lambda: (m := bot.slack.message(request.channel, request.ts)) and "Withdrawn by <@U0ALICE>" in m.text and m
    )
    assert not [b for b in withdrawn.blocks if b["type"] == "actions"], "no buttons left"
    bot.slack.wait_for(lambda: "Cancelled" in top_level(bot)[0].text)
    assert bot.store.query("notebooks") == [], "the name and the quota are free again"
    late = bot.driver.click("U0APPROVER", request, "approve_launch")  # a stale copy with its buttons
    assert late.status == 200
    told = bot.slack.wait_for(lambda: ephemerals(bot, "U0APPROVER"))
    assert "withdrawn by <@U0ALICE>" in told[0].text and bot.workbench.count("create") == 0


def test_cancel_while_queued_stops_it_before_anything_is_created(bot: Bot) -> None:
    gate = bot.slack.hold("users.info")  # the launch is reserved (queued) and stops there, before its create
    bot.driver.command("U0ALICE", "new name=queued")
    assert gate.arrived.wait(10)
    assert bot.store.get("notebooks", "queued")["state"] == "QUEUED"
    listing = bot.services.notebooks.owned_by("U0ALICE")
    assert [n.state for n in listing] == ["QUEUED"]
    assert "cancel" in bot.driver.command("U0ALICE", "cancel queued").json()["text"].lower()
    gate.release()
    bot.slack.wait_for(lambda: (t := top_level(bot)) and "Cancelled" in t[0].text)
    idle(bot)
    bot.services.reconcile()
    assert bot.workbench.count("create") == 0 and bot.store.query("notebooks") == []


def test_cancel_while_creating_deletes_the_instance_once_it_exists(bot: Bot) -> None:
    bot.driver.command("U0ALICE", "new name=doomed")
    message = bot.slack.wait_for(lambda: top_level(bot))[0]
    bot.slack.wait_for(lambda: launch_doc(bot, "doomed")["state"] == "CREATING")
    idle(bot)
    assert bot.driver.click("U0ALICE", bot.slack.message(message.channel, message.ts), "cancel_launch").status == 200
    bot.reconcile_until(lambda: bot.workbench.instances() == {} and bot.store.get("notebooks", "doomed") is None)
    final = bot.slack.message(message.channel, message.ts)
    assert "Deleted `doomed`" in final.text or "deleting the instance" in final.text, final.text
    assert launch_doc(bot, "doomed")["state"] == "CANCELLED" and bot.workbench.count("delete") == 1


def test_only_the_requester_or_an_admin_can_cancel_and_a_ready_notebook_is_deleted_instead(bot: Bot) -> None:
    bot.driver.command("U0ALICE", A100)
    bot.slack.wait_for(lambda: bot.slack.messages("C0APPROVALS"))
    idle(bot)
    refused = bot.driver.command("U0BOB", "cancel big").json()["text"]
    assert "Only <@U0ALICE>" in refused and launch_doc(bot, "big")["cancel"] is None
    assert "Cancelling" in bot.driver.command("U0ADMIN", "cancel big").json()["text"]
    bot.driver.command("U0ALICE", "new name=done")
    bot.reconcile_until(lambda: len(top_level(bot)) == 2)  # launch messages in one channel are paced
    idle(bot)
    bot.reconcile_until(lambda: ready(bot))
    assert "No launch of `done` is under way" in bot.driver.command("U0ALICE", "cancel done").json()["text"]


def test_the_app_home_offers_cancel_for_each_launch_under_way(bot: Bot) -> None:
    bot.driver.command("U0ALICE", A100)
    bot.slack.wait_for(lambda: bot.slack.messages("C0APPROVALS"))
    idle(bot)
    bot.driver.event({"type": "app_home_opened", "user": "U0ALICE", "tab": "home"})
    home = bot.slack.wait_for(lambda: bot.slack.home("U0ALICE"))
    assert "waiting for approval" in str(home["blocks"])
    assert bot.driver.click_home("U0ALICE", "cancel_launch").status == 200
    bot.slack.wait_for(lambda: launch_doc(bot, "big")["state"] == "CANCELLED")


# --- every one-click offer acts once -------------------------------------------------------------------------
def test_the_replacement_gpu_offer_launches_once_however_often_and_by_whom_it_is_clicked(bot: Bot) -> None:
    reply = bot.driver.command("U0ALICE", "new gpu=p100 name=offered").json()
    offer = ephemeral(reply, user="U0ALICE", channel="C0GENERAL")
    first = bot.driver.click("U0ALICE", offer, "launch_offer")
    bot.slack.wait_for(bot.launches)  # clicks are acknowledged first: let Alice's be the first one taken
    again = bot.driver.click("U0BOB", offer, "launch_offer")  # the same message, a second click
    assert first.status == again.status == 200
    told = bot.slack.wait_for(lambda: [m for m in bot.slack.messages() if "already used" in m.text])
    assert "<@U0ALICE> launched `offered`" in told[0].text
    idle(bot)
    bot.reconcile_until(lambda: ready(bot))
    assert len(bot.launches()) == 1 and bot.workbench.count("create") == 1


def reminding_after_an_hour(tmp_path):
    config = tmp_path / "config.toml"
    config.write_text('[reminders]\nrespect_working_hours = false\nrunning_gpu_after = "1h"\n')
    return config


def reminded_of_a_busy_gpu(bot: Bot):
    """Alice's GPU notebook `busy`, ready and running for two hours: the reminder DM it got."""
    bot.driver.command("U0ALICE", "new gpu=l4 name=busy")
    bot.slack.wait_for(lambda: top_level(bot))
    idle(bot)
    bot.reconcile_until(lambda: ready(bot))
    bot.clock.advance(2 * 3600)
    bot.services.lifecycle.sweep()
    [reminder] = [m for m in bot.slack.messages("DU0ALICE") if "running for" in m.text]
    return reminder


def test_stop_now_clicked_twice_stops_once_and_says_so(store, monkeypatch, tmp_path) -> None:
    config = reminding_after_an_hour(tmp_path)
    with Bot(store, monkeypatch, config=load_config(config)) as bot:
        reminder = reminded_of_a_busy_gpu(bot)
        assert bot.driver.click("U0ALICE", reminder, "lifecycle_stop").status == 200
        assert bot.driver.click("U0ALICE", reminder, "lifecycle_stop").status == 200  # the stale copy
        told = bot.slack.wait_for(lambda: [m for m in ephemerals(bot, "U0ALICE") if "Already asked" in m.text])
        assert "busy" in told[0].text
        idle(bot)
        bot.reconcile_until(lambda: "Stopped `busy`" in bot.slack.message(reminder.channel, reminder.ts).text)
        assert bot.workbench.count("stop") == 1


class OneStaleRead(SqliteStore):
    """A store whose next reads of operations miss them, as a click racing the one that recorded
    it reads: the interleaving in which both clicks pass the duplicate checks by key."""

    stale = 0

    def get(self, collection: str, key: str):
        if collection == "operations" and self.stale:
            self.stale -= 1
            return None
        return super().get(collection, key)


def test_a_second_click_racing_the_first_is_told_it_was_already_asked(monkeypatch, tmp_path) -> None:
    config = reminding_after_an_hour(tmp_path)
    store = OneStaleRead(tmp_path / "store.sqlite3")
    with Bot(store, monkeypatch, config=load_config(config)) as bot:
        reminder = reminded_of_a_busy_gpu(bot)
        bot.driver.click("U0ALICE", reminder, "lifecycle_stop")
        bot.slack.wait_for(lambda: bot.store.query("operations"))
        store.stale = 2
        bot.driver.click("U0ALICE", reminder, "lifecycle_stop")  # its looks by key miss the first click's record
        told = bot.slack.wait_for(lambda: [m for m in ephemerals(bot, "U0ALICE") if "busy" in m.text])
        assert "Already asked" in told[0].text and "already stopping" not in told[0].text
        idle(bot)
        bot.reconcile_until(lambda: "Stopped `busy`" in bot.slack.message(reminder.channel, reminder.ts).text)
        assert bot.workbench.count("stop") == 1


def test_a_delete_confirmation_clicked_twice_deletes_once(bot: Bot) -> None:
    bot.driver.command("U0ALICE", "new name=twice")
    bot.slack.wait_for(lambda: top_level(bot))
    idle(bot)
    bot.reconcile_until(lambda: ready(bot))
    confirm = ephemeral(bot.driver.command("U0ALICE", "delete twice").json(), user="U0ALICE", channel="C0GENERAL")
    bot.driver.click("U0ALICE", confirm, "notebook_delete_confirm")
    bot.driver.click("U0ALICE", confirm, "notebook_delete_confirm")
    idle(bot)
    bot.reconcile_until(lambda: bot.store.get("notebooks", "twice") is None)
    assert bot.workbench.count("delete") == 1 and len(bot.store.query("operations")) == 1


# --- names say what is happening ------------------------------------------------------------------------------
def test_list_names_each_state_truthfully(bot: Bot) -> None:
    bot.driver.command("U0ALICE", A100)  # waiting for approval
    bot.slack.wait_for(lambda: bot.slack.messages("C0APPROVALS"))
    idle(bot)
    bot.driver.command("U0ALICE", "new name=running")
    bot.slack.wait_for(lambda: len(top_level(bot)) == 2)
    idle(bot)
    bot.reconcile_until(lambda: bot.store.get("notebooks", "running")["state"] == "ACTIVE")
    bot.driver.command("U0ALICE", "stop running")
    idle(bot)
    bot.reconcile_until(lambda: bot.store.get("notebooks", "running")["state"] == "STOPPED")
    bot.workbench.op_polls_until_done = 10_000
    bot.driver.command("U0ALICE", "new name=making")
    bot.slack.wait_for(lambda: (bot.store.get("notebooks", "making") or {}).get("state") == "CREATING")
    idle(bot)
    text = bot.driver.command("U0ALICE", "list").json()["text"]  # from the store, in the acknowledgement
    assert "*big* · ⏸ waiting for approval" in text and "*making* · ⏳ creating" in text
    assert "*running* · ⏹ stopped" in text and "launching" not in text


def test_leases_carry_a_nudge_made_during_a_step(bot: Bot) -> None:
    """A decision or a cancel written while a worker holds the launch makes it due at once."""
    bot.driver.command("U0ALICE", A100)
    bot.slack.wait_for(lambda: bot.slack.messages("C0APPROVALS"))
    idle(bot)
    launch_id = launch_doc(bot, "big")["id"]
    held = leases.claim(bot.store, "launches", launch_id, "other", bot.clock(), 30)
    assert held is not None
    bot.services.launcher.cancel("U0ALICE", bot.services.launcher.get(launch_id))
    doc = leases.release(bot.store, "launches", launch_id, "other", bot.clock(), {"next_at": bot.clock() + 7200})
    assert doc["next_at"] == 0.0 and doc["cancel"]["by"] == "U0ALICE"


# --- waiting for the instance ------------------------------------------------------------------------------
def test_a_launch_waiting_for_its_instance_costs_a_pass_no_lease_and_no_write(store, monkeypatch, tmp_path) -> None:
    from tests.support.store_calls import CountedStore

    counted = CountedStore(store)
    with Bot(counted, monkeypatch) as bot:
        bot.workbench.op_polls_until_done = 1000  # the instance stays PROVISIONING until the test says
        bot.driver.command("U0ALICE", "new name=slow")
        bot.launch_message()
        idle(bot)
        bot.reconcile_until(lambda: launch_doc(bot, "slow")["state"] == "CREATING" and not bot.leased())
        shown = launch_doc(bot, "slow")["last_shown"]
        before = counted.writes("launches")
        for _ in range(5):  # 25 s: the message's elapsed time is not due for a refresh (every 30 s)
            bot.clock.advance(5)
            bot.services.reconcile()
        assert counted.writes("launches") == before, "five passes looked without a lease or a write"
        bot.clock.advance(10)
        bot.services.reconcile()
        assert launch_doc(bot, "slow")["last_shown"] > shown, "the message's elapsed time moved on"

        bot.workbench.settle()  # the instance turns ACTIVE
        bot.clock.advance(bot.services.launcher.poll_seconds)  # the next tick
        bot.services.reconcile()
        assert launch_doc(bot, "slow")["state"] == "READY", "the link comes in the first pass after ACTIVE"
