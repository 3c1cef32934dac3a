"""`notebook-bot sandbox`: the product in a terminal. The real app, store and worker behind the
simulated Slack and Workbench, driven line by line as a person would type."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.run.sandbox import Sandbox, run_sandbox
from bot.sim.console import Console

README = Path(__file__).parent.parent / "README.md"


class Session:
    """A sandbox and its console; `type(line)` returns what the screen showed for that line."""

    def __init__(self, sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.console = Console(sandbox, out=lambda line: None)

    def type(self, line: str) -> str:
        mark = self.console.mark()
        assert self.console.run(line)
        return "\n".join(self.console.screen.lines[mark:])

    def shown(self) -> str:
        return "\n".join(self.console.screen.lines)


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    with Sandbox(tmp_path / "state", poll_seconds=0.3) as sandbox:
        yield Session(sandbox)


def test_the_demo_walks_through_launch_approval_reminders_costs_and_clean_up(tmp_path: Path) -> None:
    lines: list[str] = []
    assert run_sandbox(demo=True, state=str(tmp_path), out=lines.append, pause=0.0, poll_seconds=0.3) == 0
    shown = "\n".join(lines)
    for seen in (
        "is ready for @alice",  # launch
        "Launch request from @alice",  # approval, in #approvals
        "Lowered from 2× NVIDIA T4 16 GB",  # the review form, filled field by field
        "Approved by @bob",
        "@alice's App Home",
        "has been running for 9.0 h, ≈$",  # a reminder with its cost, after `wait 9h`
        "GPU 0 % for the last 4.0 h, ≈$",  # ... and what the simulated Cloud Monitoring reported
        "so far",  # /notebook list: what it cost
        "👍 Keeping",  # the Keep it… menu
        "⏹ Stopped",
        "🗑 Deleted",  # clean-up
        "owned by @bob",  # carol adopts the stray instance for bob
    ):
        assert seen in shown
    assert re.search(r"base-\w+\* · 🟢 running · base · NVIDIA T4 16 GB · up 9\.\d h · ≈\$7\.\d\d so far", shown)
    assert f"Logs: {tmp_path / 'sandbox.log'}" in lines[4], "the log file is named at start"


def readme_examples() -> list[str]:
    """Every `/notebook …` in the README's inline code, optional [parts] left out."""
    found: list[str] = []
    for raw in re.findall(r"`(/notebook[^`]*)`", README.read_text()):
        text = raw
        while re.search(r"\[[^\[\]]*\]", text):
            text = re.sub(r"\s*\[[^\[\]]*\]", "", text)
        text = " ".join(text.split())
        if text not in found:
            found.append(text)
    return found


def test_the_readme_has_examples() -> None:
    examples = readme_examples()
    assert "/notebook new pytorch gpu=t4x2 disk=500 idle=2h" in examples and len(examples) >= 10


EXPECTED = {  # what shows after an example, by its first words; every example must also refuse nothing
    "/notebook help": "Examples:",
    "/notebook list all": "All notebooks",
    "/notebook list": "Your notebooks",
    "/notebook envs": "Machine types",
    "/notebook costs team": "Team notebook costs",
    "/notebook costs": "Your notebook costs",
    "/notebook stop": "⏹ Stopped `readme-nb`",
    "/notebook cancel": "Cancelling the launch of `readme-nb`",
    "/notebook transfer": "`readme-nb` now belongs to @bob",
    "/notebook adopt": "`old-experiment` is now managed by the bot and owned by @bob",
    "/notebook new ": "is ready for @alice",
}
REFUSALS = ("⚠️", "❌", "I don't know", "Slack would show an error", "the sandbox could not")


