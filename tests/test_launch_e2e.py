"""`/notebook new` end to end: signed Slack requests in, Slack messages and Workbench calls out,
Firestore (emulator) in between."""

from __future__ import annotations

import threading

import pytest

from bot.run.config import load_config
from bot.run.services import Services
from tests.harness import Bot, ephemeral


@pytest.fixture
def bot(store, monkeypatch):
    with Bot(store, monkeypatch) as bot:
        yield bot


def is_ready(message) -> bool:
    """A launch message showing its link (not the thread reply that pings the owner)."""
    return message.thread_ts is None and "is ready for" in message.text


def test_a_launch_ends_with_the_jupyterlab_link_in_the_channel(bot: Bot) -> None:
    response = bot.driver.command("U0ALICE", "new tf-2-8 gpu=l4")
    assert response.status == 200
    said = response.json()["text"]  # at once, before the paced launch message
    assert "Launching `" in said and "mention you with the link" in said

    queued = bot.slack.wait_for(lambda: bot.channel_messages())
    assert "tf-2-8" in queued[0].text and "<@U0ALICE>" in queued[0].text

    message = bot.reconcile_until(lambda: is_ready(bot.launch_message()) and bot.launch_message())
    link = next(e for b in message.blocks if b["type"] == "actions" for e in b["elements"] if e.get("url"))
    assert link["text"]["text"] == "Open JupyterLab"
    assert link["url"].startswith("https://") and "notebooks.googleusercontent.com" in link["url"]
    assert message.updates == 1, "the launch message is posted once being created, then updated once: ready"
    posts_with_link = [c for c in bot.slack.calls("chat.postMessage") if link["url"] in str(c.args)]
    assert [c.args.get("thread_ts") for c in posts_with_link] == [message.ts], "the link is pinged in its thread"

    [instance] = bot.workbench.instances().values()
    setup = instance["gceSetup"]
    assert setup["machineType"] == "g2-standard-4"
    assert setup["containerImage"]["repository"].endswith("/notebook-environments/tf-2-8")
    assert setup["gpuDriverConfig"]["enableGpuDriver"] is True
    assert setup["metadata"]["idle-timeout-seconds"] == "10800"
    assert instance["instanceOwners"] == ["alice@example.com"]
    assert instance["labels"]["owner"] == "u0alice" and instance["labels"]["managed-by"] == "notebook-bot"

    [notebook] = bot.store.query("notebooks")
    assert (notebook["owner"], notebook["state"], notebook["url"]) == ("U0ALICE", "ACTIVE", link["url"])
    ping = [m for m in bot.channel_messages() if m.thread_ts == message.ts]
    assert len(ping) == 1 and "<@U0ALICE>" in ping[0].text and link["url"] in str(ping[0].blocks)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("new tf-2-9", "Did you mean `tf-2-8`"),
        ("new gpu=l5", "Did you mean `l4`"),
        ("new gpu=l4x3", "counts of 1, 2, 4, 8"),
        ("new gpu=t4 machine=e2-standard-4", "e2 machines take no"),
        ("new disk=5", "out of range"),
        ("new name=Not_Valid", "can't be a notebook name"),
        ("new gpu=v100 machine=n1-standard-16", "at most 12 vCPUs"),
        ("launch tf-2-8", "I don't know `/notebook launch`"),
    ],
)
def test_bad_input_answers_only_the_user_and_changes_nothing(bot: Bot, text: str, expected: str) -> None:
    response = bot.driver.command("U0ALICE", text)
    assert response.status == 200
    reply = response.json()
    assert expected in reply["text"]
    assert reply.get("response_type", "ephemeral") == "ephemeral"
    assert bot.store.query("launches") == [] and bot.store.query("notebooks") == []
    assert bot.workbench.calls() == []
    assert bot.slack.calls("chat.postMessage") == []


def test_help_and_bare_command_explain_the_grammar(bot: Bot) -> None:
    for text in ("", "help"):
        reply = bot.driver.command("U0ALICE", text).json()
        assert "/notebook new [ENV]" in reply["text"] and "gpu=l4" in reply["text"]


def test_retired_p100_offers_l4_and_one_click_launches_it(bot: Bot) -> None:
    reply = bot.driver.command("U0ALICE", "new tf-2-8 gpu=p100").json()
    assert "retired" in reply["text"] and "2026-09-15" in reply["text"]
    buttons = {e["action_id"]: e for b in reply["blocks"] if b["type"] == "actions" for e in b["elements"]}
    button = buttons["launch_offer"]
    assert button["text"]["text"] == "Launch with L4 instead" and button["value"].endswith(" tf-2-8 gpu=l4")

    offer = ephemeral(reply, user="U0ALICE", channel="C0GENERAL")
    assert bot.driver.click("U0ALICE", offer, "launch_offer").status == 200
    bot.reconcile_until(lambda: is_ready(bot.launch_message()))
    [instance] = bot.workbench.instances().values()
    assert instance["gceSetup"]["machineType"] == "g2-standard-4"


