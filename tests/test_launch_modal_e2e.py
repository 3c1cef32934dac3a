"""The launch form end to end: `/notebook new` alone and the Customize button open it, live
selects redraw choices and the price (views.update), bad values are flagged on their field
(response_action: errors), and a submitted form launches exactly as the typed command does."""

from __future__ import annotations

from typing import Any

import pytest

from bot.run.config import load_config
from tests.harness import Bot, ephemeral

CONFIG = """
[access]
approvers = ["U0APPROVER"]
approval_channel = "C0APPROVALS"
[policy]
approval_over_usd_per_hour = 1.0
max_notebooks_per_user = 2
"""


@pytest.fixture
def bot(store, monkeypatch, tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(CONFIG)
    with Bot(store, monkeypatch, config=load_config(path)) as bot:
        yield bot


# --- reading the form as a person sees it ------------------------------------------------------------
def open_form(bot: Bot, user: str = "U0ALICE", text: str = "new") -> dict[str, Any]:
    response = bot.driver.command(user, text)
    assert response.status == 200 and response.body.strip() == "", "the command is acknowledged silently"
    [view] = bot.slack.wait_for(lambda: list(bot.slack.views().values()))
    return view


def block(view: dict[str, Any], field: str) -> dict[str, Any]:
    """A form field's block (the GPU count and machine blocks carry the GPU: `machine:l4:1`)."""
    return next(b for b in view["blocks"] if b.get("block_id", "").split(":")[0] == field)


def options(view: dict[str, Any], field: str) -> list[str]:
    return [o["value"] for o in block(view, field)["element"]["options"]]


def shown(view: dict[str, Any], field: str) -> str | None:
    element = block(view, field)["element"]
    return (element.get("initial_option") or {}).get("value") or element.get("initial_value")


def price(view: dict[str, Any]) -> str:
    return next(b for b in view["blocks"] if b.get("block_id") == "price")["elements"][0]["text"]


def select(bot: Bot, view: dict[str, Any], field: str, value: str, user: str = "U0ALICE") -> dict[str, Any]:
    """Change a live input and wait for the bot to redraw the form."""
    before = view["hash"]
    assert bot.driver.select(user, view["id"], block(view, field)["block_id"], "value", value).status == 200
    return bot.slack.wait_for(lambda: (v := bot.slack.view(view["id"]))["hash"] != before and v)


def submit(bot: Bot, view: dict[str, Any], values: dict[str, str], user: str = "U0ALICE") -> dict[str, Any]:
    response = bot.driver.submit(
        user, view["id"], {block(view, f)["block_id"]: {"value": v} for f, v in values.items()}
    )
    assert response.status == 200
    return response.json()


def settled(bot: Bot) -> None:
    """Wait until the submission's own first step is done, before reconcile_until moves the clock."""
    bot.slack.wait_for(
        lambda: (found := bot.launches()) and found[0]["state"] != "APPROVED" and not found[0].get("lease_owner")
    )


def price_of(bot: Bot, text: str) -> str:
    spec = bot.services.launcher.check(text)
    return f"≈${spec.usd_per_hour:.2f}/h"


# --- the tests --------------------------------------------------------------------------------------------
def test_notebook_new_alone_opens_the_form_with_catalog_choices_and_a_price(bot: Bot) -> None:
    view = open_form(bot)
    assert view["title"]["text"] == "New notebook" and view["submit"]["text"] == "Launch"
    assert options(view, "environment") == ["base", "base-2603", "tf-2-8"]
    assert "p100" not in options(view, "gpu"), "retired GPUs are not offered"
    assert {"none", "l4", "a100", "t4"} <= set(options(view, "gpu"))
    assert shown(view, "gpu") == "none" and shown(view, "machine") == "auto"
    assert "g2-standard-4" not in options(view, "machine"), "without a GPU, no GPU machine types"
    assert (shown(view, "disk"), shown(view, "boot_disk"), shown(view, "idle")) == ("100", "150", "3h")
    assert price_of(bot, "base") in price(view)
    assert bot.launches() == []


def test_choices_fit_slacks_75_characters_and_are_cut_between_words(bot: Bot) -> None:
    view = open_form(bot)
    catalog = bot.services.config.catalog
    texts = [o["text"]["text"] for b in view["blocks"] for o in (b.get("element") or {}).get("options", [])]
    assert texts and all(len(t) <= 75 for t in texts)
    full = {f"{k} — {e.description}" for k, e in catalog.environments.items()}
    assert "tf-2-8 — TensorFlow 2.8 in a custom container…" in texts, "the open parenthesis is left out"
    for text in texts:
        if text.endswith("…"):
            kept = text.removesuffix("…")
            assert any(f.startswith(kept) and f[len(kept)] in " (" for f in full), f"{text!r} is cut mid-word"


def test_choices_and_price_follow_the_gpu(bot: Bot) -> None:
    view = open_form(bot)
    view = select(bot, view, "gpu", "t4")
    assert shown(view, "gpu_count") == "1" and options(view, "gpu_count") == ["1", "2", "4"]
    assert set(options(view, "machine")) == {
        "auto",
        "n1-standard-4",
        "n1-standard-8",
        "n1-standard-16",
        "n1-highmem-8",
        "n1-standard-32",
    }
    assert price_of(bot, "base gpu=t4") in price(view) and "retire" in price(view)

    view = select(bot, view, "machine", "n1-standard-16")
    assert shown(view, "machine") == "n1-standard-16"
    assert price_of(bot, "base gpu=t4 machine=n1-standard-16") in price(view)

    view = select(bot, view, "gpu", "v100")  # one V100 allows at most 12 vCPUs: n1-standard-16 can't stay
    assert shown(view, "machine") == "auto" and "n1-standard-16" not in options(view, "machine")
    assert price_of(bot, "base gpu=v100") in price(view) and "⚠️" not in price(view)
    assert "An approver will be asked first" in price(view), "V100 on n1-standard-8 is over $1/h"

    view = select(bot, view, "gpu", "l4")
    assert [m for m in options(view, "machine") if m != "auto"] == ["g2-standard-4", "g2-standard-8", "g2-standard-16"]
    view = select(bot, view, "gpu_count", "2")
    assert options(view, "machine") == ["auto", "g2-standard-24"]
    view = select(bot, view, "disk", "500")  # Enter in a text field also redraws the price
    assert price_of(bot, "base gpu=l4x2 disk=500") in price(view)
    assert len(bot.slack.calls("views.update")) == 6 and bot.launches() == []

    assert submit(bot, view, {}) == {}
    bot.slack.wait_for(lambda: bot.launches())
    launch = bot.launches()[0]["spec"]
    assert (launch["gpu"], launch["gpu_count"], launch["machine"], launch["disk_gb"]) == (
        "l4",
        2,
        "g2-standard-24",
        500,
    )


def test_a_submitted_form_launches_like_the_command(bot: Bot) -> None:
    view = open_form(bot)
    view = select(bot, view, "environment", "tf-2-8")
    view = select(bot, view, "gpu", "l4")
    reply = submit(bot, view, {"name": "from-form", "idle": "90m"})
    assert reply == {}, "a valid form closes"
    assert bot.slack.views() == {}
    settled(bot)
    message = bot.reconcile_until(lambda: "is ready for" in bot.launch_message().text and bot.launch_message())
    assert "from-form" in message.text and "<@U0ALICE>" in message.text

    [launch] = bot.launches()
    assert launch["spec"] == bot.services.launcher.check("tf-2-8 gpu=l4 idle=90m name=from-form").to_dict()
    [instance] = bot.workbench.instances().values()
    assert instance["gceSetup"]["machineType"] == "g2-standard-4"
    assert instance["gceSetup"]["metadata"]["idle-timeout-seconds"] == str(90 * 60)
    assert bot.workbench.count("create") == 1


@pytest.mark.parametrize(
    "values, field, expected",
    [
        ({"disk": "5"}, "disk", "out of range"),
        ({"boot_disk": "lots"}, "boot_disk", "not a size in GB"),
        ({"idle": "forever"}, "idle", "not a duration"),
        ({"idle": "2d"}, "idle", "outside what the policy allows"),
        ({"name": "Not_Valid"}, "name", "can't be a notebook name"),
        ({"name": "my notebook"}, "name", "without spaces"),
        ({"disk": "100 gpu=a100"}, "disk", "without spaces or `=`"),
        ({"bucket": "team-data"}, "bucket", "bucket="),  # this bot has no NOTEBOOK_SCRIPTS_BUCKET
    ],
)
def test_a_bad_value_is_flagged_on_its_field_and_nothing_is_launched(
    bot: Bot, values: dict[str, str], field: str, expected: str
) -> None:
    view = open_form(bot)
    reply = submit(bot, view, values)
    assert reply["response_action"] == "errors"
    assert list(reply["errors"]) == [block(view, field)["block_id"]] and expected in reply["errors"][field]
    assert view["id"] in bot.slack.views(), "the form stays open to be fixed"
    assert bot.launches() == [] and bot.store.query("notebooks") == []

    fixed = submit(bot, view, {"disk": "100", "boot_disk": "150", "idle": "3h", "name": "fixed", "bucket": ""})
    assert fixed == {}
    bot.slack.wait_for(lambda: bot.channel_messages())
    assert [launch["instance_id"] for launch in bot.launches()] == ["fixed"]


def test_a_name_in_use_and_a_quota_are_flagged_in_the_form(bot: Bot) -> None:
    bot.driver.command("U0ALICE", "new name=taken")
    bot.slack.wait_for(lambda: bot.channel_messages())
    view = open_form(bot)
    reply = submit(bot, view, {"name": "taken"})
    assert "`taken` already exists" in reply["errors"]["name"]

    bot.driver.command("U0ALICE", "new name=second")
    bot.slack.wait_for(lambda: len(bot.channel_messages()) == 2)
    reply = submit(bot, view, {"name": "third"})
    [(where, text)] = reply["errors"].items()
    assert where == "environment" and "You have 2 notebook(s) that count towards the limit of 2 per person" in text
    assert len(bot.launches()) == 2


def test_customize_on_a_refused_command_opens_the_form_with_what_was_typed(bot: Bot) -> None:
    reply = bot.driver.command("U0ALICE", "new tf-2-8 gpu=t4 machine=e2-standard-4 disk=300 name=tuned").json()
    assert "e2 machines take no" in reply["text"]
    refusal = ephemeral(reply, user="U0ALICE", channel="C0GENERAL")
    assert bot.driver.click("U0ALICE", refusal, "customize_launch").status == 200
    [view] = bot.slack.wait_for(lambda: list(bot.slack.views().values()))
    assert (shown(view, "environment"), shown(view, "gpu"), shown(view, "disk"), shown(view, "name")) == (
        "tf-2-8",
        "t4",
        "300",
        "tuned",
    )
    assert shown(view, "machine") == "auto", "the machine that can't run a T4 is not kept"
    assert submit(bot, view, {}) == {}
    bot.slack.wait_for(lambda: bot.channel_messages())
    [launch] = bot.launches()
    assert (launch["spec"]["environment"], launch["spec"]["gpu"], launch["spec"]["machine"]) == (
        "tf-2-8",
        "t4",
        "n1-standard-8",
    )
    assert launch["channel"] == "C0GENERAL" and launch["instance_id"] == "tuned"
    notice = bot.slack.wait_for(lambda: [m for m in bot.slack.messages() if m.ephemeral and "retire" in m.text])
    assert notice[0].user == "U0ALICE", "the T4 retirement notice, as the command gives it"


def test_a_form_over_the_threshold_asks_an_approver(bot: Bot) -> None:
    view = open_form(bot)
    view = select(bot, view, "gpu", "a100")
    assert "An approver will be asked first" in price(view)
    assert submit(bot, view, {}) == {}
    request = bot.slack.wait_for(lambda: [m for m in bot.slack.messages("C0APPROVALS") if not m.ephemeral])
    assert "a2-highgpu-1g" in request[0].text + str(request[0].blocks)
    assert bot.launches()[0]["state"] == "PENDING_APPROVAL" and bot.workbench.count("create") == 0


def test_cancelling_the_form_launches_nothing(bot: Bot) -> None:
    view = open_form(bot)
    select(bot, view, "gpu", "l4")
    closed = bot.driver.close("U0ALICE", view["id"])
    assert closed.status == 200
    assert bot.slack.views() == {} and bot.launches() == []
    assert bot.slack.calls("chat.postMessage") == []


def test_new_notebook_from_the_app_home_is_followed_in_a_dm(bot: Bot) -> None:
    bot.driver.event({"type": "app_home_opened", "user": "U0ALICE", "tab": "home"})
    bot.slack.wait_for(lambda: bot.slack.home("U0ALICE"))
    assert bot.driver.click_home("U0ALICE", "customize_launch").status == 200
    [view] = bot.slack.wait_for(lambda: list(bot.slack.views().values()))
    assert submit(bot, view, {"name": "from-home"}) == {}
    settled(bot)
    bot.reconcile_until(lambda: any("is ready for" in m.text for m in bot.channel_messages("DU0ALICE")))
    assert bot.launches()[0]["instance_id"] == "from-home"
