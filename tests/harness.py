"""The whole bot in one test process: the real Bolt app over HTTP, the real store, the
simulated Slack, Workbench and Cloud Monitoring APIs, and a clock the test moves."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bot.adapters.store import Store
from bot.run.config import Config, Settings, load_config
from bot.run.services import Services
from bot.sim.monitoring_api import MonitoringSimulator
from bot.sim.slack_api import Message, SlackSimulator
from bot.sim.slack_driver import SlackDriver
from bot.sim.workbench_api import WorkbenchSimulator

SECRET = "test-signing-secret"


class Clock:
    def __init__(self, start: float | None = None) -> None:
        self.now = start if start is not None else time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Bot:
    """Start with `with Bot(store, monkeypatch) as bot:`; everything stops on exit."""

    def __init__(
        self,
        store: Store,
        monkeypatch: Any,
        config: Config | None = None,
        scripts_bucket: str | None = None,
        settings: dict[str, Any] | None = None,
        **slack_kwargs: Any,
    ) -> None:
        self.store = store
        self._scripts_bucket = scripts_bucket  # NOTEBOOK_SCRIPTS_BUCKET, for bucket= launches
        self.clock = Clock()
        self.slack = SlackSimulator(**slack_kwargs)
        self.workbench = WorkbenchSimulator(op_polls_until_done=2)
        # sees samples up to the test's clock; a VM reports nothing until the test says so
        self.monitoring = MonitoringSimulator(clock=lambda: datetime.fromtimestamp(self.clock(), UTC))
        self._monkeypatch = monkeypatch
        self._config = config
        self._settings = settings or {}  # further Settings fields, e.g. notebook_service_account

    def __enter__(self) -> Bot:
        from bot.run.server import build_web_app, serve_in_thread

        self._monkeypatch.setenv("SLACK_API_URL", self.slack.start())
        self._monkeypatch.setenv("NOTEBOOKS_EMULATOR_HOST", self.workbench.start())
        self._monkeypatch.setenv("MONITORING_EMULATOR_HOST", self.monitoring.start())
        self.settings = Settings(
            slack_bot_token=self.slack.bot_token,
            slack_signing_secret=SECRET,
            project="test-project",
            scripts_bucket=self._scripts_bucket,
            **self._settings,
        )
        self.services = Services(
            self.settings, config=self._config or load_config(None), clock=self.clock, store=self.store
        )
        self.server, port = serve_in_thread(build_web_app(self.services))
        self.url = f"http://127.0.0.1:{port}"
        self.driver = SlackDriver(f"{self.url}/slack/events", SECRET, self.slack)
        return self

    def __exit__(self, *exc: object) -> None:
        if "kicks" in self.services.__dict__:  # steps a request started finish before the fakes stop
            self.services.kicks.shutdown()
        self.server.shutdown()
        self.server.server_close()
        if self.services.__dict__.get("utilization") is not None:
            self.services.utilization.close()
        self.slack.stop()
        self.workbench.stop()
        self.monitoring.stop()

    # --- helpers ----------------------------------------------------------------------------------
    def reconcile_until(self, predicate: Callable[[], Any], passes: int = 60, step: float = 10.0) -> Any:
        """Run reconcile passes, moving the clock on, until predicate() is truthy.

        The clock moves by less than a lease (30 s) and only while no lease is held: jumping past a
        live lease would let a second worker take over work that is still running, which real time
        never does.
        """
        for _ in range(passes):
            result = predicate()
            if result:
                return result
            self.slack.wait_for(lambda: not self.leased(), timeout=10)
            self.clock.advance(step)
            self.services.reconcile()
        result = predicate()
        assert result, f"not reached after {passes} passes; calls: {self.slack.calls()[-10:]}"
        return result

    def settled(self) -> bool:
        """No worker holds a launch or an operation and none is due now: the steps a request or a
        click started are over (between two of them the lease is briefly free, so `leased` alone
        can't tell)."""
        now = self.clock()
        open_docs = [d for c in ("launches", "operations") for d in self.store.query(c, open=True)]
        return not any(d.get("lease_owner") and d.get("lease_until", 0) > now for d in open_docs) and all(
            d.get("next_at", 0) > now for d in open_docs
        )

    def launch_ready(self, user: str, name: str, options: str = "", *, step: float = 10.0) -> float:
        """`/notebook new name=NAME OPTIONS` as `user`, until the notebook runs and its launch's last
        steps (the link, the ping) are over, so a Slack failure a test sets up next is its own;
        returns the moment the record turned ACTIVE."""
        self.driver.command(user, f"new name={name} {options}")
        self.reconcile_until(
            lambda: (
                (self.store.get("notebooks", name) or {}).get("state") == "ACTIVE"
                and not self.store.query("launches", open=True)
            ),
            step=step,
        )
        return next(h["at"] for h in self.store.get("notebooks", name)["history"] if h["state"] == "ACTIVE")

    def quiet(self) -> None:
        """Every launch and operation is over and no step a request started is still running, so
        what a test measures next is its own doing."""
        self.reconcile_until(
            lambda: not self.store.query("launches", open=True) and not self.store.query("operations", open=True)
        )
        assert self.services.kicks.wait_idle(), "steps a request started are still running"

    def leased(self) -> list[str]:
        """Launches and operations some worker holds right now."""
        held = [d for c in ("launches", "operations") for d in self.store.query(c) if d.get("lease_owner")]
        return [d["id"] for d in held]

    def channel_messages(self, channel: str = "C0GENERAL") -> list[Message]:
        return [m for m in self.slack.messages(channel) if not m.ephemeral]

    def launch_message(self, channel: str = "C0GENERAL") -> Message:
        """The one top-level message in the channel (waiting for it to be posted)."""
        top = self.slack.wait_for(lambda: [m for m in self.channel_messages(channel) if m.thread_ts is None])
        assert len(top) == 1, f"expected one launch message in {channel}, got {[m.text for m in top]}"
        return top[0]

    def wait_for_message(self, predicate: Callable[[Message], bool]) -> Message:
        return self.slack.wait_for(lambda: next((m for m in self.slack.messages() if predicate(m)), None))

    def launches(self) -> list[dict[str, Any]]:
        return self.store.query("launches")


def ephemeral(reply: dict[str, Any], *, user: str, channel: str) -> Message:
    """The message a slash command's acknowledgement showed the user (Slack never gives it a ts)."""
    return Message(
        channel=channel,
        ts="0000000000.000000",
        text=reply.get("text", ""),
        blocks=reply.get("blocks") or [],
        thread_ts=None,
        user=user,
        ephemeral=True,
        updates=0,
    )
