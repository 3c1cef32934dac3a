"""Builds the bot's parts from Settings, each on first use.

Nothing is imported before it is needed either: the config file (pydantic and the catalog), the
domain modules and the Google clients (about a second to import and build) are loaded by the
first request or pass that uses them, so a cold start answers `/notebook help` with none of them
(benchmarks/cold_start.py measures it).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING

from bot.run.settings import DEFAULT_ZONE, Settings

if TYPE_CHECKING:  # the parts themselves are imported where they are built, on first use
    from bot.adapters.monitoring import Utilization
    from bot.adapters.notify import Slack
    from bot.adapters.observer import Observer
    from bot.adapters.store import Store
    from bot.adapters.workbench import InstanceInfo, Workbench
    from bot.domain.approvals import Approvals
    from bot.domain.buckets import Storage
    from bot.domain.cost_reports import CostReports
    from bot.domain.digest import Digest
    from bot.domain.idle_extensions import IdleExtensions
    from bot.domain.launches import Launch, Launcher
    from bot.domain.lifecycle import Lifecycle
    from bot.domain.notebooks import Notebooks
    from bot.domain.operations import Operations
    from bot.domain.policy import GroupMembers, Rules
    from bot.domain.records import Notebook
    from bot.run.config import Config
    from bot.run.kicks import Kicks

log = logging.getLogger(__name__)
# A sweep waits this long at most for Monitoring before going by the clock (it runs in the worker's
# pass, ahead of launches' next steps): seconds per call, and for retrying "unavailable".
MONITORING_TIMEOUT, MONITORING_RETRY_DEADLINE = 15.0, 5.0


@dataclass(frozen=True)
class Listing:
    notebooks: list[Notebook]
    unmanaged: list[InstanceInfo]
    everyone: bool

    @property
    def signature(self) -> tuple:
        """What a person reads in a list, apart from figures that move with the clock (costs, ages)."""
        return (
            tuple((n.id, n.owner, n.state, n.url, n.stopped_outside) for n in self.notebooks),
            tuple(i.instance_id for i in self.unmanaged),
        )


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
        self.clock = clock
        self._listed_at = float("-inf")  # the last look at the cloud for a list (refresh_listing)
        if config is not None:
            self.__dict__["config"] = config
        if store is not None:
            self.__dict__["store"] = store

    @cached_property
    def config(self) -> Config:
        """The config file, checked (ConfigError names the file and line); `check_config` at start-up."""
        from bot.run.config import load_config

        return load_config(self.settings.config_path)

    def check_config(self) -> None:
        """Load the config now, so that a broken one stops the start instead of the first request."""
        _ = self.config

    @cached_property
    def store(self) -> Store:
        from bot.adapters.store import open_store

        return open_store(self.settings.store_url, self.settings.project)

    @cached_property
    def workbench(self) -> Workbench:
        from bot.adapters.workbench import Workbench

        return Workbench(
            self.settings.project or "local-project", service_account=self.settings.notebook_service_account
        )

    @cached_property
    def observer(self) -> Observer:
        """The zones' instance lists, one per zone per reconcile pass, that launches and operations follow."""
        from bot.adapters.observer import Observer

        return Observer(self.workbench, self.clock)

    @cached_property
    def slack(self) -> Slack:
        """The workers' Slack, paced by Slack's tiers at this process's share (settings.replicas)."""
        from bot.adapters.budget import Pacing
        from bot.adapters.notify import Slack, web_client

        token, pacing = self.settings.slack_bot_token, Pacing(self.clock, self.settings.replicas)
        return Slack(
            web_client(token, pacing=pacing), web_client(token, retry_connection_errors=False, pacing=pacing), pacing
        )

    @cached_property
    def rules(self) -> Rules:
        from bot.domain.policy import Rules

        return Rules(self.config.access, self.config.policy, self.user_groups, catalog=self.config.catalog)

    @cached_property
    def user_groups(self) -> GroupMembers:
        """Members of the Slack user groups (S…) named as admins or approvers, kept for 5 minutes."""
        from bot.domain.policy import GroupMembers

        def fetch(group: str) -> list[str]:
            return list(self.slack.client.usergroups_users_list(usergroup=group)["users"])

        return GroupMembers(fetch, clock=self.clock, ttl=300.0)

    @cached_property
    def zone(self) -> str:
        return self.settings.zone or self.config.policy.zone or DEFAULT_ZONE

    @cached_property
    def launcher(self) -> Launcher:
        from bot.adapters.startup import StartupScripts
        from bot.domain.buckets import BucketChecker
        from bot.domain.launches import Launcher
        from bot.ui.launch_views import LaunchViews

        zone = self.zone
        launcher = Launcher(
            store=self.store,
            workbench=self.workbench,
            slack=self.slack,
            catalog=self.config.catalog,
            rules=self.rules,
            bounds=replace(self.config.policy.bounds(zone), schedules=self.config.schedules),
            clock=self.clock,
            poll_seconds=self.settings.poll_seconds,
            prepare_metadata=StartupScripts(self.storage, self.settings.scripts_bucket, self.config.catalog).metadata,
            buckets=BucketChecker(self.storage, self.settings.scripts_bucket),
            messages=LaunchViews(self.config.catalog, self.config.policy.approval_expires_after),
            observer=self.observer,
        )
        launcher.ask_approvers = lambda launch: self.approvals.ask(launch)
        launcher.delete_instance = self._delete_cancelled
        launcher.on_finished = lambda launch: self.publish_homes({launch.requester})
        return launcher

    def _delete_cancelled(self, launch: Launch) -> None:
        """A launch withdrawn while it was being created: delete its instance as a job of its own."""
        op, _ = self.notebooks.request(
            "bot",
            launch.instance_id,
            "delete",
            channel=None,
            message=(launch.message_channel, launch.message_ts) if launch.message_ts else None,
            dedupe_key=f"cancel:{launch.id}",
            as_admin=True,
        )
        self.kick_operation(op["id"])

    @cached_property
    def storage(self) -> Storage:
        """Cloud Storage (bucket checks, mount scripts); its client is built on first use."""
        from bot.domain.buckets import Storage

        return Storage(self.settings.project)

    @cached_property
    def approvals(self) -> Approvals:
        from bot.domain.approvals import Approvals

        return Approvals(self.launcher)

    @cached_property
    def operations(self) -> Operations:
        from bot.domain.operations import Operations

        operations = Operations(
            store=self.store,
            workbench=self.workbench,
            slack=self.slack,
            rules=self.rules,
            clock=self.clock,
            poll_seconds=self.settings.poll_seconds,
            observer=self.observer,
        )
        operations.on_change = self.publish_homes
        return operations

    @cached_property
    def notebooks(self) -> Notebooks:
        from bot.domain.notebooks import Notebooks

        notebooks = Notebooks(
            store=self.store,
            workbench=self.workbench,
            operations=self.operations,
            slack=self.slack,
            catalog=self.config.catalog,
            rules=self.rules,
            default_zone=self.zone,
            clock=self.clock,
        )
        notebooks.on_change = self.publish_homes
        return notebooks

    # --- after the request path has recorded work: the rest runs off the request -----------------
    @cached_property
    def kicks(self) -> Kicks:
        from bot.run.kicks import Kicks

        return Kicks()

    def kick_launch(self, launch_id: str) -> None:
        """Start a just-recorded launch's steps now, in a kick thread, instead of at the next pass."""
        self.kicks.submit(f"launch:{launch_id}", lambda: self.launcher.advance(launch_id))

    def kick_operation(self, op_id: str) -> None:
        self.kicks.submit(f"operation:{op_id}", lambda: self.operations.advance(op_id))

    # --- /notebook list: answered from the store, then checked against the cloud -------------------
    LIST_REFRESH_EVERY = 10.0  # seconds; lists in a burst share one look at the cloud per process

    def listing(self, user: str, *, everyone: bool) -> Listing:
        """What the store knows of `user`'s (or everyone's) notebooks: store reads only."""
        notebooks = self.notebooks.everyone() if everyone else self.notebooks.owned_by(user)
        unmanaged = self.notebooks.unmanaged() if everyone else []
        return Listing(notebooks, unmanaged, everyone)

    def render(self, listing: Listing) -> tuple[str, list]:
        from bot.ui.listing import notebook_list

        return notebook_list(
            listing.notebooks, self.config.catalog, self.clock(), everyone=listing.everyone, unmanaged=listing.unmanaged
        )

    def refresh_listing(self, user: str, shown: Listing, answer: Callable[[str, list], None]) -> None:
        """In a kick thread: look at the cloud (at most once per LIST_REFRESH_EVERY in this process,
        with no shared write to wait on) and answer again only if that changes what `user` saw."""

        def refresh() -> None:
            now = self.clock()
            if now - self._listed_at < self.LIST_REFRESH_EVERY:
                return  # a look this recent already made the store what the person was shown
            self._listed_at = now
            self.notebooks.sync(force=True)
            fresh = self.listing(user, everyone=shown.everyone)
            if fresh.signature != shown.signature:
                answer(*self.render(fresh))

        self.kicks.submit(f"list:{user}:{shown.everyone}", refresh)

    def home(self, user: str) -> dict:
        """The App Home view for `user`: their notebooks, their requests, and decisions they owe."""
        from bot.ui.listing import home_view

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
    def utilization(self) -> Utilization | None:
        """Cloud Monitoring, for the sweep's one utilization read: MONITORING_EMULATOR_HOST (plain-text
        gRPC), else the project's. None without either: reminders then go by the clock alone. Its
        client is built on the first read."""
        from bot.adapters.monitoring import Utilization

        host = os.environ.get("MONITORING_EMULATOR_HOST") or None
        if not host and not self.settings.project:
            return None
        reminders = self.config.reminders
        return Utilization(
            self.settings.project or "local-project",
            emulator_host=host,
            window=timedelta(seconds=reminders.utilization_window),
            cpu_idle_below=reminders.idle_below,
            gpu_idle_below=reminders.idle_below,
            timeout=MONITORING_TIMEOUT,
            retry_deadline=MONITORING_RETRY_DEADLINE,
        )

    @cached_property
    def lifecycle(self) -> Lifecycle:
        from bot.domain.lifecycle import Lifecycle

        return Lifecycle(
            store=self.store,
            notebooks=self.notebooks,
            slack=self.slack,
            catalog=self.config.catalog,
            rules=self.rules,
            reminders=self.config.reminders,
            schedules=self.config.schedules,
            clock=self.clock,
            utilization=self.utilization,
            usage=self.cost_reports.usage,  # each sweep's reading, kept for the cost reports
        )

    @cached_property
    def cost_reports(self) -> CostReports:
        from bot.domain.cost_reports import CostReports

        return CostReports(
            self.store, self.config.catalog, self.config.costs, self.clock, idle_below=self.config.reminders.idle_below
        )

    @cached_property
    def digest(self) -> Digest:
        from bot.domain.digest import Digest

        return Digest(
            store=self.store,
            reports=self.cost_reports,
            slack=self.slack,
            rules=self.rules,
            settings=self.config.costs,
            clock=self.clock,
        )

    @cached_property
    def idle_extensions(self) -> IdleExtensions:
        """A heads-up's "Extend idle timeout" click, carried out as a leased job."""
        from bot.domain.idle_extensions import IdleExtensions

        return IdleExtensions(
            store=self.store,
            workbench=self.workbench,
            slack=self.slack,
            notebooks=self.notebooks,
            offered=self.lifecycle.extended_timeout,
            clock=self.clock,
            poll_seconds=self.settings.poll_seconds,
        )

    def kick_idle_extension(self, key: str) -> None:
        self.kicks.submit(f"idle-extension:{key}", lambda: self.idle_extensions.advance(key))

    def reconcile(self) -> dict[str, int]:
        """One pass of everything periodic; what /tasks/reconcile and the worker thread run."""
        from bot.adapters.workbench import WorkbenchError

        counts: dict[str, int] = {}
        self.observer.new_tick()
        stages: dict[str, Callable[[], int]] = {
            "launches": self.launcher.reconcile,
            "operations": self.operations.reconcile,
            "idle extensions": self.idle_extensions.reconcile,
            "reminders": lambda: swept.reminders if (swept := self.lifecycle.sweep_if_due()) else 0,
            "unmanaged": lambda: len(self.notebooks.sync_if_due() or ()),  # not again after a sweep's sync
            "digest": lambda: int(self.digest.send_if_due()),
        }
        for name, stage in stages.items():  # each stage on its own: one failing must not stop the others
            try:
                counts[name] = stage()
            except WorkbenchError as exc:
                log.warning("%s: Workbench trouble, trying again next pass: %s", name, exc)
            except Exception:
                log.exception("%s: failed this pass", name)
        return counts
