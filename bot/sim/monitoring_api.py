"""A local stand-in for Cloud Monitoring v3's `projects.timeSeries.list`, served over gRPC.

The real client works against it unchanged, over a plain-text channel:

    channel = grpc.insecure_channel(sim.host)
    MetricServiceClient(transport=MetricServiceGrpcTransport(channel=channel))

Why gRPC and not REST: google-cloud-monitoring (2.32, the newest) ships only the `grpc` and
`grpc_asyncio` transports; `MetricServiceClient(transport="rest")` raises KeyError('rest'). The
wire is therefore protobuf, encoded and decoded here with the client library's own message
classes, so field names, int64 and enum encodings cannot drift from what the client sends.

Covered: `google.monitoring.v3.MetricService/ListTimeSeries` with
- filter: `AND` of `SELECTOR = VALUE` / `SELECTOR != VALUE`, VALUE a "string", one_of("a", ...),
  starts_with("a") or ends_with("a"); selectors metric.type, resource.type,
  metric.label(s).KEY, resource.label(s).KEY. Anything else (OR, NOT, parentheses, `:`) is
  refused with INVALID_ARGUMENT, as a filter the fake cannot judge must not pass silently.
- interval (start defaults to end), aggregation (alignment period >= 60 s; ALIGN_NONE/MEAN/MAX/MIN;
  REDUCE_NONE/MEAN/MAX/MIN/SUM with groupByFields), view FULL/HEADERS, pageSize/pageToken.

What it relies on (from the client's proto docs, monitoring_v3/types/metric_service.py):
points come newest first; in FULL view pageSize counts points (default and cap 100,000).
Assumed, not verified against the live service: aligned windows are (end - (k+1)·P, end - k·P]
counted back from the interval's end, an aligned point's interval is the instant at its window's
end, a page holds whole series, and raw points are selected from (start, end]. Times are kept to
the second.

The series it holds are written by the test: CPU utilization as Compute Engine reports it (a
fraction, metric label instance_name) and GPU utilization as the Ops Agent reports it (percent,
metric labels gpu_number, model, uuid; no instance_name). Both on resource gce_instance with
labels project_id, instance_id, zone. Points later than `clock()` are not visible yet.
"""

from __future__ import annotations

import base64
import bisect
import re
import threading
import zlib
from collections.abc import Callable, Iterable
from concurrent import futures
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import grpc
from google.api import metric_pb2
from google.cloud import monitoring_v3 as m

CPU = "compute.googleapis.com/instance/cpu/utilization"
GPU = "agent.googleapis.com/gpu/utilization"
UNITS = {CPU: "10^2.%", GPU: "%"}
METHOD = "ListTimeSeries"
SERVICE = "google.monitoring.v3.MetricService"
MAX_PAGE = 100_000
SERIES, RESPONSE = m.TimeSeries.pb(), m.ListTimeSeriesResponse.pb()  # raw protobuf classes
TOKEN = re.compile(r'\s*(?:(?P<str>"(?:[^"\\]|\\.)*")|(?P<op>!=|=)|(?P<punct>[(),])|(?P<word>[A-Za-z_][\w.\-/]*))')
SELECTOR = re.compile(r"^(metric|resource)\.(?:type|labels?\.([\w\-]+))$")
Aligner = m.Aggregation.Aligner
Reducer = m.Aggregation.Reducer


class FilterError(ValueError):
    pass


@dataclass(frozen=True)
class Call:
    """One ListTimeSeries call as the fake saw it."""

    filter: str
    start: datetime | None
    end: datetime | None
    aligner: str
    reducer: str
    group_by: tuple[str, ...]
    page_size: int
    page_token: str
    view: str
    series: int = 0  # returned in this page
    points: int = 0


