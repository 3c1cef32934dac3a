"""A lifecycle sweep over 1,000 notebooks on the simulators: calls made and time taken.

1,000 managed notebooks across three zones (running with and without GPUs, stopped, some past
their reminder thresholds) live in the simulated Workbench and an embedded store. The sweep's
Workbench and Slack calls are counted from the simulators' own logs. The baseline, measured in
the same run, is what a sweep that asked Workbench about each notebook (get_instance) costs.

    python benchmarks/sweep_1000.py [--notebooks 1000]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bot.adapters.store import SqliteStore
from bot.domain.spec import SpecBounds, parse_request, resolve
from bot.run.config import Settings, load_config
from bot.run.services import Services
from bot.sim.slack_api import SlackSimulator
from bot.sim.workbench_api import WorkbenchSimulator

ZONES = ("us-central1-a", "us-central1-b", "europe-west4-a")
OWNERS = ("U0ALICE", "U0BOB", "U0ADMIN", "U0APPROVER")
NOW = 1_796_047_200.0  # Monday 2026-11-30, 14:00 UTC: working hours in Europe and New York


def populate(services: Services, workbench: WorkbenchSimulator, count: int) -> None:
    catalog = services.config.catalog
    for n in range(count):
        zone, owner = ZONES[n % len(ZONES)], OWNERS[n % len(OWNERS)]
        text = "gpu=l4" if n % 3 == 0 else ""
        spec = resolve(parse_request(text), catalog, SpecBounds(zone=zone), services.launcher.today())
        state = "STOPPED" if n % 5 == 0 else "ACTIVE"
        age = (n % 40) * 3600.0  # from fresh to well past every reminder threshold
        name = f"nb-{n:04d}"
        workbench.add_instance(zone, name, {"state": state}, project="bench-project")
        services.store.put(
            "notebooks",
            name,
            {
                "id": name,
                "zone": zone,
                "owner": owner,
                "channel": "C0GENERAL",
                "spec": spec.to_dict(),
                "launch_id": None,
                "state": state,
                "created_at": NOW - age,
                "state_since": NOW - age,
                "running_seconds": 0.0,
                "url": None,
                "managed": True,
            },
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notebooks", type=int, default=1000)
    args = parser.parse_args()
    with SlackSimulator() as slack, WorkbenchSimulator() as workbench:
        os.environ["SLACK_API_URL"] = slack.base_url
        os.environ["NOTEBOOKS_EMULATOR_HOST"] = workbench.host
        settings = Settings(slack_bot_token=slack.bot_token, project="bench-project", store_url="memory")
        services = Services(settings, config=load_config(None), clock=lambda: NOW, store=SqliteStore())
        populate(services, workbench, args.notebooks)
        wb_before, slack_before = len(workbench.calls()), len(slack.calls())

        started = time.perf_counter()
        report = services.lifecycle.sweep()
        sweep_seconds = time.perf_counter() - started
        wb_calls = Counter(c.kind for c in workbench.calls()[wb_before:])
        slack_calls = Counter(c.method for c in slack.calls()[slack_before:])

        started = time.perf_counter()
        for doc in services.store.query("notebooks"):
            services.workbench.get(doc["zone"], doc["id"])
        baseline_seconds = time.perf_counter() - started

    print(f"sweep over {report.notebooks} notebooks in {len(ZONES)} zones")
    print(f"  time:            {sweep_seconds:8.2f} s")
    print(f"  Workbench calls: {sum(wb_calls.values()):8d}  {dict(wb_calls)}")
    print(f"  Slack calls:     {sum(slack_calls.values()):8d}  {dict(slack_calls)}")
    print(f"  reminders sent:  {report.reminders:8d}  (deferred {report.deferred}, notes {report.notes})")
    print(
        f"baseline: one get_instance per notebook, no reminders: {args.notebooks} Workbench calls, "
        f"{baseline_seconds:.2f} s"
    )


if __name__ == "__main__":
    main()
