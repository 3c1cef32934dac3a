"""Resident memory of `notebook-bot serve` while idle, against a bare Bolt app.

Each run spawns a fresh process tree (gunicorn with the production settings) and reads VmRSS from
/proc/PID/status, summed over the gunicorn master and its workers, at three moments:

  started     as soon as it answers HTTP (the app is loaded), plus 0.5 s
  after help  one `/notebook help`, then --idle seconds of nothing (the bot's reconcile worker
              runs its passes meanwhile, as it does when serving)
  after new   one `/notebook new base` (a real launch against the Workbench simulator), then
              --idle seconds again: what a serving bot holds once it has done real work

The bare Bolt app gets the same requests (it only acks). Runs alternate between the two.
Goal (issue 11): serve RSS idle ≤ 1.5× bare Bolt (printed for each moment; "after help" is the
issue's "idle after start and one request").

    python benchmarks/rss_idle.py [--runs 3] [--idle 6] [--store auto|firestore|sqlite] [--quick]
"""

from __future__ import annotations

import argparse
import time

import _common as c

GOAL = 1.5
MOMENTS = ("started", "after help", "after new")


def measure(served: c.Served, slack: c.SlackSimulator, idle: float) -> dict[str, float]:
    variant = served.variant
    with served:
        served.wait_ready()
        time.sleep(0.5)
        found = {"started": served.rss_mb()}
        driver = served.driver(slack)
        for moment, text in (("after help", "help"), ("after new", "new base")):
            _, status = c.timed_command(driver, "U0ALICE", text)
            if status != 200:
                print(f"  {variant}: `/notebook {text}` answered {status or 'nothing'}; log:\n{served.tail()}")
            time.sleep(idle)
            served.check_alive()
            found[moment] = served.rss_mb()
        return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per variant (default 3)")
    parser.add_argument("--idle", type=float, default=6.0, help="idle seconds after each request (default 6)")
    parser.add_argument("--quick", action="store_true", help="1 run, 4 s idle")
    c.add_store_flag(parser)
    args = parser.parse_args()
    runs, idle = (1, 4.0) if args.quick else (max(1, min(args.runs, 10)), min(max(args.idle, 0.0), 30.0))
    results: dict[str, list[dict[str, float]]] = {v: [] for v in c.VARIANTS}
    with c.rig(args.store, "nb-rss-") as rig:
        c.header(
            "serve RSS (MB, VmRSS of gunicorn master + workers)",
            runs=runs,
            idle_seconds=idle,
            store=rig.backend.describe(),
        )
        for n in range(runs):
            for variant in c.order(n, c.VARIANTS):
                results[variant].append(measure(rig.serve(variant), rig.slack, idle))
    print()
    print(f"{'moment':<12} {'bare Bolt':>10} {'bot':>8} {'ratio':>7}  (medians of {runs})")
    for moment in MOMENTS:
        bare = c.median([r[moment] for r in results["bare Bolt"]])
        bot = c.median([r[moment] for r in results["bot"]])
        r = c.ratio(bot, bare)
        print(f"{moment:<12} {bare:10.1f} {bot:8.1f} {r:6.2f}×  {c.verdict(r, GOAL)}")


if __name__ == "__main__":
    main()
