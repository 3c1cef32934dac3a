"""Living with notebooks: list, stop, start, delete, transfer, adopt, and the App Home."""

from __future__ import annotations

import pytest

from bot.adapters.firestore import FirestoreStore
from bot.domain import audit
from bot.run.config import load_config
from tests.harness import Bot, ephemeral

ADMIN_CONFIG = '[access]\nadmins = ["U0ADMIN"]\napprovers = ["U0APPROVER"]\napproval_channel = "C0APPROVALS"\n'


@pytest.fixture
def bot(firestore_host, firestore_project, monkeypatch, tmp_path):
    config = tmp_path / "config.toml"
    config.write_text(ADMIN_CONFIG)
    store = FirestoreStore.connect(firestore_project)
    with Bot(store, monkeypatch, config=load_config(config)) as bot:
        yield bot


def launch_ready(bot: Bot, user: str, name: str) -> None:
    bot.launch_ready(user, name)


def replies(bot: Bot, user: str) -> list[str]:
    return [m.text for m in bot.slack.messages() if m.ephemeral and m.user in (user, None)]


def last_reply(bot: Bot, user: str, count_before: int) -> str:
    return bot.slack.wait_for(lambda: replies(bot, user)[count_before:])[-1]


def instance(bot: Bot, name: str) -> dict | None:
    return next((i for full, i in bot.workbench.instances().items() if full.endswith(f"/{name}")), None)


def test_list_shows_my_notebooks_with_state_cost_and_link(bot: Bot) -> None:
    launch_ready(bot, "U0ALICE", "nb-alice")
    bot.clock.advance(3600)
    text = bot.driver.command("U0ALICE", "list").json()["text"]  # answered in the acknowledgement
    assert "nb-alice" in text and "running" in text and "base" in text
    assert "Open JupyterLab" in text and "notebooks.googleusercontent.com" in text
    assert "≈$0.1" in text or "≈$0.2" in text  # about an hour of an e2-standard-4 with disks


def test_envs_lists_the_catalog_with_retirements(bot: Bot) -> None:
    reply = bot.driver.command("U0BOB", "envs").json()
    assert "tf-2-8" in reply["text"] and "retired 2026-09-15" in reply["text"] and "`l4`" in reply["text"]


def test_envs_lists_aliases_and_machine_types_in_natural_order(bot: Bot) -> None:
    reply = bot.driver.command("U0BOB", "envs").json()
    shown = "\n".join(b["text"]["text"] for b in reply["blocks"] if b["type"] == "section")
    assert "`base` (also `default`, `python`, `tensorflow`, `tf`, `pytorch`, `torch`) — " in shown
    assert "`t4` (also `nvidia-tesla-t4`)" in shown
    machines = [line.split("`")[1] for line in shown.split("*Machine types*")[1].splitlines() if "`" in line]
    assert machines.index("g2-standard-4") < machines.index("g2-standard-8") < machines.index("g2-standard-16")
    assert machines.index("n1-standard-8") < machines.index("n1-standard-16") < machines.index("n1-standard-32")


def test_stop_and_start_are_followed_to_the_end_and_posted(bot: Bot) -> None:
    launch_ready(bot, "U0ALICE", "nb-alice")
    bot.driver.command("U0ALICE", "stop nb-alice")
    bot.reconcile_until(lambda: any("⏹ Stopped `nb-alice`" in m.text for m in bot.channel_messages()))
    assert bot.store.get("notebooks", "nb-alice")["state"] == "STOPPED"
    assert instance(bot, "nb-alice")["state"] == "STOPPED"

    bot.driver.command("U0ALICE", "start nb")  # completes from the caller's own notebooks
    started = bot.reconcile_until(lambda: [m for m in bot.channel_messages() if "Started `nb-alice`" in m.text])
    assert bot.store.get("notebooks", "nb-alice")["state"] == "ACTIVE"
    assert link_buttons(started[0]) == [f"https://{instance(bot, 'nb-alice')['proxyUri']}"], "the link comes back"


