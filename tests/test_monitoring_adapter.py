"""The Utilization reader against the Monitoring fake, through the real client (gRPC, no credentials)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import grpc
import pytest

from bot.adapters.monitoring import CPU_METRIC, GPU_METRIC, MonitoringError, Utilization
from bot.sim.monitoring_api import MonitoringSimulator

NOW = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
ZONES = ("us-central1-a", "europe-west4-a")


@pytest.fixture
def sim() -> Iterator[MonitoringSimulator]:
    with MonitoringSimulator(clock=lambda: NOW) as simulator:
        yield simulator


@pytest.fixture
def reader(sim: MonitoringSimulator) -> Iterator[Utilization]:
    utilization = Utilization("test-project", emulator_host=sim.host, clock=lambda: NOW)
    yield utilization
    utilization.close()


def test_one_query_per_metric_answers_for_every_vm_in_every_zone(sim, reader) -> None:
    sim.add_instance("trainer", "us-central1-a")
    sim.fill("cpu", "trainer", 0.40, NOW - 4 * HOUR, NOW)
    sim.fill("gpu", "trainer", 85.0, NOW - 4 * HOUR, NOW)
    sim.add_instance("idler", "europe-west4-a")
    sim.fill("cpu", "idler", 0.01, NOW - 4 * HOUR, NOW)
    sim.fill("gpu", "idler", 0.0, NOW - 4 * HOUR, NOW)
    sim.add_instance("cpu-only", "us-central1-a")
    sim.fill("cpu", "cpu-only", 0.20, NOW - 4 * HOUR, NOW)

    reading = reader.read(ZONES)

    assert reading.calls == 2 and sim.count() == 2
    assert {c.filter.split('"')[1] for c in sim.calls()} == {CPU_METRIC, GPU_METRIC}
    assert all('resource.labels.zone = one_of("europe-west4-a", "us-central1-a")' in c.filter for c in sim.calls())
    assert (reading.start, reading.end) == (NOW - 4 * HOUR, NOW)
    assert sorted(reading.instances) == ["cpu-only", "idler", "trainer"]

    trainer = reading.instances["trainer"]
    assert trainer.zone == "us-central1-a"
    assert (
        trainer.cpu is not None and trainer.cpu.mean == pytest.approx(0.40) and trainer.cpu.max == pytest.approx(0.40)
    )
    assert trainer.gpu is not None and trainer.gpu.mean == pytest.approx(0.85)  # percent became a fraction
    assert len(trainer.gpu.points) == 48 and trainer.gpu.measured == 4 * HOUR
    assert trainer.gpu.busy_since == NOW - 4 * HOUR and trainer.gpu.idle_since is None

    idler = reading.instances["idler"]
    assert idler.gpu is not None and idler.gpu.mean == 0.0 and idler.gpu.idle_since == NOW - 4 * HOUR
    assert idler.cpu is not None and idler.cpu.idle

    assert reading.instances["cpu-only"].gpu is None  # no agent, no GPU figure: not 0 %


def test_busy_since_and_idle_since_mark_where_the_newest_run_began(sim, reader) -> None:
    sim.add_instance("nb", "us-central1-a")
    sim.fill("cpu", "nb", 0.3, NOW - 4 * HOUR, NOW)
    sim.fill("gpu", "nb", lambda at: 0.0 if at <= NOW - 90 * timedelta(minutes=1) else 70.0, NOW - 4 * HOUR, NOW)

    gpu = reader.read(["us-central1-a"]).instances["nb"].gpu

    assert gpu is not None and not gpu.idle
    assert gpu.busy_since == NOW - timedelta(minutes=90)
    assert gpu.last == pytest.approx(0.70) and gpu.max == pytest.approx(0.70)
    assert gpu.mean == pytest.approx(0.70 * 90 / 240, abs=0.01)


def test_a_gap_in_the_data_ends_a_run(sim, reader) -> None:
    sim.add_instance("nb", "us-central1-a")
    sim.fill("cpu", "nb", 0.01, NOW - 4 * HOUR, NOW - 2 * HOUR)  # stopped for an hour in between
    sim.fill("cpu", "nb", 0.01, NOW - HOUR + timedelta(minutes=1), NOW)

    cpu = reader.read(["us-central1-a"]).instances["nb"].cpu

    assert cpu is not None and cpu.idle_since == NOW - HOUR
    assert cpu.measured == 3 * HOUR


def test_the_busiest_gpu_speaks_for_the_vm(sim, reader) -> None:
    sim.add_instance("two-gpus", "us-central1-a")
    sim.fill("cpu", "two-gpus", 0.5, NOW - 4 * HOUR, NOW)
    sim.fill("gpu", "two-gpus", 0.0, NOW - 4 * HOUR, NOW, gpu_number=0)
    sim.fill("gpu", "two-gpus", 60.0, NOW - 4 * HOUR, NOW, gpu_number=1)

    gpu = reader.read(["us-central1-a"]).instances["two-gpus"].gpu

    assert gpu is not None and gpu.mean == pytest.approx(0.60) and not gpu.idle
    [gpu_call] = [c for c in sim.calls() if GPU_METRIC in c.filter]
    assert gpu_call.reducer == "REDUCE_MAX" and "resource.labels.instance_id" in gpu_call.group_by


def test_names_narrow_the_query_and_unknown_names_say_there_is_no_figure(sim, reader) -> None:
    for name in ("mine", "theirs"):
        sim.add_instance(name, "us-central1-a")
        sim.fill("cpu", name, 0.5, NOW - HOUR, NOW)

    reading = reader.read(["us-central1-a"], names={"mine", "just-created"})

    assert sorted(reading.instances) == ["just-created", "mine"]
    fresh = reading.instances["just-created"]
    assert fresh.cpu is None and fresh.gpu is None and fresh.instance_id is None
    [cpu_call] = [c for c in sim.calls() if CPU_METRIC in c.filter]
    assert 'metric.labels.instance_name = one_of("just-created", "mine")' in cpu_call.filter


def test_many_names_are_matched_here_rather_than_in_a_long_filter(sim, reader) -> None:
    names = {f"nb-{n:03d}" for n in range(120)}
    for name in sorted(names)[:3]:
        sim.add_instance(name, "us-central1-a")
        sim.fill("cpu", name, 0.5, NOW - HOUR, NOW)
    sim.add_instance("not-ours", "us-central1-a")
    sim.fill("cpu", "not-ours", 0.5, NOW - HOUR, NOW)

    reading = reader.read(["us-central1-a"], names=names)

    assert "not-ours" not in reading.instances and len(reading.instances) == 120
    assert sum(1 for u in reading.instances.values() if u.cpu is not None) == 3
    assert all("instance_name" not in c.filter for c in sim.calls())


def test_no_zones_or_no_names_ask_nothing(sim, reader) -> None:
    assert reader.read([]).instances == {} and reader.read(["us-central1-a"], names=set()).instances == {}
    assert sim.count() == 0


def test_the_emulator_host_comes_from_the_environment(sim, monkeypatch) -> None:
    sim.add_instance("nb", "us-central1-a")
    sim.fill("cpu", "nb", 0.5, NOW - HOUR, NOW)
    monkeypatch.setenv("MONITORING_EMULATOR_HOST", sim.host)

    reader = Utilization("test-project", clock=lambda: NOW)

    assert not reader._client.built  # nothing is built before the first read
    assert reader.read(["us-central1-a"]).instances["nb"].cpu is not None


def test_permission_denied_is_explained(sim, reader) -> None:
    sim.fail_next(grpc.StatusCode.PERMISSION_DENIED, "Permission monitoring.timeSeries.list denied")

    with pytest.raises(MonitoringError) as raised:
        reader.read(["us-central1-a"])

    assert raised.value.kind == "permission" and not raised.value.retriable
    assert "roles/monitoring.viewer" in str(raised.value) and "timeSeries.list denied" in str(raised.value)


def test_a_passing_outage_is_retried_and_a_lasting_one_is_reported(sim) -> None:
    reader = Utilization("test-project", emulator_host=sim.host, clock=lambda: NOW, retry_deadline=1.0)
    sim.fail_next(grpc.StatusCode.UNAVAILABLE, "try again")
    assert reader.read(["us-central1-a"]).calls == 2  # the retried call is not counted as a page
    assert sim.count() == 3

    sim.fail_next(grpc.StatusCode.UNAVAILABLE, "down", times=1000)
    with pytest.raises(MonitoringError) as raised:
        reader.read(["us-central1-a"])
    assert raised.value.kind == "unavailable" and raised.value.retriable


def test_a_refused_query_is_an_invalid_error(sim, reader) -> None:
    sim.fail_next(grpc.StatusCode.INVALID_ARGUMENT, "Field aggregation.alignmentPeriod is invalid")
    with pytest.raises(MonitoringError) as raised:
        reader.read(["us-central1-a"])
    assert raised.value.kind == "invalid" and "alignmentPeriod" in str(raised.value)