@dataclass
class _Series:
    metric_type: str
    metric_labels: dict[str, str]
    resource_labels: dict[str, str]
    times: list[int] = field(default_factory=list)  # epoch seconds, sorted
    values: list[float] = field(default_factory=list)

    def add(self, at: datetime, value: float) -> None:
        second = int(at.timestamp())
        if not self.times or second >= self.times[-1]:
            self.times.append(second)
            self.values.append(value)
            return
        i = bisect.bisect_right(self.times, second)
        self.times.insert(i, second)
        self.values.insert(i, value)

    def between(self, start: int, end: int) -> tuple[list[int], list[float]]:
        """Points in (start, end]; the instant `end` when start == end."""
        lo = bisect.bisect_left(self.times, end) if start == end else bisect.bisect_right(self.times, start)
        hi = bisect.bisect_right(self.times, end)
        return self.times[lo:hi], self.values[lo:hi]

    def field(self, selector: str) -> str | None:
        kind, key = _selector(selector)
        if key is None:
            return self.metric_type if kind == "metric" else "gce_instance"
        return (self.metric_labels if kind == "metric" else self.resource_labels).get(key)


@dataclass(frozen=True)
class _Instance:
    name: str
    zone: str
    project: str
    instance_id: str


def _selector(text: str) -> tuple[str, str | None]:
    match = SELECTOR.match(text)
    if not match:
        raise FilterError(f"Unsupported filter selector '{text}'")
    return match[1], match[2]


def _unquote(token: str) -> str:
    return re.sub(r"\\(.)", r"\1", token[1:-1])


def parse_filter(text: str) -> list[tuple[str, bool, Callable[[str | None], bool]]]:
    """The filter as (selector, negated, test) terms joined by AND."""
    tokens: list[tuple[str, str]] = []
    pos, text = 0, text.strip()
    while pos < len(text):
        match = TOKEN.match(text, pos)
        if not match or match.end() == pos:
            raise FilterError(f"Cannot parse the filter near '{text[pos : pos + 20]}'")
        kind = match.lastgroup or ""
        tokens.append((kind, match[kind]))
        pos = match.end()
    terms: list[tuple[str, bool, Callable[[str | None], bool]]] = []
    i = 0
    while i < len(tokens):
        if i and tokens[i] == ("word", "AND"):
            i += 1
        if i + 1 >= len(tokens):
            raise FilterError("Incomplete filter term")
        (k1, selector), (k2, op) = tokens[i], tokens[i + 1]
        if k1 != "word" or k2 != "op":
            raise FilterError(f"Expected 'SELECTOR = VALUE' at '{selector}'")
        _selector(selector)
        i += 2
        if i < len(tokens) and tokens[i][0] == "str":
            wanted = _unquote(tokens[i][1])
            test: Callable[[str | None], bool] = lambda v, w=wanted: v == w  # noqa: E731
            i += 1
        elif i + 1 < len(tokens) and tokens[i][0] == "word" and tokens[i + 1] == ("punct", "("):
            function, i = tokens[i][1], i + 2
            args: list[str] = []
            while i < len(tokens) and tokens[i] != ("punct", ")"):
                if tokens[i][0] == "str":
                    args.append(_unquote(tokens[i][1]))
                elif tokens[i] != ("punct", ","):
                    raise FilterError(f"Unexpected '{tokens[i][1]}' in {function}(...)")
                i += 1
            if i >= len(tokens) or not args:
                raise FilterError(f"Unterminated or empty {function}(...)")
            i += 1
            test = _function(function, args)
        else:
            raise FilterError(f"Expected a quoted value or a function after '{selector} {op}'")
        terms.append((selector, op == "!=", test))
        if i < len(tokens) and tokens[i] != ("word", "AND"):
            raise FilterError(f"Only AND joins terms here, not '{tokens[i][1]}'")
    if not any(s == "metric.type" and not neg for s, neg, _ in terms):
        raise FilterError('The filter must specify a single metric type (metric.type = "...")')
    return terms


def _function(name: str, args: list[str]) -> Callable[[str | None], bool]:
    if name == "one_of":
        allowed = set(args)
        return lambda v: v in allowed
    if name in ("starts_with", "ends_with") and len(args) == 1:
        prefix = args[0]
        if name == "starts_with":
            return lambda v: v is not None and v.startswith(prefix)
        return lambda v: v is not None and v.endswith(prefix)
    raise FilterError(f"Unsupported filter function {name}(...)")


