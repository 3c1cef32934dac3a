"""Monitoring calls and time per utilization sweep over 1,000 notebooks, against floors measured in the same run.

1,000 VMs in three zones report CPU every minute for the last 4 hours; a third also report GPU
through the Ops Agent. Everything goes through the real google-cloud-monitoring client (gRPC) to
the local Monitoring fake; calls are counted by the fake. Printed, each labelled:
- the sweep: Utilization.read over all zones at once (one query per metric), and one read per zone;
- floor 1: the same number of round trips with empty answers (the client's and the wire's fixed cost);
- floor 2: the fake computing the same answers in-process, without wire or client (its own share);
- naive: one query per notebook (CPU for each, GPU for each GPU notebook), the way to avoid.

    python benchmarks/monitoring_sweep.py [--notebooks 1000] [--repeat 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from google.cloud import monitoring_v3 as m

from bot.adapters.monitoring import CPU_METRIC, GPU_METRIC, Utilization
from bot.sim.monitoring_api import MonitoringSimulator

ZONES = ("us-central1-a", "us-central1-b", "europe-west4-a")
NOW = datetime(2026, 12, 1, 16, 0, tzinfo=UTC)
PROJECT = "bench-project"


def populate(sim: MonitoringSimulator, count: int) -> int:
    gpus = 0
    for n in range(count):
        name, zone = f"nb-{n:04d}", ZONES[n % len(ZONES)]
        sim.add_instance(name, zone, project=PROJECT)
        sim.fill("cpu", name, (n % 10) / 10, NOW - timedelta(hours=4), NOW)
        if n % 3 == 0:
            sim.fill("gpu", name, 0.0 if n % 2 else 80.0, NOW - timedelta(hours=4), NOW)
            gpus += 1
    return gpus


def timed(run: Callable[[], object], sim: MonitoringSimulator, repeat: int) -> tuple[int, float]:
    """(calls of one run, median seconds over `repeat` runs)."""
    seconds = []
    calls = 0
    for _ in range(repeat):
        sim.reset_calls()
        started = time.perf_counter()
        run()
        seconds.append(time.perf_counter() - started)
        calls = sim.count()
    return calls, statistics.median(seconds)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    with MonitoringSimulator(clock=lambda: NOW) as sim:
        gpus = populate(sim, args.notebooks)
        reader = Utilization(PROJECT, emulator_host=sim.host, clock=lambda: NOW)
        reading = reader.read(ZONES)  # warm up: builds the client and the channel
        assert len(reading.instances) == args.notebooks, len(reading.instances)
        assert sum(1 for u in reading.instances.values() if u.gpu is not None) == gpus
        client = reader.client
        start, end = NOW - reader.window, NOW

        def request(filter_: str) -> dict:
            aggregation = {"alignment_period": reader.alignment, "per_series_aligner": m.Aggregation.Aligner.ALIGN_MEAN}
            interval = {"start_time": start, "end_time": end}
            return {"name": f"projects/{PROJECT}", "filter": filter_, "interval": interval, "aggregation": aggregation}

        def empty_round_trips() -> None:
            for _ in range(2):
                list(client.list_time_series(request=request('metric.type = "bench/nothing"')))

        def in_process() -> None:
            zones = ", ".join(f'"{z}"' for z in ZONES)
            for metric in (CPU_METRIC, GPU_METRIC):
                sim.list_time_series(
                    m.ListTimeSeriesRequest(
                        request(f'metric.type = "{metric}" AND resource.labels.zone = one_of({zones})')
                    )
                )

        def naive() -> None:
            for name, seen in reading.instances.items():
                list(
                    client.list_time_series(
                        request=request(f'metric.type = "{CPU_METRIC}" AND metric.labels.instance_name = "{name}"')
                    )
                )
                if seen.gpu is not None:
                    gpu = f'metric.type = "{GPU_METRIC}" AND resource.labels.instance_id = "{seen.instance_id}"'
                    list(client.list_time_series(request=request(gpu)))

        runs: list[tuple[str, Callable[[], object], int]] = [
            ("sweep: Utilization.read, all zones in one query per metric", lambda: reader.read(ZONES), args.repeat),
            ("sweep: Utilization.read once per zone", lambda: [reader.read([z]) for z in ZONES], args.repeat),
            ("floor 1: the same 2 round trips, empty answers", empty_round_trips, args.repeat),
            ("floor 2: the fake computing the sweep's answers in-process", in_process, args.repeat),
            ("naive: one query per notebook (CPU, and GPU where reported)", naive, 1),
        ]
        rows = [(label, timed(run, sim, repeat)) for label, run, repeat in runs]
        reader.close()

    points = 4 * 60 // int(reader.alignment.total_seconds() // 60)
    print(
        f"Monitoring sweep over {args.notebooks} notebooks in {len(ZONES)} zones ({gpus} reporting GPU); "
        f"window {reader.window}, {points} aligned points per series; median of {args.repeat} runs (naive: 1)"
    )
    width = max(len(label) for label, _ in rows)
    for label, (calls, seconds) in rows:
        print(f"  {label:<{width}}  {calls:>5} calls  {seconds * 1000:>9.1f} ms")


if __name__ == "__main__":
    main()
