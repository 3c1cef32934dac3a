"""`notebook-bot sandbox`: the real bot in a terminal, with no Slack or Google account.

The real Bolt app serves HTTP on loopback with an embedded SQLite store; a simulated Slack Web API,
a simulated Workbench v2 API and a simulated Cloud Monitoring stand in for the cloud (running
notebooks sit idle there: GPUs at 0 %, CPUs at 2 %, so `wait 9h` shows reminders with figures).
What you type goes to the app as Slack would send it (signed slash commands, clicks, menu
choices, form submissions, App Home events), and what the app posts is printed as Slack would show
it (bot/sim/console.py). One store serves the whole session, and a `--state DIR` keeps it, the
simulated cloud and the sandbox's clock for the next run. Logs go to a file named at start, never into the chat.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bot.run.config import ConfigError, Settings, load_config
from bot.run.logs import configure_logging
from bot.run.services import Services
from bot.sim import workspace
from bot.sim.console import Console
from bot.sim.monitoring_api import MonitoringSimulator
from bot.sim.slack_api import SlackSimulator
from bot.sim.slack_driver import SlackDriver
from bot.sim.workbench_api import WorkbenchSimulator

SIGNING_SECRET = "sandbox-signing-secret"
SAMPLE_EVERY = timedelta(minutes=5)
REPORTED = timedelta(hours=4)  # the sweep's default utilization window
IDLE = {"cpu": 0.02, "gpu": 0.0}  # what running notebooks report: CPU as a fraction, GPU in percent
GPU_MACHINES = ("g2-", "a2-", "a3-")  # machine series with built-in GPUs
BUSY_LAUNCH_STATES = ("APPROVED", "CREATING")

# (what the person types, what must show up before the next line)
DEMO: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("/notebook help", ("Examples:",)),
    ("/notebook new tf-2-8 gpu=l4", ("is ready for @alice",)),
    ("/notebook new pytorch gpu=t4x2 disk=500 idle=2h", ("is the `base` image, which ships", "Launch request")),
    ("as bob", ("You are @bob",)),
    ("click Review", ("┌ Review launch",)),
    ("set gpu_count 1", ("Lowered from 2× NVIDIA T4",)),
    ("set reason One T4 to start with; ask again if it is too slow", ("One T4 to start with",)),
    ("submit", ("Approved by @bob", "is ready for @alice")),
    ("as alice", ("You are @alice",)),
    ("home", ("Your notebooks",)),
    ("wait 9h", ("has been running for 9.0 h", "GPU 0 % for the last 4.0 h")),
    ("/notebook list", ("so far",)),
    ('choose "Keep it…" Keep for 24h', ("👍 Keeping",)),
    ("click Stop now", ("⏹ Stopped",)),
    ("/notebook delete tf", ("Delete `tf-2-8-",)),
    ("click Delete", ("🗑 Deleted `tf-2-8-",)),
    ("as carol", ("You are @carol",)),
    ("/notebook list all", ("All notebooks", "old-experiment")),
    ("/notebook adopt old-experiment @bob", ("owned by @bob",)),
)


class SandboxClock:
    """Real time plus however long the person has let pass (`wait 9h`)."""

    def __init__(self, offset: float = 0.0) -> None:
        self.offset = offset

    def __call__(self) -> float:
        return time.time() + self.offset


class Sandbox:
    """The running pieces: simulated Slack and Workbench, the app on loopback, its worker and store."""

    def __init__(
        self, state_dir: Path, *, config_path: str | os.PathLike[str] | None = None, poll_seconds: float = 1.0
    ) -> None:
        self.state_dir = state_dir
        self.poll_seconds = poll_seconds  # the first wait before polling an operation, and the worker's tick
        self.config_path = Path(config_path) if config_path else workspace.config_path()
        self.log_path = state_dir / "sandbox.log"
        self.slack = SlackSimulator(users={p.id: p.profile() for p in workspace.PEOPLE})
        self.workbench = WorkbenchSimulator(op_polls_until_done=3)
        self.clock = SandboxClock()
        self.monitoring = MonitoringSimulator(clock=lambda: datetime.fromtimestamp(self.clock(), UTC))
        self._env: dict[str, str | None] = {}

    # --- starting and stopping --------------------------------------------------------------------
    def __enter__(self) -> Sandbox:
        from bot.run.server import build_web_app, serve_in_thread
        from bot.run.worker import Worker

        self.state_dir.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("a", encoding="utf-8")
        root = logging.getLogger()
        self._logging = (root.handlers[:], root.level)
        configure_logging(stream=self._log)
        self._set_env(
            SLACK_API_URL=self.slack.start(),
            NOTEBOOKS_EMULATOR_HOST=self.workbench.start(),
            MONITORING_EMULATOR_HOST=self.monitoring.start(),
        )
        self._load_state()
        settings = Settings(
            slack_bot_token=self.slack.bot_token,
            slack_signing_secret=SIGNING_SECRET,
            project=workspace.PROJECT,
            store_url=f"sqlite:{self.state_dir / 'store.sqlite3'}",
            poll_seconds=self.poll_seconds,
            config_path=str(self.config_path),
            task_open=True,  # a local playground: POST /tasks/reconcile runs a pass for anyone (logged at start)
        )
        self.services = Services(settings, config=load_config(settings.config_path), clock=self.clock)
        self.server, port = serve_in_thread(build_web_app(self.services))
        self.worker = Worker(self.services.reconcile, interval=self.poll_seconds).start()
        self.driver = SlackDriver(f"http://127.0.0.1:{port}/slack/events", SIGNING_SECRET, self.slack)
        return self

    def __exit__(self, *exc: object) -> None:
        self.worker.stop()
        self.server.shutdown()
        self.server.server_close()
        self._save_state()
        if self.services.__dict__.get("utilization") is not None:
            self.services.utilization.close()  # before its server goes
        self.slack.stop()
        self.workbench.stop()
        self.monitoring.stop()
        for name, value in self._env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        root = logging.getLogger()
        root.handlers[:], level = self._logging
        root.setLevel(level)
        self._log.close()

    def _set_env(self, **values: str) -> None:
        for name, value in values.items():
            self._env[name] = os.environ.get(name)
            os.environ[name] = value

    def _load_state(self) -> None:
        """The simulated cloud and the clock of an earlier run in the same --state directory."""
        saved = self.state_dir / "cloud.json"
        if not saved.exists():
            workspace.furnish(self.workbench)
            return
        state = json.loads(saved.read_text())
        self.workbench.restore(state.get("instances", {}))
        self.clock.offset = state.get("clock_offset", 0.0)

    def _save_state(self) -> None:
        state = {"instances": self.workbench.instances(), "clock_offset": self.clock.offset}
        (self.state_dir / "cloud.json").write_text(json.dumps(state, indent=1))

    # --- what the console asks --------------------------------------------------------------------
    def busy(self) -> bool:
        """Work is under way: a launch being created, a stop/start/delete running, a step holding a lease."""
        store = self.services.store
        launches = store.query("launches", open=True)
        if any(d.get("state") in BUSY_LAUNCH_STATES or d.get("lease_owner") for d in launches):
            return True
        return bool(store.query("operations", open=True))

    def advance(self, seconds: float) -> None:
        """Let `seconds` pass: running notebooks report their (idle) utilization for that time first,
        so a sweep at the new time, the worker's or the console's, finds the figures there."""
        now = datetime.fromtimestamp(self.clock(), UTC)
        until = now + timedelta(seconds=seconds)
        start = max(now, until - REPORTED)
        for name, instance in self.workbench.instances().items():
            if instance.get("state") != "ACTIVE":
                continue
            _, project, _, zone, _, instance_id = name.split("/")
            self.monitoring.add_instance(instance_id, zone, project=project)
            setup = instance.get("gceSetup", {})
            gpu = setup.get("acceleratorConfigs") or setup.get("machineType", "").startswith(GPU_MACHINES)
            for metric in ("cpu", "gpu") if gpu else ("cpu",):
                self.monitoring.fill(metric, instance_id, IDLE[metric], start, until, every=SAMPLE_EVERY)
        self.clock.offset += seconds

    def sweep(self) -> None:
        """A sweep now (reminders, escalation, auto-stop), then a pass for whatever else came due
        (expired requests): after `wait`, rather than whenever the worker's next due sweep is."""
        self.services.lifecycle.sweep()
        self.services.reconcile()


