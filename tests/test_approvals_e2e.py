"""Approvals end to end: signed button clicks and modal submissions from approvers, the request
message in the approval channel, the requester's thread, the store, the audit trail, and the
Workbench calls the simulator counts."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from bot.domain import audit, leases
from bot.run.config import load_config
from bot.sim.render import render_view
from bot.sim.slack_api import Message
from tests.harness import Bot

CONFIG = """
[access]
admins = ["U0ADMIN"]
approvers = ["U0APPROVER", "S0LEADS"]
approval_channel = "C0APPROVALS"
{extra_access}
[policy]
approval_over_usd_per_hour = 1.0
approval_expires_after = "2h"
max_gpus_per_user = 4
"""
CAROL = {"U0CAROL": {"name": "carol", "real_name": "Carol Lead", "email": "carol@example.com", "tz": "UTC"}}
A100 = "new gpu=a100"  # a2-highgpu-1g, ≈$3.70/h: over the $1/h threshold


def start_bot(store, monkeypatch, tmp_path, extra_access: str = "", config: str | None = None) -> Bot:
    path = tmp_path / "config.toml"
    path.write_text(config if config is not None else CONFIG.format(extra_access=extra_access))
    return Bot(store, monkeypatch, config=load_config(path), users=CAROL, usergroups={"S0LEADS": ["U0CAROL"]})


@pytest.fixture
def bot(store, monkeypatch, tmp_path):
    with start_bot(store, monkeypatch, tmp_path) as bot:
        yield bot


# --- what people see ------------------------------------------------------------------------------
def approval_request(bot: Bot, channel: str = "C0APPROVALS") -> Message:
    """The request approvers see (top-level, not ephemeral), as it is now."""
    found = bot.slack.wait_for(
        lambda: [m for m in bot.slack.messages(channel) if not m.ephemeral and m.thread_ts is None]
    )
    assert len(found) == 1, [m.text for m in found]
    return found[0]


def button_ids(message: Message) -> list[str]:
    return [e["action_id"] for b in message.blocks if b["type"] == "actions" for e in b["elements"]]


def everything(message: Message) -> str:
    """The text and every block's text, as a person would read the message."""
    parts = [message.text]
    for block in message.blocks:
        parts += [block.get("text", {}).get("text", "")]
        parts += [e.get("text", "") for e in block.get("elements", []) if isinstance(e.get("text"), str)]
    return "\n".join(parts)


def ephemerals(bot: Bot, user: str) -> list[Message]:
    return [m for m in bot.slack.messages() if m.ephemeral and m.user == user]


def thread(bot: Bot, message: Message) -> list[str]:
    return [m.text for m in bot.channel_messages(message.channel) if m.thread_ts == message.ts]


def decisions(bot: Bot) -> list[dict[str, Any]]:
    return [e for e in audit.events(bot.store) if e["action"] in ("launch.approved", "launch.denied")]


def the_launch(bot: Bot) -> dict[str, Any]:
    [launch] = bot.launches()
    return launch


def ask(bot: Bot, user: str = "U0ALICE", text: str = A100) -> Message:
    """A launch that needs approval; returns the approval request once it is posted and the step
    that posted it is over (as it is, a moment later, for any approver who reads it)."""
    assert bot.driver.command(user, text).status == 200
    request = approval_request(bot)
    bot.slack.wait_for(bot.settled)
    return request


def wait_decided(bot: Bot) -> Message:
    """The approval request once its buttons are gone."""
    return bot.slack.wait_for(lambda: (m := approval_request(bot)) and not button_ids(m) and m)


def until_ready(bot: Bot) -> None:
    """Once the approving click is fully handled (its create step done), reconcile to the end.

    The test's clock only moves in reconcile_until; moving it while the click's own step is still
    running would let the step's lease run out in test time, which real time never does."""
    bot.slack.wait_for(
        lambda: (found := bot.launches()) and found[0]["state"] != "APPROVED" and not found[0].get("lease_owner")
    )
    bot.reconcile_until(lambda: "is ready for" in bot.launch_message().text)


