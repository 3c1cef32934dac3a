"""Idle and forgotten notebooks, with a clock the tests move: reminders, snooze, escalation,
auto-stop, opt-in auto-delete, working hours, and concurrent sweeps."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from bot.domain.records import Records, Reminded, Swept
from tests.harness import Bot
from tests.support.store_calls import WRITES, CountedStore

MONDAY_10_UTC = datetime(2026, 11, 30, 10, 0, tzinfo=UTC).timestamp()  # 11:00 in Paris, 05:00 in New York
MONDAY_06_UTC = MONDAY_10_UTC - 4 * 3600  # so that 9 hours later it is still working hours in Paris
HOUR, DAY = 3600, 86400
BASE = '[access]\nadmins = ["U0ADMIN"]\napprovers = ["U0APPROVER"]\napproval_channel = "C0APPROVALS"\n'


@pytest.fixture
def make_bot(configured_bot):
    return lambda reminders="": configured_bot(BASE + "[reminders]\n" + reminders, MONDAY_10_UTC)


def launch_ready(bot: Bot, user: str, name: str, extra: str = "") -> None:
    bot.launch_ready(user, name, extra, step=5)


def dms(bot: Bot, user: str) -> list:
    return [m for m in bot.slack.messages(f"D{user}") if not m.ephemeral]


def sweep(bot: Bot):
    return bot.services.lifecycle.sweep()


def store_calls(bot: Bot, action: Callable[[], Any]) -> Counter[tuple[str, str]]:
    """The store calls `action` made, by (method, collection)."""
    assert isinstance(bot.store, CountedStore)
    before = Counter(bot.store.calls)
    action()
    return Counter(bot.store.calls) - before


def writes(calls: Counter[tuple[str, str]], collection: str) -> int:
    return sum(calls[method, collection] for method in WRITES)


def test_a_long_running_gpu_gets_one_reminder_with_cost_and_buttons(make_bot) -> None:
    bot = make_bot()
    bot.clock.now = MONDAY_06_UTC
    launch_ready(bot, "U0ALICE", "gpu-nb", "gpu=l4")
    bot.clock.advance(7 * HOUR)
    assert sweep(bot).reminders == 0 and dms(bot, "U0ALICE") == []
    bot.clock.advance(2 * HOUR)
    assert sweep(bot).reminders == 1
    [dm] = dms(bot, "U0ALICE")
    assert "`gpu-nb`" in dm.text and "running for 9.0 h" in dm.text and "≈$6.70 so far this run" in dm.text
    elements = [e for b in dm.blocks if b["type"] == "actions" for e in b["elements"]]
    assert [e["action_id"] for e in elements] == ["lifecycle_stop", "lifecycle_snooze"]
    assert sweep(bot).reminders == 0 and len(dms(bot, "U0ALICE")) == 1, "never twice for the same period"


def reminded_about_a_gpu(make_bot) -> tuple[Bot, Any]:
    """A bot whose sweep has just sent Alice a reminder about her L4 notebook running for 9 h."""
    bot = make_bot()
    bot.clock.now = MONDAY_06_UTC
    launch_ready(bot, "U0ALICE", "gpu-nb", "gpu=l4")
    bot.clock.advance(9 * HOUR)
    sweep(bot)
    [dm] = dms(bot, "U0ALICE")
    return bot, dm


def test_stop_now_stops_it_and_the_reminder_shows_the_result(make_bot) -> None:
    bot, dm = reminded_about_a_gpu(make_bot)
    bot.driver.click("U0ALICE", dm, "lifecycle_stop")
    bot.reconcile_until(lambda: "Stopped `gpu-nb`" in bot.slack.message(dm.channel, dm.ts).text, step=5)
    assert bot.store.get("notebooks", "gpu-nb")["state"] == "STOPPED"


def test_a_stranger_cannot_answer_someone_elses_reminder(make_bot) -> None:
    bot, dm = reminded_about_a_gpu(make_bot)
    bot.driver.click("U0BOB", dm, "lifecycle_stop")
    refusal = bot.slack.wait_for(lambda: [m for m in bot.slack.messages() if m.ephemeral and m.user == "U0BOB"])
    assert "belongs to <@U0ALICE>" in refusal[0].text
    assert bot.workbench.count("stop") == 0


def test_snooze_keeps_it_quiet_until_the_chosen_time(make_bot) -> None:
    bot = make_bot('running_gpu_after = "1h"\nrepeat_every = "1h"\nrespect_working_hours = false\n')
    launch_ready(bot, "U0ALICE", "gpu-nb", "gpu=l4")
    start = bot.clock.now
    bot.clock.now = start + HOUR + 60
    assert sweep(bot).reminders == 1
    [dm] = dms(bot, "U0ALICE")
    bot.driver.choose("U0ALICE", dm, "lifecycle_snooze", f"gpu-nb|{8 * HOUR}")
    bot.slack.wait_for(lambda: "Keeping `gpu-nb`" in bot.slack.message(dm.channel, dm.ts).text)
    bot.clock.now = start + 4 * HOUR  # three reminder periods later, inside the 8 h snooze
    assert sweep(bot).reminders == 0
    bot.clock.now = start + 10 * HOUR  # the snooze is over
    assert sweep(bot).reminders == 1


def test_a_long_stopped_notebook_gets_a_reminder_about_its_disk_cost(make_bot) -> None:
    bot = make_bot()
    launch_ready(bot, "U0ALICE", "old-nb", "disk=500")
    bot.driver.command("U0ALICE", "stop old-nb")
    bot.reconcile_until(lambda: bot.store.get("notebooks", "old-nb")["state"] == "STOPPED", step=5)
    bot.clock.now = MONDAY_10_UTC + 14 * DAY + HOUR
    assert sweep(bot).reminders == 1
    [dm] = [m for m in dms(bot, "U0ALICE") if "stopped for" in m.text]
    assert "≈$65.00/month" in dm.text  # (500 + 150) GB of balanced disk at $0.10
    actions = [e for b in dm.blocks if b["type"] == "actions" for e in b["elements"]]
    assert actions[0]["action_id"] == "lifecycle_delete" and "confirm" in actions[0]


def test_workbench_idle_shutdown_gets_a_short_note_once(make_bot) -> None:
    bot = make_bot()
    launch_ready(bot, "U0ALICE", "idle-nb")
    [name] = [n for n in bot.workbench.instances() if n.endswith("/idle-nb")]
    bot.workbench.set_state(name, "STOPPED")
    bot.clock.advance(HOUR)
    assert sweep(bot).notes == 1
    assert "idle shutdown" in dms(bot, "U0ALICE")[0].text
    assert sweep(bot).notes == 0 and len(dms(bot, "U0ALICE")) == 1


def test_unanswered_reminders_escalate_to_admins_and_stop_the_notebook(make_bot) -> None:
    bot = make_bot('running_gpu_after = "1h"\nrepeat_every = "1h"\nescalate_after = 2\nrespect_working_hours = false\n')
    launch_ready(bot, "U0ALICE", "gpu-nb", "gpu=l4")
    for _ in range(2):
        bot.clock.advance(HOUR + 60)
        assert sweep(bot).reminders == 1
    bot.clock.advance(HOUR + 60)
    report = sweep(bot)
    assert report.escalations == 1 and report.auto_stops == 1
    admin = bot.slack.wait_for(lambda: dms(bot, "U0ADMIN"))
    assert "hasn't answered 2 reminders about `gpu-nb`" in admin[0].text
    assert "admins were told" in dms(bot, "U0ALICE")[-1].text
    bot.reconcile_until(lambda: bot.store.get("notebooks", "gpu-nb")["state"] == "STOPPED", step=5)
    bot.clock.advance(HOUR)
    assert sweep(bot).escalations == 0


def test_no_automatic_deletion_unless_the_policy_turns_it_on(make_bot) -> None:
    bot = make_bot("respect_working_hours = false\n")
    launch_ready(bot, "U0ALICE", "kept")
    bot.driver.command("U0ALICE", "stop kept")
    bot.reconcile_until(lambda: bot.store.get("notebooks", "kept")["state"] == "STOPPED", step=5)
    bot.clock.advance(400 * DAY)
    report = sweep(bot)
    assert report.auto_deletes == 0 and bot.workbench.count("delete") == 0


def test_opt_in_auto_delete_is_announced_then_done(make_bot) -> None:
    bot = make_bot(
        'stopped_after = "30d"\nauto_delete_stopped_after = "10d"\nauto_delete_notice = "3d"\n'
        "respect_working_hours = false\n"
    )
    launch_ready(bot, "U0ALICE", "old")
    bot.driver.command("U0ALICE", "stop old")
    bot.reconcile_until(lambda: bot.store.get("notebooks", "old")["state"] == "STOPPED", step=5)
    stopped_at = bot.store.get("notebooks", "old")["state_since"]
    bot.clock.now = stopped_at + 8 * DAY
    assert sweep(bot).auto_deletes == 0
    assert "will be *deleted on" in dms(bot, "U0ALICE")[-1].text
    bot.clock.now = stopped_at + 10 * DAY + 60
    assert sweep(bot).auto_deletes == 1
    bot.reconcile_until(lambda: bot.store.get("notebooks", "old") is None, step=5)
    assert bot.workbench.count("delete") == 1


def test_reminders_wait_for_the_owners_working_hours(make_bot) -> None:
    bot = make_bot('running_cpu_after = "1h"\n')
    launch_ready(bot, "U0BOB", "bob-nb")  # Bob is in New York: 05:00 at MONDAY_10_UTC
    bot.clock.advance(2 * HOUR)  # 07:00 in New York
    report = sweep(bot)
    assert report.reminders == 0 and report.deferred == 1
    bot.clock.advance(3 * HOUR)  # 10:00 in New York
    assert sweep(bot).reminders == 1


def test_two_concurrent_sweeps_send_each_reminder_once(make_bot) -> None:
    bot = make_bot('running_cpu_after = "1h"\n')
    for n in range(3):
        launch_ready(bot, "U0ALICE", f"nb-{n}")
    bot.clock.advance(2 * HOUR)
    threads = [threading.Thread(target=sweep, args=(bot,)) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(dms(bot, "U0ALICE")) == 3


def test_a_notebook_deleted_elsewhere_gets_no_reminder(make_bot) -> None:
    bot = make_bot('running_cpu_after = "1h"\n')
    launch_ready(bot, "U0ALICE", "vanished")
    [name] = [n for n in bot.workbench.instances() if n.endswith("/vanished")]
    bot.workbench.remove(name)
    bot.clock.advance(2 * HOUR)
    assert sweep(bot).reminders == 0
    assert bot.store.get("notebooks", "vanished")["state"] == "GONE"


def test_a_sweep_waits_out_slacks_rate_limit_and_still_delivers(make_bot) -> None:
    bot = make_bot('running_cpu_after = "1h"\n')
    launch_ready(bot, "U0ALICE", "nb")
    bot.clock.advance(2 * HOUR)
    bot.slack.rate_limit_next("chat.postMessage", retry_after=1)
    assert sweep(bot).reminders == 1
    assert len(dms(bot, "U0ALICE")) == 1
    attempts = [c for c in bot.slack.calls("chat.postMessage") if c.args.get("channel") == "DU0ALICE"]
    assert [c.error for c in attempts] == ["ratelimited", None], "429 honoured, then retried once"


def test_a_reminder_slack_failed_to_deliver_is_sent_by_the_next_sweep(make_bot) -> None:
    bot = make_bot('running_cpu_after = "1h"\n')
    launch_ready(bot, "U0ALICE", "nb")
    bot.clock.advance(2 * HOUR)
    bot.slack.fail_next("chat.postMessage", "internal_error")
    assert sweep(bot).reminders == 0 and dms(bot, "U0ALICE") == []
    assert sweep(bot).reminders == 1 and len(dms(bot, "U0ALICE")) == 1


def test_a_reminder_whose_reply_slack_lost_is_never_sent_again(make_bot) -> None:
    """Slack posted it but the reply was lost: the sweep can't tell, so at most once wins."""
    bot = make_bot('running_cpu_after = "1h"\n')
    launch_ready(bot, "U0ALICE", "nb")
    bot.clock.advance(2 * HOUR)
    bot.slack.lose_next_reply("chat.postMessage")
    sweep(bot)
    assert len(dms(bot, "U0ALICE")) == 1, "Slack posted it"
    bot.clock.advance(10 * 60)
    sweep(bot)
    assert len(dms(bot, "U0ALICE")) == 1, "not repeated by the next sweep"


