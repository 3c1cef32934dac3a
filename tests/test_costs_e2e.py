"""`/notebook costs` and the weekly digest, end to end: signed Slack requests, the Firestore emulator,
the Workbench fake, utilization read by the real Monitoring client from the Monitoring fake, and the
Slack fake receiving the digest and its chart through files_upload_v2.

The known history: Alice's L4 notebook runs 10 hours from Monday 06:00 UTC, its GPU at 0 % for the
first 4 hours and at 80 % for the last 6; then it is stopped. Bob's CPU notebook runs 2 hours.
"""

from __future__ import annotations

import re
import struct
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bot.adapters.firestore import FirestoreStore
from bot.adapters.monitoring import Utilization
from bot.run.config import load_config
from bot.run.services import Services
from bot.sim.monitoring_api import MonitoringSimulator
from tests.harness import Bot, ephemeral
from tests.support.store_calls import CountedStore

MONDAY_06 = datetime(2026, 11, 30, 6, 0, tzinfo=UTC).timestamp()
HOUR = 3600
ZONE = "us-central1-a"
CONFIG = '[access]\nadmins = ["U0ADMIN"]\napprovers = ["U0APPROVER"]\n[costs]\ntimezone = "UTC"\n'
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
MONEY = r"\$([\d,]+\.\d\d)"


@pytest.fixture
def bot(firestore_host, firestore_project, monkeypatch, tmp_path) -> Iterator[Bot]:
    config = tmp_path / "config.toml"
    config.write_text(CONFIG)
    store = CountedStore(FirestoreStore.connect(firestore_project))
    with Bot(store, monkeypatch, config=load_config(config)) as bot:
        bot.clock.now = MONDAY_06
        yield bot


@pytest.fixture
def monitoring(bot: Bot) -> Iterator[tuple[MonitoringSimulator, Utilization]]:
    def now() -> datetime:
        return datetime.fromtimestamp(bot.clock(), UTC)

    with MonitoringSimulator(clock=now) as sim:
        reader = Utilization("test-project", emulator_host=sim.host, clock=now)
        yield sim, reader
        reader.close()


def launch_ready(bot: Bot, user: str, name: str, extra: str = "") -> float:
    return bot.launch_ready(user, name, extra, step=1)


def stop(bot: Bot, user: str, name: str) -> None:
    bot.driver.command(user, f"stop {name}")
    bot.reconcile_until(lambda: bot.store.get("notebooks", name)["state"] == "STOPPED", step=1)


def sweep_at(bot: Bot, at: list[float]) -> None:
    """The lifecycle sweeps at these moments: each reads Monitoring once and keeps what it saw."""
    for moment in at:
        bot.clock.now = moment
        bot.services.lifecycle.sweep()


def alice_ran_ten_hours(bot: Bot) -> float:
    """The known history; returns when the notebook turned ACTIVE."""
    sim = bot.monitoring  # the one the bot's own sweep reads
    start = launch_ready(bot, "U0ALICE", "trainer", "gpu=l4")
    began = datetime.fromtimestamp(start, UTC)
    sim.add_instance("trainer", ZONE)
    sim.fill("cpu", "trainer", 0.3, began, began + timedelta(hours=10))
    switch = began + timedelta(hours=4)
    sim.fill("gpu", "trainer", lambda t: 0.0 if t <= switch else 80.0, began, began + timedelta(hours=10))
    sweep_at(bot, [start + 4 * HOUR, start + 8 * HOUR, start + 10 * HOUR])
    bot.clock.now = start + 10 * HOUR
    stop(bot, "U0ALICE", "trainer")
    return start


def text_of(reply: dict[str, Any]) -> str:
    parts = []
    for block in reply.get("blocks") or []:
        if isinstance(block.get("text"), dict):
            parts.append(block["text"]["text"])
        parts += [e.get("text", "") for e in block.get("elements") or [] if isinstance(e, dict)]
    return "\n".join(parts)


def spec_prices(bot: Bot, name: str) -> tuple[float, float]:
    """(price per hour, disks per month) of a notebook, from its record and the catalog's list prices."""
    spec = bot.store.get("notebooks", name)["spec"]
    disks = bot.services.config.catalog.disk_usd_per_month(spec["disk_type"], spec["disk_gb"] + spec["boot_disk_gb"])
    return spec["usd_per_hour"], disks