def test_a_retried_delivery_launches_once(bot: Bot) -> None:
    first = bot.driver.command("U0ALICE", "new gpu=l4", trigger_id="1234.5678.retry")
    again = bot.driver.command("U0ALICE", "new gpu=l4", trigger_id="1234.5678.retry", retry_num=1)
    assert first.status == again.status == 200
    bot.slack.wait_for(lambda: bot.channel_messages())
    bot.reconcile_until(lambda: is_ready(bot.launch_message()))
    assert len(bot.store.query("launches")) == 1
    assert bot.workbench.count("create") == 1 and len(bot.workbench.instances()) == 1


@pytest.mark.parametrize(
    "code, message, expected",
    [
        (7, "Quota 'NVIDIA_L4_GPUS' exceeded. Limit: 1.0 in region us-central1.", "out of quota"),
        (
            8,
            "The zone 'projects/p/zones/us-central1-a' does not have enough resources available to fulfill the "
            "request. Try a different zone, or try again later. ZONE_RESOURCE_POOL_EXHAUSTED us-central1-b",
            "no capacity",
        ),
        (5, "The resource 'projects/p/global/images/family/x' was not found", "does not exist"),
        (7, "Permission 'notebooks.instances.create' denied on resource", "not allowed"),
    ],
)
def test_a_failed_creation_says_why_in_plain_words(bot: Bot, code: int, message: str, expected: str) -> None:
    bot.workbench.fail_next_operation("create", code, message)
    bot.driver.command("U0ALICE", "new gpu=l4")
    failed = bot.reconcile_until(lambda: "Couldn't create" in bot.launch_message().text and bot.launch_message())
    assert expected in failed.text
    if code == 8:
        assert "us-central1-b" in failed.text and "zone=" in failed.text
    assert bot.store.query("notebooks") == [], "a failed launch frees its name and quota"
    [launch] = bot.store.query("launches")
    assert launch["state"] == "FAILED" and not launch["open"]


def test_transient_workbench_errors_are_retried(bot: Bot) -> None:
    bot.workbench.fail_next("create", 503, "backend unavailable", times=1000)
    bot.driver.command("U0ALICE", "new base")
    queued = bot.reconcile_until(lambda: [m for m in bot.channel_messages() if m.thread_ts is None])
    assert "is queued" in queued[0].text, "a create that has to be retried shows the launch as queued meanwhile"
    bot.reconcile_until(lambda: bot.workbench.count("create") >= 2)
    bot.workbench.recover("create")
    failed = bot.workbench.count("create")
    bot.reconcile_until(lambda: is_ready(bot.launch_message()))
    assert bot.workbench.count("create") == failed + 1, "once Google answers, one create makes the notebook"


def test_permission_denied_on_the_call_itself_fails_the_launch(bot: Bot) -> None:
    bot.workbench.fail_next("create", 403, "Permission 'notebooks.instances.create' denied")
    bot.driver.command("U0ALICE", "new base")
    failed = bot.reconcile_until(lambda: "Couldn't create" in bot.launch_message().text and bot.launch_message())
    assert "roles/notebooks.admin" in failed.text


def test_quota_of_notebooks_per_person_is_refused_with_the_numbers(store, monkeypatch, tmp_path) -> None:
    config_file = tmp_path / "config.toml"
    config_file.write_text("[policy]\nmax_notebooks_per_user = 1\n")
    with Bot(store, monkeypatch, config=load_config(config_file)) as bot:
        bot.driver.command("U0ALICE", "new base")
        bot.slack.wait_for(lambda: bot.channel_messages())
        refusal = bot.driver.command("U0ALICE", "new gpu=l4").json()
        assert "You have 1 notebook(s) that count towards the limit of 1 per person (1 being created" in refusal["text"]
        assert len(bot.store.query("launches")) == 1


def test_a_name_in_use_is_refused(bot: Bot) -> None:
    bot.driver.command("U0ALICE", "new name=shared")
    bot.slack.wait_for(lambda: bot.channel_messages())
    refusal = bot.driver.command("U0BOB", "new name=shared").json()
    assert "`shared` already exists" in refusal["text"]


def test_a_channel_the_bot_cannot_post_in_gets_a_dm_instead(bot: Bot) -> None:
    bot.slack.fail_next("chat.postMessage", "not_in_channel")
    bot.driver.command("U0ALICE", "new base", channel="C0PRIVATE")
    dm = bot.slack.wait_for(lambda: [m for m in bot.slack.messages() if m.channel.startswith("D")])
    bot.reconcile_until(lambda: any(is_ready(m) for m in bot.slack.messages(dm[0].channel)))


def test_without_an_email_from_slack_the_launch_fails_and_says_which_scope(store, monkeypatch) -> None:
    users = {"U0NOMAIL": {"name": "nomail", "real_name": "No Mail", "tz": "UTC", "tz_offset": 0}}
    with Bot(store, monkeypatch, users=users) as bot:
        bot.driver.command("U0NOMAIL", "new base")
        failed = bot.reconcile_until(lambda: "Couldn't create" in bot.launch_message().text and bot.launch_message())
        assert "users:read.email" in failed.text
        assert bot.workbench.count("create") == 0


