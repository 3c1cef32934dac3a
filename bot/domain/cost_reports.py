"""The figures behind `/notebook costs` and the weekly digest, from the store alone.

Each notebook's Usage comes from its record (the price of its spec, its disks at the catalog's list
price, its history of states: bot/domain/records.py), or from its retired record if it was deleted
through the bot, and from the utilization samples of bot/domain/usage.py. Reads are bounded by the
periods asked for: the records (one query), the notebooks retired in the months the periods touch
(one query) and the samples of the UTC days they cover up to now (one query per 30 days: a month's
report on the 31st is two), whatever the number of periods.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime

from bot.adapters.store import Store
from bot.domain import costs
from bot.domain.catalog import Catalog
from bot.domain.cost_policy import Costs
from bot.domain.costs import CostReport, Interval, Period, Sample, Usage
from bot.domain.records import LAUNCH_PHASES, Notebook, NotebookState, Records
from bot.domain.usage import UsageLog

NOT_IN_CLOUD = LAUNCH_PHASES | {NotebookState.GONE}  # states that cost nothing: no instance, no disk


class CostReports:
    def __init__(
        self,
        store: Store,
        catalog: Catalog,
        settings: Costs,
        clock: Callable[[], float] = time.time,
        *,
        idle_below: float,  # the reminders' threshold: one meaning of "idle" everywhere
    ):
        self.catalog = catalog
        self.settings = settings
        self.clock = clock
        self.idle_below = idle_below
        self.records = Records(store, clock)
        self.usage = UsageLog(store, clock, idle_below)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    def this_week_and_month(self, owner: str | None = None) -> list[CostReport]:
        """`owner`'s notebooks (everyone's with None) this week and this month, in the team's timezone."""
        now, tz = self.now(), self.settings.timezone
        return self.reports([costs.this_week(now, tz), costs.this_month(now, tz)], owner)

    def last_week(self) -> CostReport:
        """The team's last full week (Monday to Monday), what the digest shows."""
        return self.reports([costs.last_week(self.now(), self.settings.timezone)])[0]

    def reports(self, periods: Sequence[Period], owner: str | None = None) -> list[CostReport]:
        start, end = min(p.start for p in periods), max(p.end for p in periods)
        notebooks = self.records.owned_by(owner) if owner else self.records.everyone()
        retired = self.records.retired(costs.months_between(start, end))
        if owner:
            retired = [n for n in retired if n.owner == owner]
        samples = self.usage.samples(start, end)
        usages = [self.usage_of(n, samples.get(n.id, ())) for n in [*notebooks, *retired]]
        return [
            costs.report(
                [u for u in usages if _alive_in(u, period)],
                period,
                tz=self.settings.timezone,
                idle_below=self.idle_below,
            )
            for period in periods
        ]

    def usage_of(self, notebook: Notebook, samples: Sequence[Sample] = ()) -> Usage:
        spec = notebook.spec
        return Usage(
            notebook=notebook.id,
            owner=notebook.owner,
            usd_per_hour=spec.usd_per_hour,
            disk_usd_per_month=self._disk_month(notebook),
            gpu=spec.gpu,
            gpu_count=spec.gpu_count if spec.gpu else 0,
            intervals=intervals(notebook.history),
            samples=tuple(samples),
        )

    def _disk_month(self, notebook: Notebook) -> float:
        spec = notebook.spec
        if spec.disk_type not in self.catalog.disk_types:  # retired from the catalog since: no price to quote
            return 0.0
        return self.catalog.disk_usd_per_month(spec.disk_type, spec.disk_gb + spec.boot_disk_gb)


def intervals(history: Sequence[tuple[str, float]]) -> tuple[Interval, ...]:
    """A record's history as the report's intervals: each state until the next one; launch phases
    and GONE are left out (no instance then, so nothing bills)."""
    found = []
    for (state, at), following in zip(history, [*history[1:], None], strict=True):
        if state in NOT_IN_CLOUD:
            continue
        end = datetime.fromtimestamp(following[1], UTC) if following else None
        found.append(Interval(datetime.fromtimestamp(at, UTC), end, state))
    return tuple(found)


def _alive_in(usage: Usage, period: Period) -> bool:
    return any(i.start < period.end and (i.end is None or i.end > period.start) for i in usage.intervals)
