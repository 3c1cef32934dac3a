"""Cost figures from hand-made usage, each total worked out by hand in the comments."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from bot.domain.costs import Interval, Period, Sample, Usage, last_week, report, this_month, this_week


def at(day: int, hour: int, month: int = 11) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


WEEK = Period(at(30, 0), at(2, 0, 12), "this week")  # Mon 30 Nov 00:00 to Wed 2 Dec 00:00 UTC: 48 h

TRAINER = Usage(  # alice's L4 notebook: $0.71/h, disks $15/month
    notebook="trainer",
    owner="U0ALICE",
    usd_per_hour=0.71,
    disk_usd_per_month=15.0,
    gpu="l4",
    gpu_count=1,
    intervals=(
        Interval(at(30, 9), at(30, 17), "ACTIVE"),  # 8 h
        Interval(at(30, 17), at(1, 9, 12), "STOPPED"),
        Interval(at(1, 9, 12), at(1, 13, 12), "ACTIVE"),  # 4 h
        Interval(at(1, 13, 12), None, "STOPPED"),  # still stopped at the period's end
    ),
    samples=(
        Sample(at(30, 9), at(30, 13), gpu=0.80, cpu=0.3),
        Sample(at(30, 13), at(30, 17), gpu=0.0, cpu=0.01),  # idle 4 h
        Sample(at(1, 9, 12), at(1, 11, 12), gpu=0.02),  # idle 2 h (at about 0 %)
        Sample(at(1, 11, 12), at(1, 13, 12), gpu=None, cpu=0.4),  # no GPU figure: unmeasured, not idle
    ),
)
SCRIPT = Usage(  # bob's CPU notebook, running since Sunday night: $0.19/h, disks $10/month
    notebook="script",
    owner="U0BOB",
    usd_per_hour=0.19,
    disk_usd_per_month=10.0,
    intervals=(Interval(at(29, 22), None, "ACTIVE"),),
    samples=(
        Sample(at(29, 20), at(30, 8), cpu=0.01),  # idle; only Mon 00:00-08:00 falls in the period
        Sample(at(30, 8), at(30, 18), cpu=0.5, gpu=0.0),  # a CPU notebook is judged by its CPU
    ),
)
PARKED = Usage(  # alice's notebook stopped all week: only its disks, $20/month
    notebook="parked",
    owner="U0ALICE",
    usd_per_hour=2.48,
    disk_usd_per_month=20.0,
    gpu="v100",
    gpu_count=1,
    intervals=(Interval(at(1, 0), None, "STOPPED"),),  # since 1 Nov: all 48 h of the period
)


def test_a_gpu_notebook_that_ran_twice_and_idled_between() -> None:
    [cost] = report([TRAINER], WEEK).notebooks
    f = cost.figures

    assert f.running_hours == pytest.approx(12)
    assert f.gpu_hours == pytest.approx(12)
    assert f.compute_usd == pytest.approx(12 * 0.71)  # 8.52
    assert f.disk_usd == pytest.approx(39 * 15 / 730)  # alive from Mon 09:00 to the end: 39 h
    assert f.usd == pytest.approx(8.52 + 39 * 15 / 730)
    assert f.idle_hours == pytest.approx(6) and f.idle_usd == pytest.approx(6 * 0.71)
    assert f.measured_hours == pytest.approx(10) and f.unmeasured_hours == pytest.approx(2)
    assert f.idle_share == pytest.approx(0.6)  # 6 of the 10 measured hours
    assert f.stopped_disk_usd_per_month == 15.0


def test_time_outside_the_period_is_left_out_and_cpu_judges_a_cpu_notebook() -> None:
    f = report([SCRIPT], WEEK).notebooks[0].figures

    assert f.running_hours == pytest.approx(48) and f.gpu_hours == 0
    assert f.compute_usd == pytest.approx(48 * 0.19)  # 9.12
    assert f.disk_usd == pytest.approx(48 * 10 / 730)
    assert f.idle_hours == pytest.approx(8) and f.measured_hours == pytest.approx(18)
    assert f.stopped_disk_usd_per_month == 0.0  # running at the end


def test_people_and_the_total_add_up_their_notebooks() -> None:
    r = report([TRAINER, SCRIPT, PARKED], WEEK)

    assert [n.notebook for n in r.notebooks] == ["script", "trainer", "parked"]  # most expensive first
    alice, bob = r.people["U0ALICE"], r.people["U0BOB"]
    assert list(r.people) == ["U0ALICE", "U0BOB"]  # 10.64 against 9.78
    assert alice.notebooks == 2 and bob.notebooks == 1
    assert alice.usd == pytest.approx(8.52 + 39 * 15 / 730 + 48 * 20 / 730)
    assert alice.stopped_disk_usd_per_month == 35.0
    assert alice.running_hours == pytest.approx(12) and alice.idle_hours == pytest.approx(6)
    assert r.total.usd == pytest.approx(alice.usd + bob.usd)
    assert r.total.idle_usd == pytest.approx(6 * 0.71 + 8 * 0.19)
    assert r.total.idle_share == pytest.approx(14 / 28)


def test_days_split_the_same_money_by_calendar_day() -> None:
    r = report([TRAINER, SCRIPT], WEEK)

    days = {(d.day, d.owner): (d.usd, d.idle_usd) for d in r.days}
    assert sorted(days) == [
        (date(2026, 11, 30), "U0ALICE"),
        (date(2026, 11, 30), "U0BOB"),
        (date(2026, 12, 1), "U0ALICE"),
        (date(2026, 12, 1), "U0BOB"),
    ]
    monday = days[date(2026, 11, 30), "U0ALICE"]
    assert monday[0] == pytest.approx(8 * 0.71 + 15 * 15 / 730) and monday[1] == pytest.approx(4 * 0.71)
    tuesday = days[date(2026, 12, 1), "U0ALICE"]
    assert tuesday[0] == pytest.approx(4 * 0.71 + 24 * 15 / 730) and tuesday[1] == pytest.approx(2 * 0.71)
    assert sum(d.usd for d in r.days) == pytest.approx(r.total.usd)
    assert sum(d.idle_usd for d in r.days) == pytest.approx(r.total.idle_usd)


def test_days_follow_the_reports_timezone() -> None:
    r = report([SCRIPT], WEEK, tz="America/New_York")  # UTC-5: Mon 00:00 UTC is Sun 19:00 there

    days = {d.day: d.usd for d in r.days}
    hourly = 0.19 + 10 / 730
    assert days == pytest.approx(
        {date(2026, 11, 29): 5 * hourly, date(2026, 11, 30): 24 * hourly, date(2026, 12, 1): 19 * hourly}
    )


def test_one_persons_view_keeps_only_their_notebooks() -> None:
    mine = report([TRAINER, SCRIPT, PARKED], WEEK).of("U0ALICE")

    assert [n.notebook for n in mine.notebooks] == ["trainer", "parked"] and list(mine.people) == ["U0ALICE"]
    assert mine.total == mine.people["U0ALICE"] and {d.owner for d in mine.days} == {"U0ALICE"}


def test_overlapping_samples_are_not_counted_twice() -> None:
    usage = Usage(
        "nb", "U0ALICE", 1.0, 0.0, gpu="l4", gpu_count=1,
        intervals=(Interval(at(30, 0), at(30, 4), "ACTIVE"),),
        samples=(Sample(at(30, 0), at(30, 3), gpu=0.0), Sample(at(30, 2), at(30, 4), gpu=0.0)),
    )  # fmt: skip

    f = report([usage], WEEK).total
    assert f.idle_hours == pytest.approx(4) and f.measured_hours == pytest.approx(4)


def test_nothing_measured_means_no_idle_share() -> None:
    f = report([PARKED], WEEK).total
    assert f.idle_share is None and f.running_hours == 0 and f.disk_usd == pytest.approx(48 * 20 / 730)


def test_periods_start_at_local_midnight() -> None:
    now = datetime(2026, 12, 1, 3, 0, tzinfo=UTC)  # Tuesday 1 Dec 03:00 UTC, Monday 30 Nov 22:00 in New York
    paris, new_york = "Europe/Paris", "America/New_York"

    assert this_week(now, paris).start == datetime(2026, 11, 30, tzinfo=ZoneInfo(paris))
    assert this_week(now, new_york).start == datetime(2026, 11, 30, tzinfo=ZoneInfo(new_york))
    assert this_month(now, paris).start == datetime(2026, 12, 1, tzinfo=ZoneInfo(paris))
    assert this_month(now, new_york).start == datetime(2026, 11, 1, tzinfo=ZoneInfo(new_york))  # still November
    previous = last_week(now, paris)
    assert (previous.start, previous.end) == (
        datetime(2026, 11, 23, tzinfo=ZoneInfo(paris)),
        datetime(2026, 11, 30, tzinfo=ZoneInfo(paris)),
    )
    assert previous.end - previous.start == timedelta(days=7)