# --- /notebook costs ---------------------------------------------------------------------------------
def test_my_costs_show_running_and_gpu_hours_idle_share_and_cost_of_a_known_history(bot: Bot, monitoring) -> None:
    start = alice_ran_ten_hours(bot)
    launch_ready(bot, "U0BOB", "bobs-nb")
    bot.clock.now = start + 12 * HOUR
    stopped = next(h["at"] for h in bot.store.get("notebooks", "trainer")["history"] if h["state"] != "ACTIVE"
                   and h["at"] > start)  # fmt: skip
    assert 0 <= stopped - (start + 10 * HOUR) < 60, "stopped within a minute after the tenth hour"

    reply = bot.driver.command("U0ALICE", "costs").json()
    text = text_of(reply)

    hourly, disks = spec_prices(bot, "trainer")
    alive = (bot.clock() - start) / HOUR  # the disks bill from creation to now, stopped or not
    expected = (stopped - start) / HOUR * hourly + alive * disks / 730
    assert "Your notebook costs: this week" in text and "Your notebook costs: this month" in text
    line = next(line for line in text.splitlines() if line.startswith("• `trainer`"))
    assert "10.0 h running · 10.0 GPU h" in line
    assert f"idle 40% = 4.0 h, ${4 * hourly:.2f}" in line  # 4 of the 10 measured hours at 0 % GPU
    assert float(re.search(MONEY, line).group(1)) == pytest.approx(expected, abs=0.006)
    assert f"stopped disks ${disks:.2f}/month" in line
    assert "bobs-nb" not in text and "U0BOB" not in text, "only my own notebooks"
    assert "estimate at list prices" in reply["text"] and "not a bill" in text


def test_costs_are_answered_from_the_store_in_the_acknowledgement(bot: Bot, monitoring) -> None:
    alice_ran_ten_hours(bot)
    bot.quiet()  # the stop's last messages are not the command's
    slack_calls, workbench_calls = bot.slack.call_count(), len(bot.workbench.calls())

    reply = bot.driver.command("U0ALICE", "costs").json()

    assert "trainer" in reply["text"] or "trainer" in text_of(reply)
    assert bot.slack.call_count() == slack_calls and len(bot.workbench.calls()) == workbench_calls


def test_the_team_view_is_for_admins_by_person_and_by_notebook(bot: Bot, monitoring) -> None:
    alice_ran_ten_hours(bot)
    launch_ready(bot, "U0BOB", "bobs-nb")
    bot.clock.advance(HOUR)

    refusal = bot.driver.command("U0BOB", "costs team").json()
    assert "Only admins can see the team's costs" in refusal["text"]
    assert "trainer" not in text_of(refusal)

    text = text_of(bot.driver.command("U0ADMIN", "costs team").json())
    assert "Team notebook costs: this week" in text and "*By person*" in text and "*By notebook*" in text
    assert "• <@U0ALICE>: $" in text and "• <@U0BOB>: $" in text
    assert "• `trainer` (<@U0ALICE>)" in text and "• `bobs-nb` (<@U0BOB>)" in text
    assert "*Total* (2 notebooks)" in text


def test_a_report_is_three_queries_and_no_read_per_notebook(bot: Bot, monitoring) -> None:
    alice_ran_ten_hours(bot)
    launch_ready(bot, "U0BOB", "bobs-nb")
    launch_ready(bot, "U0BOB", "bobs-other")
    bot.clock.advance(HOUR)
    store: CountedStore = bot.store  # type: ignore[assignment]
    before = store.calls.copy()

    text = text_of(bot.driver.command("U0ADMIN", "costs team").json())

    made = store.calls - before
    assert "*Total* (3 notebooks)" in text
    read = {k: v for k, v in made.items() if k[1] in ("notebooks", "retired_notebooks", "usage")}
    assert read == {("query", "notebooks"): 1, ("query", "retired_notebooks"): 1, ("query", "usage"): 1}


def test_bad_costs_arguments_are_refused_and_change_nothing(bot: Bot) -> None:
    writes_before = sum(bot.store.calls[c] for c in bot.store.calls if c[0] != "get" and c[0] != "query")
    reply = bot.driver.command("U0ALICE", "costs everything").json()
    assert "Usage: `/notebook costs`" in reply["text"]
    assert sum(bot.store.calls[c] for c in bot.store.calls if c[0] != "get" and c[0] != "query") == writes_before


