"""Many launches at once, inside Slack's rate tiers: signed requests in, the Slack fake counting
every call, Firestore (emulator) in between, passes driven on the test's clock.

What a channel sees when 60 people launch at once: each launch message posted once and updated
once per state, every person told their link in the first pass after their notebook runs (in one
announcement per channel, split when too long), the messages within chat.update's 50 a minute per
workspace and chat.postMessage's 1 a second per channel; a lost or refused announcement told once,
and a 429 waited out rather than failing anyone's launch.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import pytest
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from bot.adapters.budget import Budget, Pacing
from bot.run.services import Services
from tests.harness import Bot

CHANNEL = "C0GENERAL"
PASS = 10.0  # simulated seconds between two passes


def people(count: int) -> dict[str, dict[str, str]]:
    return {
        f"U0P{n:03d}": {"name": f"p{n:03d}", "real_name": f"Person {n}", "email": f"p{n:03d}@example.com", "tz": "UTC"}
        for n in range(count)
    }


@pytest.fixture
def bot(store, monkeypatch):
    with Bot(store, monkeypatch, users=people(60)) as bot:
        bot.workbench.op_polls_until_done = 10_000  # creations wait for the test's settle()
        yield bot


class Passes:
    """Runs passes on the test's clock and keeps, per pass, the Slack writes it made."""

    def __init__(self, bot: Bot) -> None:
        self.bot = bot
        self.seen = 0
        self.rows: list[tuple[float, Counter]] = []  # (simulated time, chat.update / posts by channel)
        self.take()

    def take(self) -> None:
        calls = self.bot.slack.calls()
        new, self.seen = calls[self.seen :], len(calls)
        counts = Counter(
            "update" if c.method == "chat.update" else f"post:{c.args.get('channel')}"
            for c in new
            if c.method in ("chat.update", "chat.postMessage")
        )
        self.rows.append((self.bot.clock(), counts))

    def run(self, until: Callable[[], bool] | None = None, limit: int = 60) -> None:
        """Passes until `until()` holds (at most `limit`), or exactly `limit` passes without one."""
        for _ in range(limit):
            if until is not None and until():
                return
            self.bot.clock.advance(PASS)
            self.bot.services.reconcile()
            self.take()
        assert until is None or until(), f"not reached after {limit} passes"

    def most_in_a_minute(self, key: str) -> int:
        return max(sum(counts[key] for at, counts in self.rows if start <= at < start + 60) for start, _ in self.rows)


def launch_messages(bot: Bot) -> dict[str, str]:
    """launch id -> ts of its launch message, for those posted."""
    return {d["id"]: d["message_ts"] for d in bot.launches() if d.get("message_ts")}


def announcements(bot: Bot) -> list:
    """Top-level messages that are not a launch's own message: the announcements of links."""
    own = set(launch_messages(bot).values())
    return [m for m in bot.channel_messages(CHANNEL) if m.thread_ts is None and m.ts not in own]


def start(bot: Bot, users: list[str]) -> Passes:
    for user in users:
        assert bot.driver.command(user, "new base", channel=CHANNEL).status == 200
    created = lambda: sum(d["state"] == "CREATING" for d in bot.launches()) == len(users)  # noqa: E731
    bot.slack.wait_for(lambda: created() and bot.settled(), timeout=120)  # the requests' own steps are over
    assert bot.slack.calls("chat.update") == [], "each message is posted as it is, no update right after its post"
    return Passes(bot)


