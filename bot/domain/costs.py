"""What notebooks cost over a period, by person, by notebook and by day: an estimate at list prices.

Pure functions; the figures behind `/notebook costs` and the weekly digest.

Input contract (one `Usage` per notebook, fed from its record):
- `usd_per_hour`: the whole VM's list price while running, GPUs included (the spec's
  `usd_per_hour`, from the catalog). `disk_usd_per_month`: its disks' list price per month;
  disks bill in every state, running or stopped.
- `intervals`: the notebook's life as (start, end, state) with Workbench state names, oldest first,
  not overlapping; `end=None` means "still in this state" and is read as the period's end. Only
  ACTIVE time is running time; time in any interval counts for the disks. Time outside every
  interval (not yet created, deleted) costs nothing.
- `samples`: utilization over spans (start, end) as fractions 0..1, `gpu` and/or `cpu`, None where
  nothing was measured (e.g. one per sweep from bot.adapters.monitoring's aligned points).
  Overlaps are trimmed (a later sample starts where the earlier ended).
- Datetimes are timezone-aware.

Idle time is running time whose sample says the notebook was at about 0 %: GPU at or under
`idle_below` for notebooks with a GPU, CPU for the others. Running time no sample covers is
"unmeasured": it is neither idle nor busy, and idle share is over measured time only.
A month is 730 hours, Google's convention for monthly list prices.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

HOURS_PER_MONTH = 730.0
RUNNING = "ACTIVE"
STOPPED = frozenset({"STOPPED", "SUSPENDED"})
ESTIMATE_NOTE = "estimate at list prices"
Span = tuple[datetime, datetime]


@dataclass(frozen=True)
class Interval:
    start: datetime
    end: datetime | None
    state: str


@dataclass(frozen=True)
class Sample:
    start: datetime
    end: datetime
    gpu: float | None = None
    cpu: float | None = None


@dataclass(frozen=True)
class Usage:
    notebook: str
    owner: str
    usd_per_hour: float
    disk_usd_per_month: float
    gpu: str | None = None
    gpu_count: int = 0
    intervals: tuple[Interval, ...] = ()
    samples: tuple[Sample, ...] = ()


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime
    label: str  # "this week", "this month", ...


@dataclass(frozen=True)
class Figures:
    running_hours: float = 0.0
    gpu_hours: float = 0.0  # running hours × GPUs
    compute_usd: float = 0.0  # running hours × list price
    disk_usd: float = 0.0  # disks over the period, in every state
    idle_hours: float = 0.0
    idle_usd: float = 0.0  # what the idle running hours cost
    measured_hours: float = 0.0  # running hours a sample covers
    stopped_disk_usd_per_month: float = 0.0  # disks of notebooks stopped at the period's end
    notebooks: int = 0

    @property
    def usd(self) -> float:
        return self.compute_usd + self.disk_usd

    @property
    def unmeasured_hours(self) -> float:
        return max(0.0, self.running_hours - self.measured_hours)

    @property
    def idle_share(self) -> float | None:
        """Idle hours over measured running hours; None when nothing was measured."""
        return self.idle_hours / self.measured_hours if self.measured_hours > 0 else None

    def __add__(self, other: Figures) -> Figures:
        return Figures(
            *(getattr(self, f) + getattr(other, f) for f in Figures.__dataclass_fields__)  # type: ignore[arg-type]
        )


@dataclass(frozen=True)
class NotebookCost:
    notebook: str
    owner: str
    gpu: str | None
    figures: Figures


@dataclass(frozen=True)
class Day:
    day: date  # a calendar day in the report's timezone
    owner: str
    usd: float  # compute and disks that day
    idle_usd: float  # the part of `usd` idle running time cost


@dataclass(frozen=True)
class CostReport:
    period: Period
    tz: str
    notebooks: tuple[NotebookCost, ...]  # most expensive first
    people: dict[str, Figures]  # by owner, most expensive first
    total: Figures
    days: tuple[Day, ...] = field(default=())  # by day, then owner

    def of(self, owner: str) -> CostReport:
        """The same report narrowed to one person's notebooks."""
        mine = tuple(n for n in self.notebooks if n.owner == owner)
        people = {owner: self.people[owner]} if owner in self.people else {}
        total = sum((n.figures for n in mine), Figures())
        return replace(
            self, notebooks=mine, people=people, total=total, days=tuple(d for d in self.days if d.owner == owner)
        )


# --- periods ----------------------------------------------------------------------------------------
def this_week(now: datetime, tz: str = "UTC") -> Period:
    local = now.astimezone(ZoneInfo(tz))
    monday = local.date() - timedelta(days=local.weekday())
    return Period(_midnight(monday, tz), now, "this week")


def last_week(now: datetime, tz: str = "UTC") -> Period:
    current = this_week(now, tz)
    monday = current.start.date() - timedelta(days=7)
    return Period(_midnight(monday, tz), current.start, "last week")


def this_month(now: datetime, tz: str = "UTC") -> Period:
    local = now.astimezone(ZoneInfo(tz))
    return Period(_midnight(local.date().replace(day=1), tz), now, "this month")


def month_of(epoch: float) -> str:
    """The UTC month of a moment, as "2026-12": how stored history and samples are picked for a report."""
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m")