def test_of_three_reminders_the_one_slack_failed_is_sent_by_the_next_sweep_and_no_other_again(make_bot) -> None:
    """The claims are taken together; the failed send gives only its own back."""
    bot = make_bot('running_cpu_after = "1h"\n')
    for n in range(3):
        launch_ready(bot, "U0ALICE", f"nb-{n}")
    bot.clock.advance(2 * HOUR)
    bot.slack.fail_next("chat.postMessage", "internal_error")
    assert sweep(bot).reminders == 2 and len(dms(bot, "U0ALICE")) == 2
    assert sweep(bot).reminders == 1 and sweep(bot).reminders == 0
    assert sorted(m.text.split("`")[1] for m in dms(bot, "U0ALICE")) == ["nb-0", "nb-1", "nb-2"]


def test_reminders_sent_by_a_sweep_that_died_before_its_bookkeeping_are_never_sent_again(make_bot) -> None:
    bot = make_bot('running_cpu_after = "1h"\n')
    for n in range(2):
        launch_ready(bot, "U0ALICE", f"nb-{n}")
    bot.clock.advance(2 * HOUR)
    bot.store.dead = True
    assert sweep(bot).reminders == 2 and len(dms(bot, "U0ALICE")) == 2
    assert "said" not in bot.store.get("notebooks", "nb-0"), "the bookkeeping was lost"
    bot.store.dead = False
    bot.clock.advance(10 * 60)
    assert sweep(bot).reminders == 0 and len(dms(bot, "U0ALICE")) == 2, "the claims stand"


