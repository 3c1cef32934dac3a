"""CPU and GPU utilization of notebook VMs from Cloud Monitoring, one query per metric per read.

`Utilization.read(zones)` asks for each metric once for all the given zones (a `one_of` on
resource.labels.zone), not once per notebook, and answers per instance name:
- CPU: `compute.googleapis.com/instance/cpu/utilization`, a fraction 0..1, reported by Compute
  Engine for every running VM; its series carry metric label instance_name and resource label
  instance_id.
- GPU: `agent.googleapis.com/gpu/utilization`, in percent 0..100, reported by the Ops Agent's
  NVML receiver (one series per GPU, labels gpu_number, model, uuid) and only where the agent
  runs. It has no instance_name label, so its series are grouped by resource.labels.instance_id
  (the busiest GPU of each VM, REDUCE_MAX) and named through the CPU series of the same VM.
Figures are normalised to fractions 0..1. Where Monitoring has nothing for an instance the
figure is None: "not measured" is never reported as 0 %.

Each series is read as means over `alignment` windows (5 min by default) across `window` (4 h):
48 points per VM, so 1,000 VMs fit in one page (in FULL view a page holds up to 100,000 points).
"max" is the highest of those window means, not the highest raw sample.

google-cloud-monitoring has no REST transport (only grpc and grpc_asyncio), so the client speaks
gRPC. MONITORING_EMULATOR_HOST=host:port makes it talk plain-text gRPC to that host with no
credentials, the counterpart of NOTEBOOKS_EMULATOR_HOST. The client is built on first use.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from bot.adapters.lazy import Lazy

CPU_METRIC = "compute.googleapis.com/instance/cpu/utilization"
GPU_METRIC = "agent.googleapis.com/gpu/utilization"
MAX_NAMES_IN_FILTER = 50  # beyond this, filter names here rather than in a long one_of(...) (assumed safe)


@dataclass
class MonitoringError(Exception):
    """A failed Monitoring call, explained for people (and logs)."""

    kind: str  # permission, invalid, not_found, unavailable, unknown
    message: str
    retriable: bool = False

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Point:
    start: datetime  # the alignment window this mean covers: (start, end]
    end: datetime
    value: float  # fraction 0..1


@dataclass(frozen=True)
class Figure:
    """One metric of one VM over the read's window, from its aligned points."""

    mean: float  # of the window means, 0..1
    max: float  # highest window mean, 0..1
    last: float  # the newest window mean
    points: tuple[Point, ...]  # oldest first
    idle_below: float  # the threshold the runs below were judged by
    # Where the newest run of idle (<= idle_below) or busy points began; None when not in that run.
    # A run that fills the window starts at the window's start: it may have begun earlier.
    idle_since: datetime | None
    busy_since: datetime | None

    @property
    def latest(self) -> datetime:
        return self.points[-1].end

    @property
    def idle(self) -> bool:
        return self.idle_since is not None

    @property
    def measured(self) -> timedelta:
        return sum((p.end - p.start for p in self.points), timedelta())


@dataclass(frozen=True)
class InstanceUtilization:
    name: str
    zone: str
    instance_id: str | None  # Compute Engine's numeric id, when Monitoring named it
    cpu: Figure | None
    gpu: Figure | None  # None: no GPU, or no Ops Agent reporting it


@dataclass(frozen=True)
class Reading:
    """What one read saw: per instance name, over [start, end]."""

    start: datetime
    end: datetime
    instances: dict[str, InstanceUtilization]
    calls: int  # ListTimeSeries pages fetched

    def get(self, name: str) -> InstanceUtilization | None:
        return self.instances.get(name)