def test_sixty_launches_ready_at_once_are_told_their_links_in_one_pass_within_slacks_tiers(bot: Bot) -> None:
    users = sorted(people(60))
    passes = start(bot, users)
    passes.run(until=lambda: len(launch_messages(bot)) == 60)  # paced: 1 a second per channel at most
    assert announcements(bot) == [], "no launch message is posted twice"

    bot.workbench.settle()  # all sixty turn ACTIVE at once
    updates_before = len(bot.slack.calls("chat.update"))
    passes.run(limit=1)
    told = announcements(bot)
    assert len(told) == 2, "one message per channel, split in two: 60 sections don't fit Slack's 50 blocks"
    urls = {d["requester"]: bot.store.get("notebooks", d["instance_id"])["url"] for d in bot.launches()}
    rows = [b for m in told for b in m.blocks if b.get("accessory")]
    assert {r["accessory"]["url"] for r in rows} == set(urls.values()) and len(rows) == 60
    for row in rows:
        person = row["text"]["text"].split(">")[0].removeprefix("<@")
        assert row["accessory"]["url"] == urls[person], "each person is mentioned with their own link"
    assert all(len(m.blocks) <= 50 for m in told)

    passes.run(until=lambda: not bot.store.query("launches", open=True))
    after = Counter(c.args["ts"] for c in bot.slack.calls("chat.update")[updates_before:])
    assert after == Counter(launch_messages(bot).values()), "each launch message updated once more: ready"
    assert all("is ready for" in bot.slack.message(CHANNEL, ts).text for ts in launch_messages(bot).values())
    assert len(announcements(bot)) == 2, "nobody is told twice"
    assert [m for m in bot.channel_messages(CHANNEL) if m.thread_ts] == [], "and no thread pings on top"

    share = 50 / bot.settings.replicas  # this process's share of Slack's tiers (3 replicas by default)
    assert passes.most_in_a_minute("update") <= share
    assert passes.most_in_a_minute(f"post:{CHANNEL}") <= 60 / bot.settings.replicas + 3, "1/s, a short burst"


def test_a_lost_reply_to_the_announcement_is_recovered_not_repeated(bot: Bot) -> None:
    passes = start(bot, ["U0P000", "U0P001", "U0P002"])
    passes.run(until=lambda: len(launch_messages(bot)) == 3)
    bot.workbench.settle()
    bot.slack.lose_next_reply("chat.postMessage")  # the announcement is posted; the bot never hears so
    passes.run(limit=1)
    assert len(announcements(bot)) == 1
    passes.run(until=lambda: not bot.store.query("launches", open=True))
    [told] = announcements(bot)
    assert all(f"<@U0P00{n}>" in told.text for n in range(3))
    assert bot.slack.calls("conversations.history"), "it looked for its own post"
    assert all("is ready for" in bot.slack.message(CHANNEL, ts).text for ts in launch_messages(bot).values())


def test_an_announcement_slack_refused_is_told_by_the_next_pass_once(bot: Bot) -> None:
    passes = start(bot, ["U0P000", "U0P001"])
    passes.run(until=lambda: len(launch_messages(bot)) == 2)
    bot.workbench.settle()
    bot.slack.fail_next("chat.postMessage", "internal_error")
    passes.run(limit=1)
    assert announcements(bot) == [] and all(d["announce"] is None for d in bot.launches()), "the claims went back"
    passes.run(until=lambda: not bot.store.query("launches", open=True))
    [told] = announcements(bot)
    assert "<@U0P000>" in told.text and "<@U0P001>" in told.text


def test_a_channel_the_bot_may_no_longer_post_in_gets_each_link_in_a_dm(bot: Bot) -> None:
    passes = start(bot, ["U0P000", "U0P001"])
    passes.run(until=lambda: len(launch_messages(bot)) == 2)
    bot.workbench.settle()
    bot.slack.fail_next("chat.postMessage", "not_in_channel")  # removed from the channel meanwhile
    passes.run(limit=1)
    dms = [m for m in bot.slack.messages() if m.channel.startswith("D")]
    urls = {d["requester"]: bot.store.get("notebooks", d["instance_id"])["url"] for d in bot.launches()}
    assert sorted(m.text.split(">")[0].removeprefix("<@") for m in dms) == ["U0P000", "U0P001"]
    for m in dms:
        assert urls[m.text.split(">")[0].removeprefix("<@")] in str(m.blocks), "each one's own link"
    passes.run(until=lambda: not bot.store.query("launches", open=True))
    assert len([m for m in bot.slack.messages() if m.channel.startswith("D")]) == 2, "told once"
    assert announcements(bot) == []