# --- what a sweep costs ------------------------------------------------------------------------------
def test_a_sweep_with_nothing_due_writes_nothing(make_bot) -> None:
    """The cloud agrees with the records and no reminder is due: no transaction, claim or audit
    entry, and no App Home refreshed."""
    bot = make_bot('running_cpu_after = "1h"\n')
    for name in ("nb-a", "nb-b"):
        launch_ready(bot, "U0ALICE", name)
    bot.clock.advance(30 * 60)
    homes = len(bot.slack.calls("views.publish"))
    calls = store_calls(bot, lambda: sweep(bot))
    assert [writes(calls, c) for c in ("notebooks", "reminders", "audit")] == [0, 0, 0], calls
    assert calls["query", "notebooks"] >= 1 and len(bot.slack.calls("views.publish")) == homes


def test_the_sweep_records_a_running_notebooks_new_address(make_bot) -> None:
    """Only the URL changed in the cloud (same state): the record follows it."""
    bot = make_bot()
    launch_ready(bot, "U0ALICE", "nb")
    [(name, instance)] = [(n, i) for n, i in bot.workbench.instances().items() if n.endswith("/nb")]
    moved = "moved-dot-us-central1.notebooks.googleusercontent.com"
    bot.workbench.restore({name: {**instance, "proxyUri": moved}})
    sweep(bot)
    assert bot.store.get("notebooks", "nb")["url"] == f"https://{moved}"


