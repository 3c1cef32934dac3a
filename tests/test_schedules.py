"""Off-hours schedules with fixed clocks in several timezones, DST days included."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from bot.domain.errors import UserError
from bot.domain.schedules import (
    NotebookSchedule,
    Schedules,
    Subject,
    activity,
    keep_tonight,
    parse_schedule,
    plan,
)

POLICY = Schedules()  # GPU notebooks stop at 20:00 on working days and all weekend; 30 min heads-up
PARIS, NEW_YORK, TOKYO = "Europe/Paris", "America/New_York", "Asia/Tokyo"


def local(tz: str, *args: int) -> datetime:
    return datetime(*args, tzinfo=ZoneInfo(tz))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def gpu_notebook(tz: str = PARIS, since: datetime | None = None, **extra) -> Subject:
    return Subject(tz=tz, gpu=True, running_since=since or local(tz, 2026, 12, 1, 10, 0), **extra)


# Tuesday 1 December 2026; Paris is UTC+1, New York UTC-5, Tokyo UTC+9.
def test_nothing_is_due_before_the_heads_up_and_the_sweep_is_told_when_to_look() -> None:
    p = plan(POLICY, gpu_notebook(), local(PARIS, 2026, 12, 1, 19, 0), "busy")
    assert p.actions == () and p.next_check == utc(2026, 12, 1, 18, 30)  # 19:30 in Paris
    assert p.stop_point == utc(2026, 12, 1, 19, 0)


def test_the_heads_up_goes_out_half_an_hour_before_and_the_stop_follows_it() -> None:
    heads_up = plan(POLICY, gpu_notebook(), local(PARIS, 2026, 12, 1, 19, 30), "idle")
    assert heads_up.actions == ("heads_up",) and heads_up.stop_at == local(PARIS, 2026, 12, 1, 20, 0)

    warned = gpu_notebook(heads_up_for=heads_up.stop_point, heads_up_at=local(PARIS, 2026, 12, 1, 19, 30))
    waiting = plan(POLICY, warned, local(PARIS, 2026, 12, 1, 19, 45), "busy")
    assert waiting.actions == () and waiting.next_check == local(PARIS, 2026, 12, 1, 20, 0)
    assert plan(POLICY, warned, local(PARIS, 2026, 12, 1, 20, 0), "busy").actions == ("stop",)


@pytest.mark.parametrize("seen", ["busy", "unknown"])
def test_busy_or_unmeasured_is_never_stopped_without_a_heads_up(seen) -> None:
    late = local(PARIS, 2026, 12, 1, 20, 10)  # the bot missed 19:30
    p = plan(POLICY, gpu_notebook(), late, seen)
    assert p.actions == ("heads_up",) and p.stop_at == local(PARIS, 2026, 12, 1, 20, 40)


def test_an_idle_notebook_whose_heads_up_was_missed_is_stopped_at_once() -> None:
    p = plan(POLICY, gpu_notebook(), local(PARIS, 2026, 12, 1, 20, 10), "idle")
    assert p.actions == ("stop",)


def test_a_notebook_started_in_off_hours_gets_a_heads_up_not_a_stop() -> None:
    started = local(PARIS, 2026, 12, 1, 21, 0)
    p = plan(POLICY, gpu_notebook(since=started), started + timedelta(minutes=1), "idle")
    assert p.actions == ("heads_up",) and p.stop_at == local(PARIS, 2026, 12, 1, 21, 31)


def test_a_late_heads_up_still_gives_the_full_notice() -> None:
    warned = gpu_notebook(heads_up_for=utc(2026, 12, 1, 19, 0), heads_up_at=local(PARIS, 2026, 12, 1, 19, 50))
    assert plan(POLICY, warned, local(PARIS, 2026, 12, 1, 20, 5), "busy").actions == ()
    assert plan(POLICY, warned, local(PARIS, 2026, 12, 1, 20, 20), "busy").actions == ("stop",)


def test_keep_it_tonight_skips_to_the_next_evening() -> None:
    subject = gpu_notebook()
    now = local(PARIS, 2026, 12, 1, 19, 35)
    kept = keep_tonight(POLICY, subject, now)
    assert kept == local(PARIS, 2026, 12, 2, 9, 0)

    p = plan(POLICY, gpu_notebook(kept_until=kept), local(PARIS, 2026, 12, 1, 20, 30), "idle")
    assert p.actions == () and p.next_check == local(PARIS, 2026, 12, 2, 19, 30)


@pytest.mark.parametrize(
    "tz, heads_up_utc",
    [(PARIS, utc(2026, 12, 1, 18, 30)), (NEW_YORK, utc(2026, 12, 2, 0, 30)), (TOKYO, utc(2026, 12, 1, 10, 30))],
)
def test_the_stop_is_at_eight_in_the_evening_where_the_owner_lives(tz, heads_up_utc) -> None:
    subject = gpu_notebook(tz, since=utc(2026, 12, 1, 0, 0))
    assert plan(POLICY, subject, heads_up_utc - timedelta(minutes=1), "busy").actions == ()
    assert plan(POLICY, subject, heads_up_utc, "busy").actions == ("heads_up",)


def test_weekends_are_off_hours_all_day_after_friday_night() -> None:
    friday_kept = gpu_notebook(kept_until=local(PARIS, 2026, 12, 5, 9, 0))  # kept on Friday 4 Dec
    saturday_morning = plan(POLICY, friday_kept, local(PARIS, 2026, 12, 5, 8, 30), "busy")
    assert saturday_morning.actions == ("heads_up",) and saturday_morning.stop_at == local(PARIS, 2026, 12, 5, 9, 0)

    started = local(PARIS, 2026, 12, 5, 14, 0)  # Saturday afternoon
    p = plan(POLICY, gpu_notebook(since=started), started, "busy")
    assert p.actions == ("heads_up",) and p.stop_at == local(PARIS, 2026, 12, 5, 14, 30)


def test_weekend_keep_leaves_saturday_alone_and_plus_weekends_does_too() -> None:
    saturday = local(PARIS, 2026, 12, 5, 14, 0)
    keep = Schedules(weekend="keep")
    p = plan(keep, gpu_notebook(since=saturday), saturday, "idle")
    assert p.actions == () and p.next_check == local(PARIS, 2026, 12, 7, 19, 30)  # Monday evening

    own = gpu_notebook(since=saturday, schedule=NotebookSchedule(time(20, 0), weekends=True))
    assert plan(POLICY, own, saturday, "idle").actions == ()


def test_a_cpu_notebook_has_no_off_hours_unless_the_policy_sets_them() -> None:
    cpu = Subject(tz=PARIS, gpu=False, running_since=local(PARIS, 2026, 12, 1, 10, 0))
    assert plan(POLICY, cpu, local(PARIS, 2026, 12, 1, 23, 0), "idle").actions == ()
    stricter = Schedules(cpu_stop_at=time(22, 0))
    assert plan(stricter, cpu, local(PARIS, 2026, 12, 1, 23, 0), "idle").actions == ("stop",)


def test_schedule_stops_are_reported_the_next_working_morning_once() -> None:
    friday_stop = Subject(tz=PARIS, gpu=True, running_since=None, stopped_at=local(PARIS, 2026, 12, 4, 20, 0))
    saturday = plan(POLICY, friday_stop, local(PARIS, 2026, 12, 5, 9, 30), "unknown")
    assert saturday.actions == () and saturday.next_check == local(PARIS, 2026, 12, 7, 9, 0)
    assert plan(POLICY, friday_stop, local(PARIS, 2026, 12, 7, 9, 0), "unknown").actions == ("morning_report",)
    reported = Subject(tz=PARIS, gpu=True, running_since=None, stopped_at=friday_stop.stopped_at, reported=True)
    assert plan(POLICY, reported, local(PARIS, 2026, 12, 7, 9, 5), "unknown").actions == ()


# --- DST: Europe moves its clocks on Sundays 29 March and 25 October 2026, New York on 8 March and 1 November.
def test_the_spring_forward_night_is_an_hour_shorter() -> None:
    evenings = Schedules(weekend="evening")
    saturday = Subject(tz=PARIS, gpu=True, running_since=local(PARIS, 2026, 3, 28, 10, 0))
    kept = keep_tonight(evenings, saturday, local(PARIS, 2026, 3, 28, 19, 40))
    assert kept == utc(2026, 3, 29, 7, 0)  # Sunday 09:00 summer time

    sunday = Subject(tz=PARIS, gpu=True, running_since=saturday.running_since, kept_until=kept)
    p = plan(evenings, sunday, utc(2026, 3, 29, 17, 30), "busy")  # 19:30 summer time
    assert p.actions == ("heads_up",) and p.stop_at == utc(2026, 3, 29, 18, 0)
    assert plan(POLICY, saturday, utc(2026, 3, 28, 18, 30), "busy").actions == ("heads_up",)  # 19:30 winter time


def test_the_fall_back_night_is_an_hour_longer_and_the_report_waits_for_monday() -> None:
    evenings = Schedules(weekend="evening")
    sunday = Subject(tz=NEW_YORK, gpu=True, running_since=local(NEW_YORK, 2026, 11, 1, 10, 0))
    assert plan(evenings, sunday, utc(2026, 11, 2, 0, 29), "busy").actions == ()  # 19:29 EST
    assert plan(evenings, sunday, utc(2026, 11, 2, 0, 30), "busy").actions == ("heads_up",)
    saturday_stop = Subject(tz=NEW_YORK, gpu=True, running_since=None, stopped_at=local(NEW_YORK, 2026, 10, 31, 20, 0))
    p = plan(evenings, saturday_stop, utc(2026, 11, 1, 14, 0), "unknown")
    assert p.actions == () and p.next_check == utc(2026, 11, 2, 14, 0)  # Monday 09:00 EST


def test_activity_is_busy_by_any_figure_and_idle_only_by_the_one_that_judges() -> None:
    assert activity(gpu=True, cpu_idle=False, gpu_idle=True) == "busy"  # CPU-bound work on a GPU notebook
    assert activity(gpu=True, cpu_idle=True, gpu_idle=None) == "unknown"  # no GPU figure: not proof of idle
    assert activity(gpu=True, cpu_idle=True, gpu_idle=True) == "idle"
    assert activity(gpu=False, cpu_idle=True, gpu_idle=None) == "idle"
    assert activity(gpu=False, cpu_idle=None, gpu_idle=None) == "unknown"


# --- the policy and a notebook's own schedule ---------------------------------------------------
def test_the_policy_reads_from_toml_values() -> None:
    policy = Schedules.model_validate({"gpu_stop_at": "19:00", "heads_up": "45m", "working_days": [0, 1, 2, 3]})
    assert policy.gpu_stop_at == time(19, 0) and policy.heads_up == 45 * 60 and policy.weekend == "stop"


@pytest.mark.parametrize(
    "values", [{"gpu_stop_at": "08:00"}, {"working_days": []}, {"weekend": "sometimes"}, {"stop_at": "20:00"}]
)
def test_a_policy_that_cannot_work_is_refused(values) -> None:
    with pytest.raises(ValidationError):
        Schedules.model_validate(values)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("default", NotebookSchedule(time(20, 0))),
        ("21:30", NotebookSchedule(time(21, 30))),
        ("18:00+weekends", NotebookSchedule(time(18, 0), weekends=True)),
        ("Default+Weekends", NotebookSchedule(time(20, 0), weekends=True)),
    ],
)
def test_a_notebook_may_choose_its_schedule_within_bounds(text, expected) -> None:
    assert parse_schedule(text, POLICY, gpu=True) == expected


@pytest.mark.parametrize("text", ["off", "08:30", "25:00", "tonight", "21:30+holidays"])
def test_a_schedule_outside_the_bounds_is_refused_with_words(text) -> None:
    with pytest.raises(UserError) as raised:
        parse_schedule(text, Schedules(latest_stop_at=time(23, 0)), gpu=True)
    assert raised.value.field == "schedule"


def test_opting_out_and_weekends_follow_the_policy() -> None:
    assert parse_schedule("off", Schedules(allow_off=True), gpu=True) == NotebookSchedule(None)
    assert parse_schedule("off", POLICY, gpu=False) == NotebookSchedule(None)  # CPU notebooks have no stop anyway
    with pytest.raises(UserError):
        parse_schedule("default+weekends", Schedules(allow_weekends=False), gpu=True)
    with pytest.raises(UserError):
        parse_schedule("23:30", Schedules(latest_stop_at=time(23, 0)), gpu=True)
