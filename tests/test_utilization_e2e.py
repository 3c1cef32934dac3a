"""Utilization-aware reminders, end to end: signed Slack requests, the real sweep on the Firestore
emulator, and the Cloud Monitoring fake (reached by the real gRPC client) reporting what the test's
clock has reached. Idle notebooks are told what they cost idle, busy ones are left alone, and a
silent busy job gets a one-click way to keep Workbench's idle shutdown off its back."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

import grpc

from bot.domain.lifecycle import EXTEND_ACTION
from tests import test_lifecycle_e2e
from tests.harness import Bot
from tests.test_lifecycle_e2e import HOUR, MONDAY_06_UTC, dms, launch_ready, sweep

bots = test_lifecycle_e2e.make_bot  # that module's bot factory, as this module's fixture `bots`

ZONE = "us-central1-a"


def at(bot: Bot, seconds_ago: float = 0.0) -> datetime:
    return datetime.fromtimestamp(bot.clock.now - seconds_ago, UTC)


def report_usage(bot: Bot, name: str, *, gpu: float | None, cpu: float, since: float, until: float | None = None):
    """The VM `name` reports GPU (percent, as the Ops Agent does) and CPU (a fraction) every minute
    between `since` and `until` seconds ago (now by default)."""
    start, end = at(bot, since), at(bot, until or 0.0)
    if name not in bot.monitoring._instances:
        bot.monitoring.add_instance(name, ZONE)
    bot.monitoring.fill("cpu", name, cpu, start, end)
    if gpu is not None:
        bot.monitoring.fill("gpu", name, gpu, start, end)


def gpu_notebook(bots, reminders: str = "", name: str = "gpu-nb") -> Bot:
    bot = bots(reminders)
    bot.clock.now = MONDAY_06_UTC
    launch_ready(bot, "U0ALICE", name, "gpu=l4")
    return bot


def buttons(message) -> list[dict]:
    return [e for b in message.blocks if b["type"] == "actions" for e in b["elements"]]


def test_an_idle_gpu_is_told_how_long_it_sat_at_zero_and_what_that_cost(bots) -> None:
    bot = gpu_notebook(bots)
    launch_ready(bot, "U0ALICE", "cpu-nb")  # a second notebook: still one read per sweep
    bot.clock.advance(9 * HOUR)
    report_usage(bot, "gpu-nb", gpu=0.0, cpu=0.02, since=9 * HOUR)
    report_usage(bot, "cpu-nb", gpu=None, cpu=0.01, since=9 * HOUR)
    bot.monitoring.reset_calls()

    report = sweep(bot)

    assert report.reminders == 1 and report.monitoring_calls == 2
    assert bot.monitoring.count() == 2, "one query per metric for every notebook, not one per notebook"
    [dm] = dms(bot, "U0ALICE")
    per_hour = bot.store.get("notebooks", "gpu-nb")["spec"]["usd_per_hour"]
    assert f"GPU 0 % for the last 4.0 h, ≈${4 * per_hour:.2f} since" in dm.text
    assert "running for 9.0 h" in dm.text and "Still using it?" in dm.text
    assert [e["action_id"] for e in buttons(dm)] == ["lifecycle_stop", "lifecycle_snooze"]


def test_a_busy_gpu_is_not_nagged(bots) -> None:
    bot = gpu_notebook(bots)
    bot.clock.advance(9 * HOUR)
    report_usage(bot, "gpu-nb", gpu=92.0, cpu=0.6, since=9 * HOUR)

    report = sweep(bot)

    assert (report.reminders, report.busy) == (0, 1)
    assert not [m for m in dms(bot, "U0ALICE") if "Still using it?" in m.text]


def test_a_busy_notebook_is_not_stopped_by_escalation_until_it_goes_idle(bots) -> None:
    bot = gpu_notebook(
        bots,
        'running_gpu_after = "1h"\nrepeat_every = "1h"\nescalate_after = 2\nrespect_working_hours = false\n'
        "heads_up_after = 1.0\n",
    )
    start = bot.clock.now
    for _ in range(2):  # idle: two reminders nobody answers
        bot.clock.advance(HOUR + 60)
        report_usage(bot, "gpu-nb", gpu=0.0, cpu=0.01, since=bot.clock.now - start)
        assert sweep(bot).reminders == 1
    bot.clock.advance(2 * HOUR)  # then a training run keeps the GPU busy
    report_usage(bot, "gpu-nb", gpu=95.0, cpu=0.5, since=2 * HOUR)

    report = sweep(bot)

    assert (report.escalations, report.auto_stops, report.busy) == (0, 0, 1)
    assert dms(bot, "U0ADMIN") == [] and bot.workbench.count("stop") == 0
    assert bot.store.get("notebooks", "gpu-nb")["state"] == "ACTIVE"

    bot.clock.advance(4 * HOUR)  # the run is over; the GPU has sat at 0 % since
    report_usage(bot, "gpu-nb", gpu=0.0, cpu=0.01, since=4 * HOUR)
    report = sweep(bot)
    assert (report.escalations, report.auto_stops) == (1, 1)
    bot.reconcile_until(lambda: bot.store.get("notebooks", "gpu-nb")["state"] == "STOPPED", step=5)


def test_without_figures_the_reminder_says_so_and_the_clock_rule_stands(bots) -> None:
    bot = gpu_notebook(bots)
    bot.clock.advance(9 * HOUR)
    report_usage(bot, "gpu-nb", gpu=None, cpu=0.0, since=9 * HOUR)  # CPU only: no Ops Agent for the GPU

    assert sweep(bot).reminders == 1
    [dm] = dms(bot, "U0ALICE")
    assert "no utilization figures for it" in dm.text and "running for 9.0 h" in dm.text
    assert "GPU 0 %" not in dm.text, "not measured is never read as 0 %"


def test_a_monitoring_failure_does_not_break_the_sweep_and_is_logged_once(bots, caplog) -> None:
    bot = gpu_notebook(bots)
    launch_ready(bot, "U0ALICE", "second", "gpu=l4")
    bot.clock.advance(9 * HOUR)
    report_usage(bot, "gpu-nb", gpu=0.0, cpu=0.0, since=9 * HOUR)
    bot.monitoring.fail_next(grpc.StatusCode.PERMISSION_DENIED, "Permission monitoring.timeSeries.list denied")

    with caplog.at_level(logging.WARNING, logger="bot.domain.lifecycle"):
        report = sweep(bot)

    assert report.reminders == 2 and report.monitoring_calls == 0
    assert all("no utilization figures for it" in m.text for m in dms(bot, "U0ALICE"))
    warnings = [r.getMessage() for r in caplog.records if "utilization" in r.getMessage()]
    assert len(warnings) == 1 and "roles/monitoring.viewer" in warnings[0]


def test_monitoring_unavailable_falls_back_to_the_clock(bots) -> None:
    bot = gpu_notebook(bots)
    bot.clock.advance(9 * HOUR)
    report_usage(bot, "gpu-nb", gpu=0.0, cpu=0.0, since=9 * HOUR)
    bot.monitoring.fail_next(grpc.StatusCode.UNAVAILABLE, "The service is currently unavailable.", times=1000)

    report = sweep(bot)  # retried for a few seconds, then given up

    assert report.reminders == 1 and "no utilization figures for it" in dms(bot, "U0ALICE")[0].text
    assert bot.monitoring.count() > 1, "retried before giving up"


# --- the heads-up: idle shutdown would stop a silent busy job ------------------------------------------
def headed_up(bots) -> tuple[Bot, object]:
    """Alice's L4 notebook (idle timeout 3 h) has kept its GPU busy for 2 h: the sweep warns her."""
    bot = gpu_notebook(bots)
    bot.clock.advance(2 * HOUR)
    report_usage(bot, "gpu-nb", gpu=97.0, cpu=0.3, since=2 * HOUR)
    assert sweep(bot).heads_ups == 1
    [dm] = dms(bot, "U0ALICE")
    return bot, dm