def test_a_reminder_is_one_claim_one_record_write_and_one_audit_entry(make_bot) -> None:
    bot = make_bot('running_cpu_after = "1h"\n')
    launch_ready(bot, "U0ALICE", "nb")
    bot.clock.advance(2 * HOUR)
    calls = store_calls(bot, lambda: sweep(bot))
    assert len(dms(bot, "U0ALICE")) == 1
    assert (writes(calls, "reminders"), writes(calls, "notebooks"), writes(calls, "audit")) == (1, 1, 1), calls


def test_a_sweeps_reminders_are_claimed_in_one_transaction(make_bot) -> None:
    bot = make_bot('running_cpu_after = "1h"\n')
    for n in range(3):
        launch_ready(bot, "U0ALICE", f"nb-{n}")
    bot.clock.advance(2 * HOUR)
    calls = store_calls(bot, lambda: sweep(bot))
    assert len(dms(bot, "U0ALICE")) == 3
    assert (calls["update_many", "reminders"], writes(calls, "reminders")) == (1, 1), calls


def test_a_later_sweep_in_the_same_period_tries_no_claim_again(make_bot) -> None:
    """The record says which reminder went out, so sweeps every few minutes don't re-claim it."""
    bot = make_bot('running_cpu_after = "1h"\n')
    launch_ready(bot, "U0ALICE", "nb")
    bot.clock.advance(2 * HOUR)
    assert sweep(bot).reminders == 1
    bot.clock.advance(10 * 60)
    calls = store_calls(bot, lambda: sweep(bot))
    assert [writes(calls, c) for c in ("notebooks", "reminders", "audit")] == [0, 0, 0], calls
    bot.clock.advance(DAY)  # the next period: reminded again, as before
    assert sweep(bot).reminders == 1 and len(dms(bot, "U0ALICE")) == 2


