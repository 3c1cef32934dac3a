"""A lifecycle sweep over 1,000 notebooks on the Firestore emulator, against an honest floor.

1,000 managed notebooks across three zones (running with and without GPUs, stopped, from fresh to
well past the reminder thresholds, owners in four timezones, all in working hours) live in the
Workbench simulator and in the store: the Firestore emulator (default; `--store sqlite` for the
embedded store). Every running one reports CPU (and the GPU ones GPU) for the last 4 hours to the
Cloud Monitoring fake (bot/sim/monitoring_api.py, gRPC, MONITORING_EMULATOR_HOST), which the sweep
reads as in production. `Services.lifecycle.sweep()` runs on a fixed clock (a Monday, 14:00 UTC).

The floor, measured in the same run with the same Services on the same warm connections, is what
any sweep must do at least to send the same messages: one Workbench list per zone (3), one store
query of the notebooks, the same Monitoring read (Utilization.read: two ListTimeSeries calls), the
same Slack messages the sweep sent (its chat.postMessage calls replayed: same channels, texts and
blocks), and one batched write of what was said (the records of the notebooks it spoke about, in
one put_many per 500). Each round re-seeds the store (and builds a fresh Services, warmed with one
call to each service, so no in-process cache carries over); rounds alternate which goes first.

Printed: time, store calls by kind (get/query/update/create/put/delete), documents read and written,
Workbench, Monitoring and Slack calls, and the ratio sweep / floor. Goal (issue 11): ≤ 2× the floor.

    python benchmarks/sweep_1000.py [--notebooks 1000] [--rounds 3] [--store auto|firestore|sqlite] [--quick]
"""

from __future__ import annotations

import argparse
import os
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import _common as c

from bot.adapters.store import MAX_BATCH
from bot.domain.spec import SpecBounds, parse_request, resolve
from bot.run.config import Settings, load_config
from bot.run.services import Services
from bot.sim.monitoring_api import MonitoringSimulator

ZONES = ("us-central1-a", "us-central1-b", "europe-west4-a")
OWNERS = ("U0ALICE", "U0BOB", "U0ADMIN", "U0APPROVER")  # Paris, New York, UTC, London
NOW = 1_796_047_200.0  # Monday 2026-11-30, 14:00 UTC: working hours for all four owners
MOMENT = datetime.fromtimestamp(NOW, UTC)
GOAL = 2.0


def seed(store: Any, workbench: c.WorkbenchSimulator, count: int, project: str, *, instances: bool) -> None:
    """Write `count` notebook records (and, with `instances`, their instances in the simulator).

    Each record agrees with its instance, URL included (as a launch leaves it), so the sweep meets
    the steady state rather than records that all need a fix from the cloud.

    INTERNAL: the notebook record's fields as bot/domain/notebooks.py reads them today (id, zone,
    owner, channel, spec, state, created_at, state_since, running_seconds, url, managed). If the
    rewrite changes the record, this function is the one place to change.
    """
    catalog = load_config(None).catalog
    day = datetime.fromtimestamp(NOW, UTC).date()
    specs = {
        (zone, gpu): resolve(parse_request("gpu=l4" if gpu else ""), catalog, SpecBounds(zone=zone), day).to_dict()
        for zone in ZONES
        for gpu in (False, True)
    }

    if instances:
        for n in range(count):
            state = "STOPPED" if n % 5 == 0 else "ACTIVE"
            workbench.add_instance(ZONES[n % len(ZONES)], f"nb-{n:04d}", {"state": state}, project=project)
    urls = {name.rsplit("/", 1)[-1]: f"https://{i['proxyUri']}" for name, i in workbench.instances().items()}

    def one(n: int) -> None:
        zone, owner = ZONES[n % len(ZONES)], OWNERS[n % len(OWNERS)]
        state = "STOPPED" if n % 5 == 0 else "ACTIVE"
        age = (n % 40) * 3600.0  # from fresh to well past every reminder threshold
        name = f"nb-{n:04d}"
        store.put(
            "notebooks",
            name,
            {
                "id": name,
                "zone": zone,
                "owner": owner,
                "channel": "C0GENERAL",
                "spec": specs[zone, n % 3 == 0],
                "launch_id": None,
                "state": state,
                "created_at": NOW - age,
                "state_since": NOW - age,
                "running_seconds": 0.0,
                "url": urls.get(name),
                "managed": True,
            },
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(one, range(count)))


