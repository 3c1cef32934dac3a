"""`notebook-bot sandbox`: the real bot in a terminal, with no Slack or Google account.

The real Bolt app serves HTTP on loopback with an embedded store; a simulated Slack Web API
and a simulated Workbench v2 API stand in for the cloud. What you type is sent to the app as a
signed slash command, exactly as Slack would send it, and what the app posts is printed as
Slack would show it. Buttons are numbered: `click 1` presses one.
"""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from bot.run.config import Settings, load_config
from bot.run.services import Services
from bot.sim.render import render_message, render_view
from bot.sim.slack_api import Message, SlackSimulator
from bot.sim.slack_driver import SlackDriver
from bot.sim.workbench_api import WorkbenchSimulator

SIGNING_SECRET = "sandbox-signing-secret"
CHANNEL = "C0GENERAL"
# (what the person types, how many notebooks should be ready before the next line)
DEMO = (
    ("/notebook help", 0),
    ("/notebook new tf-2-8 gpu=l4", 1),
    ("/notebook new tf-2-8 gpu=p100", 1),
    ("click Launch with L4 instead", 2),
)


class Sandbox:
    def __init__(self, user: str, out: Callable[[str], None] = print) -> None:
        self.user = user
        self.out = out
        self.slack = SlackSimulator()
        self.workbench = WorkbenchSimulator(op_polls_until_done=3)
        self._seen: dict[tuple[str, str], tuple[int, str]] = {}
        self.buttons: list[tuple[Message, dict]] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def __enter__(self) -> Sandbox:
        from bot.run.server import build_web_app, serve_in_thread
        from bot.run.worker import Worker

        base_url = self.slack.start()
        os.environ["SLACK_API_URL"] = base_url
        os.environ["NOTEBOOKS_EMULATOR_HOST"] = self.workbench.start()
        self._dir = tempfile.TemporaryDirectory(prefix="notebook-bot-sandbox-")
        settings = Settings(
            slack_bot_token=self.slack.bot_token,
            slack_signing_secret=SIGNING_SECRET,
            project="sandbox-project",
            store_url=f"sqlite:{Path(self._dir.name) / 'store.sqlite3'}",
            poll_seconds=1.0,
            config_path=os.environ.get("NOTEBOOK_BOT_CONFIG"),
            task_open=True,  # a local playground: POST /tasks/reconcile runs a pass for anyone (logged at start)
        )
        self.services = Services(settings, config=load_config(settings.config_path))
        self.server, port = serve_in_thread(build_web_app(self.services))
        self.worker = Worker(self.services.reconcile, interval=1.0).start()
        self.driver = SlackDriver(f"http://127.0.0.1:{port}/slack/events", SIGNING_SECRET, self.slack)
        threading.Thread(target=self._watch, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.worker.stop()
        self.server.shutdown()
        self.slack.stop()
        self.workbench.stop()
        self._dir.cleanup()

    # --- input ----------------------------------------------------------------------------------
    def run(self, line: str) -> None:
        line = line.strip()
        if not line:
            return
        if line.startswith("click"):
            self._click(line.removeprefix("click").strip())
            return
        if not line.startswith("/"):
            self.out("Type a slash command such as `/notebook new tf-2-8 gpu=l4`, `click N`, or `quit`.")
            return
        command, _, text = line.partition(" ")
        response = self.driver.command(self.user, text, channel=CHANNEL, command=command)
        if response.status != 200:
            self.out(f"[Slack would show an error: HTTP {response.status}]")
        elif response.body.strip():
            self._show_reply(response.json())

    def _click(self, which: str) -> None:
        """`click N` presses button [N]; `click LABEL` presses the latest button with that label."""
        labelled = [
            i for i, (_, element) in enumerate(self.buttons) if element["text"]["text"].lower() == which.lower()
        ]
        index = labelled[-1] if labelled else int(which) - 1 if which.isdigit() else -1
        if not 0 <= index < len(self.buttons):
            self.out(f"There is no button {which!r}; buttons are numbered in [brackets].")
            return
        message, element = self.buttons[index]
        if element.get("url"):
            self.out(f"(your browser would open {element['url']})")
        self.driver.click(self.user, message, element["action_id"])

    def _show_reply(self, body: dict) -> None:
        message = Message(
            channel=CHANNEL,
            ts="ack",
            text=body.get("text", ""),
            blocks=body.get("blocks") or [],
            thread_ts=None,
            user=self.user,
            ephemeral=True,
            updates=0,
        )
        self._print(message, "(only visible to you)")

    # --- output ---------------------------------------------------------------------------------
    def _watch(self) -> None:
        shown_views: dict[str, str] = {}
        while not self._stop.wait(0.2):
            for view_id, view in self.slack.views().items():
                text = render_view(view)
                if shown_views.get(view_id) != text:
                    shown_views[view_id] = text
                    with self._lock:
                        self.out("\n── a form opened (the sandbox shows forms but can't fill them in;")
                        self.out("   type the command with options instead, e.g. `/notebook new tf-2-8 gpu=l4`)")
                        for line in text.splitlines():
                            self.out("   " + line)
            for message in self.slack.messages():
                key = (message.channel, message.ts)
                fingerprint = (message.updates, message.text)
                if self._seen.get(key) == fingerprint:
                    continue
                label = "(updated)" if key in self._seen else ("(only visible to you)" if message.ephemeral else "")
                self._seen[key] = fingerprint
                self._print(message, label)

    def _print(self, message: Message, label: str) -> None:
        with self._lock:
            where = f"#{message.channel}" if message.channel.startswith("C") else f"DM {message.channel}"
            self.out(f"\n── {where} {label}".rstrip())
            first = len(self.buttons) + 1
            for line in render_message(message, first_button=first).splitlines():
                self.out("   " + line)
            for block in message.blocks:
                for element in block.get("elements", []) if block.get("type") == "actions" else []:
                    if element.get("type") == "button":
                        self.buttons.append((message, element))
            if len(self.buttons) >= first:
                self.out("   (type `click N` to press button [N])")

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return True
            time.sleep(0.2)
        return False

    def ready_count(self) -> int:
        return sum(1 for m in self.slack.messages() if m.thread_ts is None and "is ready for" in m.text)


def run_sandbox(*, demo: bool, user: str) -> int:
    print("notebook-bot sandbox: the real app, an embedded store, simulated Slack and Workbench.")
    print(f"You are {user} in #{CHANNEL}. Type `/notebook help`, `/notebook new tf-2-8 gpu=l4`, `click N`, `quit`.")
    with Sandbox(user) as sandbox:
        if demo:
            for line, ready in DEMO:
                print(f"\n> {line}")
                sandbox.run(line)
                if not sandbox.wait_until(lambda n=ready: sandbox.ready_count() >= n, 60):
                    print(f"\nThe demo expected {ready} ready notebook(s) by now; something is wrong.")
                    return 1
                time.sleep(1.0)
            return 0
        while True:
            try:
                line = input("\n> ")
            except (EOFError, KeyboardInterrupt):
                return 0
            if line.strip() in ("quit", "exit"):
                return 0
            sandbox.run(line)
            time.sleep(0.5)