def test_two_replicas_passing_at_once_tell_each_person_once(bot: Bot) -> None:
    users = sorted(people(12))
    passes = start(bot, users)
    passes.run(until=lambda: len(launch_messages(bot)) == 12)
    other = Services(bot.settings, config=bot.services.config, clock=bot.clock, store=bot.store)
    bot.workbench.settle()
    for _ in range(30):  # both replicas pass every 10 s, at the same moment, until every launch is over
        if not bot.store.query("launches", open=True):
            break
        bot.clock.advance(PASS)
        threads = [threading.Thread(target=s.reconcile) for s in (bot.services, other)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    assert not bot.store.query("launches", open=True)
    mentions = Counter(
        row["text"]["text"].split(">")[0].removeprefix("<@")
        for m in announcements(bot)
        for row in m.blocks
        if row.get("accessory")
    )
    assert mentions == Counter(users), "each person told their link once, whichever replica got them"


def test_a_429_defers_the_update_until_its_retry_after_and_fails_no_one(bot: Bot) -> None:
    passes = start(bot, ["U0P000"])
    passes.run(until=lambda: len(launch_messages(bot)) == 1)
    [ts] = launch_messages(bot).values()
    bot.workbench.settle()
    bot.slack.rate_limit_next("chat.update", retry_after=35)
    updates = len(bot.slack.calls("chat.update"))
    passes.run(limit=1)
    thread = [m for m in bot.channel_messages(CHANNEL) if m.thread_ts == ts]
    assert len(thread) == 1 and "Open JupyterLab" in str(thread[0].blocks), "the link is not held up by it"
    passes.run(limit=1)  # the launch message's update follows the link, and Slack answers 429
    refused = bot.slack.calls("chat.update")[updates:]
    assert [c.error for c in refused] == ["ratelimited"], "tried once, not retried in a sleeping worker"
    passes.run(limit=3)  # 30 s: still within Retry-After
    assert len(bot.slack.calls("chat.update")) == updates + 1, "no chat.update before Retry-After is over"
    passes.run(until=lambda: not bot.store.query("launches", open=True))
    assert "is ready for" in bot.slack.message(CHANNEL, ts).text
    [launch] = bot.launches()
    assert launch["state"] == "READY"


def test_every_slack_client_the_bot_builds_honours_retry_after(bot: Bot) -> None:
    from handlers import build_app

    app = build_app(bot.services)
    clients = [bot.services.slack.client, bot.services.slack.post_client, app.client]
    for client in clients:
        assert any(isinstance(h, RateLimitErrorRetryHandler) for h in client.retry_handlers), client


def test_a_budget_keeps_any_minute_within_its_share_and_keeps_a_reserve_for_urgent_writes() -> None:
    now = [0.0]
    budget = Budget(50, lambda: now[0])
    taken: list[float] = []
    for _ in range(600):  # ten minutes of routine writes asking every second
        if budget.take(urgent=False):
            taken.append(now[0])
        now[0] += 1
    assert max(sum(1 for t in taken if s <= t < s + 60) for s in taken) <= 50
    assert budget.take(urgent=True), "the reserve routine writes leave is there for a change of state"
    budget.hold(30)
    now[0] += 29
    assert not budget.take(urgent=True), "nothing while Slack's Retry-After holds"
    now[0] += 10
    assert budget.take(urgent=True)


def test_pacing_forgets_quiet_channels_but_not_one_still_spent() -> None:
    now = [0.0]
    pacing = Pacing(lambda: now[0], replicas=1)
    while pacing.post("C0BUSY", urgent=True):
        pass  # a channel out of posts
    for n in range(Pacing.KEEP_CHANNELS):  # a DM to each of a thousand people
        assert pacing.post(f"D{n:04d}")
    now[0] += 60  # the DMs' buckets refill; the busy channel's too, unless it is spent again
    while pacing.post("C0BUSY", urgent=True):
        pass
    assert pacing.post("D9999"), "a new channel gets its own bucket"
    assert len(pacing._posts) == 2, "the refilled DM channels are forgotten"
    assert not pacing.post("C0BUSY", urgent=True), "a spent channel keeps its state"


def test_a_lost_reply_to_a_link_sent_by_dm_is_recovered_not_told_again_in_the_channel(bot: Bot) -> None:
    passes = start(bot, ["U0P000", "U0P001"])
    passes.run(until=lambda: len(launch_messages(bot)) == 2)
    bot.workbench.settle()
    bot.slack.fail_next("chat.postMessage", "not_in_channel")  # removed from the channel meanwhile
    gate = bot.slack.hold("conversations.open")  # the pass turns to DMs
    bot.clock.advance(PASS)
    announcing = threading.Thread(target=bot.services.reconcile)
    announcing.start()
    assert gate.arrived.wait(10)
    bot.slack.lose_next_reply("chat.postMessage", times=2)  # both DMs arrive; the bot hears of neither
    gate.release()
    announcing.join(20)
    passes.run(until=lambda: not bot.store.query("launches", open=True))  # the bot is back in the channel
    dms = [m for m in bot.slack.messages() if m.channel.startswith("D")]
    assert sorted(m.text.split(">")[0].removeprefix("<@") for m in dms) == ["U0P000", "U0P001"], "told once each"
    assert announcements(bot) == [], "and not again in the channel"