def idle_timeout_in_the_cloud(bot: Bot) -> str:
    [instance] = [i for n, i in bot.workbench.instances().items() if n.endswith("/gpu-nb")]
    return instance["gceSetup"]["metadata"]["idle-timeout-seconds"]


def test_a_silent_busy_job_gets_a_heads_up_once_per_run(bots) -> None:
    bot, dm = headed_up(bots)
    assert "counts only notebook activity" in dm.text and "GPU busy (≈97 %)" in dm.text
    assert [(e["action_id"], e["text"]["text"]) for e in buttons(dm)] == [(EXTEND_ACTION, "Extend idle timeout to 24h")]
    bot.clock.advance(HOUR)
    report_usage(bot, "gpu-nb", gpu=97.0, cpu=0.3, since=HOUR)
    assert sweep(bot).heads_ups == 0 and len(dms(bot, "U0ALICE")) == 1


def test_one_click_extends_the_idle_timeout_on_the_instance_and_the_record(bots) -> None:
    bot, dm = headed_up(bots)
    before = bot.workbench.instances()
    assert idle_timeout_in_the_cloud(bot) == "10800"

    bot.driver.click("U0ALICE", dm, EXTEND_ACTION)
    bot.reconcile_until(lambda: "✅" in bot.slack.message(dm.channel, dm.ts).text, step=5)

    assert "idle timeout is now 24h" in bot.slack.message(dm.channel, dm.ts).text
    assert idle_timeout_in_the_cloud(bot) == "86400"
    [(name, old)] = [(n, i) for n, i in before.items() if n.endswith("/gpu-nb")]
    new_metadata = bot.workbench.instances()[name]["gceSetup"]["metadata"]
    assert {k: v for k, v in new_metadata.items() if k != "idle-timeout-seconds"} == {
        k: v for k, v in old["gceSetup"]["metadata"].items() if k != "idle-timeout-seconds"
    }, "the other metadata keys stay"
    assert bot.store.get("notebooks", "gpu-nb")["spec"]["idle_seconds"] == 86400
    [patch] = [c for c in bot.workbench.calls() if c.kind == "update"]
    assert patch.query["updateMask"] == "gceSetup.metadata"

    bot.driver.click("U0ALICE", dm, EXTEND_ACTION)  # the same offer again
    again = bot.slack.wait_for(lambda: [m for m in bot.slack.messages() if m.ephemeral and "Already asked" in m.text])
    assert "idle timeout is now 24h" in again[0].text
    assert bot.workbench.count("update") == 1