class MonitoringSimulator:
    def __init__(self, *, clock: Callable[[], datetime] | None = None) -> None:
        self.clock = clock or (lambda: datetime.now(UTC))
        self.host = ""
        self._lock = threading.RLock()
        self._instances: dict[str, _Instance] = {}  # by instance name
        self._series: dict[tuple[str, str, tuple[tuple[str, str], ...]], _Series] = {}
        self._calls: list[Call] = []
        self._fail: list[tuple[grpc.StatusCode, str]] = []
        self._server: grpc.Server | None = None

    # --- lifecycle ---------------------------------------------------------------------------------
    def start(self, port: int = 0) -> str:
        handler = grpc.method_handlers_generic_handler(
            SERVICE,
            {
                METHOD: grpc.unary_unary_rpc_method_handler(
                    self._serve,
                    request_deserializer=m.ListTimeSeriesRequest.deserialize,
                    response_serializer=lambda answer: answer.SerializeToString(),
                )
            },
        )
        self._server = grpc.server(futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="monitoring-sim"))
        self._server.add_generic_rpc_handlers((handler,))
        bound = self._server.add_insecure_port(f"127.0.0.1:{port}")
        self._server.start()
        self.host = f"127.0.0.1:{bound}"
        return self.host

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop(grace=None).wait()
            self._server = None

    def __enter__(self) -> MonitoringSimulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what the test writes ------------------------------------------------------------------------
    def add_instance(
        self, name: str, zone: str, *, project: str = "test-project", instance_id: str | None = None
    ) -> str:
        """Register a VM (its numeric id is derived from the name unless given); returns the id."""
        with self._lock:
            iid = instance_id or str(10**18 + zlib.crc32(f"{project}/{zone}/{name}".encode()) * 1009)
            self._instances[name] = _Instance(name, zone, project, iid)
            return iid

    def record(self, metric: str, name: str, value: float, at: datetime | None = None, *, gpu_number: int = 0) -> None:
        """One sample: CPU as a fraction (0..1), GPU in percent (0..100), as the sources report them."""
        with self._lock:
            self._series_for(metric, name, gpu_number).add((at or self.clock()).astimezone(UTC), float(value))

    def fill(
        self,
        metric: str,
        name: str,
        value: float | Callable[[datetime], float],
        start: datetime,
        end: datetime,
        *,
        every: timedelta = timedelta(minutes=1),
        gpu_number: int = 0,
    ) -> int:
        """Samples at start, start + every, ... up to end (inclusive); `value` may depend on the time."""
        count, at = 0, start
        with self._lock:
            series = self._series_for(metric, name, gpu_number)
            while at <= end:
                series.add(at.astimezone(UTC), float(value(at) if callable(value) else value))
                at, count = at + every, count + 1
        return count

    def _series_for(self, metric: str, name: str, gpu_number: int) -> _Series:
        metric_type = {"cpu": CPU, "gpu": GPU}.get(metric, metric)
        vm = self._instances.get(name)
        if vm is None:
            raise KeyError(f"add_instance({name!r}, zone) first")
        if metric_type == CPU:
            labels = {"instance_name": vm.name}
        else:
            uuid = f"GPU-{zlib.crc32(f'{vm.instance_id}/{gpu_number}'.encode()):08x}-0000-0000-0000-000000000000"
            labels = {"gpu_number": str(gpu_number), "model": "NVIDIA L4", "uuid": uuid}
        key = (metric_type, vm.instance_id, tuple(sorted(labels.items())))
        if key not in self._series:
            resource = {"project_id": vm.project, "instance_id": vm.instance_id, "zone": vm.zone}
            self._series[key] = _Series(metric_type, labels, resource)
        return self._series[key]

    # --- inspection and error injection ------------------------------------------------------------
    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def count(self) -> int:
        with self._lock:
            return len(self._calls)

    def reset_calls(self) -> None:
        with self._lock:
            self._calls.clear()

    def fail_next(self, code: grpc.StatusCode, message: str, *, times: int = 1) -> None:
        with self._lock:
            self._fail.extend([(code, message)] * times)

    # --- request handling ----------------------------------------------------------------------------
    def _serve(self, request: m.ListTimeSeriesRequest, context: grpc.ServicerContext) -> Any:
        try:
            return self.list_time_series(request)
        except FilterError as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
        except _Abort as e:
            context.abort(e.code, e.message)
        raise AssertionError("unreachable")  # context.abort raises

    def list_time_series(self, request: m.ListTimeSeriesRequest) -> Any:
        """The answer as the raw protobuf ListTimeSeriesResponse (cheaper to build than proto-plus)."""
        agg = request.aggregation
        aligner, reducer = Aligner(agg.per_series_aligner), Reducer(agg.cross_series_reducer)
        end = request.interval.end_time
        start = request.interval.start_time or end
        view = m.ListTimeSeriesRequest.TimeSeriesView(request.view)
        call = Call(
            request.filter, start, end, aligner.name, reducer.name, tuple(agg.group_by_fields),
            request.page_size, request.page_token, view.name,
        )  # fmt: skip
        with self._lock:
            self._calls.append(call)
            index = len(self._calls) - 1
            if self._fail:
                raise _Abort(*self._fail.pop(0))
            found = self._query(request, aligner, reducer, start, end)
        page, token = self._page(found, request.page_size, request.page_token, view)
        with self._lock:
            self._calls[index] = Call(
                **{**call.__dict__, "series": len(page), "points": sum(len(s.points) for s in page)}
            )
        answer = RESPONSE(next_page_token=token)
        answer.time_series.extend(page)
        units = {s.unit for s in page}
        if len(units) == 1:
            answer.unit = units.pop()
        return answer

    def _query(
        self,
        request: m.ListTimeSeriesRequest,
        aligner: Aligner,
        reducer: Reducer,
        start: datetime | None,
        end: datetime | None,
    ) -> list[Any]:
        match = re.fullmatch(r"projects/([^/]+)", request.name)
        if not match:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"Invalid resource name '{request.name}'")
        if end is None or start is None or start > end:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "interval.endTime is required and not before startTime")
        terms = parse_filter(request.filter)
        period = request.aggregation.alignment_period
        seconds = period.total_seconds() if period else 0.0
        if aligner != Aligner.ALIGN_NONE and seconds < 60:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "The alignment period must be at least 60 seconds")
        if aligner not in (Aligner.ALIGN_NONE, Aligner.ALIGN_MEAN, Aligner.ALIGN_MAX, Aligner.ALIGN_MIN):
            raise _Abort(grpc.StatusCode.UNIMPLEMENTED, f"The simulator does not implement {aligner.name}")
        if reducer != Reducer.REDUCE_NONE and aligner == Aligner.ALIGN_NONE:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "A cross-series reducer needs a per-series aligner")
        if reducer not in (Reducer.REDUCE_NONE, *REDUCERS):
            raise _Abort(grpc.StatusCode.UNIMPLEMENTED, f"The simulator does not implement {reducer.name}")
        group_by = list(request.aggregation.group_by_fields)
        for selector in group_by:
            try:
                _selector(selector)
            except FilterError as e:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, str(e)) from None
        seen_until = max(start, min(end, self.clock()))  # nothing has been written about the future yet
        start_s, end_s, seen_s = (int(t.timestamp()) for t in (start, end, seen_until))
        project = match[1]
        chosen = [
            s
            for _, s in sorted(self._series.items())
            if s.resource_labels["project_id"] == project and all(test(s.field(sel)) != neg for sel, neg, test in terms)
        ]
        aligned = [(s, self._align(s, start_s, end_s, seen_s, aligner, int(seconds))) for s in chosen]
        aligned = [(s, pts) for s, pts in aligned if pts]
        if reducer == Reducer.REDUCE_NONE:
            return [_time_series(s.metric_type, s.metric_labels, s.resource_labels, pts) for s, pts in aligned]
        return self._reduce(aligned, reducer, group_by)

    @staticmethod
    def _align(
        series: _Series, start: int, end: int, seen_until: int, aligner: Aligner, period: int
    ) -> list[tuple[int, float]]:
        """Windows count back from `end` (the query's), points are those written up to `seen_until`."""
        times, values = series.between(start, seen_until)
        if aligner == Aligner.ALIGN_NONE:
            return list(zip(reversed(times), reversed(values), strict=True))
        buckets: dict[int, list[float]] = {}
        for at, value in zip(times, values, strict=True):
            buckets.setdefault((end - at) // period, []).append(value)
        combine = {Aligner.ALIGN_MEAN: lambda v: sum(v) / len(v), Aligner.ALIGN_MAX: max, Aligner.ALIGN_MIN: min}
        return [(end - k * period, combine[aligner](buckets[k])) for k in sorted(buckets)]

    @staticmethod
    def _reduce(
        aligned: list[tuple[_Series, list[tuple[int, float]]]], reducer: Reducer, group_by: list[str]
    ) -> list[Any]:
        groups: dict[tuple[str | None, ...], list[tuple[_Series, list[tuple[int, float]]]]] = {}
        for series, points in aligned:
            groups.setdefault(tuple(series.field(g) for g in group_by), []).append((series, points))
        answer = []
        for key, members in sorted(groups.items(), key=lambda kv: [str(v) for v in kv[0]]):
            first = members[0][0]
            metric_labels, resource_labels = {}, {}
            for selector, value in zip(group_by, key, strict=True):
                kind, label = _selector(selector)
                if label is not None and value is not None:
                    (metric_labels if kind == "metric" else resource_labels)[label] = value
            by_time: dict[int, list[float]] = {}
            for _, points in members:
                for at, value in points:
                    by_time.setdefault(at, []).append(value)
            points = [(at, REDUCERS[reducer](by_time[at])) for at in sorted(by_time, reverse=True)]
            answer.append(_time_series(first.metric_type, metric_labels, resource_labels, points))
        return answer

    @staticmethod
    def _page(
        found: list[Any], page_size: int, token: str, view: m.ListTimeSeriesRequest.TimeSeriesView
    ) -> tuple[list[Any], str]:
        try:
            offset = int(base64.urlsafe_b64decode(token).decode()) if token else 0
        except ValueError:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "Invalid page token") from None
        limit = min(page_size, MAX_PAGE) if page_size > 0 else MAX_PAGE
        page: list[Any] = []
        used, i = 0, offset
        while i < len(found):
            cost = 1 if view == m.ListTimeSeriesRequest.TimeSeriesView.HEADERS else len(found[i].points)
            if page and used + cost > limit:
                break
            page.append(found[i])
            used, i = used + cost, i + 1
        if view == m.ListTimeSeriesRequest.TimeSeriesView.HEADERS:
            for series in page:
                del series.points[:]
        more = base64.urlsafe_b64encode(str(i).encode()).decode() if i < len(found) else ""
        return page, more