def test_two_workers_racing_on_one_store_create_each_instance_once(bot: Bot) -> None:
    for n in range(4):
        bot.driver.command("U0ADMIN" if n % 2 else "U0APPROVER", f"new name=race-{n}")
    # the request threads' own first steps are over before the fake clock starts to move (the launch
    # messages are paced: 4 in one channel at once are not all posted at once)
    bot.slack.wait_for(lambda: len([d for d in bot.launches() if d["state"] == "CREATING"]) == 4 and bot.settled())
    other = Services(bot.settings, config=bot.services.config, clock=bot.clock, store=bot.store)
    for _ in range(20):
        bot.clock.advance(10)  # less than a lease: the clock never jumps past a worker mid-step
        threads = [threading.Thread(target=s.reconcile) for s in (bot.services, other)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert sum(1 for m in bot.channel_messages() if is_ready(m)) == 4
    creates = [c for c in bot.workbench.calls() if c.kind == "create"]
    assert len(creates) == len({c.query.get("requestId") for c in creates}) == 4, "one create call each"
    assert len(bot.workbench.instances()) == 4


def test_notebooks_run_as_the_configured_service_account(store, monkeypatch) -> None:
    account = "notebook-vm@test-project.iam.gserviceaccount.com"
    with Bot(store, monkeypatch, settings={"notebook_service_account": account}) as bot:
        bot.driver.command("U0ALICE", "new base")
        bot.reconcile_until(lambda: bot.workbench.instances())
        [instance] = bot.workbench.instances().values()
        assert instance["gceSetup"]["serviceAccounts"] == [{"email": account}]


def test_slack_failing_the_first_post_delays_the_launch_message_and_tells_no_one_it_failed(bot: Bot) -> None:
    bot.slack.fail_next("chat.postMessage", "internal_error")  # posting the launch message fails once
    assert bot.driver.command("U0ALICE", "new base").status == 200
    bot.reconcile_until(lambda: any(is_ready(m) for m in bot.channel_messages()))  # the launch carries on
    assert [m for m in bot.slack.messages() if m.ephemeral] == [], "nobody is told something went wrong"
    assert bot.launch_message().updates >= 1


def test_an_unexpected_failure_is_told_to_the_user_not_swallowed(bot: Bot) -> None:
    # (A failed first post of a launch message is not one: the launch goes on and the reconciler posts
    # it, so nobody is told it failed; tests/test_hostile_input_e2e.py checks that.)
    bot.slack.fail_next("views.open", "internal_error")  # opening the launch form fails
    assert bot.driver.command("U0ALICE", "new").status == 200
    sorry = bot.slack.wait_for(lambda: [m for m in bot.slack.messages() if m.ephemeral and m.user == "U0ALICE"])
    assert "went wrong on my side" in sorry[0].text


def test_progress_refreshes_of_many_launches_share_one_budget_and_the_link_never_waits(bot: Bot) -> None:
    bot.workbench.op_polls_until_done = 10_000  # creations that take a long while
    for user in ("U0ALICE", "U0BOB", "U0ADMIN"):
        for i in range(2):
            bot.driver.command(user, f"new name=slow-{user[2:].lower()}-{i}")
    bot.slack.wait_for(lambda: len([d for d in bot.launches() if d["state"] == "CREATING"]) == 6 and bot.settled())
    start, updates_before = bot.clock(), len(bot.slack.calls("chat.update"))
    for _ in range(30):  # five simulated minutes, a pass every 10 s
        bot.clock.advance(10)
        bot.services.reconcile()
    minutes = (bot.clock() - start) / 60
    progress = len(bot.slack.calls("chat.update")) - updates_before
    share = 50 / bot.settings.replicas  # Slack's Tier 3, chat.update per workspace, over the replicas
    assert progress <= share * minutes, f"{progress} refreshes in {minutes:.0f} min for 6 launches"
    assert progress >= 6, "each launch's message still moves on"
    launch_messages = [m for m in bot.channel_messages() if m.thread_ts is None]
    assert len(launch_messages) == 6

    bot.workbench.settle()  # all six turn ACTIVE at once
    bot.clock.advance(10)
    updates_before = len(bot.slack.calls("chat.update"))
    bot.services.reconcile()
    [announcement] = [
        m for m in bot.channel_messages() if m.thread_ts is None and m.ts not in {m.ts for m in launch_messages}
    ]
    urls = {n["id"]: n["url"] for n in bot.store.query("notebooks")}
    for name, url in urls.items():
        owner = next(d["requester"] for d in bot.launches() if d["instance_id"] == name)
        row = next(b for b in announcement.blocks if f"`{name}`" in str(b))
        assert f"<@{owner}>" in row["text"]["text"] and row["accessory"]["url"] == url, row
    assert len(urls) == 6, "every person's link in the first pass after ACTIVE, in one message"

    bot.reconcile_until(lambda: not bot.store.query("launches", open=True))  # the launch messages follow
    updates = [c.args["ts"] for c in bot.slack.calls("chat.update")[updates_before:]]
    assert sorted(updates) == sorted(m.ts for m in launch_messages), "each launch message updated once: ready"
    assert all(is_ready(bot.slack.message("C0GENERAL", m.ts)) for m in launch_messages)
