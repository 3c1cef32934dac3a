"""The Cloud Monitoring simulator, driven by the real google-cloud-monitoring client over gRPC."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
import pytest
from google.api_core import exceptions as gexc
from google.cloud import monitoring_v3 as m
from google.cloud.monitoring_v3.services.metric_service.transports import MetricServiceGrpcTransport

from bot.sim.monitoring_api import CPU, GPU, MonitoringSimulator

NOW = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)
PROJECT = "projects/test-project"
CPU_IN = f'metric.type = "{CPU}" AND resource.labels.zone = "us-central1-a"'


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock(NOW)


@pytest.fixture
def sim(clock: Clock) -> Iterator[MonitoringSimulator]:
    with MonitoringSimulator(clock=clock) as simulator:
        yield simulator


@pytest.fixture
def client(sim: MonitoringSimulator) -> Iterator[m.MetricServiceClient]:
    channel = grpc.insecure_channel(sim.host, options=[("grpc.enable_http_proxy", 0)])
    yield m.MetricServiceClient(transport=MetricServiceGrpcTransport(channel=channel))
    channel.close()


def query(
    client: m.MetricServiceClient,
    filter_: str,
    *,
    hours: float = 1,
    aligner: Any = m.Aggregation.Aligner.ALIGN_MEAN,
    period: timedelta = timedelta(minutes=10),
    end: datetime = NOW,
    **extra: Any,
) -> list[m.TimeSeries]:
    aggregation: dict[str, Any] = {"per_series_aligner": aligner}
    if aligner != m.Aggregation.Aligner.ALIGN_NONE:
        aggregation["alignment_period"] = period
    aggregation.update(extra.pop("aggregation", {}))
    request = {
        "name": PROJECT,
        "filter": filter_,
        "interval": {"start_time": end - timedelta(hours=hours), "end_time": end},
        "aggregation": aggregation,
        **extra,
    }
    return list(client.list_time_series(request=request, retry=None))


def ramp(at: datetime) -> float:
    """0.0 at NOW - 1 h rising by 0.01 a minute: window means are easy to work out by hand."""
    return round((at - (NOW - timedelta(hours=1))).total_seconds() / 60 * 0.01, 6)


def test_cpu_series_are_aligned_newest_first_with_the_labels_compute_engine_reports(sim, client) -> None:
    iid = sim.add_instance("nb-a", "us-central1-a")
    sim.fill("cpu", "nb-a", ramp, NOW - timedelta(hours=1), NOW)

    [series] = query(client, CPU_IN)

    assert series.metric.type == CPU and dict(series.metric.labels) == {"instance_name": "nb-a"}
    assert series.resource.type == "gce_instance"
    assert dict(series.resource.labels) == {"project_id": "test-project", "instance_id": iid, "zone": "us-central1-a"}
    ends = [p.interval.end_time for p in series.points]
    assert ends == [NOW - timedelta(minutes=10 * k) for k in range(6)]
    # the newest window (15:50, 16:00] holds minutes 51..60 of the ramp: mean of 0.51..0.60
    assert series.points[0].value.double_value == pytest.approx(0.555)
    assert series.points[-1].value.double_value == pytest.approx(0.055)  # minutes 1..10
    assert series.unit == "10^2.%"


def test_align_max_takes_the_highest_sample_of_each_window(sim, client) -> None:
    sim.add_instance("nb-a", "us-central1-a")
    sim.fill("cpu", "nb-a", ramp, NOW - timedelta(hours=1), NOW)

    [series] = query(client, CPU_IN, aligner=m.Aggregation.Aligner.ALIGN_MAX)

    assert [round(p.value.double_value, 6) for p in series.points] == [0.6, 0.5, 0.4, 0.3, 0.2, 0.1]


def test_raw_points_come_back_unaligned_newest_first(sim, client) -> None:
    sim.add_instance("nb-a", "us-central1-a")
    sim.record("cpu", "nb-a", 0.2, NOW - timedelta(minutes=2))
    sim.record("cpu", "nb-a", 0.4, NOW - timedelta(minutes=1))

    [series] = query(client, CPU_IN, aligner=m.Aggregation.Aligner.ALIGN_NONE)

    assert [(p.interval.end_time, p.value.double_value) for p in series.points] == [
        (NOW - timedelta(minutes=1), 0.4),
        (NOW - timedelta(minutes=2), 0.2),
    ]


def test_filters_select_by_zone_instance_name_and_metric(sim, client) -> None:
    for name, zone in (("nb-a", "us-central1-a"), ("nb-b", "us-central1-b"), ("lab-c", "europe-west4-a")):
        sim.add_instance(name, zone)
        sim.record("cpu", name, 0.5, NOW - timedelta(minutes=1))
    sim.record("gpu", "nb-a", 50.0, NOW - timedelta(minutes=1))

    def names(filter_: str) -> list[str]:
        return sorted(s.metric.labels.get("instance_name", s.resource.labels["zone"]) for s in query(client, filter_))

    cpu = f'metric.type = "{CPU}"'
    assert names(cpu) == ["lab-c", "nb-a", "nb-b"]
    assert names(f'{cpu} AND resource.labels.zone = one_of("us-central1-b", "europe-west4-a")') == ["lab-c", "nb-b"]
    assert names(f'{cpu} AND resource.label.zone != "us-central1-a"') == ["lab-c", "nb-b"]
    assert names(f'{cpu} AND metric.labels.instance_name = starts_with("nb-")') == ["nb-a", "nb-b"]
    assert names(f'{cpu} AND metric.label.instance_name = one_of("lab-c")') == ["lab-c"]
    assert names(f'metric.type = "{GPU}" AND resource.type = "gce_instance"') == ["us-central1-a"]


@pytest.mark.parametrize(
    "filter_",
    [
        'resource.labels.zone = "us-central1-a"',  # no metric type
        f'metric.type = "{CPU}" OR metric.type = "{GPU}"',
        f'metric.type = "{CPU}" AND (resource.labels.zone = "a")',
        f'metric.type = "{CPU}" AND metric.labels.instance_name = has_substring("nb")',
        f'metric.type = "{CPU}" AND zone = "us-central1-a"',
    ],
)
def test_a_filter_the_fake_cannot_judge_is_refused(sim, client, filter_: str) -> None:
    with pytest.raises(gexc.InvalidArgument):
        query(client, filter_)


def test_a_cross_series_reducer_groups_the_gpus_of_a_vm(sim, client) -> None:
    iid = sim.add_instance("nb-a", "us-central1-a")
    sim.fill("gpu", "nb-a", 10.0, NOW - timedelta(minutes=50), NOW, gpu_number=0)
    sim.fill("gpu", "nb-a", 90.0, NOW - timedelta(minutes=50), NOW, gpu_number=1)
    gpu = f'metric.type = "{GPU}"'

    per_gpu = query(client, gpu)
    assert sorted(s.metric.labels["gpu_number"] for s in per_gpu) == ["0", "1"]
    assert {s.metric.labels["model"] for s in per_gpu} == {"NVIDIA L4"} and per_gpu[0].unit == "%"

    reducer = {
        "cross_series_reducer": m.Aggregation.Reducer.REDUCE_MAX,
        "group_by_fields": ["resource.labels.instance_id"],
    }
    [busiest] = query(client, gpu, aggregation=reducer)
    assert dict(busiest.resource.labels) == {"instance_id": iid} and dict(busiest.metric.labels) == {}
    assert {p.value.double_value for p in busiest.points} == {90.0}
    [mean] = query(client, gpu, aggregation={**reducer, "cross_series_reducer": m.Aggregation.Reducer.REDUCE_MEAN})
    assert {p.value.double_value for p in mean.points} == {50.0}


def test_full_view_pages_count_points_and_the_pager_follows_them(sim, client) -> None:
    for n in range(5):
        sim.add_instance(f"nb-{n}", "us-central1-a")
        sim.fill("cpu", f"nb-{n}", 0.1 * n, NOW - timedelta(hours=1), NOW)

    found = query(client, CPU_IN, page_size=13)  # 6 points a series: two series a page

    assert sorted(s.metric.labels["instance_name"] for s in found) == [f"nb-{n}" for n in range(5)]
    calls = sim.calls()
    assert len(calls) == 3 and [c.series for c in calls] == [2, 2, 1] and calls[0].page_token == ""
    assert all(c.page_size == 13 and c.aligner == "ALIGN_MEAN" for c in calls)


def test_headers_view_names_the_series_without_points(sim, client) -> None:
    sim.add_instance("nb-a", "us-central1-a")
    sim.fill("cpu", "nb-a", 0.3, NOW - timedelta(hours=1), NOW)

    [series] = query(client, CPU_IN, view=m.ListTimeSeriesRequest.TimeSeriesView.HEADERS)

    assert series.metric.labels["instance_name"] == "nb-a" and len(series.points) == 0


def test_points_after_the_clock_are_not_there_yet(sim, client, clock) -> None:
    sim.add_instance("nb-a", "us-central1-a")
    sim.fill("cpu", "nb-a", 0.7, NOW + timedelta(minutes=1), NOW + timedelta(minutes=30))
    later = NOW + timedelta(minutes=30)

    assert query(client, CPU_IN, end=later) == []
    clock.now = later
    [series] = query(client, CPU_IN, end=later)
    assert [p.interval.end_time for p in series.points] == [later - timedelta(minutes=10 * k) for k in range(3)]
    assert all(p.value.double_value == pytest.approx(0.7) for p in series.points)


def test_an_alignment_period_under_a_minute_is_refused(sim, client) -> None:
    with pytest.raises(gexc.InvalidArgument):
        query(client, CPU_IN, period=timedelta(seconds=30))


@pytest.mark.parametrize(
    "code, exception",
    [
        (grpc.StatusCode.PERMISSION_DENIED, gexc.PermissionDenied),
        (grpc.StatusCode.UNAVAILABLE, gexc.ServiceUnavailable),
        (grpc.StatusCode.RESOURCE_EXHAUSTED, gexc.ResourceExhausted),
    ],
)
def test_injected_errors_reach_the_client_as_their_exception(sim, client, code, exception) -> None:
    sim.fail_next(code, "injected trouble")
    with pytest.raises(exception) as raised:
        query(client, CPU_IN)
    assert "injected trouble" in raised.value.message
    assert query(client, CPU_IN) == [] and sim.count() == 2