def open_review(bot: Bot, user: str, request: Message, action: str = "review_launch") -> dict[str, Any]:
    before = set(bot.slack.views())
    assert bot.driver.click(user, request, action).status == 200
    [view_id] = bot.slack.wait_for(lambda: [v for v in bot.slack.views() if v not in before])
    return bot.slack.view(view_id)


def block_of(view: dict[str, Any], field: str) -> str:
    """The block_id of a form field (GPU-dependent fields carry the GPU in it: `machine:l4:1`)."""
    return next(b["block_id"] for b in view["blocks"] if b.get("block_id", "").split(":")[0] == field)


def price_text(view: dict[str, Any]) -> str:
    block = next(b for b in view["blocks"] if b.get("block_id") == "price")
    return block["elements"][0]["text"]


def select(bot: Bot, user: str, view: dict[str, Any], field: str, value: str) -> dict[str, Any]:
    """Change a live select and wait until the bot has redrawn the view."""
    before = view["hash"]
    assert bot.driver.select(user, view["id"], block_of(view, field), "value", value).status == 200
    return bot.slack.wait_for(lambda: (v := bot.slack.view(view["id"]))["hash"] != before and v)


# --- the tests --------------------------------------------------------------------------------------
def test_a_launch_within_policy_goes_straight_through(bot: Bot) -> None:
    bot.driver.command("U0ALICE", "new gpu=l4")  # ≈$0.75/h, one GPU
    until_ready(bot)
    assert bot.slack.messages("C0APPROVALS") == []
    assert the_launch(bot)["decision"] is None and bot.workbench.count("create") == 1


def test_a_gpu_quota_breach_is_refused_with_the_numbers(bot: Bot) -> None:
    bot.driver.command("U0ALICE", "new gpu=l4x4 machine=g2-standard-48")
    approval_request(bot)
    refusal = bot.driver.command("U0ALICE", "new gpu=l4").json()["text"]
    assert "needs 1 GPU(s); your notebooks that are not stopped use 4 and the limit is 4" in refusal
    assert len(bot.launches()) == 1


def test_approve_launches_and_the_request_shows_who_and_when(bot: Bot) -> None:
    request = ask(bot)
    shown = everything(request)
    assert "<@U0ALICE>" in shown and "a2-highgpu-1g" in shown and "A100" in shown
    spec = the_launch(bot)["spec"]
    per_hour = spec["usd_per_hour"]
    assert f"≈${per_hour:.2f}/h" in shown and f"≈${per_hour * 24:.2f}/day" in shown
    assert "over the $1.00/h allowed without approval" in shown
    assert button_ids(request) == ["approve_launch", "deny_launch", "review_launch"]
    launch_message = bot.launch_message()
    assert "needs approval" in launch_message.text
    bot.clock.advance(60)
    bot.services.reconcile()
    assert bot.workbench.count("create") == 0, "nothing is created before a decision"

    assert bot.driver.click("U0APPROVER", request, "approve_launch").status == 200
    decided = wait_decided(bot)
    assert decided.ts == request.ts and decided.updates >= 1, "the request is updated in place"
    assert "Approved by <@U0APPROVER>" in decided.text and "UTC" in decided.text
    told = bot.slack.wait_for(lambda: [t for t in thread(bot, launch_message) if "approved" in t])
    assert "<@U0ALICE>" in told[0] and "<@U0APPROVER>" in told[0]

    until_ready(bot)
    assert bot.workbench.count("create") == 1
    [instance] = bot.workbench.instances().values()
    assert instance["gceSetup"]["machineType"] == "a2-highgpu-1g"
    launch = the_launch(bot)
    assert launch["decision"]["by"] == "U0APPROVER" and launch["decision"]["approved"] is True
    [event] = decisions(bot)
    assert (event["action"], event["actor"], event["requester"]) == ("launch.approved", "U0APPROVER", "U0ALICE")
    assert event["at"] == launch["decision"]["at"] and event["spec_before"] == event["spec_after"] == spec
    assert ephemerals(bot, "U0APPROVER") == []


