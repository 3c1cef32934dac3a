"""Builds the bot's parts from Settings, each on first use.

Google clients are slow to import and construct (about a second); building them lazily keeps
a cold start's first acknowledgement to Slack inside its 3 seconds.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import cached_property

from bot.approvals import Approvals
from bot.config import DEFAULT_ZONE, Config, Settings, load_config
from bot.launches import Launcher
from bot.notify import Slack, web_client
from bot.policy import Rules
from bot.store import Store, open_store
from bot.workbench import Workbench


class Services:
    def __init__(
        self,
        settings: Settings,
        *,
        config: Config | None = None,
        clock: Callable[[], float] = time.time,
        store: Store | None = None,
    ) -> None:
        self.settings = settings
        self.config = config or load_config(settings.config_path)
        self.clock = clock
        if store is not None:
            self.__dict__["store"] = store

    @cached_property
    def store(self) -> Store:
        return open_store(self.settings.store_url, self.settings.project)

    @cached_property
    def workbench(self) -> Workbench:
        return Workbench(self.settings.project or "local-project")

    @cached_property
    def slack(self) -> Slack:
        return Slack(web_client(self.settings.slack_bot_token))

    @cached_property
    def rules(self) -> Rules:
        return Rules(self.config.access, self.config.policy)

    @cached_property
    def launcher(self) -> Launcher:
        zone = self.settings.zone or self.config.policy.zone or DEFAULT_ZONE
        return Launcher(
            store=self.store,
            workbench=self.workbench,
            slack=self.slack,
            catalog=self.config.catalog,
            rules=self.rules,
            bounds=self.config.policy.bounds(zone),
            clock=self.clock,
            poll_seconds=self.settings.poll_seconds,
            on_pending=lambda launch: self.approvals.ask(launch),
        )

    @cached_property
    def approvals(self) -> Approvals:
        return Approvals(self.launcher)

    def reconcile(self) -> dict[str, int]:
        """One pass of everything periodic; what /tasks/reconcile and the worker thread run."""
        return {"launches": self.launcher.reconcile()}