REDUCERS: dict[Any, Callable[[list[float]], float]] = {
    Reducer.REDUCE_MEAN: lambda v: sum(v) / len(v),
    Reducer.REDUCE_MAX: max,
    Reducer.REDUCE_MIN: min,
    Reducer.REDUCE_SUM: sum,
}


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


def _time_series(
    metric_type: str,
    metric_labels: dict[str, str],
    resource_labels: dict[str, str],
    points: Iterable[tuple[int, float]],
) -> Any:
    """A raw protobuf TimeSeries; `points` are (epoch seconds, value), newest first."""
    series = SERIES(unit=UNITS.get(metric_type, ""))
    series.metric.type = metric_type
    series.metric.labels.update(metric_labels)
    series.resource.type = "gce_instance"
    series.resource.labels.update(resource_labels)
    series.metric_kind = metric_pb2.MetricDescriptor.MetricKind.GAUGE
    series.value_type = metric_pb2.MetricDescriptor.ValueType.DOUBLE
    for at, value in points:
        point = series.points.add()
        point.interval.start_time.seconds = point.interval.end_time.seconds = at
        point.value.double_value = value
    return series


def main(argv: list[str] | None = None) -> None:
    import argparse

    parser = argparse.ArgumentParser(description="Run the simulated Cloud Monitoring API in the foreground.")
    parser.add_argument("--port", type=int, default=8090)
    args = parser.parse_args(argv)
    sim = MonitoringSimulator()
    host = sim.start(args.port)
    print(f"Cloud Monitoring simulator (gRPC) on {host} — set MONITORING_EMULATOR_HOST={host}. Ctrl-C stops it.")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        sim.stop()


if __name__ == "__main__":
    main()