def test_a_deleted_notebook_still_counts_for_the_hours_it_lived(bot: Bot) -> None:
    start = launch_ready(bot, "U0ALICE", "short-lived")
    bot.clock.now = start + 2 * HOUR
    reply = bot.driver.command("U0ALICE", "delete short-lived").json()
    bot.driver.click("U0ALICE", ephemeral(reply, user="U0ALICE", channel="C0GENERAL"), "notebook_delete_confirm")
    bot.reconcile_until(lambda: bot.store.get("notebooks", "short-lived") is None, step=1)
    bot.clock.now = start + 5 * HOUR

    text = text_of(bot.driver.command("U0ALICE", "costs").json())

    line = next(line for line in text.splitlines() if line.startswith("• `short-lived`"))
    assert "2.0 h running" in line and "idle not measured" in line
    retired = bot.store.query("retired_notebooks")
    assert [d["id"] for d in retired] == ["short-lived"] and retired[0]["history"][-1]["state"] == "GONE"
    spec = retired[0]["spec"]
    hourly = spec["usd_per_hour"]
    disks = bot.services.config.catalog.disk_usd_per_month(spec["disk_type"], spec["disk_gb"] + spec["boot_disk_gb"])
    lived = (retired[0]["history"][-1]["at"] - start) / HOUR
    assert float(re.search(MONEY, line).group(1)) == pytest.approx(2 * hourly + lived * disks / 730, abs=0.006)


# --- the samples -------------------------------------------------------------------------------------
def test_a_sweeps_samples_are_one_batched_write_and_overlapping_readings_count_once(bot: Bot, monitoring) -> None:
    sim, reader = monitoring
    names = [f"nb-{i}" for i in range(5)]
    now = datetime.fromtimestamp(bot.clock(), UTC)
    for name in names:
        sim.add_instance(name, ZONE)
        sim.fill("cpu", name, 0.0, now - timedelta(hours=6), now)
    reading = reader.read([ZONE], now=now)
    store: CountedStore = bot.store  # type: ignore[assignment]
    usage = bot.services.lifecycle.usage
    before = store.calls.copy()

    assert usage.record(reading, names) == 5

    made = store.calls - before
    assert (
        made[("update_many", "usage")] == 1
        and store.writes("usage") - sum(before[k] for k in before if k[1] == "usage") == 1
    )
    assert len(store.query("usage")) <= 5, "a document per day shard, never more than one per notebook"
    today = (now.replace(hour=0), now.replace(hour=0) + timedelta(days=1))
    kept = usage.samples(*today)
    assert sorted(kept) == names and all(len(s) == 1 for s in kept.values()), "idle all along: one span each"
    assert kept["nb-0"][0].end - kept["nb-0"][0].start == timedelta(hours=4)

    later = reader.read([ZONE], now=now + timedelta(hours=1))  # covers 3 of the same hours again
    bot.clock.advance(HOUR)
    usage.record(later, names)
    [span] = usage.samples(*today)["nb-0"]
    assert span.end - span.start == timedelta(hours=4), "the hour after was not measured"


# --- the weekly digest -------------------------------------------------------------------------------
def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR"
    return struct.unpack(">II", data[16:24])


def about_the_week(bot: Bot, monday: str = "30 Nov") -> tuple[list[Any], list[Any]]:
    """The digests (messages to the admin) and charts about the week starting that Monday. (The
    passes during the week send the digest about the week before it, at its time.)"""
    digests = [
        m
        for m in bot.slack.messages("DU0ADMIN")
        if m.text.startswith(f"Weekly notebook digest: last week (Mon {monday}")
    ]
    day = datetime.strptime(f"{monday} 2026", "%d %b %Y")
    charts = [f for f in bot.slack.files() if f.filename == f"notebook-costs-{day:%Y-%m-%d}.png"]
    return digests, charts