def link_buttons(message) -> list[str]:
    return [e["url"] for b in message.blocks if b["type"] == "actions" for e in b["elements"] if e.get("url")]


def test_starting_a_running_notebook_answers_with_its_link(bot: Bot) -> None:
    launch_ready(bot, "U0ALICE", "nb-alice")
    reply = ephemeral(bot.driver.command("U0ALICE", "start nb-alice").json(), user="U0ALICE", channel="C0GENERAL")
    assert "already running" in reply.text
    assert link_buttons(reply) == [bot.store.get("notebooks", "nb-alice")["url"]]
    assert bot.workbench.count("start") == 0


def test_names_typed_with_look_alike_hyphens_are_found(bot: Bot) -> None:
    launch_ready(bot, "U0ALICE", "nb-alice")
    bot.driver.command("U0ALICE", "stop nb\u2011alice")  # a non-breaking hyphen, as phones type it
    bot.reconcile_until(lambda: any("⏹ Stopped `nb-alice`" in m.text for m in bot.channel_messages()))


def test_a_stranger_is_refused_naming_the_owner_and_nothing_changes(bot: Bot) -> None:
    launch_ready(bot, "U0ALICE", "nb-alice")
    stops_before = bot.workbench.count("stop")
    for verb in ("stop", "delete"):
        before = len(replies(bot, "U0BOB"))
        response = bot.driver.command("U0BOB", f"{verb} nb-alice")
        text = response.json().get("text") or last_reply(bot, "U0BOB", before)
        assert "belongs to <@U0ALICE>" in text
    assert bot.workbench.count("stop") == stops_before and bot.workbench.count("delete") == 0
    assert bot.store.get("notebooks", "nb-alice")["state"] == "ACTIVE"
    refused = [e["action"] for e in audit.events(bot.store, actor="U0BOB")]
    assert refused == ["notebook.stop.refused", "notebook.delete.refused"]


def test_an_admin_may_stop_anyones_notebook(bot: Bot) -> None:
    launch_ready(bot, "U0ALICE", "nb-alice")
    bot.driver.command("U0ADMIN", "stop nb-alice")
    bot.reconcile_until(lambda: bot.store.get("notebooks", "nb-alice")["state"] == "STOPPED")


def test_delete_asks_first_and_then_removes_the_instance_and_record(bot: Bot) -> None:
    launch_ready(bot, "U0ALICE", "nb-alice")
    reply = bot.driver.command("U0ALICE", "delete nb-alice").json()
    assert "disks" in reply["text"] and bot.workbench.count("delete") == 0
    confirmation = ephemeral(reply, user="U0ALICE", channel="C0GENERAL")
    bot.driver.click("U0ALICE", confirmation, "notebook_delete_confirm")
    bot.reconcile_until(lambda: any("Deleted `nb-alice`" in m.text for m in bot.channel_messages()))
    assert bot.store.get("notebooks", "nb-alice") is None and instance(bot, "nb-alice") is None


def test_unknown_names_list_the_callers_notebooks(bot: Bot) -> None:
    launch_ready(bot, "U0ALICE", "nb-alice")
    before = len(replies(bot, "U0ALICE"))
    response = bot.driver.command("U0ALICE", "stop nope")
    text = response.json().get("text") or last_reply(bot, "U0ALICE", before)
    assert "I don't know a notebook called `nope`" in text and "`nb-alice`" in text


def test_transfer_hands_over_the_record_and_label_and_tells_both(bot: Bot) -> None:
    launch_ready(bot, "U0ALICE", "nb-alice")
    before = len(replies(bot, "U0ALICE"))
    bot.driver.command("U0ALICE", "transfer nb-alice <@U0BOB|bob>")
    assert "now belongs to <@U0BOB>" in last_reply(bot, "U0ALICE", before)
    assert bot.store.get("notebooks", "nb-alice")["owner"] == "U0BOB"
    assert instance(bot, "nb-alice")["labels"]["owner"] == "u0bob"
    dm = bot.slack.wait_for(lambda: bot.slack.messages("DU0BOB"))
    assert "handed the notebook `nb-alice` to you" in dm[0].text
    # the old owner is now a stranger to it
    response = bot.driver.command("U0ALICE", "stop nb-alice")
    assert "belongs to <@U0BOB>" in (response.json().get("text") or last_reply(bot, "U0ALICE", before + 1))


