"""Off-hours: the [schedules] policy, a notebook's own `schedule=`, and what is due when (pure).

Off-hours are windows in the owner's timezone, each from a stop point to the next morning:
- a working day: from `stop_at` (GPU notebooks `gpu_stop_at`, others `cpu_stop_at`) to the next
  day's `morning_at`;
- another day, `weekend = "stop"`: the whole day, from its `morning_at` to the next morning (the
  night before belongs to the previous day's window); `"evening"`: as on a working day;
  `"keep"` (or a notebook's `+weekends`): none.
A notebook running in a window is stopped after a heads-up `heads_up` before the stop point (a DM
with "Keep it tonight", which skips that window). Rules, for the lead's sweep:
- A stop always follows a heads-up by at least `heads_up`, except for a notebook that is idle by
  the figures and was already running when the heads-up was due (the bot missed it): that one
  is stopped at once. Busy, or no figure, is never stopped without a heads-up.
- A notebook started inside a window gets the heads-up at once, not a stop.
- A schedule stop is reported the next working morning (`morning_at`), once.
All instants are handled in UTC; local times become instants with zoneinfo, so DST days are
23 or 25 hours long and a stop time that a spring-forward skips falls an hour later.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from bot.domain.errors import UserError, quoted
from bot.domain.policy import Duration
from bot.domain.spec import SCHEDULE

Activity = Literal["busy", "idle", "unknown"]
Action = Literal["heads_up", "stop", "morning_report"]


class Schedules(BaseModel):
    """Off-hours: notebooks still running at the evening stop point are stopped, in each owner's
    Slack timezone, after a DM `heads_up` before with "Keep it tonight" (which skips that evening).
    A notebook busy by its utilization figures, or without figures, is never stopped without that
    heads-up. What was stopped is reported to the owner the next working morning. A notebook may
    choose its own stop with `schedule=` within these bounds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    gpu_stop_at: time | None = Field(
        time(20, 0),
        description='GPU notebooks stop at this local time (HH:MM) on working days; "off": they are not stopped.',
    )
    cpu_stop_at: time | None = Field(
        None,
        description="The same for notebooks without a GPU. Unset: they are not stopped.",
        examples=[time(19, 0)],
        json_schema_extra={"opt_in": True},
    )
    working_days: tuple[int, ...] = Field(
        (0, 1, 2, 3, 4), description="Days with an evening stop; Monday is 0. Reports wait for a working morning."
    )
    weekend: Literal["stop", "evening", "keep"] = Field(
        "stop",
        description='The other days: "stop" keeps notebooks stopped all day, "evening" stops them at the evening '
        'time as on a working day, "keep" leaves them running.',
    )
    heads_up: Duration = Field(30 * 60, gt=0, description="The owner is told this long before a stop.")
    morning_at: time = Field(
        time(9, 0), description="Off-hours end at this local time; schedule stops are reported then."
    )
    latest_stop_at: time = Field(
        time(23, 59), description="A notebook's own `schedule=` may stop it later than the policy, up to this time."
    )
    allow_off: bool = Field(False, description="May a GPU notebook opt out of the evening stop (`schedule=off`)?")
    allow_weekends: bool = Field(True, description="May a notebook run through non-working days (`+weekends`)?")

    @field_validator("gpu_stop_at", "cpu_stop_at", mode="before")
    @classmethod
    def _off(cls, value: Any) -> Any:
        return None if isinstance(value, str) and value.strip().lower() in ("off", "none", "") else value

    @model_validator(mode="after")
    def _consistent(self) -> Schedules:
        if not self.working_days or any(not 0 <= d <= 6 for d in self.working_days):
            raise ValueError("working_days are 0 (Monday) to 6 (Sunday), at least one")
        for name in ("gpu_stop_at", "cpu_stop_at", "latest_stop_at"):
            value = getattr(self, name)
            if value is not None and value <= self.morning_at:
                raise ValueError(f"{name} must be later in the day than morning_at ({self.morning_at:%H:%M})")
        return self

    def default_stop(self, gpu: bool) -> time | None:
        return self.gpu_stop_at if gpu else self.cpu_stop_at