def report_usage(sim: MonitoringSimulator, count: int, project: str) -> dict[str, str]:
    """Every running notebook's CPU every minute for the last 4 h (0-90 %: a tenth of them idle), and
    the GPU ones' GPU too (half at 0 %, half at 80 %), in the Monitoring fake; their zones by name.
    Stopped notebooks report nothing, as Compute Engine's don't."""
    zones = {}
    for n in range(count):
        if n % 5 == 0:
            continue
        name, zone = f"nb-{n:04d}", ZONES[n % len(ZONES)]
        zones[name] = zone
        sim.add_instance(name, zone, project=project)
        sim.fill("cpu", name, (n % 10) / 10, MOMENT - timedelta(hours=4), MOMENT)
        if n % 3 == 0:
            sim.fill("gpu", name, 0.0 if n % 2 else 80.0, MOMENT - timedelta(hours=4), MOMENT)
    return zones


@dataclass
class Fleet:
    """The simulated cloud the 1,000 notebooks live in, and the settings that point the bot at it."""

    backend: Any
    slack: c.SlackSimulator
    workbench: c.WorkbenchSimulator
    monitoring: MonitoringSimulator
    env: dict[str, str]
    settings: Settings
    running: dict[str, str]  # the running notebooks' zones by name (what reports to Monitoring)


@contextmanager
def simulated_fleet(store: str, count: int) -> Iterator[Fleet]:
    """The store backend, the Slack, Workbench and Monitoring fakes, and the notebooks' utilization."""
    with (
        c.store_backend(store) as backend,
        c.SlackSimulator() as slack,
        c.WorkbenchSimulator() as workbench,
        MonitoringSimulator(clock=lambda: MOMENT) as monitoring,
    ):
        env = backend.fresh()
        env.update(
            SLACK_API_URL=slack.base_url, NOTEBOOKS_EMULATOR_HOST=workbench.host, SLACK_BOT_TOKEN=slack.bot_token
        )
        os.environ["MONITORING_EMULATOR_HOST"] = monitoring.host  # Services reads it, as in production
        settings = Settings.from_env(env)
        running = report_usage(monitoring, count, settings.project or "")
        yield Fleet(backend, slack, workbench, monitoring, env, settings, running)


def warm(services: Services) -> None:
    """Build every client and open its connection, so neither the sweep nor the floor pays for it."""
    for zone in ZONES:
        services.workbench.list(zone)
    services.store.get("meta", "benchmark-warm-up")
    slack_client(services).auth_test()


def slack_client(services: Services) -> Any:
    """The bot's Slack WebClient (Services.slack.client today; a fresh one like it otherwise)."""
    client = getattr(services.slack, "client", None)
    if client is None:
        from bot.adapters.notify import web_client

        client = web_client(services.settings.slack_bot_token)
    return client