def test_a_strangers_click_on_the_heads_up_is_refused(bots) -> None:
    bot, dm = headed_up(bots)
    bot.driver.click("U0BOB", dm, EXTEND_ACTION)
    refusal = bot.slack.wait_for(lambda: [m for m in bot.slack.messages() if m.ephemeral and m.user == "U0BOB"])
    assert "belongs to <@U0ALICE>" in refusal[0].text
    bot.clock.advance(60)
    bot.services.reconcile()
    assert bot.workbench.count("update") == 0 and idle_timeout_in_the_cloud(bot) == "10800"
    assert bot.store.get("notebooks", "gpu-nb")["spec"]["idle_seconds"] == 10800


def test_a_forged_timeout_in_the_button_changes_nothing(bots) -> None:
    bot, dm = headed_up(bots)
    bot.driver.click("U0ALICE", dm, EXTEND_ACTION, value="gpu-nb|999999")
    refusal = bot.slack.wait_for(lambda: [m for m in bot.slack.messages() if m.ephemeral and m.user == "U0ALICE"])
    assert "not the idle timeout the heads-up offered" in refusal[0].text
    assert bot.workbench.count("update") == 0


def test_monitoring_is_read_at_the_sweeps_moment(bots) -> None:
    """The figures end at the sweep's clock, not the machine's: samples later than it don't count yet."""
    bot = gpu_notebook(bots)
    bot.clock.advance(9 * HOUR)
    report_usage(bot, "gpu-nb", gpu=0.0, cpu=0.0, since=9 * HOUR)
    bot.monitoring.reset_calls()
    sweep(bot)
    [call] = [c for c in bot.monitoring.calls() if "cpu" in c.filter]
    assert call.end == at(bot) and call.start == at(bot) - timedelta(hours=4)


def test_a_refused_change_is_shown_in_place_and_the_record_keeps_its_timeout(bots) -> None:
    bot, dm = headed_up(bots)
    bot.workbench.fail_next("update", 403, "Permission 'notebooks.instances.update' denied")

    bot.driver.click("U0ALICE", dm, EXTEND_ACTION)
    bot.reconcile_until(lambda: "❌" in bot.slack.message(dm.channel, dm.ts).text, step=5)

    assert "Couldn't extend `gpu-nb`'s idle timeout" in bot.slack.message(dm.channel, dm.ts).text
    assert idle_timeout_in_the_cloud(bot) == "10800"
    assert bot.store.get("notebooks", "gpu-nb")["spec"]["idle_seconds"] == 10800
