"""A GPU stockout end to end: Workbench (the local fake, answering as Compute Engine does) fails the
creation and names zones with capacity; the failure message offers the nearest allowed one; one
click launches the same notebook there, once, for the requester. Signed Slack requests in,
Firestore (emulator) in between."""

from __future__ import annotations

import pytest

from bot.run.config import load_config
from bot.sim.slack_api import Message
from tests.harness import Bot

ZONES = '["us-central1-a", "us-central1-b", "us-central1-c", "us-east1-b", "europe-west4-a"]'
CONFIG = f'[access]\nadmins = ["U0ADMIN"]\n[policy]\nallowed_zones = {ZONES}\n'
NARROW = (  # us-central1-b is not allowed, and the catalog doesn't list L4 in us-central1-c
    '[access]\nadmins = ["U0ADMIN"]\n[policy]\nallowed_zones = ["us-central1-a", "us-central1-c", "us-east1-b", '
    '"europe-west4-a"]\n[catalog.gpus.l4]\nzones = ["us-central1-a", "us-central1-b", "us-east1-b", "europe-west4-a"]\n'
)


def start(store, monkeypatch, tmp_path, text: str = CONFIG) -> Bot:
    config = tmp_path / "config.toml"
    config.write_text(text)
    return Bot(store, monkeypatch, config=load_config(config))


@pytest.fixture
def bot(store, monkeypatch, tmp_path):
    with start(store, monkeypatch, tmp_path) as bot:
        yield bot


def top_level(bot: Bot) -> list[Message]:
    return [m for m in bot.channel_messages() if m.thread_ts is None]


def current(bot: Bot, message: Message) -> Message:
    """The message as the channel shows it now."""
    return next(m for m in bot.slack.messages(message.channel) if m.ts == message.ts)


def offers(message: Message) -> list[str]:
    """The labels of the message's "Launch in ZONE" buttons."""
    return [
        e["text"]["text"]
        for b in message.blocks
        if b["type"] == "actions"
        for e in b["elements"]
        if e.get("action_id") == "launch_elsewhere"
    ]


def words(message: Message) -> str:
    return message.text + " " + str(message.blocks)


def stocked_out(bot: Bot, available: list[str], command: str = "new gpu=l4 name=gpu1") -> Message:
    """Alice's launch in us-central1-a, failed for lack of L4s there: its failure message."""
    bot.workbench.stock_out("us-central1-a", available)
    bot.driver.command("U0ALICE", command)
    return bot.reconcile_until(lambda: "Couldn't create" in bot.launch_message().text and bot.launch_message())


def idle(bot: Bot) -> None:
    bot.slack.wait_for(bot.settled)


def ready_in(bot: Bot, zone: str) -> dict | None:
    """The instance created in `zone` once its launch message shows the link."""
    if not any("is ready for" in m.text for m in top_level(bot)):
        return None
    return next((i for n, i in bot.workbench.instances().items() if f"/locations/{zone}/" in n), None)


def test_a_stockout_offers_the_nearest_zone_and_one_click_launches_the_same_notebook_there(bot: Bot) -> None:
    failed = stocked_out(bot, ["europe-west4-a", "us-east1-b", "us-central1-c", "us-central1-b"])
    assert "no capacity" in failed.text and "us-central1-a" in failed.text
    assert offers(failed) == ["Launch in us-central1-b"]  # the same region first, then by name

    assert bot.driver.click("U0ALICE", failed, "launch_elsewhere").status == 200
    instance = bot.reconcile_until(lambda: ready_in(bot, "us-central1-b"))
    assert instance["name"].endswith("/locations/us-central1-b/instances/gpu1")
    assert instance["gceSetup"]["machineType"] == "g2-standard-4"
    assert instance["instanceOwners"] == ["alice@example.com"]
    assert bot.workbench.count("create") == 2  # the stocked-out one, and this one

    [relaunched] = [d for d in bot.launches() if d["spec"]["zone"] == "us-central1-b"]
    assert (relaunched["requester"], relaunched["state"]) == ("U0ALICE", "READY")
    after = current(bot, failed)
    assert offers(after) == [] and "launched it again in `us-central1-b` as `gpu1`" in words(after)
    [notebook] = bot.store.query("notebooks")
    assert (notebook["owner"], notebook["state"]) == ("U0ALICE", "ACTIVE")


def test_a_second_click_by_anyone_launches_nothing_more_and_says_what_the_first_did(bot: Bot) -> None:
    failed = stocked_out(bot, ["us-central1-b"])
    assert bot.driver.click("U0ALICE", failed, "launch_elsewhere").status == 200
    bot.slack.wait_for(lambda: len(bot.launches()) == 2)  # clicks are acknowledged first: Alice's is taken first
    again = bot.driver.click("U0ALICE", failed, "launch_elsewhere")  # the stale copy: a racing double click
    admin = bot.driver.click("U0ADMIN", failed, "launch_elsewhere")
    assert again.status == admin.status == 200
    told = bot.slack.wait_for(lambda: [m for m in bot.slack.messages() if "already used" in m.text])
    assert "<@U0ALICE> launched `gpu1`" in told[0].text
    idle(bot)
    bot.reconcile_until(lambda: ready_in(bot, "us-central1-b"))
    assert len(bot.launches()) == 2 and bot.workbench.count("create") == 2
    assert len([m for m in top_level(bot) if "is ready for" in m.text]) == 1