def test_deny_needs_a_reason_and_the_requester_sees_it(bot: Bot) -> None:
    request = ask(bot)
    launch_message = bot.launch_message()
    view = open_review(bot, "U0APPROVER", request, "deny_launch")
    decision = next(b for b in view["blocks"] if b.get("block_id") == "decision")
    assert decision["element"]["initial_option"]["value"] == "deny"
    assert "a2-highgpu-1g" in str(view["blocks"]) and "<@U0ALICE>" in str(view["blocks"])

    without_reason = bot.driver.submit("U0APPROVER", view["id"], {})
    assert without_reason.status == 200
    assert without_reason.json()["response_action"] == "errors"
    assert "reason" in without_reason.json()["errors"]["reason"]
    assert view["id"] in bot.slack.views(), "the form stays open to be fixed"
    assert the_launch(bot)["state"] == "PENDING_APPROVAL" and button_ids(approval_request(bot))

    done = bot.driver.submit("U0APPROVER", view["id"], {"reason": {"value": "An L4 is enough for this model"}})
    assert done.status == 200 and done.json() == {}
    assert view["id"] not in bot.slack.views()
    decided = wait_decided(bot)
    assert "Denied by <@U0APPROVER>" in decided.text and "An L4 is enough for this model" in decided.text
    told = bot.slack.wait_for(lambda: [t for t in thread(bot, launch_message) if "denied" in t])
    assert "<@U0ALICE>" in told[0] and "An L4 is enough for this model" in told[0]
    bot.slack.wait_for(lambda: "Denied" in bot.launch_message().text)  # shown after the ping

    launch = the_launch(bot)
    assert launch["state"] == "DENIED" and launch["decision"]["reason"] == "An L4 is enough for this model"
    assert bot.store.query("notebooks") == [], "a denied request frees its name and quota"
    [event] = decisions(bot)
    assert (event["action"], event["actor"], event["reason"]) == (
        "launch.denied",
        "U0APPROVER",
        launch["decision"]["reason"],
    )
    bot.clock.advance(60)
    bot.services.reconcile()
    assert bot.workbench.count("create") == 0


def test_the_review_form_asks_for_a_reason_as_slack_shows_it(bot: Bot) -> None:
    """Slack adds "(optional)" to an optional field's label itself: the label says only "Reason"."""
    view = open_review(bot, "U0APPROVER", ask(bot), "deny_launch")
    lines = render_view(view).splitlines()
    reason = next(i for i, line in enumerate(lines) if line.startswith("Reason"))
    assert lines[reason] == "Reason (optional): []"
    assert lines[reason + 1].strip() == "Needed to deny; the requester sees it."


def test_an_approver_lowers_the_request_and_may_not_raise_it(bot: Bot) -> None:
    request = ask(bot, text="new gpu=a100x2")  # a2-highgpu-2g
    launch_message = bot.launch_message()
    asked = the_launch(bot)["spec"]
    view = open_review(bot, "U0CAROL", request)  # a member of the S0LEADS approvers group
    assert "2× NVIDIA A100" in str(view["blocks"]) and "As requested" in price_text(view)

    view = select(bot, "U0CAROL", view, "gpu", "a100-80gb")  # keeps 2 GPUs: dearer
    assert "may only lower" in price_text(view)
    raised = bot.driver.submit("U0CAROL", view["id"], {})
    assert raised.json()["response_action"] == "errors"
    assert list(raised.json()["errors"]) == ["gpu"] and "may only lower" in raised.json()["errors"]["gpu"]
    assert the_launch(bot)["state"] == "PENDING_APPROVAL"

    view = select(bot, "U0CAROL", view, "gpu", "l4")
    view = select(bot, "U0CAROL", view, "gpu_count", "1")
    machine = next(b for b in view["blocks"] if b["block_id"] == block_of(view, "machine"))
    offered = [o["value"] for o in machine["element"]["options"]]
    assert offered == ["auto", "g2-standard-4", "g2-standard-8", "g2-standard-16"], "only machines that fit one L4"
    assert "Lowered from 2× NVIDIA A100" in price_text(view) and "g2-standard-4" in price_text(view)
    done = bot.driver.submit("U0CAROL", view["id"], {"reason": {"value": "start small"}})
    assert done.status == 200 and done.json() == {}

    decided = wait_decided(bot)
    assert "Approved by <@U0CAROL>" in decided.text and "lowered to NVIDIA L4" in decided.text
    assert "2× NVIDIA A100" in everything(decided), "the request still shows what was asked"
    told = bot.slack.wait_for(lambda: [t for t in thread(bot, launch_message) if "approved" in t])
    assert "lowered from 2× NVIDIA A100" in told[0] and "start small" in told[0]
    until_ready(bot)
    [instance] = bot.workbench.instances().values()
    assert instance["gceSetup"]["machineType"] == "g2-standard-4" and bot.workbench.count("create") == 1

    launch = the_launch(bot)
    assert (launch["spec"]["gpu"], launch["spec"]["gpu_count"]) == ("l4", 1)
    [notebook] = bot.store.query("notebooks")
    assert notebook["spec"]["machine"] == "g2-standard-4", "quotas count what was approved"
    [event] = decisions(bot)
    assert event["actor"] == "U0CAROL" and event["changed"] is True
    assert event["spec_before"] == asked and event["spec_after"]["machine"] == "g2-standard-4"


