"""Builds the bot's parts from Settings, each on first use.

Google clients are slow to import and construct (about a second); building them lazily keeps
a cold start's first acknowledgement to Slack inside its 3 seconds.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from functools import cached_property

from bot.adapters.notify import Slack, web_client
from bot.adapters.startup import StartupScripts
from bot.adapters.store import Store, open_store
from bot.adapters.workbench import Workbench, WorkbenchError
from bot.domain.approvals import Approvals
from bot.domain.buckets import BucketChecker, Storage
from bot.domain.launches import Launcher
from bot.domain.lifecycle import Lifecycle
from bot.domain.notebooks import Notebooks
from bot.domain.policy import GroupMembers, Rules
from bot.run.config import DEFAULT_ZONE, Config, Settings, load_config
from bot.ui.listing import home_view

log = logging.getLogger(__name__)


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
        return Workbench(
            self.settings.project or "local-project", service_account=self.settings.notebook_service_account
        )

    @cached_property
    def slack(self) -> Slack:
        return Slack(web_client(self.settings.slack_bot_token))

    @cached_property
    def rules(self) -> Rules:
        return Rules(self.config.access, self.config.policy, self.user_groups, catalog=self.config.catalog)

    @cached_property
    def user_groups(self) -> GroupMembers:
        """Members of the Slack user groups (S…) named as admins or approvers, kept for 5 minutes."""

        def fetch(group: str) -> list[str]:
            return list(self.slack.client.usergroups_users_list(usergroup=group)["users"])

        return GroupMembers(fetch, clock=self.clock, ttl=300.0)

    @cached_property
    def zone(self) -> str:
        return self.settings.zone or self.config.policy.zone or DEFAULT_ZONE

    @cached_property
    def launcher(self) -> Launcher:
        zone = self.zone
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
            on_finished=lambda launch: self.publish_homes({launch.requester}),
            prepare_metadata=StartupScripts(self.storage, self.settings.scripts_bucket, self.config.catalog).metadata,
            check_buckets=BucketChecker(self.storage, self.settings.scripts_bucket),
        )

    @cached_property
    def storage(self) -> Storage:
        """Cloud Storage (bucket checks, mount scripts); its client is built on first use."""
        return Storage(self.settings.project)

    @cached_property
    def approvals(self) -> Approvals:
        return Approvals(self.launcher)

    @cached_property
    def notebooks(self) -> Notebooks:
        notebooks = Notebooks(
            store=self.store,
            workbench=self.workbench,
            slack=self.slack,
            catalog=self.config.catalog,
            rules=self.rules,
            default_zone=self.zone,
            clock=self.clock,
            poll_seconds=self.settings.poll_seconds,
        )
        notebooks.on_change = self.publish_homes
        return notebooks

    def home(self, user: str) -> dict:
        """The App Home view for `user`: their notebooks, their requests, and decisions they owe."""
        return home_view(
            user,
            self.notebooks.owned_by(user),
            self.launcher.pending_of(user),
            self.approvals.pending_for(user),
            self.config.catalog,
            self.clock(),
        )

    def publish_homes(self, users: set[str]) -> None:
        for user in users:
            try:
                self.slack.client.views_publish(user_id=user, view=self.home(user))
            except Exception:  # a stale Home tab is not worth failing the action that changed it
                log.exception("could not refresh the App Home", extra={"user": user})

    @cached_property
    def lifecycle(self) -> Lifecycle:
        return Lifecycle(
            store=self.store,
            notebooks=self.notebooks,
            slack=self.slack,
            catalog=self.config.catalog,
            rules=self.rules,
            reminders=self.config.reminders,
            clock=self.clock,
        )

    def reconcile(self) -> dict[str, int]:
        """One pass of everything periodic; what /tasks/reconcile and the worker thread run."""
        counts: dict[str, int] = {}
        stages: dict[str, Callable[[], int]] = {
            "launches": self.launcher.reconcile,
            "operations": self.notebooks.reconcile,
            "unmanaged": lambda: len(self.notebooks.sync()),
            "reminders": lambda: swept.reminders if (swept := self.lifecycle.sweep_if_due()) else 0,
        }
        for name, stage in stages.items():  # each stage on its own: one failing must not stop the others
            try:
                counts[name] = stage()
            except WorkbenchError as exc:
                log.warning("%s: Workbench trouble, trying again next pass: %s", name, exc)
            except Exception:
                log.exception("%s: failed this pass", name)
        return counts