def months_between(start: datetime, end: datetime) -> list[str]:
    """The UTC months of [start, end], a day wider each side (a report's days are local days)."""
    day, last = (start - timedelta(days=1)).astimezone(UTC).date(), (end + timedelta(days=1)).astimezone(UTC).date()
    months = [f"{day:%Y-%m}"]
    while (day := (day.replace(day=1) + timedelta(days=32)).replace(day=1)) <= last:
        months.append(f"{day:%Y-%m}")
    return months


def _midnight(day: date, tz: str) -> datetime:
    return datetime.combine(day, time(0), ZoneInfo(tz))


# --- the report -------------------------------------------------------------------------------------
def report(usages: Iterable[Usage], period: Period, *, tz: str = "UTC", idle_below: float = 0.05) -> CostReport:
    """Figures for each notebook, each person and in all over `period`; days in `tz`."""
    windows = _day_windows(period, tz)
    costs: list[NotebookCost] = []
    days: dict[tuple[date, str], list[float]] = {}
    for usage in usages:
        pieces = _pieces(usage, period, idle_below)
        costs.append(NotebookCost(usage.notebook, usage.owner, usage.gpu, _figures(usage, period, pieces)))
        for day, start, end in windows:
            usd, idle = _day_cost(usage, pieces, (start, end))
            if usd > 0:
                entry = days.setdefault((day, usage.owner), [0.0, 0.0])
                entry[0] += usd
                entry[1] += idle
    costs.sort(key=lambda c: (-c.figures.usd, c.notebook))
    people: dict[str, Figures] = {}
    for cost in costs:
        people[cost.owner] = people.get(cost.owner, Figures()) + cost.figures
    people = dict(sorted(people.items(), key=lambda kv: (-kv[1].usd, kv[0])))
    return CostReport(
        period=period,
        tz=tz,
        notebooks=tuple(costs),
        people=people,
        total=sum((c.figures for c in costs), Figures()),
        days=tuple(Day(day, owner, usd, idle) for (day, owner), (usd, idle) in sorted(days.items())),
    )


@dataclass(frozen=True)
class _Pieces:
    alive: list[Span]  # in any interval: the disks bill
    running: list[Span]
    measured: list[Span]  # running and covered by a sample with the relevant figure
    idle: list[Span]  # measured and at about 0 %


def _pieces(usage: Usage, period: Period, idle_below: float) -> _Pieces:
    alive, running = [], []
    for interval in usage.intervals:
        span = _clip((interval.start, interval.end or period.end), (period.start, period.end))
        if span:
            alive.append(span)
            if interval.state == RUNNING:
                running.append(span)
    measured, idle = [], []
    last_end: datetime | None = None
    for sample in sorted(usage.samples, key=lambda s: s.start):
        start = max(sample.start, last_end) if last_end else sample.start
        last_end = max(sample.end, last_end) if last_end else sample.end
        value = sample.gpu if usage.gpu is not None and usage.gpu_count > 0 else sample.cpu
        if value is None or start >= sample.end:
            continue
        for span in running:
            piece = _clip((start, sample.end), span)
            if piece:
                measured.append(piece)
                if value <= idle_below:
                    idle.append(piece)
    return _Pieces(alive, running, measured, idle)


def _figures(usage: Usage, period: Period, pieces: _Pieces) -> Figures:
    running = _hours(pieces.running)
    idle = _hours(pieces.idle)
    at_end = [i for i in usage.intervals if i.start < period.end and (i.end is None or i.end >= period.end)]
    stopped = bool(at_end) and at_end[-1].state in STOPPED
    return Figures(
        running_hours=running,
        gpu_hours=running * usage.gpu_count,
        compute_usd=running * usage.usd_per_hour,
        disk_usd=_hours(pieces.alive) * usage.disk_usd_per_month / HOURS_PER_MONTH,
        idle_hours=idle,
        idle_usd=idle * usage.usd_per_hour,
        measured_hours=_hours(pieces.measured),
        stopped_disk_usd_per_month=usage.disk_usd_per_month if stopped else 0.0,
        notebooks=1,
    )


def _day_cost(usage: Usage, pieces: _Pieces, window: Span) -> tuple[float, float]:
    def within(spans: Sequence[Span]) -> float:
        return _hours([s for s in (_clip(span, window) for span in spans) if s])

    idle_usd = within(pieces.idle) * usage.usd_per_hour
    usd = (
        within(pieces.running) * usage.usd_per_hour + within(pieces.alive) * usage.disk_usd_per_month / HOURS_PER_MONTH
    )
    return usd, idle_usd


def _day_windows(period: Period, tz: str) -> list[tuple[date, datetime, datetime]]:
    zone = ZoneInfo(tz)
    day, last = period.start.astimezone(zone).date(), period.end.astimezone(zone).date()
    windows = []
    while day <= last:
        start, end = _midnight(day, tz), _midnight(day + timedelta(days=1), tz)
        span = _clip((start, end), (period.start, period.end))
        if span:
            windows.append((day, *span))
        day += timedelta(days=1)
    return windows


def _clip(span: Span, bounds: Span) -> Span | None:
    start, end = max(span[0], bounds[0]), min(span[1], bounds[1])
    return (start, end) if start < end else None


def _hours(spans: Iterable[Span]) -> float:
    return sum((end - start).total_seconds() for start, end in spans) / 3600
