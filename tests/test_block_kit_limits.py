"""Every message and view the bot can send, rendered with hostile or oversized content and validated
with slack_sdk's block models plus the limits they don't check on nested dicts: Slack refuses a
message over any limit (invalid_blocks) and the person would get no answer at all.

Messages: launch messages in each state, approval requests and their outcomes, refusals quoting long
input, lists with many notebooks, help, envs, delete confirmations, App Home, reminders. Views: the
launch and review modals, with long typed values.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterator
from datetime import date
from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from bot.adapters.store import SqliteStore
from bot.adapters.workbench import InstanceInfo
from bot.domain.errors import UserError
from bot.domain.launches import Launch, Launcher, State
from bot.domain.records import Notebook, NotebookState
from bot.domain.spec import SpecBounds, parse_request, resolve
from bot.domain.utilization import Usage, Verdict
from bot.run.config import Settings
from bot.run.services import Services
from bot.ui.blocks import error_reply, help_reply
from bot.ui.forms import LaunchForm, default_form, form_for_text, launch_modal, review_modal
from bot.ui.listing import catalog_listing, delete_confirmation, home_view, notebook_list

NOW = 1_800_000_000.0
LONG = "⚠️ <@U0BOB> `x`*y*_z_ " * 800  # 17,600 characters of mrkdwn, emoji and mentions
MESSAGE_BLOCKS, VIEW_BLOCKS = 50, 100


# --- the validator -----------------------------------------------------------------------------------
def _text(obj: Any) -> str:
    return obj.get("text", "") if isinstance(obj, dict) else str(obj or "")


def _walk(node: Any, path: str = "") -> None:
    """Limits checked by hand, wherever they appear (the models skip some on nested dicts)."""
    if isinstance(node, list):
        for i, item in enumerate(node):
            _walk(item, f"{path}[{i}]")
        return
    if not isinstance(node, dict):
        return
    kind = node.get("type")
    if kind == "section":
        assert len(_text(node.get("text"))) <= 3000, path
        assert len(node.get("fields") or []) <= 10 and all(len(_text(f)) <= 2000 for f in node.get("fields") or []), (
            path
        )
    if kind == "context":
        elements = node.get("elements") or []
        assert 1 <= len(elements) <= 10 and all(len(_text(e)) <= 3000 for e in elements), path
    if kind == "button":
        assert len(_text(node["text"])) <= 75 and len(node.get("value") or "") <= 2000, path
        assert len(node.get("url") or "") <= 3000, path
    if kind == "header":
        assert len(_text(node["text"])) <= 150, path
    if kind == "actions":
        assert 1 <= len(node["elements"]) <= 25, path
    if "options" in node and kind in ("static_select", "overflow", "radio_buttons", "checkboxes"):
        assert 1 <= len(node["options"]) <= 100, path
        for option in node["options"]:
            assert len(_text(option["text"])) <= 75 and len(option["value"]) <= 150, path
        if "initial_option" in node:
            assert node["initial_option"] in node["options"], f"{path}: initial option is not an option"
    if "action_id" in node:
        assert len(node["action_id"]) <= 255, path
    if "block_id" in node:
        assert len(node["block_id"]) <= 255, path
    for key, value in node.items():
        _walk(value, f"{path}.{key}")


def valid_message(message: tuple[str, list[dict[str, Any]]]) -> None:
    text, blocks = message
    assert text and len(text) <= 40_000
    assert 1 <= len(blocks) <= MESSAGE_BLOCKS, len(blocks)
    for block in blocks:
        model = Block.parse(block)
        assert model is not None, f"unknown block {block.get('type')}"
        model.to_dict()  # SlackObjectFormationError when a limit is broken
    _walk(blocks)
    json.dumps(blocks)


def valid_view(view: dict[str, Any]) -> None:
    assert 1 <= len(view["blocks"]) <= VIEW_BLOCKS
    View(**view).to_dict()
    for block in view["blocks"]:
        assert Block.parse(block) is not None
    assert len(view.get("private_metadata") or "") <= 3000
    _walk(view["blocks"])


# --- fixtures ------------------------------------------------------------------------------------------
@pytest.fixture
def services(monkeypatch: pytest.MonkeyPatch) -> Iterator[Services]:
    monkeypatch.setenv("SLACK_API_URL", "http://127.0.0.1:9/api/")  # nothing is sent: rendering only
    monkeypatch.setenv("NOTEBOOKS_EMULATOR_HOST", "127.0.0.1:9")
    yield Services(Settings(slack_bot_token="xoxb-render", project="render"), store=SqliteStore(), clock=lambda: NOW)


def spec(services: Services, text: str = "tf-2-8 gpu=l4") -> dict[str, Any]:
    catalog = services.config.catalog
    return resolve(parse_request(text), catalog, SpecBounds(), date(2026, 12, 1)).to_dict()


def launch(services: Services, state: str, **changes: Any) -> Launch:
    base = Launch(
        id="7d8e9f00-0000-4000-8000-000000000001",
        requester="U0ALICE",
        channel="C0GENERAL",
        spec=spec(services),
        instance_id="tf-2-8-l4-7d8e9f00",
        state=state,
        created_at=NOW - 600,
        updated_at=NOW,
        approval_reason=LONG,
        error=LONG,
        url="https://abc-dot-us-central1.notebooks.googleusercontent.com/lab",
    )
    return dataclasses.replace(base, **changes)


def notebook(services: Services, i: int, state: str = "ACTIVE") -> Notebook:
    return Notebook.from_doc(
        {
            "id": f"notebook-{i:04d}-with-a-rather-long-name-to-fill-the-line-x",
            "zone": "us-central1-a",
            "owner": f"U0USER{i:04d}",
            "state": state,
            "spec": spec(services, "pytorch gpu=t4x2 disk=500"),
            "created_at": NOW - 86400,
            "state_since": NOW - 3600,
            "url": "https://abc-dot-us-central1.notebooks.googleusercontent.com/lab",
        }
    )


# --- messages ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("state", list(State))
@pytest.mark.parametrize("cancel", [None, {"by": "U0ALICE", "at": NOW}])
def test_launch_messages_in_every_state(services: Services, state: str, cancel: dict | None) -> None:
    valid_message(services.launcher.messages.launch(launch(services, state, cancel=cancel), NOW))


@pytest.mark.parametrize("count", [1, 2, Launcher.ANNOUNCE_AT_ONCE])
def test_the_announcement_of_links_at_its_largest(services: Services, count: int) -> None:
    ready = [
        launch(services, "READY", id=f"7d8e9f00-0000-4000-8000-{i:012d}", instance_id=f"n{i:02d}-" + "x" * 58)
        for i in range(count)
    ]
    valid_message(services.launcher.messages.announcement(ready))


@pytest.mark.parametrize(
    "state, decision",
    [
        ("PENDING_APPROVAL", None),
        ("EXPIRED", None),
        ("APPROVED", {"approved": True, "by": "U0APPROVER", "at": NOW, "reason": LONG}),
        ("APPROVED", {"approved": True, "by": "U0APPROVER", "at": NOW, "requested": None}),
        ("DENIED", {"approved": False, "by": "U0APPROVER", "at": NOW, "reason": LONG}),
        ("CREATING", {}),
    ],
)
def test_approval_requests_and_outcomes(services: Services, state: str, decision: dict[str, Any] | None) -> None:
    if decision is not None and "requested" in decision:
        decision = {**decision, "requested": spec(services, "tf-2-8 gpu=a100x8")}
    one = launch(services, state, decision=decision)
    valid_message(services.launcher.messages.approval(one, NOW))
    withdrawn = launch(services, state, cancel={"by": "U0ALICE", "at": NOW})
    valid_message(services.launcher.messages.approval(withdrawn, NOW))


@pytest.mark.parametrize(
    "text",
    [
        "new " + "x" * 5000,
        "gpu=" + "l" * 3000,
        "disk=" + "9" * 5000,
        "name=" + "a/" * 2000,
        "bucket=" + "b" * 1100 + "/" + "d" * 900,
        "machine=" + "n1-standard-" * 300,
        "zone=" + "us-" * 900,
        " ".join(f"k{i}=v" for i in range(40)),
    ],
)
def test_refusals_of_long_input_fit(services: Services, text: str) -> None:
    with pytest.raises(UserError) as refused:
        services.launcher.check(text)
    valid_message(error_reply(refused.value, customize=text))
    valid_message(error_reply(refused.value))


def test_refusal_with_an_offer_and_a_message_longer_than_a_section(services: Services) -> None:
    error = UserError(LONG, offer="tf-2-8 gpu=l4 " * 300, offer_label="Launch with L4 instead of " + LONG)
    text, blocks = error_reply(error, customize=LONG, offer_id="0123456789abcdef")
    valid_message((text, blocks))
    shown = blocks[0]["text"]["text"]
    assert len(shown) == 3000 and shown.endswith("…"), "cut to fit, visibly"
    assert blocks[1]["elements"][0]["text"]["text"].endswith("…")


@pytest.mark.parametrize("count", [0, 1, 40, 500, 2000])
@pytest.mark.parametrize("everyone", [False, True])
def test_lists_with_many_notebooks(services: Services, count: int, everyone: bool) -> None:
    states = ["ACTIVE", "STOPPED", "QUEUED", "STARTING", NotebookState.GONE, "SUSPENDED", "CREATING", "REQUESTED"]
    notebooks = [notebook(services, i, states[i % len(states)]) for i in range(count)]
    unmanaged = [_unmanaged(i) for i in range(count)]
    text, blocks = notebook_list(notebooks, services.config.catalog, NOW, everyone=everyone, unmanaged=unmanaged)
    valid_message((text, blocks))
    assert len(json.dumps(blocks)) < 200_000
    if count == 2000:
        assert any("more" in b.get("text", {}).get("text", "") for b in blocks), "what didn't fit is counted"


def _unmanaged(i: int) -> InstanceInfo:
    fields = {f.name: None for f in dataclasses.fields(InstanceInfo)}
    fields.update(instance_id=f"someone-elses-{i:04d}", zone="us-central1-b", state="ACTIVE", labels={})
    return InstanceInfo(**fields)


def test_help_envs_and_a_delete_confirmation(services: Services) -> None:
    valid_message(help_reply())
    valid_message(catalog_listing(services.config.catalog, date(2026, 12, 1)))
    valid_message(delete_confirmation(notebook(services, 1)))


@pytest.mark.parametrize("count", [0, 3, 80])
def test_app_home(services: Services, count: int) -> None:
    states = ["ACTIVE", "STOPPED", "PENDING_APPROVAL", NotebookState.GONE]
    notebooks = [notebook(services, i, states[i % len(states)]) for i in range(count)]
    pending = [launch(services, "PENDING_APPROVAL") for _ in range(count // 2)]
    to_decide = [launch(services, "PENDING_APPROVAL", requester="U0BOB") for _ in range(count // 2)]
    view = home_view("U0ALICE", notebooks, pending, to_decide, services.config.catalog, NOW)
    valid_view(view)
    if count == 80:
        assert "more" in json.dumps(view["blocks"][-1])


@pytest.mark.parametrize("kind", ["running", "stopped"])
def test_reminders(services: Services, kind: str) -> None:
    nb = notebook(services, 7, "ACTIVE" if kind == "running" else "STOPPED")
    valid_message(services.lifecycle.reminder(nb, kind, 3 * 86400, NOW))


def test_reminders_with_figures_and_the_heads_up(services: Services) -> None:
    nb = notebook(services, 7, "ACTIVE")
    for usage in (Usage(Verdict.IDLE, "GPU", 0.0, 4 * 3600), Usage(Verdict.SOME, "CPU", 0.21, 4 * 3600)):
        valid_message(services.lifecycle.reminder(nb, "running", 3 * 86400, NOW, usage))
    busy = Usage(Verdict.BUSY, "GPU", 0.97, 2 * 3600)
    valid_message(services.lifecycle.heads_up(nb, busy, services.lifecycle.extended_timeout()))


# --- views ---------------------------------------------------------------------------------------------
def test_the_launch_modal_empty_prefilled_and_with_long_typed_values(services: Services) -> None:
    launcher = services.launcher
    valid_view(launch_modal(launcher, default_form(launcher), "C0GENERAL"))
    valid_view(launch_modal(launcher, form_for_text(launcher, "pytorch gpu=t4x2 disk=500 bucket=my-data/x"), "C0X"))
    typed = dataclasses.replace(
        default_form(launcher),
        disk="9" * 3000,
        boot_disk="1" * 3000,
        idle="h" * 3000,
        name="N" * 3000,
        bucket="b" * 3000,
        gpu="l4",
        gpu_count=10**6,
        machine="m" * 500,
    )
    view = launch_modal(launcher, typed, "C0GENERAL")
    valid_view(view)
    assert json.loads(view["private_metadata"])["channel"] == "C0GENERAL", "metadata keeps what it needs"


def test_the_review_modal(services: Services) -> None:
    pending = launch(services, "PENDING_APPROVAL", spec=spec(services, "tf-2-8 gpu=a100x8"))
    valid_view(review_modal(services.launcher, pending))
    valid_view(review_modal(services.launcher, pending, deny=True))
    lowered = dataclasses.replace(LaunchForm.from_spec(pending.notebook_spec), gpu="l4", gpu_count=1, machine="auto")
    valid_view(review_modal(services.launcher, pending, lowered))


def test_packed_lines_count_what_does_not_fit() -> None:
    from bot.ui.blocks import packed

    blocks = packed(["x" * 100] * 1000, title="*Title*", more=" (`/notebook list`)", max_blocks=3)
    assert len(blocks) == 3
    shown = sum(b["text"]["text"].count("x" * 100) for b in blocks[:2])
    assert blocks[-1]["text"]["text"] == f"…and {1000 - shown} more (`/notebook list`)"
    assert blocks[0]["text"]["text"].startswith("*Title*\n")
    [one] = packed(["y" * 5000])
    assert len(one["text"]["text"]) == 3000 and one["text"]["text"].endswith("…")


def test_the_slack_simulator_refuses_blocks_over_a_limit_as_slack_does() -> None:
    """So every end-to-end test also checks what the bot posts."""
    from slack_sdk import WebClient
    from slack_sdk.errors import SlackApiError

    from bot.sim.slack_api import SlackSimulator

    with SlackSimulator() as slack:
        client = WebClient(token=slack.bot_token, base_url=slack.base_url)
        too_long = [{"type": "section", "text": {"type": "mrkdwn", "text": "x" * 3001}}]
        with pytest.raises(SlackApiError) as refused:
            client.chat_postMessage(channel="C0GENERAL", text="t", blocks=too_long)
        assert refused.value.response["error"] == "invalid_blocks"
        assert client.chat_postMessage(channel="C0GENERAL", text="t", blocks=[{"type": "divider"}])["ok"]


@pytest.mark.parametrize("action", ["stop", "start", "delete"])
@pytest.mark.parametrize("state", ["REQUESTED", "RUNNING", "DONE", "FAILED"])
def test_operation_messages(action: str, state: str) -> None:
    from bot.domain.operations import describe, op_blocks

    op = {
        "action": action,
        "state": state,
        "notebook": "n" * 63,
        "requester": "U0ALICE",
        "error": LONG,
        "url": "https://abc-dot-us-central1.notebooks.googleusercontent.com/lab",
    }
    valid_message((describe(op), op_blocks(op)))