def test_an_owners_timezone_is_looked_up_once_per_sweep(make_bot) -> None:
    bot = make_bot('running_cpu_after = "1h"\n')
    for n in range(3):
        launch_ready(bot, "U0ALICE", f"nb-{n}")
    bot.clock.advance(2 * HOUR)
    asked = len(bot.slack.calls("users.info"))
    calls = store_calls(bot, lambda: sweep(bot))
    assert len(dms(bot, "U0ALICE")) == 3
    assert calls["get", "users"] == 1 and len(bot.slack.calls("users.info")) - asked <= 1, calls


def test_the_message_budget_holds_exactly_though_notebooks_are_looked_at_together(make_bot) -> None:
    bot = make_bot('running_cpu_after = "1h"\nmax_messages_per_sweep = 2\n')
    for n in range(3):  # the default quota
        launch_ready(bot, "U0ALICE", f"nb-{n}")
    bot.clock.advance(2 * HOUR)
    first = sweep(bot)
    assert (first.reminders, first.deferred) == (2, 1)
    reminded = sorted(m.text.split("`")[1] for m in dms(bot, "U0ALICE"))
    assert reminded == ["nb-0", "nb-1"], "in the sweep's order, as one at a time"
    assert sweep(bot).reminders == 1 and sweep(bot).reminders == 0 and len(dms(bot, "U0ALICE")) == 3


def test_a_sweep_reads_the_notebooks_once(make_bot) -> None:
    bot = make_bot('running_cpu_after = "1h"\n')
    for n in range(2):
        launch_ready(bot, "U0ALICE", f"nb-{n}")
    bot.clock.advance(2 * HOUR)
    calls = store_calls(bot, lambda: sweep(bot))
    assert len(dms(bot, "U0ALICE")) == 2
    assert calls["query", "notebooks"] == 1 and calls["get", "notebooks"] == 0, calls


def test_what_a_sweep_said_counts_once_however_often_it_is_written(make_bot) -> None:
    """A batch of the sweep's bookkeeping that fails is written again one notebook at a time: the
    reminder it carries must not count twice."""
    bot = make_bot('running_cpu_after = "1h"\n')
    launch_ready(bot, "U0ALICE", "nb")
    run = bot.store.get("notebooks", "nb")["state_since"]
    visit = Swept("nb", ("nb:1:running:0",), reminder=Reminded("nb:1:running:0", run, {"channel": "D", "ts": "1"}))
    records = Records(bot.store)
    records.swept([visit])
    records.swept([visit])
    doc = bot.store.get("notebooks", "nb")
    assert (doc["unanswered"], doc["unanswered_run"], doc["said"]) == (1, run, ["nb:1:running:0"])