def test_only_the_requester_or_an_admin_may_take_the_offer(bot: Bot) -> None:
    failed = stocked_out(bot, ["us-central1-b"])
    assert bot.driver.click("U0BOB", failed, "launch_elsewhere").status == 200
    refusal = bot.slack.wait_for(lambda: [m for m in bot.slack.messages() if "Only <@U0ALICE>" in m.text])
    assert refusal[0].ephemeral and refusal[0].user == "U0BOB" and "nothing was launched" in refusal[0].text
    idle(bot)
    assert len(bot.launches()) == 1 and offers(current(bot, failed)) == ["Launch in us-central1-b"]

    assert bot.driver.click("U0ADMIN", failed, "launch_elsewhere").status == 200  # for Alice, by an admin
    bot.reconcile_until(lambda: ready_in(bot, "us-central1-b"))
    [relaunched] = [d for d in bot.launches() if d["spec"]["zone"] == "us-central1-b"]
    assert relaunched["requester"] == "U0ALICE"
    assert "<@U0ADMIN> launched it again" in words(current(bot, failed))


def test_the_new_launch_is_checked_like_any_launch(store, monkeypatch, tmp_path) -> None:
    with start(store, monkeypatch, tmp_path, CONFIG + "max_notebooks_per_user = 1\n") as bot:
        failed = stocked_out(bot, ["us-central1-b"])
        bot.workbench.restock("us-central1-a")
        bot.driver.command("U0ALICE", "new name=cpu1")  # her one notebook meanwhile
        bot.reconcile_until(lambda: any("is ready for" in m.text for m in top_level(bot)))
        assert bot.driver.click("U0ALICE", failed, "launch_elsewhere").status == 200
        refusal = bot.slack.wait_for(lambda: [m for m in bot.slack.messages() if "limit of 1" in m.text])
        assert refusal[0].ephemeral
        idle(bot)
        assert not [d for d in bot.launches() if d["spec"]["zone"] == "us-central1-b"]
        assert offers(current(bot, failed)) == ["Launch in us-central1-b"]  # still there once room is made


def test_zones_the_policy_or_the_catalog_rule_out_are_never_offered(store, monkeypatch, tmp_path) -> None:
    with start(store, monkeypatch, tmp_path, NARROW) as bot:
        failed = stocked_out(bot, ["us-central1-b", "us-central1-c", "europe-west4-a", "us-east1-b"])
        assert offers(failed) == ["Launch in us-east1-b"]  # same geography beats europe; b and c ruled out
        bot.driver.click("U0ALICE", failed, "launch_elsewhere")
        bot.reconcile_until(lambda: ready_in(bot, "us-east1-b"))
        created = {c.path.split("/")[5] for c in bot.workbench.calls() if c.kind == "create"}
        assert created == {"us-central1-a", "us-east1-b"}


@pytest.mark.parametrize(
    "available, says",
    [
        (["us-central1-f", "asia-east1-a"], "none of them is a zone this notebook may be launched in"),
        ([], "Google named no zone that has capacity"),
    ],
)
def test_with_no_zone_to_go_to_the_message_says_so_and_offers_no_button(
    bot: Bot, available: list[str], says: str
) -> None:
    failed = stocked_out(bot, available)
    assert offers(failed) == [] and says in words(failed) and "no other zone to offer" in words(failed)
    assert "Couldn't create `gpu1`" in failed.text and "Try again later" in failed.text


def test_a_stockout_answered_to_the_create_call_itself_fails_at_once_with_the_offer(bot: Bot) -> None:
    bot.workbench.fail_next(  # HTTP 503, as Compute Engine answers a synchronous insert (scylladb's logs, 2025)
        "create",
        503,
        "ZONE_RESOURCE_POOL_EXHAUSTED_WITH_DETAILS: The zone 'projects/test-project/zones/us-central1-a' does not "
        "have enough resources available to fulfill the request. Consider trying your request in the us-east1-b, "
        "us-central1-c zone(s), which currently has capacity to accommodate your request.",
    )
    bot.driver.command("U0ALICE", "new gpu=l4 name=gpu1")
    failed = bot.reconcile_until(lambda: "Couldn't create" in bot.launch_message().text and bot.launch_message())
    assert offers(failed) == ["Launch in us-central1-c"] and bot.workbench.count("create") == 1


def test_the_new_launch_asks_the_approvers_again_where_the_policy_says_so(store, monkeypatch, tmp_path) -> None:
    approvals = '[access]\napprovers = ["U0APPROVER"]\napproval_channel = "C0APPROVALS"\n'
    policy = f"[policy]\nallowed_zones = {ZONES}\napproval_over_usd_per_hour = 0.5\n"  # an L4 needs an approver
    with start(store, monkeypatch, tmp_path, approvals + policy) as bot:
        bot.workbench.stock_out("us-central1-a", ["us-central1-b"])
        bot.driver.command("U0ALICE", "new gpu=l4 name=gpu1")
        [request] = bot.slack.wait_for(lambda: bot.channel_messages("C0APPROVALS"))
        idle(bot)
        bot.driver.click("U0APPROVER", request, "approve_launch")
        failed = bot.reconcile_until(lambda: "Couldn't create" in bot.launch_message().text and bot.launch_message())

        bot.driver.click("U0ALICE", failed, "launch_elsewhere")
        asked = bot.slack.wait_for(lambda: [m for m in bot.channel_messages("C0APPROVALS") if m.ts != request.ts])
        assert "<@U0ALICE>" in asked[0].text and "us-central1-b" in str(asked[0].blocks)
        idle(bot)
        bot.clock.advance(60)
        bot.services.reconcile()
        [relaunched] = [d for d in bot.launches() if d["spec"]["zone"] == "us-central1-b"]
        assert relaunched["state"] == "PENDING_APPROVAL" and bot.workbench.count("create") == 1