def test_records_follow_changes_made_outside_the_bot(bot: Bot) -> None:
    launch_ready(bot, "U0ALICE", "nb-gone")
    launch_ready(bot, "U0ALICE", "nb-idle")
    names = {n.split("/")[-1]: n for n in bot.workbench.instances()}
    bot.workbench.remove(names["nb-gone"])
    bot.workbench.set_state(names["nb-idle"], "STOPPED")
    bot.clock.advance(11)  # past the 10 s in which a list reuses the last look at the cloud
    lists_before, gets_before = bot.workbench.count("list"), bot.workbench.count("get")
    before = len(replies(bot, "U0ALICE"))
    bot.driver.command("U0ALICE", "list")
    text = last_reply(bot, "U0ALICE", before)
    assert "nb-gone* · ⚠️ deleted outside the bot" in text and "nb-idle* · ⏹ stopped" in text
    assert bot.workbench.count("list") - lists_before == 1, "one list call for the zone, not one per notebook"
    assert bot.workbench.count("get") == gets_before


def test_a_list_answers_from_the_store_and_follows_up_only_when_the_cloud_differs(bot: Bot) -> None:
    launch_ready(bot, "U0ALICE", "nb-one")
    bot.clock.advance(11)
    lists, before = bot.workbench.count("list"), len(replies(bot, "U0ALICE"))
    first = bot.driver.command("U0ALICE", "list").json()["text"]
    second = bot.driver.command("U0ALICE", "list").json()["text"]
    assert "*nb-one* · 🟢 running" in first and first == second
    assert bot.services.kicks.wait_idle()
    assert bot.workbench.count("list") - lists == 1, "two lists in a burst share one look at the cloud"
    assert replies(bot, "U0ALICE")[before:] == [], "nothing changed: no second answer"

    bot.workbench.set_state(next(iter(bot.workbench.instances())), "STOPPED")
    bot.clock.advance(11)
    stale = bot.driver.command("U0ALICE", "list").json()["text"]
    assert "running" in stale, "the answer comes from the store, before any cloud call"
    updated = last_reply(bot, "U0ALICE", before)
    assert updated.startswith("Updated:") and "*nb-one* · ⏹ stopped" in updated


def test_admins_see_unmanaged_instances_and_adopt_one(bot: Bot) -> None:
    bot.workbench.add_instance("us-central1-a", "console-made", project="test-project")
    before = len(replies(bot, "U0ADMIN"))
    bot.driver.command("U0ADMIN", "list all")
    assert "console-made" in last_reply(bot, "U0ADMIN", before)
    bot.driver.command("U0ADMIN", "adopt console-made <@U0BOB>")
    assert "owned by <@U0BOB>" in last_reply(bot, "U0ADMIN", before + 1)
    assert bot.store.get("notebooks", "console-made")["owner"] == "U0BOB"
    assert instance(bot, "console-made")["labels"]["managed-by"] == "notebook-bot"

    reply = bot.driver.command("U0BOB", "list all")
    assert "Only admins" in (reply.json().get("text") or "")


