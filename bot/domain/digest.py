"""The weekly digest to the admins: last week's costs, by person, by notebook and by day, and a chart.

Sent once a week across all replicas, unless no notebook lived that week. Before the configured
weekday and hour (in the [costs] timezone) a pass costs no store call. From then on the week's
digest document (collection `digests`, keyed by the week's Monday) is created once, and the pass
that holds its lease sends it; each recipient's message goes through the outbox (at most once, a
lost reply recovered) and each chart upload is flagged before it is made (at most once). A replica
that dies mid-way leaves a lease that expires; the next holder skips what the flags say was done.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from bot.adapters.notify import Slack
from bot.adapters.store import Doc, Store
from bot.domain import costs, leases
from bot.domain.cost_policy import Costs
from bot.domain.cost_reports import CostReports
from bot.domain.costs import ESTIMATE_NOTE, CostReport
from bot.domain.outbox import Outbox
from bot.domain.policy import Rules
from bot.ui.chart import cost_chart
from bot.ui.costs_view import digest_message

log = logging.getLogger(__name__)

COLLECTION = "digests"
LEASE_SECONDS = 120.0


class Digest:
    def __init__(
        self,
        *,
        store: Store,
        reports: CostReports,
        slack: Slack,
        rules: Rules,
        settings: Costs,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.store = store
        self.reports = reports
        self.slack = slack
        self.rules = rules
        self.settings = settings
        self.clock = clock
        self.outbox = Outbox(store, slack, clock)
        self.worker = f"digest-{uuid.uuid4().hex[:8]}"
        self._finished: str | None = None  # the week this process saw done: no store call until the next

    def send_if_due(self) -> bool:
        """Send this week's digest if it is due and not sent; True if this call sent it."""
        week = self.due_week()
        if week is None or week == self._finished:
            return False
        now = self.clock()
        current = self.store.get(COLLECTION, week)
        if current is None:
            self.store.create(COLLECTION, week, {"id": week, "open": True, "next_at": 0.0, "created_at": now})
        elif not current.get("open"):
            self._finished = week
            return False
        elif current.get("next_at", 0.0) > now:
            return False  # some recipients failed: they are tried again later
        doc = leases.claim(self.store, COLLECTION, week, self.worker, now, LEASE_SECONDS)
        if doc is None:
            return False  # another pass holds it
        result: Doc = {}
        try:
            result = self._send(week)
        finally:
            leases.release(self.store, COLLECTION, week, self.worker, self.clock(), result)
        if result.get("open") is False:
            self._finished = week
        return result.get("open") is False and not result.get("skipped")

    def due_week(self) -> str | None:
        """The Monday (ISO date) of the week whose digest is due now, or None before its time."""
        if not self.settings.digest:
            return None
        now = datetime.fromtimestamp(self.clock(), UTC)
        monday = costs.this_week(now, self.settings.timezone).start
        when = monday + timedelta(days=self.settings.digest_weekday, hours=self.settings.digest_hour)
        return monday.date().isoformat() if now >= when else None

    def _send(self, week: str) -> Doc:
        report = self.reports.last_week()
        if not report.notebooks:
            return {"open": False, "skipped": "no notebook lived that week"}  # nothing to tell anyone
        text, blocks = digest_message(report)
        chart: bytes | None = None
        failed: list[str] = []
        for channel in self.channels():
            try:
                self.outbox.post(COLLECTION, week, f"message-{channel}", channel, text, blocks)
                if leases.first(self.store, COLLECTION, week, f"chart-{channel}"):
                    chart = chart or cost_chart(report, names=self._names(report))
                    self._upload(channel, chart, report)
            except Exception:
                log.exception("the weekly digest could not reach %s", channel)
                failed.append(channel)
        if failed:
            return {"failed": failed, "next_at": self.clock() + 600.0}  # the others are flagged: only these again
        return {"open": False, "sent_at": self.clock(), "total_usd": round(report.total.usd, 2)}

    def channels(self) -> list[str]:
        """Where the digest goes: the configured channel, or each admin's DM."""
        if self.settings.digest_to == "channel" and self.settings.digest_channel:
            return [self.settings.digest_channel]
        return [self.slack.dm_channel(admin) for admin in self.rules.people(self.rules.access.admins)]

    def _upload(self, channel: str, chart: bytes, report: CostReport) -> None:
        self.slack.upload(
            channel,
            chart,
            filename=f"notebook-costs-{report.period.start:%Y-%m-%d}.png",
            title=f"Notebook cost per person per day, {report.period.label}",
            comment=f"Cost per person per day, idle time hatched ({ESTIMATE_NOTE}).",
            alt_text=f"Bar chart of notebook cost per person per day, {report.period.label}; idle time hatched.",
        )

    def _names(self, report: CostReport) -> dict[str, str]:
        names = {}
        for owner in report.people:
            try:
                names[owner] = self.slack.user(owner).name
            except Exception:  # a name is a nicety: the id will do
                names[owner] = owner
        return names