def test_the_weekly_digest_goes_to_the_admins_once_with_its_chart(bot: Bot, monitoring) -> None:
    start = alice_ran_ten_hours(bot)
    next_monday_09 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC).timestamp()

    bot.clock.now = next_monday_09 - 60
    bot.services.reconcile()
    assert about_the_week(bot) == ([], []), "not before Monday 09:00"

    bot.clock.now = next_monday_09
    replica = Services(bot.settings, config=bot.services.config, clock=bot.clock, store=bot.store)
    passes = [threading.Thread(target=s.reconcile) for s in (bot.services, replica, bot.services)]
    for one in passes:
        one.start()
    for one in passes:
        one.join()
    bot.services.reconcile()

    digest, [upload] = about_the_week(bot)
    assert len(digest) == 1, "once, however many passes and replicas"
    assert upload.completed and upload.channels == ("DU0ADMIN",) and upload.data is not None
    assert png_size(upload.data) == (1200, 600) and 5_000 < len(upload.data) < 500_000
    shared = [m for m in bot.slack.messages("DU0ADMIN") if m.files == [upload.id]]
    assert len(shared) == 1 and "Cost per person per day" in shared[0].text

    text = "\n".join(b["text"]["text"] for b in digest[0].blocks if b["type"] == "section")
    hourly, disks = spec_prices(bot, "trainer")
    assert "last week (Mon 30 Nov – Mon 07 Dec" in digest[0].text
    alice = next(line for line in text.splitlines() if line.startswith("• <@U0ALICE>"))
    assert "10.0 h running · 10.0 GPU h" in alice and f"idle 40% = 4.0 h, ${4 * hourly:.2f}" in alice
    days = re.findall(r"^• (\w{3} \d{2} \w{3}): " + MONEY + r" \(idle " + MONEY + r"\)$", text, re.M)
    monday = next(d for d in days if d[0] == "Mon 30 Nov")
    assert float(monday[2]) == pytest.approx(4 * hourly, abs=0.006), "Monday's idle cost: the 4 idle hours"
    week_disks = (datetime(2026, 12, 7, tzinfo=UTC).timestamp() - start) / HOUR * disks / 730
    total = float(re.search(r"\*Total\* \(1 notebook\): " + MONEY, text).group(1))
    assert total == pytest.approx(10 * hourly + week_disks, abs=0.01)
    assert sum(float(usd) for _, usd, _ in days) == pytest.approx(total, abs=0.01 * len(days))


def test_a_digest_whose_reply_was_lost_is_recovered_not_sent_twice(bot: Bot) -> None:
    launch_ready(bot, "U0ALICE", "nb")
    bot.clock.now = datetime(2026, 12, 7, 9, 0, tzinfo=UTC).timestamp()
    bot.slack.lose_next_reply("chat.postMessage")  # Slack posts it; the bot never hears so

    assert bot.services.digest.send_if_due() is False
    assert len(about_the_week(bot)[0]) == 1 and about_the_week(bot)[1] == []
    bot.clock.advance(60)
    assert bot.services.digest.send_if_due() is False, "the failed recipient waits before it is tried again"

    bot.clock.advance(600)
    assert bot.services.digest.send_if_due() is True
    digests, charts = about_the_week(bot)
    assert len(digests) == 1 and len(charts) == 1, "the lost post was found, not repeated; the chart followed"


def test_the_digest_goes_to_a_channel_when_configured(firestore_host, firestore_project, monkeypatch, tmp_path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(
        CONFIG + 'digest_to = "channel"\ndigest_channel = "C0COSTS"\ndigest_weekday = 2\ndigest_hour = 8\n'
    )
    store = FirestoreStore.connect(firestore_project)
    with Bot(store, monkeypatch, config=load_config(config)) as bot:
        bot.clock.now = datetime(2026, 12, 2, 8, 0, tzinfo=UTC).timestamp()  # Wednesday 08:00
        assert bot.services.digest.send_if_due() is False and bot.slack.messages("C0COSTS") == []
        assert store.get("digests", "2026-11-30")["skipped"], "no notebook lived the week before: no digest"

        launch_ready(bot, "U0BOB", "bobs-nb")
        bot.clock.now = datetime(2026, 12, 9, 7, 59, tzinfo=UTC).timestamp()  # the next Wednesday
        assert bot.services.digest.send_if_due() is False
        bot.clock.now += 60
        assert bot.services.digest.send_if_due() is True
        assert bot.services.digest.send_if_due() is False
        [digest] = [m for m in bot.slack.messages("C0COSTS") if m.text.startswith("Weekly notebook digest")]
        body = digest.blocks[1]["text"]["text"]
        assert "*Total* (1 notebook)" in body and "• <@U0BOB>: $" in body
        [upload] = bot.slack.files()
        assert upload.channels == ("C0COSTS",) and png_size(upload.data or b"") == (1200, 600)