def test_a_stranger_clicking_is_refused_only_to_them_and_nothing_changes(bot: Bot) -> None:
    request = ask(bot)
    for action in ("approve_launch", "deny_launch", "review_launch"):
        assert bot.driver.click("U0BOB", request, action).status == 200
    refusals = bot.slack.wait_for(lambda: len(ephemerals(bot, "U0BOB")) == 3 and ephemerals(bot, "U0BOB"))
    assert all("Only approvers" in r.text and r.channel == "C0APPROVALS" for r in refusals)
    assert bot.slack.views() == {}, "no review form for a stranger"
    unchanged = approval_request(bot)
    assert unchanged.updates == 0 and button_ids(unchanged) == button_ids(request)
    assert the_launch(bot)["state"] == "PENDING_APPROVAL" and the_launch(bot)["decision"] is None
    assert decisions(bot) == []
    bot.clock.advance(60)
    bot.services.reconcile()
    assert bot.workbench.count("create") == 0


def test_nobody_approves_their_own_request(bot: Bot) -> None:
    request = ask(bot, user="U0APPROVER")
    bot.driver.click("U0APPROVER", request, "approve_launch")
    refusal = bot.slack.wait_for(lambda: ephemerals(bot, "U0APPROVER"))
    assert "your own request" in refusal[0].text
    assert the_launch(bot)["state"] == "PENDING_APPROVAL" and decisions(bot) == []
    assert button_ids(approval_request(bot))

    bot.driver.click("U0ADMIN", request, "approve_launch")  # another approver can
    assert "Approved by <@U0ADMIN>" in wait_decided(bot).text


def test_self_approval_when_the_config_allows_it(store, monkeypatch, tmp_path) -> None:
    with start_bot(store, monkeypatch, tmp_path, extra_access="allow_self_approval = true") as bot:
        request = ask(bot, user="U0APPROVER")
        bot.driver.click("U0APPROVER", request, "approve_launch")
        assert "Approved by <@U0APPROVER>" in wait_decided(bot).text
        assert decisions(bot)[0]["actor"] == decisions(bot)[0]["requester"] == "U0APPROVER"