@dataclass(frozen=True)
class NotebookSchedule:
    stop_at: time | None  # None: never stopped by the schedule
    weekends: bool = False  # left running on non-working days

    @property
    def text(self) -> str:
        return ("off" if self.stop_at is None else f"{self.stop_at:%H:%M}") + ("+weekends" if self.weekends else "")


def parse_schedule(text: str, policy: Schedules, *, gpu: bool) -> NotebookSchedule:
    """`schedule=` of a notebook: default, off, HH:MM, each optionally +weekends; checked against policy."""
    raw = text.strip().lower()
    match = SCHEDULE.fullmatch(raw)
    if not match:
        raise UserError(
            f"`{quoted(text)}` is not a schedule; write `default`, `off`, a stop time like `21:30`, "
            "each optionally with `+weekends`.",
            field="schedule",
        )
    default = policy.default_stop(gpu)
    word, weekends = match[1], bool(match[4])
    if word == "default":
        stop_at = default
    elif word == "off":
        if default is not None and gpu and not policy.allow_off:
            raise UserError(
                f"`schedule=off` isn't allowed here: GPU notebooks stop at {default:%H:%M} (your time); choose a "
                f"later stop, up to `schedule={policy.latest_stop_at:%H:%M}`, or ask an admin.",
                field="schedule",
            )
        stop_at = None
    else:
        stop_at = time(int(match[2]), int(match[3]))
        if stop_at <= policy.morning_at:
            raise UserError(
                f"`schedule={stop_at:%H:%M}` is too early: a stop time is in the evening, after "
                f"{policy.morning_at:%H:%M} (when off-hours end).",
                field="schedule",
            )
        if default is not None and stop_at > policy.latest_stop_at:
            raise UserError(
                f"`schedule={stop_at:%H:%M}` is too late: the latest stop allowed here is "
                f"{policy.latest_stop_at:%H:%M}.",
                field="schedule",
            )
    if weekends and not policy.allow_weekends and policy.weekend != "keep":
        raise UserError("Notebooks here stop over the weekend; `+weekends` isn't allowed.", field="schedule")
    return NotebookSchedule(stop_at, weekends)


def effective(policy: Schedules, *, gpu: bool, schedule: NotebookSchedule | None) -> NotebookSchedule:
    return schedule or NotebookSchedule(policy.default_stop(gpu), policy.weekend == "keep")


# --- what is due -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Subject:
    """What the sweep knows about one notebook (from its record and the utilization read)."""

    tz: str  # the owner's IANA timezone (Slack's users.info `tz`)
    gpu: bool
    running_since: datetime | None  # None: not running
    schedule: NotebookSchedule | None = None  # None: the policy's default
    kept_until: datetime | None = None  # "Keep it tonight": no stop point before this
    heads_up_for: datetime | None = None  # the stop point a heads-up was sent for ...
    heads_up_at: datetime | None = None  # ... and when
    stopped_at: datetime | None = None  # when the schedule last stopped it
    reported: bool = False  # that stop has been reported


@dataclass(frozen=True)
class Plan:
    actions: tuple[Action, ...]  # due now, in this order
    stop_point: datetime | None  # the stop point of the window the plan is about (a heads-up records it)
    stop_at: datetime | None  # when the stop is due (after the heads-up)
    next_check: datetime | None  # look again then (None: nothing pending)
    reason: str


@dataclass(frozen=True)
class Window:
    start: datetime  # the stop point
    end: datetime  # the next morning


def activity(*, gpu: bool, cpu_idle: bool | None, gpu_idle: bool | None) -> Activity:
    """Busy if any figure says so; idle only by the figure that judges this kind of notebook."""
    if cpu_idle is False or gpu_idle is False:
        return "busy"
    judge = gpu_idle if gpu else cpu_idle
    return "idle" if judge else "unknown"


