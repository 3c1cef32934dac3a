"""Monitoring calls and time per lifecycle sweep over 1,000 notebooks, through the real sweep, against
the per-notebook baseline in the same run.

The 1,000 notebooks of benchmarks/sweep_1000.py (three zones, a third with an L4, a fifth stopped,
from fresh to well past the reminder thresholds) live in the store and the Workbench simulator; every
running one reports CPU every minute for the last 4 hours to the Cloud Monitoring fake, and the GPU
notebooks report GPU too (half at 0 %, half at 80 %). `Services.lifecycle.sweep()` runs on a fixed
clock with MONITORING_EMULATOR_HOST pointing at the fake, through the real google-cloud-monitoring
client (gRPC). Each variant re-seeds the store and gets a fresh Services (clients warmed first):
- without Monitoring: the sweep as it was (clock rule only), the floor of what a sweep costs;
- one read per sweep: what the bot does (Utilization.read over the running notebooks' zones);
- one read per notebook: the baseline to avoid (Utilization.read for each running notebook in turn).
Printed per variant: Monitoring calls (counted by the fake), the sweep's time, the Monitoring read
alone (timed again after the sweep, on the records the sweep left), what the sweep sent.

    python benchmarks/monitoring_sweep.py [--notebooks 1000] [--rounds 1] [--quick] [--store auto|firestore|sqlite]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Collection, Iterable
from datetime import UTC, datetime
from typing import Any

import _common as c
import sweep_1000 as fleet

from bot.adapters.monitoring import Reading, Utilization
from bot.run.config import load_config
from bot.run.services import Services
from bot.sim.monitoring_api import MonitoringSimulator

NOW = datetime.fromtimestamp(fleet.NOW, UTC)
VARIANTS = ("without Monitoring", "one read per sweep", "one read per notebook")


class PerNotebook:
    """The baseline: the same Utilization, asked about one notebook at a time (zone and name)."""

    def __init__(self, inner: Utilization, zones: dict[str, str]) -> None:
        self.inner, self.zones = inner, zones

    def read(self, zones: Iterable[str], *, names: Collection[str] | None = None, now: datetime | None = None):
        readings = [self.inner.read([self.zones[n]], names={n}, now=now) for n in sorted(names or ())]
        first = readings[0] if readings else self.inner.read([], now=now)
        merged = {k: v for r in readings for k, v in r.instances.items()}
        return Reading(first.start, first.end, merged, sum(r.calls for r in readings))


def run_variant(variant: str, services: Services, zones: dict[str, str], sim: MonitoringSimulator) -> dict[str, Any]:
    utilization = services.utilization
    assert utilization is not None, "MONITORING_EMULATOR_HOST is set"
    utilization.read(sorted(set(zones.values())), names={next(iter(zones))}, now=NOW)  # warm: client and channel
    if variant == VARIANTS[0]:
        services.__dict__["utilization"] = None
    elif variant == VARIANTS[2]:
        services.__dict__["utilization"] = PerNotebook(utilization, zones)
    fleet.warm(services)
    sim.reset_calls()
    started = time.perf_counter()
    report = services.lifecycle.sweep()
    seconds = time.perf_counter() - started
    calls = sim.count()
    notebooks = services.notebooks.everyone()
    started = time.perf_counter()
    services.lifecycle._read_utilization(notebooks, fleet.NOW)  # INTERNAL: the read alone
    alone = time.perf_counter() - started
    utilization.close()
    return {"calls": calls, "seconds": seconds, "read": alone if variant != VARIANTS[0] else 0.0, "report": report}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="100 notebooks, 1 round")
    c.add_store_flag(parser)
    args = parser.parse_args()
    count, rounds = max(1, min(args.notebooks, 5000)), max(1, min(args.rounds, 5))
    if args.quick:
        count, rounds = min(count, 100), 1
    results: dict[str, list[dict[str, Any]]] = {v: [] for v in VARIANTS}
    with fleet.simulated_fleet(args.store, count) as cloud:
        backend, workbench, sim, env = cloud.backend, cloud.workbench, cloud.monitoring, cloud.env
        settings, zones = cloud.settings, cloud.running
        inner = backend.open(env)
        c.header(
            f"lifecycle sweep over {count} notebooks ({len(zones)} running) with Cloud Monitoring",
            rounds=rounds,
            store=backend.describe(),
        )
        for n in range(rounds):
            for i, variant in enumerate(c.order(n, VARIANTS)):
                inner = backend.empty(env, inner)
                fleet.seed(inner, workbench, count, settings.project or "", instances=n == 0 and i == 0)
                services = Services(settings, config=load_config(None), clock=lambda: fleet.NOW, store=inner)
                results[variant].append(run_variant(variant, services, zones, sim))
                print(f"  round {n + 1}, {variant}: {results[variant][-1]['seconds']:.2f} s", flush=True)
    print()
    width = max(len(v) for v in VARIANTS)
    header = f"  {'':<{width}}  {'Monitoring calls':>16}  {'sweep time':>10}  {'of it, the read':>15}"
    print(f"{header}  what it sent (first round)")
    for variant in VARIANTS:
        runs = results[variant]
        report = runs[0]["report"]
        sent = f"{report.reminders} reminders, {report.heads_ups} heads-ups, {report.busy} busy left alone"
        seconds = c.median([r["seconds"] for r in runs])
        read = c.median([r["read"] for r in runs])
        print(f"  {variant:<{width}}  {runs[0]['calls']:>16}  {seconds:>8.2f} s  {read:>13.2f} s  {sent}")
    ours, naive = (c.median([r["read"] for r in results[v]]) for v in VARIANTS[1:])
    calls = [results[v][0]["calls"] for v in VARIANTS[1:]]
    print(
        f"\nthe Monitoring read: one per sweep {ours:.2f} s in {calls[0]} calls; one per notebook {naive:.2f} s "
        f"in {calls[1]} calls ({c.ratio(naive, ours):.0f}× the time)"
    )


if __name__ == "__main__":
    main()