class Utilization:
    def __init__(
        self,
        project: str,
        *,
        emulator_host: str | None = None,
        window: timedelta = timedelta(hours=4),
        alignment: timedelta = timedelta(minutes=5),
        cpu_idle_below: float = 0.05,
        gpu_idle_below: float = 0.05,
        timeout: float = 30.0,
        retry_deadline: float = 20.0,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        if alignment < timedelta(seconds=60) or window < alignment:
            raise ValueError("alignment must be at least 60 s and no longer than the window")
        self.project = project
        self.window, self.alignment = window, alignment
        self.cpu_idle_below, self.gpu_idle_below = cpu_idle_below, gpu_idle_below
        self.timeout, self.retry_deadline = timeout, retry_deadline
        self.clock = clock
        self._emulator_host = emulator_host if emulator_host is not None else os.environ.get("MONITORING_EMULATOR_HOST")
        self._client: Lazy[Any] = Lazy(self._build)

    def _build(self) -> Any:
        from google.cloud import monitoring_v3

        if not self._emulator_host:
            return monitoring_v3.MetricServiceClient()
        import grpc
        from google.cloud.monitoring_v3.services.metric_service.transports import MetricServiceGrpcTransport

        # No TLS and no credentials, and never through a proxy a CI machine may have configured.
        options = [("grpc.enable_http_proxy", 0), ("grpc.max_receive_message_length", -1)]  # as the transport's own
        channel = grpc.insecure_channel(self._emulator_host, options=options)
        return monitoring_v3.MetricServiceClient(transport=MetricServiceGrpcTransport(channel=channel))

    @property
    def client(self) -> Any:
        return self._client.get()

    # --- reading ------------------------------------------------------------------------------------
    def read(
        self, zones: Iterable[str], *, names: Collection[str] | None = None, now: datetime | None = None
    ) -> Reading:
        """Utilization of the VMs in `zones` (only `names`, when given) over the last `window`.

        Two ListTimeSeries queries (CPU, GPU) whatever the number of VMs, plus pages beyond the first.
        Instances in `names` that Monitoring knows nothing about are answered with both figures None.
        """
        zones = sorted(set(zones))
        end = (now or self.clock()).astimezone(UTC).replace(microsecond=0)
        start = end - self.window
        if not zones:
            return Reading(start, end, {}, 0)
        where = _equals("resource.labels.zone", zones)
        wanted = set(names) if names is not None else None
        cpu_filter = f'metric.type = "{CPU_METRIC}" AND resource.type = "gce_instance" AND {where}'
        if wanted is not None and 0 < len(wanted) <= MAX_NAMES_IN_FILTER:
            cpu_filter += f" AND {_equals('metric.labels.instance_name', sorted(wanted))}"
        gpu_filter = f'metric.type = "{GPU_METRIC}" AND resource.type = "gce_instance" AND {where}'
        calls = 0
        if wanted == set():
            cpu_series: list[Any] = []
            gpu_series: list[Any] = []
        else:
            cpu_series, pages = self._list(cpu_filter, start, end, reduce_by=None)
            calls += pages
            gpu_series, pages = self._list(gpu_filter, start, end, reduce_by=["resource.labels.instance_id"])
            calls += pages

        found: dict[str, InstanceUtilization] = {}
        name_of: dict[str, str] = {}
        zone_of: dict[str, str] = {}
        for series in cpu_series:
            name = series.metric.labels.get("instance_name", "")
            iid = series.resource.labels.get("instance_id", "")
            if not name or (wanted is not None and name not in wanted):
                continue
            name_of[iid], zone_of[iid] = name, series.resource.labels.get("zone", "")
            found[name] = InstanceUtilization(name, zone_of[iid], iid or None, self._figure(series, 1.0, "cpu"), None)
        for series in gpu_series:
            iid = series.resource.labels.get("instance_id", "")
            name = name_of.get(iid)
            if name is None:  # a VM whose CPU series is absent cannot be named; leave it out
                continue
            current = found[name]
            found[name] = InstanceUtilization(name, current.zone, iid, current.cpu, self._figure(series, 0.01, "gpu"))
        for name in sorted(wanted or ()):
            found.setdefault(name, InstanceUtilization(name, "", None, None, None))
        return Reading(start, end, found, calls)

    def _list(
        self, filter_: str, start: datetime, end: datetime, *, reduce_by: list[str] | None
    ) -> tuple[list[Any], int]:
        from google.api_core import retry as retries
        from google.api_core.exceptions import ServiceUnavailable
        from google.cloud import monitoring_v3 as m

        aggregation: dict[str, Any] = {
            "alignment_period": self.alignment,
            "per_series_aligner": m.Aggregation.Aligner.ALIGN_MEAN,
        }
        if reduce_by:
            aggregation["cross_series_reducer"] = m.Aggregation.Reducer.REDUCE_MAX
            aggregation["group_by_fields"] = [*reduce_by, "resource.labels.zone"]
        request = {
            "name": f"projects/{self.project}",
            "filter": filter_,
            "interval": {"start_time": start, "end_time": end},
            "aggregation": aggregation,
            "view": m.ListTimeSeriesRequest.TimeSeriesView.FULL,
        }
        retry = retries.Retry(
            initial=0.2, maximum=5.0, multiplier=2.0, deadline=self.retry_deadline,
            predicate=retries.if_exception_type(ServiceUnavailable),
        )  # fmt: skip
        with translated():
            pager = self.client.list_time_series(request=request, retry=retry, timeout=self.timeout)
            pages = list(pager.pages)
        return [s for page in pages for s in page.time_series], len(pages)

    def _figure(self, series: Any, scale: float, kind: str) -> Figure | None:
        threshold = self.cpu_idle_below if kind == "cpu" else self.gpu_idle_below
        raw = type(series).pb(series).points  # the protobuf underneath: proto-plus wrappers cost 10× more
        ends = sorted((p.interval.end_time.seconds, p.value.double_value) for p in raw)
        points = tuple(
            Point(end - self.alignment, end, min(1.0, max(0.0, value * scale)))
            for end, value in ((datetime.fromtimestamp(s, UTC), v) for s, v in ends)
        )
        return figure(points, threshold) if points else None

    def close(self) -> None:
        """Close the channel (tests and benchmarks; a long-running bot keeps it)."""
        if self._client.built:
            self.client.transport.close()


def figure(points: tuple[Point, ...], idle_below: float) -> Figure:
    """Summarise aligned points (oldest first); a missing window ends a run, as nothing was seen."""
    values = [p.value for p in points]
    idle_now = points[-1].value <= idle_below
    run_start = points[-1].start
    for earlier, later in zip(reversed(points[:-1]), reversed(points[1:]), strict=True):
        if (earlier.value <= idle_below) != idle_now or earlier.end != later.start:
            break
        run_start = earlier.start
    return Figure(
        mean=sum(values) / len(values),
        max=max(values),
        last=values[-1],
        points=points,
        idle_below=idle_below,
        idle_since=run_start if idle_now else None,
        busy_since=None if idle_now else run_start,
    )


def _equals(selector: str, values: list[str]) -> str:
    quoted = ", ".join(_quote(v) for v in values)
    return f"{selector} = {_quote(values[0])}" if len(values) == 1 else f"{selector} = one_of({quoted})"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- errors -----------------------------------------------------------------------------------------
def explain(code: str, message: str) -> MonitoringError:
    text = message.strip()
    if code in ("PERMISSION_DENIED", "UNAUTHENTICATED"):
        return MonitoringError(
            "permission",
            f"The bot may not read Cloud Monitoring: {text} Grant its service account roles/monitoring.viewer.",
        )
    if code == "INVALID_ARGUMENT":
        return MonitoringError("invalid", f"Cloud Monitoring refused the query: {text}")
    if code == "NOT_FOUND":
        return MonitoringError("not_found", f"Cloud Monitoring does not know this project: {text}")
    if code in ("UNAVAILABLE", "DEADLINE_EXCEEDED", "RESOURCE_EXHAUSTED", "INTERNAL", "ABORTED"):
        return MonitoringError("unavailable", f"Cloud Monitoring is unavailable right now ({text}).", retriable=True)
    return MonitoringError("unknown", f"Cloud Monitoring said: {text or code}")


class translated:
    """Context manager: google.api_core exceptions become MonitoringError (others pass through)."""

    def __enter__(self) -> None:
        return None

    def __exit__(self, exc_type: Any, exc: BaseException | None, tb: Any) -> bool:
        from google.api_core import exceptions as g

        if exc is None:
            return False
        if isinstance(exc, g.GoogleAPICallError):
            code = exc.grpc_status_code.name if exc.grpc_status_code is not None else "UNKNOWN"
            raise explain(code, exc.message or str(exc)) from None
        if isinstance(exc, g.RetryError):
            raise MonitoringError("unavailable", f"Cloud Monitoring did not answer in time ({exc}).", True) from None
        return False
