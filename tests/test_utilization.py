"""How a sweep's reading is judged for one notebook (bot/domain/utilization.py): which figure decides, how
long a verdict covers, and the words a reminder uses. Figures come from the Monitoring fake through
the real client, as in a sweep."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.adapters.monitoring import Reading, Utilization
from bot.domain.records import Notebook, NotebookState
from bot.domain.spec import NotebookSpec
from bot.domain.utilization import Verdict, judge
from bot.sim.monitoring_api import MonitoringSimulator

NOW = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
ZONE = "us-central1-a"
SPEC = NotebookSpec(
    environment="base", machine="g2-standard-4", gpu="l4", gpu_count=1, disk_gb=100, boot_disk_gb=150,
    disk_type="balanced", zone=ZONE, idle_seconds=10800, usd_per_hour=0.75, name="nb",
)  # fmt: skip


def notebook(name: str, *, gpu: bool = True, running_for: timedelta = 9 * HOUR) -> Notebook:
    spec = SPEC if gpu else replace(SPEC, machine="e2-standard-4", gpu=None, gpu_count=0, usd_per_hour=0.13)
    started = (NOW - running_for).timestamp()
    return Notebook(
        id=name, zone=ZONE, owner="U0ALICE", state=NotebookState.ACTIVE, spec=spec, created_at=started,
        state_since=started, running_seconds=0.0, url=None, channel=None, launch_id=None, adopted=False,
        stopped_outside=False, snoozed_until=0.0, unanswered=0, unanswered_run=None,
    )  # fmt: skip


@pytest.fixture
def sim() -> Iterator[MonitoringSimulator]:
    with MonitoringSimulator(clock=lambda: NOW) as simulator:
        yield simulator


def read(sim: MonitoringSimulator, *names: str) -> Reading:
    reader = Utilization("test-project", emulator_host=sim.host)
    try:
        return reader.read([ZONE], names=set(names), now=NOW)
    finally:
        reader.close()


def report(sim: MonitoringSimulator, name: str, metric: str, value: float, since: timedelta, until=timedelta()) -> None:
    if name not in sim._instances:
        sim.add_instance(name, ZONE)
    sim.fill(metric, name, value, NOW - since, NOW - until)


def test_an_idle_stretch_is_cut_to_the_current_run(sim) -> None:
    report(sim, "fresh", "gpu", 0.0, 6 * HOUR)  # the VM reported before (an earlier run)
    report(sim, "fresh", "cpu", 0.0, 6 * HOUR)
    nb = notebook("fresh", running_for=90 * timedelta(minutes=1))
    usage = judge(nb, read(sim, "fresh"), busy_above=0.3, run_since=nb.state_since)
    assert usage.verdict == Verdict.IDLE and usage.span == 5400
    assert usage.words(0.75) == "GPU 0 % for the last 1.5 h, ≈$1.12 since."


def test_some_use_is_an_average_and_neither_idle_nor_busy(sim) -> None:
    report(sim, "mixed", "gpu", 60.0, 4 * HOUR, until=3 * HOUR)  # an hour of work, then a little
    report(sim, "mixed", "gpu", 8.0, 3 * HOUR)
    report(sim, "mixed", "cpu", 0.1, 4 * HOUR)
    usage = judge(notebook("mixed"), read(sim, "mixed"), busy_above=0.3, run_since=0.0)
    assert usage.verdict == Verdict.SOME and not usage.busy
    assert usage.words(0.75) == "GPU 21 % on average over the last 4.0 h."  # (12 × 60 + 36 × 8) / 48


def test_a_cpu_notebook_is_judged_by_its_cpu_and_a_gpu_notebook_never_is(sim) -> None:
    report(sim, "cpu-nb", "cpu", 0.8, 4 * HOUR)
    report(sim, "gpu-nb", "cpu", 0.8, 4 * HOUR)  # no Ops Agent: no GPU series
    reading = read(sim, "cpu-nb", "gpu-nb")
    busy = judge(notebook("cpu-nb", gpu=False), reading, busy_above=0.3, run_since=0.0)
    assert busy.verdict == Verdict.BUSY and busy.metric == "CPU" and busy.span == 4 * 3600
    unknown = judge(notebook("gpu-nb"), reading, busy_above=0.3, run_since=0.0)
    assert unknown.verdict == Verdict.UNKNOWN and unknown.words(0.75) == "I have no utilization figures for it."


def test_without_a_reading_nothing_is_known(sim) -> None:
    assert judge(notebook("any"), None, busy_above=0.3, run_since=0.0).verdict == Verdict.UNKNOWN