def windows(policy: Schedules, subject: Subject, around: datetime, days: int = 8) -> list[Window]:
    """Off-hours windows from `days` before to `days` after `around`, oldest first."""
    tz = ZoneInfo(subject.tz)
    chosen = effective(policy, gpu=subject.gpu, schedule=subject.schedule)
    if chosen.stop_at is None:  # no evening stop for this notebook: no weekend stop either
        return []
    today = around.astimezone(tz).date()
    found = []
    for offset in range(-days, days + 1):
        day = today + timedelta(days=offset)
        start = _stop_point(policy, chosen, day)
        if start is not None:
            found.append(Window(_instant(day, start, tz), _instant(day + timedelta(days=1), policy.morning_at, tz)))
    return found


def _stop_point(policy: Schedules, chosen: NotebookSchedule, day: date) -> time | None:
    if day.weekday() in policy.working_days:
        return chosen.stop_at
    if chosen.weekends or policy.weekend == "keep":
        return None
    return policy.morning_at if policy.weekend == "stop" else chosen.stop_at


def plan(policy: Schedules, subject: Subject, now: datetime, activity: Activity) -> Plan:
    """What is due for this notebook at `now`, and when to look again."""
    now = now.astimezone(UTC)
    actions: list[Action] = []
    report_at = _report_time(policy, subject)
    if report_at is not None and now >= report_at:
        actions.append("morning_report")
        report_at = None
    if subject.running_since is None:
        return Plan(tuple(actions), None, None, report_at, "not running")
    window = pending(policy, subject, now)
    if window is None:
        return Plan(tuple(actions), None, None, report_at, "no off-hours for this notebook")
    stop_point, heads_up = window.start, timedelta(seconds=policy.heads_up)
    if now < stop_point - heads_up:
        return Plan(tuple(actions), stop_point, None, _earliest(stop_point - heads_up, report_at), "before off-hours")
    warned = subject.heads_up_for == stop_point and subject.heads_up_at is not None
    if not warned:
        missed = now >= stop_point and subject.running_since <= stop_point - heads_up
        if missed and activity == "idle":
            actions.append("stop")
            return Plan(tuple(actions), stop_point, now, report_at, "idle in off-hours; the heads-up was missed")
        stop_at = max(stop_point, now + heads_up)
        actions.append("heads_up")
        return Plan(tuple(actions), stop_point, stop_at, _earliest(stop_at, report_at), f"{activity}: heads-up first")
    assert subject.heads_up_at is not None
    stop_at = max(stop_point, subject.heads_up_at.astimezone(UTC) + heads_up)
    if now >= stop_at:
        actions.append("stop")
        return Plan(tuple(actions), stop_point, stop_at, report_at, "off-hours, after the heads-up")
    return Plan(tuple(actions), stop_point, stop_at, _earliest(stop_at, report_at), "heads-up sent, waiting")


def keep_tonight(policy: Schedules, subject: Subject, now: datetime) -> datetime | None:
    """The `kept_until` that skips the window now pending (its morning); None if none is."""
    window = pending(policy, subject, now.astimezone(UTC))
    return window.end if window else None


def pending(policy: Schedules, subject: Subject, now: datetime) -> Window | None:
    """The off-hours window not over at `now` that "Keep it tonight" has not skipped."""
    for window in windows(policy, subject, now):
        if window.end <= now:
            continue
        if subject.kept_until is not None and window.start < subject.kept_until.astimezone(UTC):
            continue
        return window
    return None


def _report_time(policy: Schedules, subject: Subject) -> datetime | None:
    """The first working-day morning after the schedule's last stop, unless it was reported."""
    if subject.stopped_at is None or subject.reported:
        return None
    tz = ZoneInfo(subject.tz)
    stopped = subject.stopped_at.astimezone(UTC)
    day = stopped.astimezone(tz).date()
    for offset in range(0, 15):
        candidate = day + timedelta(days=offset)
        at = _instant(candidate, policy.morning_at, tz)
        if candidate.weekday() in policy.working_days and at > stopped:
            return at
    return None


def _instant(day: date, at: time, tz: ZoneInfo) -> datetime:
    """A local wall time as a UTC instant (PEP 495, fold=0): a time a spring-forward skips lands an
    hour later on the wall clock, a time a fall-back repeats means its first occurrence."""
    return datetime.combine(day, at, tz).astimezone(UTC)


def _earliest(*moments: datetime | None) -> datetime | None:
    present = [m for m in moments if m is not None]
    return min(present) if present else None