def test_simultaneous_and_double_clicks_give_one_decision_and_one_launch(bot: Bot) -> None:
    request = ask(bot)
    clickers = ["U0APPROVER", "U0ADMIN", "U0APPROVER", "U0CAROL"]
    barrier = threading.Barrier(len(clickers))
    statuses: list[int] = []

    def click(user: str) -> None:
        barrier.wait()
        statuses.append(bot.driver.click(user, request, "approve_launch").status)  # the same, stale copy

    threads = [threading.Thread(target=click, args=(user,)) for user in clickers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert statuses == [200] * 4
    refused = bot.slack.wait_for(
        lambda: (r := [m for m in bot.slack.messages("C0APPROVALS") if m.ephemeral]) and len(r) == 3 and r
    )
    assert all("already approved by" in r.text for r in refused)
    decided = wait_decided(bot)
    [event] = decisions(bot)
    assert f"Approved by <@{event['actor']}>" in decided.text
    history = [h for h in the_launch(bot)["history"] if h["state"] == "APPROVED"]
    assert len(history) == 1 and history[0]["by"] == event["actor"], the_launch(bot)["history"]
    until_ready(bot)
    assert bot.workbench.count("create") == 1 and len(bot.workbench.instances()) == 1


def test_an_undecided_request_expires_and_the_requester_is_told(bot: Bot) -> None:
    request = ask(bot)
    launch_message = bot.launch_message()
    bot.services.reconcile()
    bot.clock.advance(2 * 3600 - 60)
    bot.services.reconcile()
    assert the_launch(bot)["state"] == "PENDING_APPROVAL", "not before its time"

    bot.clock.advance(120)
    bot.services.reconcile()
    decided = wait_decided(bot)
    assert "Expired" in decided.text
    told = bot.slack.wait_for(lambda: [t for t in thread(bot, launch_message) if "expired" in t])
    assert "<@U0ALICE>" in told[0]
    assert the_launch(bot)["state"] == "EXPIRED" and bot.store.query("notebooks") == []
    assert [e["actor"] for e in audit.events(bot.store, action="launch.expired")] == ["bot"]

    bot.driver.click("U0APPROVER", request, "approve_launch")  # a stale copy with buttons
    refusal = bot.slack.wait_for(lambda: ephemerals(bot, "U0APPROVER"))
    assert "expired" in refusal[0].text
    assert decisions(bot) == [] and bot.workbench.count("create") == 0


def test_a_click_after_the_deadline_but_before_the_reconciler_is_refused(bot: Bot) -> None:
    request = ask(bot)
    launch_message = bot.launch_message()
    bot.clock.advance(2 * 3600 + 1)  # no reconcile pass has run since
    bot.driver.click("U0APPROVER", request, "approve_launch")
    refusal = bot.slack.wait_for(lambda: ephemerals(bot, "U0APPROVER"))
    assert "expired" in refusal[0].text
    assert "Expired" in wait_decided(bot).text
    bot.slack.wait_for(lambda: [t for t in thread(bot, launch_message) if "expired" in t])
    assert the_launch(bot)["state"] == "EXPIRED" and decisions(bot) == []
    assert bot.workbench.count("create") == 0


def test_closing_the_review_form_changes_nothing(bot: Bot) -> None:
    request = ask(bot)
    view = open_review(bot, "U0APPROVER", request)
    closed = bot.driver.close("U0APPROVER", view["id"])
    assert closed.status == 200, "view_closed is asked for and acknowledged"
    assert bot.slack.views() == {}
    assert the_launch(bot)["state"] == "PENDING_APPROVAL" and button_ids(approval_request(bot))
    bot.driver.click("U0ADMIN", request, "approve_launch")
    assert "Approved by <@U0ADMIN>" in wait_decided(bot).text


def test_user_groups_are_looked_up_and_cached(bot: Bot) -> None:
    request = ask(bot)
    bot.driver.click("U0BOB", request, "approve_launch")  # not in the group: one lookup
    bot.slack.wait_for(lambda: ephemerals(bot, "U0BOB"))
    open_review(bot, "U0CAROL", request)  # in the group: answered from the cache
    assert len(bot.slack.calls("usergroups.users.list")) == 1
    bot.clock.advance(301)
    bot.driver.click("U0CAROL", request, "approve_launch")
    wait_decided(bot)
    assert len(bot.slack.calls("usergroups.users.list")) == 2, "looked up again after five minutes"


def test_without_an_approval_channel_approvers_are_asked_in_dms(store, monkeypatch, tmp_path) -> None:
    config = '[access]\napprovers = ["U0APPROVER", "S0LEADS", "U0ALICE"]\n[policy]\napproval_over_usd_per_hour = 1.0\n'
    with start_bot(store, monkeypatch, tmp_path, config=config) as bot:
        bot.driver.command("U0ALICE", A100)
        asked = bot.slack.wait_for(
            lambda: (found := bot.launches()) and len(found[0].get("approval_posts") or []) == 2 and found[0]
        )
        assert {p["channel"] for p in asked["approval_posts"]} == {"DU0APPROVER", "DU0CAROL"}, "not the requester"
        in_dm = approval_request(bot, "DU0CAROL")
        bot.driver.click("U0CAROL", in_dm, "approve_launch")
        for channel in ("DU0APPROVER", "DU0CAROL"):
            decided = bot.slack.wait_for(lambda c=channel: (m := approval_request(bot, c)) and not button_ids(m) and m)
            assert "Approved by <@U0CAROL>" in decided.text


def test_a_decision_is_recorded_while_a_step_holds_the_request_and_applied_after_it(bot: Bot) -> None:
    request = ask(bot)
    launch_id = the_launch(bot)["id"]
    held = leases.claim(bot.store, "launches", launch_id, "other-worker", bot.clock(), 120)
    assert held is not None
    bot.driver.click("U0ADMIN", request, "approve_launch")
    bot.slack.wait_for(lambda: the_launch(bot).get("kick"))  # recorded, then the launch nudged
    assert bot.store.get("decisions", launch_id)["by"] == "U0ADMIN"
    assert ephemerals(bot, "U0ADMIN") == [], "the approver is not asked to try again"
    assert the_launch(bot)["state"] == "PENDING_APPROVAL", "the state machine applies it, not the click"
    bot.driver.click("U0APPROVER", request, "approve_launch")
    late = bot.slack.wait_for(lambda: ephemerals(bot, "U0APPROVER"))
    assert "already approved by <@U0ADMIN>" in late[0].text
    # the step ends as a reconcile step on a waiting request does: see you at the deadline
    leases.release(
        bot.store, "launches", launch_id, "other-worker", bot.clock(), {"next_at": held["created_at"] + 7200}
    )
    assert the_launch(bot)["next_at"] == 0.0, "a decision made during the step makes it due at once"
    bot.services.reconcile()
    assert "Approved by <@U0ADMIN>" in wait_decided(bot).text
    until_ready(bot)
    assert bot.workbench.count("create") == 1 and len(decisions(bot)) == 1


def test_a_review_form_submitted_after_someone_else_decided_says_so_on_the_form(bot: Bot) -> None:
    request = ask(bot)
    view = open_review(bot, "U0APPROVER", request)
    bot.driver.click("U0ADMIN", request, "approve_launch")
    wait_decided(bot)
    late = bot.driver.submit("U0APPROVER", view["id"], {"decision": {"value": "deny"}, "reason": {"value": "no"}})
    [(where, text)] = late.json()["errors"].items()
    assert where == "decision" and "already approved by <@U0ADMIN>" in text
    assert the_launch(bot)["state"] in ("APPROVED", "CREATING") and len(decisions(bot)) == 1


def test_a_request_sent_to_many_approvers_is_closed_in_one_step_and_the_launch_goes_on(
    store, monkeypatch, tmp_path
) -> None:
    approvers = '["U0APPROVER", "U0BOB", "U0ADMIN", "S0LEADS"]'  # four DMs: more than a step's chat.update tokens
    config = f"[access]\napprovers = {approvers}\n[policy]\napproval_over_usd_per_hour = 1.0\n"
    with start_bot(store, monkeypatch, tmp_path, config=config) as bot:
        bot.driver.command("U0ALICE", A100)
        asked = bot.slack.wait_for(
            lambda: (found := bot.launches()) and len(found[0].get("approval_posts") or []) == 4 and found[0]
        )
        bot.driver.click("U0BOB", approval_request(bot, "DU0BOB"), "approve_launch")
        bot.reconcile_until(lambda: bot.workbench.count("create") == 1)
        for post in asked["approval_posts"]:
            decided = approval_request(bot, post["channel"])
            assert not button_ids(decided) and "Approved by <@U0BOB>" in decided.text, post["channel"]