def run_sandbox(
    *,
    demo: bool,
    user: str = "alice",
    state: str | None = None,
    config: str | None = None,
    lines: Iterable[str] | None = None,
    out: Callable[[str], None] = print,
    pause: float | None = None,
    poll_seconds: float = 1.0,
) -> int:
    """The sandbox session: the demo, the given `lines`, or what the person types."""
    if workspace.person(user) is None:
        team = ", ".join(p.name for p in workspace.PEOPLE)
        raise ConfigError(f"--as {user}: there is no such person in the sandbox; its team is {team}")
    state_dir = Path(state) if state else Path(tempfile.mkdtemp(prefix="notebook-bot-sandbox-"))
    config_path = config or os.environ.get("NOTEBOOK_BOT_CONFIG")
    with Sandbox(state_dir, config_path=config_path, poll_seconds=poll_seconds) as sandbox:
        console = Console(sandbox, out=out, user=user)
        console.introduce()
        watcher = threading.Thread(target=console.watch, daemon=True)
        watcher.start()
        try:
            if demo:
                return run_demo(console, pause=0.6 if pause is None and sys.stdout.isatty() else pause or 0.0)
            if lines is not None:
                for line in lines:
                    out(f"\n> {line.rstrip()}")
                    if not console.run(line):
                        break
                return 0
            return interact(console)
        finally:
            console.stop()


def run_demo(console: Console, *, pause: float = 0.0) -> int:
    for line, expected in DEMO:
        console.out(f"\n> {line}")
        mark = console.mark()
        console.run(line)
        missing = console.wait_for_output(expected, since=mark)
        if missing:
            console.out(f"\nThe demo expected {missing!r} after `{line}`; something is wrong (see {console.log_path}).")
            return 1
        time.sleep(pause)
    console.out("\nThat was the demo. Run `notebook-bot sandbox` to try it yourself.")
    return 0


def interact(console: Console) -> int:
    while True:
        try:
            line = input(f"\n{console.prompt()} ")
        except (EOFError, KeyboardInterrupt):
            return 0
        if not console.run(line):
            return 0


def sandbox_lines(stream: Any) -> list[str] | None:
    """Commands piped in (one a line), or None for a terminal or an empty input (then: the demo)."""
    if stream.isatty():
        return None
    lines = [line for line in stream.read().splitlines() if line.strip()]
    return lines or None
