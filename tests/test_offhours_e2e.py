"""Off-hours end to end: signed Slack requests, the real sweep, the Firestore emulator and the
Workbench fake, with a clock the tests move. Alice works in Paris (UTC+1 in December): GPU
notebooks stop there at 20:00 on working days and all weekend, after a heads-up at 19:30."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from tests.harness import Bot

HOUR, MINUTE = 3600, 60
TUESDAY_10_UTC = datetime(2026, 12, 1, 10, 0, tzinfo=UTC).timestamp()  # 11:00 in Paris
TUESDAY_HEADS_UP = datetime(2026, 12, 1, 18, 30, tzinfo=UTC).timestamp()  # 19:30 in Paris
TUESDAY_STOP = datetime(2026, 12, 1, 19, 0, tzinfo=UTC).timestamp()  # 20:00 in Paris
WEDNESDAY_MORNING = datetime(2026, 12, 2, 8, 0, tzinfo=UTC).timestamp()  # 09:00 in Paris
SATURDAY_10_UTC = datetime(2026, 12, 5, 10, 0, tzinfo=UTC).timestamp()
CONFIG = '[access]\nadmins = ["U0ADMIN"]\napprovers = ["U0APPROVER"]\napproval_channel = "C0APPROVALS"\n'
NO_CLOCK_REMINDERS = 'running_gpu_after = "7d"\n'  # the [reminders] of most tests here


@pytest.fixture
def make_bot(configured_bot):
    def make(schedules: str = "", start: float = TUESDAY_10_UTC, reminders: str = NO_CLOCK_REMINDERS) -> Bot:
        return configured_bot(CONFIG + "[reminders]\n" + reminders + "[schedules]\n" + schedules, start)

    return make


def launch_ready(bot: Bot, name: str, extra: str = "gpu=l4", user: str = "U0ALICE") -> None:
    bot.launch_ready(user, name, extra, step=5)


def sweep_at(bot: Bot, when: float):
    bot.clock.now = when
    return bot.services.lifecycle.sweep()


def dms(bot: Bot, user: str = "U0ALICE") -> list:
    return [m for m in bot.slack.messages(f"D{user}") if not m.ephemeral]


def heads_ups(bot: Bot) -> list:
    return [m for m in dms(bot) if m.text.startswith("🌙")]


def state(bot: Bot, name: str) -> str:
    return bot.store.get("notebooks", name)["state"]


def stopped(bot: Bot, name: str) -> None:
    bot.reconcile_until(lambda: state(bot, name) == "STOPPED", step=5)


def test_a_heads_up_at_half_past_seven_then_the_stop_at_eight_then_one_morning_report(make_bot) -> None:
    bot = make_bot()
    launch_ready(bot, "gpu-nb")
    assert sweep_at(bot, TUESDAY_HEADS_UP - MINUTE).offhours_heads_ups == 0 and heads_ups(bot) == []

    assert sweep_at(bot, TUESDAY_HEADS_UP).offhours_heads_ups == 1
    [dm] = heads_ups(bot)
    assert "`gpu-nb`" in dm.text and "stops at Tue 20:00 (your time): off-hours, by the team's schedule" in dm.text
    [keep] = [e for b in dm.blocks if b["type"] == "actions" for e in b["elements"]]
    assert keep["text"]["text"] == "Keep it tonight"
    assert sweep_at(bot, TUESDAY_HEADS_UP + 10 * MINUTE).offhours_heads_ups == 0 and len(heads_ups(bot)) == 1
    assert bot.workbench.count("stop") == 0, "not before the stop point"

    report = sweep_at(bot, TUESDAY_STOP)
    assert report.schedule_stops == 1 and report.messages == 0, "the stop itself is silent at night"
    stopped(bot, "gpu-nb")
    assert sweep_at(bot, TUESDAY_STOP + HOUR).schedule_stops == 0 and bot.workbench.count("stop") == 1

    assert sweep_at(bot, WEDNESDAY_MORNING - MINUTE).morning_reports == 0
    assert sweep_at(bot, WEDNESDAY_MORNING).morning_reports == 1
    [morning] = [m for m in dms(bot) if m.text.startswith("☀️")]
    assert "Off-hours stopped `gpu-nb` at Tue 20:00 (your time): 13.0 h not running saved ≈$9.67" in morning.text
    assert "/notebook start gpu-nb" in morning.text
    for later in (WEDNESDAY_MORNING + 10 * MINUTE, WEDNESDAY_MORNING + 2 * HOUR):
        assert sweep_at(bot, later).morning_reports == 0
    assert len([m for m in dms(bot) if m.text.startswith("☀️")]) == 1, "reported once"


def test_keep_it_tonight_skips_tonight_only_and_a_second_click_changes_nothing(make_bot) -> None:
    bot = make_bot()
    launch_ready(bot, "gpu-nb")
    sweep_at(bot, TUESDAY_HEADS_UP)
    [dm] = heads_ups(bot)
    bot.driver.click("U0ALICE", dm, "offhours_keep")
    kept = bot.slack.wait_for(lambda: "kept tonight" in (m := bot.slack.message(dm.channel, dm.ts)).text and m)
    assert "by <@U0ALICE>: it runs until Wed 09:00" in kept.text
    assert not any(b["type"] == "actions" for b in kept.blocks), "the button is gone"

    bot.driver.click("U0ALICE", dm, "offhours_keep")  # the stale copy, with its button: a second click
    again = bot.slack.wait_for(lambda: [m for m in bot.slack.messages() if m.ephemeral and "ℹ️" in m.text])
    assert "was kept tonight by <@U0ALICE>" in again[0].text
    assert bot.store.get("notebooks", "gpu-nb")["offhours"]["kept_until"] == WEDNESDAY_MORNING

    assert sweep_at(bot, TUESDAY_STOP + 5 * MINUTE).schedule_stops == 0
    assert sweep_at(bot, WEDNESDAY_MORNING - HOUR).schedule_stops == 0
    assert state(bot, "gpu-nb") == "ACTIVE" and bot.workbench.count("stop") == 0

    assert sweep_at(bot, TUESDAY_HEADS_UP + 24 * HOUR).offhours_heads_ups == 1, "Wednesday evening: as usual"
    assert sweep_at(bot, TUESDAY_STOP + 24 * HOUR).schedule_stops == 1
    stopped(bot, "gpu-nb")


def test_a_strangers_click_is_refused_and_the_stop_goes_ahead(make_bot) -> None:
    bot = make_bot()
    launch_ready(bot, "gpu-nb")
    sweep_at(bot, TUESDAY_HEADS_UP)
    [dm] = heads_ups(bot)
    bot.driver.click("U0BOB", dm, "offhours_keep")
    refusal = bot.slack.wait_for(lambda: [m for m in bot.slack.messages() if m.ephemeral and m.user == "U0BOB"])
    assert "belongs to <@U0ALICE>" in refusal[0].text
    assert "kept_until" not in bot.store.get("notebooks", "gpu-nb")["offhours"]
    assert sweep_at(bot, TUESDAY_STOP).schedule_stops == 1
    stopped(bot, "gpu-nb")


def test_an_admin_may_keep_it_for_the_owner(make_bot) -> None:
    bot = make_bot()
    launch_ready(bot, "gpu-nb")
    sweep_at(bot, TUESDAY_HEADS_UP)
    [dm] = heads_ups(bot)
    bot.driver.click("U0ADMIN", dm, "offhours_keep")
    bot.slack.wait_for(lambda: "kept tonight by <@U0ADMIN>" in bot.slack.message(dm.channel, dm.ts).text)
    assert sweep_at(bot, TUESDAY_STOP).schedule_stops == 0


def test_a_click_after_the_stop_says_so_and_changes_nothing(make_bot) -> None:
    bot = make_bot()
    launch_ready(bot, "gpu-nb")
    sweep_at(bot, TUESDAY_HEADS_UP)
    [dm] = heads_ups(bot)
    sweep_at(bot, TUESDAY_STOP)
    bot.driver.click("U0ALICE", dm, "offhours_keep")
    late = bot.slack.wait_for(lambda: [m for m in bot.slack.messages() if m.ephemeral and "⚠️" in m.text])
    assert "already stopped for the night" in late[0].text
    assert "kept_until" not in bot.store.get("notebooks", "gpu-nb")["offhours"]


def test_weekends_are_off_hours_all_day_unless_the_notebook_says_plus_weekends(make_bot) -> None:
    bot = make_bot(start=SATURDAY_10_UTC)
    launch_ready(bot, "saturday")
    launch_ready(bot, "weekender", "gpu=l4 schedule=default+weekends")
    sweep_at(bot, SATURDAY_10_UTC + 5 * MINUTE)  # (or the sweep of a reconcile pass while launching)
    [dm] = heads_ups(bot)  # started inside the window: a heads-up at once, not a stop
    assert "`saturday`" in dm.text and "stops at Sat 11:3" in dm.text
    assert state(bot, "saturday") == "ACTIVE"
    assert sweep_at(bot, SATURDAY_10_UTC + 40 * MINUTE).schedule_stops == 1
    stopped(bot, "saturday")
    assert sweep_at(bot, SATURDAY_10_UTC + 10 * HOUR).offhours_heads_ups == 0
    assert state(bot, "weekender") == "ACTIVE" and bot.workbench.count("stop") == 1
    monday = datetime(2026, 12, 7, 8, 0, tzinfo=UTC).timestamp()
    assert sweep_at(bot, monday).morning_reports == 1, "a Saturday stop is reported on Monday morning"


def test_schedule_off_is_never_stopped_and_says_so(make_bot) -> None:
    bot = make_bot("allow_off = true\n")
    launch_ready(bot, "all-night", "gpu=l4 schedule=off")
    assert "no evening stop" in bot.launch_message().text + str(bot.launch_message().blocks)
    listing = bot.driver.command("U0ALICE", "list").json()
    assert "no evening stop" in str(listing["blocks"])
    for when in (TUESDAY_HEADS_UP, TUESDAY_STOP, TUESDAY_STOP + 5 * HOUR, SATURDAY_10_UTC):
        report = sweep_at(bot, when)
        assert (report.offhours_heads_ups, report.schedule_stops) == (0, 0)
    assert heads_ups(bot) == [] and bot.workbench.count("stop") == 0


def test_an_own_stop_time_moves_the_heads_up_and_the_stop(make_bot) -> None:
    bot = make_bot()
    launch_ready(bot, "late", "gpu=l4 schedule=22:00")
    assert sweep_at(bot, TUESDAY_HEADS_UP).offhours_heads_ups == 0
    assert sweep_at(bot, TUESDAY_STOP + 90 * MINUTE).offhours_heads_ups == 1  # 21:30 in Paris
    [dm] = heads_ups(bot)
    assert "stops at Tue 22:00 (your time): off-hours, by its own `schedule=22:00`" in dm.text
    assert sweep_at(bot, TUESDAY_STOP + 2 * HOUR).schedule_stops == 1


@pytest.mark.parametrize(
    "typed, says",
    [
        ("schedule=25:00", "is not a schedule"),
        ("schedule=defualt", "Did you mean `default`?"),
        ("schedule=off", "`schedule=off` isn't allowed here"),
        ("schedule=07:00", "too early"),
        ("shedule=21:00", "Did you mean `schedule`?"),
    ],
)
def test_a_bad_schedule_is_refused_with_a_clear_message_and_nothing_is_recorded(make_bot, typed, says) -> None:
    bot = make_bot()
    reply = bot.driver.command("U0ALICE", f"new gpu=l4 name=bad {typed}").json()
    assert says in reply["text"]
    assert bot.store.query("launches") == [] and bot.store.query("notebooks") == []
    assert bot.channel_messages() == [] and bot.workbench.instances() == {}


def test_two_concurrent_sweeps_send_one_heads_up_and_ask_one_stop(make_bot) -> None:
    bot = make_bot()
    launch_ready(bot, "gpu-nb")
    bot.clock.now = TUESDAY_HEADS_UP
    threads = [threading.Thread(target=bot.services.lifecycle.sweep) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(heads_ups(bot)) == 1
    marks = bot.store.get("notebooks", "gpu-nb")["offhours"]
    assert marks["heads_up_for"] == TUESDAY_STOP, "whichever sweep sent it, the record says so"
    bot.clock.now = TUESDAY_STOP
    threads = [threading.Thread(target=bot.services.lifecycle.sweep) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stopped(bot, "gpu-nb")
    assert bot.workbench.count("stop") == 1 and len(bot.store.query("operations")) == 1


def test_the_launch_form_takes_a_schedule_and_flags_a_bad_one_on_its_field(make_bot) -> None:
    from tests.test_launch_modal_e2e import block, open_form, select, submit

    bot = make_bot()
    view = select(bot, open_form(bot), "gpu", "l4")
    reply = submit(bot, view, {"schedule": "tonight"})
    assert reply["response_action"] == "errors" and list(reply["errors"]) == [block(view, "schedule")["block_id"]]
    assert "is not a schedule" in reply["errors"]["schedule"] and bot.launches() == []

    assert submit(bot, view, {"schedule": "21:30+weekends", "name": "from-form"}) == {}
    bot.slack.wait_for(lambda: bot.launches())
    [launch] = bot.launches()
    assert launch["spec"]["schedule"] == "21:30+weekends"
    assert "evening stop 21:30, runs through weekends" in str(bot.launch_message().blocks)


def test_a_heads_up_whose_record_write_was_lost_is_recovered_not_sent_again(make_bot) -> None:
    bot = make_bot()
    launch_ready(bot, "gpu-nb")
    bot.store.dead = True
    assert sweep_at(bot, TUESDAY_HEADS_UP).offhours_heads_ups == 1
    assert "offhours" not in bot.store.get("notebooks", "gpu-nb"), "the bookkeeping was lost"
    bot.store.dead = False

    assert sweep_at(bot, TUESDAY_HEADS_UP + 5 * MINUTE).offhours_heads_ups == 0 and len(heads_ups(bot)) == 1
    marks = bot.store.get("notebooks", "gpu-nb")["offhours"]
    assert (marks["heads_up_for"], marks["heads_up_at"]) == (TUESDAY_STOP, TUESDAY_HEADS_UP), "read back from the claim"
    assert sweep_at(bot, TUESDAY_STOP).schedule_stops == 1, "the stop keeps its time: the heads-up did go out"


def test_heads_ups_count_against_the_sweeps_message_budget(make_bot) -> None:
    bot = make_bot(reminders="max_messages_per_sweep = 1\n" + NO_CLOCK_REMINDERS)
    launch_ready(bot, "nb-a")
    launch_ready(bot, "nb-b")
    first = sweep_at(bot, TUESDAY_HEADS_UP)
    assert first.offhours_heads_ups == 1 and first.deferred >= 1 and len(heads_ups(bot)) == 1
    assert sweep_at(bot, TUESDAY_HEADS_UP + 5 * MINUTE).offhours_heads_ups == 1 and len(heads_ups(bot)) == 2


def test_a_sweeps_heads_ups_are_claimed_in_one_transaction_and_a_failed_one_is_sent_next_sweep(make_bot) -> None:
    bot = make_bot()
    for name in ("nb-a", "nb-b", "nb-c"):
        launch_ready(bot, name)
    claimings = bot.store.count("update_many", "reminders")
    bot.slack.fail_next("chat.postMessage", "internal_error")
    assert sweep_at(bot, TUESDAY_HEADS_UP).offhours_heads_ups == 2 and len(heads_ups(bot)) == 2
    assert bot.store.count("update_many", "reminders") - claimings == 1, "three heads-ups, one claiming"
    assert bot.store.count("create", "reminders") == 0
    assert sweep_at(bot, TUESDAY_HEADS_UP + 5 * MINUTE).offhours_heads_ups == 1, "the failed one's claim was given back"
    assert sorted(m.text.split("`")[1] for m in heads_ups(bot)) == ["nb-a", "nb-b", "nb-c"]


def test_the_stop_is_at_eight_in_the_owners_own_timezone(make_bot) -> None:
    bot = make_bot()
    launch_ready(bot, "bobs-gpu", user="U0BOB")  # Bob is in New York: 19:30 there is 00:30 UTC
    assert sweep_at(bot, TUESDAY_HEADS_UP).offhours_heads_ups == 0 and sweep_at(bot, TUESDAY_STOP).schedule_stops == 0
    new_york_heads_up = datetime(2026, 12, 2, 0, 30, tzinfo=UTC).timestamp()
    assert sweep_at(bot, new_york_heads_up - MINUTE).offhours_heads_ups == 0
    assert sweep_at(bot, new_york_heads_up).offhours_heads_ups == 1
    [dm] = [m for m in dms(bot, "U0BOB") if m.text.startswith("🌙")]
    assert "stops at Tue 20:00 (your time)" in dm.text
    assert sweep_at(bot, new_york_heads_up + 30 * MINUTE).schedule_stops == 1


def running_at(bot: Bot, name: str, gpu_percent: float) -> None:
    """What Cloud Monitoring reports of `name` all day: its GPU at `gpu_percent`, its CPU a little."""
    day = datetime.fromtimestamp(TUESDAY_10_UTC - 2 * HOUR, UTC), datetime.fromtimestamp(TUESDAY_STOP + 2 * HOUR, UTC)
    bot.monitoring.add_instance(name, "us-central1-a")
    bot.monitoring.fill("gpu", name, gpu_percent, *day)
    bot.monitoring.fill("cpu", name, 0.02 if gpu_percent == 0 else 0.4, *day)


def test_a_missed_heads_up_stops_an_idle_notebook_at_once_but_a_busy_one_is_warned_first(make_bot) -> None:
    bot = make_bot()
    launch_ready(bot, "idle-nb")
    launch_ready(bot, "busy-nb")
    running_at(bot, "idle-nb", 0.0)
    running_at(bot, "busy-nb", 90.0)

    report = sweep_at(bot, TUESDAY_STOP + 5 * MINUTE)  # no sweep ran at 19:30: both heads-ups were missed
    assert report.schedule_stops == 1 and report.offhours_heads_ups == 1
    stopped(bot, "idle-nb")
    assert state(bot, "busy-nb") == "ACTIVE", "busy by its figures: not stopped without a heads-up"
    [dm] = heads_ups(bot)
    assert "busy-nb" in dm.text and "idle-nb" not in dm.text

    assert sweep_at(bot, TUESDAY_STOP + 40 * MINUTE).schedule_stops == 1, "stopped once the heads-up had its time"
    stopped(bot, "busy-nb")


def test_a_notebook_stopped_for_the_night_gets_no_running_reminder_in_the_same_sweep(make_bot) -> None:
    bot = make_bot(reminders='running_gpu_after = "8h"\nrespect_working_hours = false\n')
    launch_ready(bot, "late-nb")
    running_at(bot, "late-nb", 0.0)
    report = sweep_at(bot, TUESDAY_STOP + 5 * MINUTE)  # idle, heads-up missed: stopped at once; 9 h running
    assert report.schedule_stops == 1 and report.reminders == 0
    assert not [m for m in dms(bot) if "Still using it?" in m.text], "no 'still using it?' about a stopped notebook"