def floor(services: Services, store: Any, messages: list[dict[str, Any]], said: dict[str, list[str]]) -> float:
    """The least work that sends the sweep's messages: 3 lists, 1 query, the Monitoring read over the
    running notebooks, the messages, and one batched write of what was said (`said`: the sweep's
    keys by notebook, written to a field the sweep does not read, so a floor run first changes
    nothing for the sweep)."""
    started = time.perf_counter()
    for zone in ZONES:
        services.workbench.list(zone)
    docs = store.query("notebooks")
    running = [d for d in docs if d["state"] == "ACTIVE"]
    if services.utilization is not None:
        services.utilization.read({d["zone"] for d in running}, names={d["id"] for d in running}, now=MOMENT)
    client = slack_client(services)
    for args in messages:
        client.chat_postMessage(**{k: args[k] for k in ("channel", "text", "blocks", "thread_ts") if args.get(k)})
    written = [(d["id"], {**d, "floor_said": said[d["id"]]}) for d in docs if d["id"] in said]
    for start in range(0, len(written), MAX_BATCH):
        store.put_many("notebooks", dict(written[start : start + MAX_BATCH]))
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="1 round")
    c.add_store_flag(parser)
    args = parser.parse_args()
    rounds = 1 if args.quick else max(1, min(args.rounds, 10))
    count = max(1, min(args.notebooks, 5000))
    sweeps: list[float] = []
    floors: list[float] = []
    first: dict[str, Any] = {}
    messages: list[dict[str, Any]] = []
    said: dict[str, list[str]] = {}
    with simulated_fleet(args.store, count) as fleet:
        backend, slack, workbench, monitoring = fleet.backend, fleet.slack, fleet.workbench, fleet.monitoring
        env, settings, running = fleet.env, fleet.settings, fleet.running
        inner = backend.open(env)
        logs = c.LogCounter.install()
        c.header(
            f"lifecycle sweep over {count} notebooks ({len(running)} running, reporting to Cloud Monitoring)"
            f" in {len(ZONES)} zones",
            rounds=rounds,
            store=backend.describe(),
        )
        for n in range(rounds):
            inner = backend.empty(env, inner)
            started = time.perf_counter()
            seed(inner, workbench, count, settings.project or "", instances=n == 0)
            seeded = time.perf_counter() - started
            store = c.CountingStore(inner)
            services = Services(settings, config=load_config(None), clock=lambda: NOW, store=store)
            warm(services)
            if services.utilization is not None:  # its client and channel too (monitoring_sweep warms its own)
                services.utilization.read(ZONES[:1], names={"benchmark-warm-up"}, now=MOMENT)
            for step in c.order(n, ("sweep", "floor")):
                if step == "floor":
                    floors.append(floor(services, inner, messages, said))
                    continue
                before, wb_seen, slack_seen = store.snapshot(), len(workbench.calls()), len(slack.calls())
                monitoring.reset_calls()
                started = time.perf_counter()
                report = services.lifecycle.sweep()
                sweeps.append(time.perf_counter() - started)
                counted = c.diff(store.snapshot(), before)
                sent = slack.calls()[slack_seen:]
                messages = [dict(call.args) for call in sent if call.method == "chat.postMessage"]
                said = {d["id"]: d["said"] for d in inner.query("notebooks") if d.get("said")}
                found = {
                    "store": c.by_method(counted["calls"]),
                    "reads": sum(counted["reads"].values()),
                    "reads by collection": counted["reads"],
                    "writes": sum(counted["writes"].values()),
                    "writes by collection": counted["writes"],
                    "workbench": Counter(call.kind for call in workbench.calls()[wb_seen:]),
                    "monitoring": monitoring.count(),
                    "slack": Counter(call.method for call in sent),
                    "report": {k: v for k, v in vars(report).items() if v},
                }
                if not first:
                    first = found
                elif found != first:
                    print(f"  note: round {n + 1} made different calls than round 1: {found}")
            print(
                f"  round {n + 1}: sweep {sweeps[-1]:6.2f} s, floor {floors[-1]:5.2f} s, "
                f"ratio {c.ratio(sweeps[-1], floors[-1]):5.2f}× "
                f"(order {' then '.join(c.order(n, ('sweep', 'floor')))}; seeding took {seeded:.1f} s)",
                flush=True,
            )
    sweep_s, floor_s = c.median(sweeps), c.median(floors)
    paired = c.median([c.ratio(s, f) for s, f in zip(sweeps, floors, strict=True)])
    store_calls = first["store"]
    print()
    print(f"sweep ({first['report']})")
    print(f"  time:            {sweep_s:8.2f} s (median of {rounds}; min {min(sweeps):.2f}, max {max(sweeps):.2f})")
    print(f"  store calls:     {sum(store_calls.values()):8d}  {c.fmt_counts(store_calls)}")
    print(f"  documents read:  {first['reads']:8d}  {c.fmt_counts(first['reads by collection'])}")
    print(f"  documents written: {first['writes']:6d}  {c.fmt_counts(first['writes by collection'])}")
    print(f"  Workbench calls: {sum(first['workbench'].values()):8d}  {c.fmt_counts(first['workbench'])}")
    print(f"  Monitoring calls: {first['monitoring']:7d}  (ListTimeSeries)")
    print(f"  Slack calls:     {sum(first['slack'].values()):8d}  {c.fmt_counts(first['slack'])}")
    print(
        f"floor: {len(ZONES)} Workbench lists, 1 store query, the same Monitoring read, the sweep's {len(messages)} "
        f"chat.postMessage replayed, {len(said)} records written in one batch: "
        f"{floor_s:.2f} s (median; min {min(floors):.2f}, max {max(floors):.2f})"
    )
    print(
        f"ratio sweep / floor: {paired:.2f}× (median of the rounds' ratios; of the medians: "
        f"{c.ratio(sweep_s, floor_s):.2f}×)  {c.verdict(paired, GOAL)}"
    )
    print(logs.summary())


if __name__ == "__main__":
    main()