@pytest.mark.parametrize("example", readme_examples())
def test_every_readme_example_works_in_the_sandbox_as_written(session: Session, example: str) -> None:
    command = example
    if "NAME" in command:
        name = "old-experiment" if command.startswith("/notebook adopt") else "readme-nb"
        if command.startswith("/notebook cancel"):  # a launch under way: one that waits for an approver
            assert "Launch request" in session.type("/notebook new gpu=a100 name=readme-nb")
        elif name == "readme-nb":
            assert "is ready for @alice" in session.type("/notebook new name=readme-nb")
        command = command.replace("NAME", name)
    command = command.replace("@person", "@bob")
    assert not re.search(r"\b[A-Z]{3,}\b", command), f"the test doesn't know the placeholders of {example!r}"
    if command.startswith(("/notebook adopt", "/notebook list all", "/notebook costs team")):  # the README: admins
        session.type("as carol")

    shown = session.type(command)
    if command == "/notebook new":  # the form
        assert "┌ New notebook" in shown
        shown += session.type("submit")
    if "Launch request" in shown:  # over the price an approver is asked: bob approves in #approvals
        session.type("as bob")
        shown += session.type("click Approve")
    refused = [line for line in shown.splitlines() if any(r in line for r in REFUSALS)]
    assert not refused, f"{example!r} was refused:\n" + "\n".join(refused)
    if command in ("/notebook", "/notebook new"):
        expected = "Examples:" if command == "/notebook" else "is ready for @alice"
    else:
        expected = next((e for start, e in EXPECTED.items() if command.startswith(start)), "")
    assert expected in shown, f"{example!r} showed:\n{shown}"


def test_mentions_are_typed_as_slack_sends_them(session: Session) -> None:
    session.type("/notebook new name=for-bob")
    shown = session.type("/notebook transfer for-bob @bob")
    assert "`for-bob` now belongs to @bob" in shown
    assert "DM to @bob" in shown and "@alice handed the notebook `for-bob` to you" in shown
    assert "not a person" in session.type("/notebook transfer for-bob @nobody")


def test_switching_people_and_what_each_may_see(session: Session) -> None:
    session.type("/notebook new pytorch gpu=t4x2 disk=500 idle=2h")
    assert "Only approvers can decide" in session.type("click Approve")  # alice may not decide
    session.type("/notebook new name=second")
    assert "only @alice sees this" in session.type("/notebook list")
    session.type("as bob")
    listing = session.type("/notebook list")
    assert "only @bob sees this" in listing and "No notebooks yet" in listing
    shown = session.type("home")
    assert "Waiting for your decision" in shown and "@alice · `base-" in shown


def test_a_form_is_filled_field_by_field_and_flags_mistakes(session: Session) -> None:
    assert "┌ New notebook" in session.type("/notebook new")
    changed = session.type("set gpu l4")
    assert "GPU: [NVIDIA L4 24 GB ▾]" in changed and "≈$0.74/h" in changed, "the price follows the choice"
    assert "not a choice of gpu" in session.type("set gpu l5")
    session.type("set name Bad Name")
    assert "⚠️ Name:" in session.type("submit"), "the app's error is shown on the field"
    session.type("set name good-name")
    assert "`good-name` is ready for @alice" in session.type("submit")


def test_the_store_and_the_cloud_last_across_runs(tmp_path: Path) -> None:
    with Sandbox(tmp_path, poll_seconds=0.3) as first:
        assert "is ready for @alice" in Session(first).type("/notebook new name=kept")
    with Sandbox(tmp_path, poll_seconds=0.3) as again:
        listing = Session(again).type("/notebook list")
    assert "*kept*" in listing and "running" in listing


def test_logs_go_to_the_named_file_never_into_the_chat(tmp_path: Path) -> None:
    """Without approvers the bot logs an error when a launch needs one: in the log, not the chat."""
    config = tmp_path / "no-approvers.toml"
    config.write_text("[policy]\napproval_over_usd_per_hour = 0.1\n")
    lines: list[str] = []
    script = ["/notebook new gpu=l4"]
    ran = run_sandbox(
        demo=False, state=str(tmp_path), config=str(config), lines=script, out=lines.append, poll_seconds=0.3
    )
    assert ran == 0
    shown = "\n".join(lines)
    assert "I could not reach any approver" in shown and "severity" not in shown
    assert "nobody to ask for approval" in (tmp_path / "sandbox.log").read_text()