def test_home_tab_shows_notebooks_requests_and_decisions_per_role(bot: Bot) -> None:
    launch_ready(bot, "U0ALICE", "nb-alice")
    bot.driver.command("U0BOB", "new gpu=a100")  # over the price threshold: waits for approval
    bot.slack.wait_for(lambda: bot.slack.messages("C0APPROVALS"))

    bot.driver.event({"type": "app_home_opened", "user": "U0ALICE", "tab": "home"})
    alice = bot.slack.wait_for(lambda: bot.slack.home("U0ALICE"))
    actions = [e["action_id"] for b in alice["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert "notebook_stop" in actions and "notebook_delete" in actions and "approve_launch" not in actions

    bot.driver.event({"type": "app_home_opened", "user": "U0BOB", "tab": "home"})
    bob = bot.slack.wait_for(lambda: bot.slack.home("U0BOB"))
    assert any("needs approval" in str(b) for b in bob["blocks"])

    bot.driver.event({"type": "app_home_opened", "user": "U0APPROVER", "tab": "home"})
    approver = bot.slack.wait_for(lambda: bot.slack.home("U0APPROVER"))
    actions = [e["action_id"] for b in approver["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert "approve_launch" in actions and "notebook_stop" not in actions


def test_home_buttons_stop_a_notebook_and_refresh_the_home(bot: Bot) -> None:
    launch_ready(bot, "U0ALICE", "nb-alice")
    bot.driver.event({"type": "app_home_opened", "user": "U0ALICE", "tab": "home"})
    bot.slack.wait_for(lambda: bot.slack.home("U0ALICE"))
    bot.driver.click_home("U0ALICE", "notebook_stop", value="nb-alice")
    bot.reconcile_until(lambda: bot.store.get("notebooks", "nb-alice")["state"] == "STOPPED")
    home = bot.slack.wait_for(lambda: (h := bot.slack.home("U0ALICE")) and "notebook_start" in str(h) and h)
    assert "notebook_stop" not in str(home)


def test_the_quota_counts_running_notebooks_and_start_respects_it(firestore_project, monkeypatch, tmp_path) -> None:
    config = tmp_path / "config.toml"
    config.write_text(ADMIN_CONFIG + "[policy]\nmax_notebooks_per_user = 1\n")
    store = FirestoreStore.connect(firestore_project)
    with Bot(store, monkeypatch, config=load_config(config)) as bot:
        launch_ready(bot, "U0ALICE", "first")
        bot.driver.command("U0ALICE", "stop first")
        bot.reconcile_until(lambda: bot.store.get("notebooks", "first")["state"] == "STOPPED")
        launch_ready(bot, "U0ALICE", "second")  # a stopped notebook doesn't count
        refusal = bot.driver.command("U0ALICE", "start first").json()["text"]
        assert "You have 1 notebook(s) that count towards the limit of 1 per person (1 running;" in refusal
        assert bot.workbench.count("start") == 0


def test_a_second_operation_on_a_busy_notebook_is_refused(bot: Bot) -> None:
    launch_ready(bot, "U0ALICE", "nb-alice")
    bot.driver.command("U0ALICE", "stop nb-alice")
    bot.slack.wait_for(lambda: bot.store.query("operations", open=True))
    refusal = bot.driver.command("U0ADMIN", "stop nb-alice").json()["text"]
    assert "already stopping (asked by <@U0ALICE>)" in refusal
    bot.reconcile_until(lambda: bot.store.get("notebooks", "nb-alice")["state"] == "STOPPED")
    assert bot.workbench.count("stop") == 1


def test_an_adopted_instance_keeps_its_gpus_for_cost_quota_and_reminders(bot: Bot) -> None:
    body = {"gceSetup": {"machineType": "n1-standard-8", "acceleratorConfigs": [{"type": 5, "coreCount": "2"}]}}
    bot.workbench.add_instance("us-central1-a", "t4-box", body, project="test-project")
    before = len(replies(bot, "U0ADMIN"))
    bot.driver.command("U0ADMIN", "adopt t4-box <@U0BOB>")
    assert "owned by <@U0BOB>" in last_reply(bot, "U0ADMIN", before)
    spec = bot.store.get("notebooks", "t4-box")["spec"]
    assert (spec["gpu"], spec["gpu_count"]) == ("t4", 2)
    assert spec["usd_per_hour"] == pytest.approx(0.38 + 2 * 0.35)
