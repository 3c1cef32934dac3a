"""Cold start to first acknowledgement: `notebook-bot serve` against a bare Bolt app.

Each run spawns a fresh process tree (gunicorn with the production settings, as on Cloud Run
after a scale from zero) and sends one signed slash command every 10 ms until it is answered
with HTTP 200: the time from spawning to that answer is what the first person after a cold start
waits for (Slack gives up at 3 s). Measured for `/notebook help` and for
`/notebook new tf-2-8 gpu=l4`, each in its own fresh process with an empty store of its own
(the Firestore emulator by default: an ack that writes to the store pays for its client).

The bare Bolt app (benchmarks/bare_bolt_app.py: one listener that only acks, same gunicorn
settings) is the floor, measured in the same run, alternating with the bot.
Goal (issue 11): median bot / median bare ≤ 1.3, for `help` and for `new`.

Both start from bytecode, as a deployed bot does (the image's `pip install .` compiles it): the
sources of this tree that the processes import are compiled first. Where PYTHONDONTWRITEBYTECODE is
set (the dev image) and nothing compiled them, each start would compile the bot's modules from
source, about 25 ms a deployed bot never pays; `--source` measures that way.

    python benchmarks/cold_start.py [--runs 5] [--store auto|firestore|sqlite] [--quick] [--source]
"""

from __future__ import annotations

import argparse
import compileall
import shutil
import time

import _common as c

COMMANDS = {"help": "help", "new": "new tf-2-8 gpu=l4"}
GOAL = 1.3
LIMIT = 30.0  # seconds before a run is declared failed


def first_ack(served: c.Served, text: str, slack: c.SlackSimulator) -> float | None:
    with served:
        driver = served.driver(slack)
        while time.perf_counter() - served.started < LIMIT:
            try:
                if driver.command("U0ALICE", text).status == 200:
                    return time.perf_counter() - served.started
            except OSError:
                pass
            if served.process.poll() is not None:
                print(f"  {served.variant} exited early; log:\n{served.tail()}")
                return None
            time.sleep(0.01)
        print(f"  {served.variant} never acknowledged `{text}` within {LIMIT:.0f} s; log:\n{served.tail()}")
        return None


def bytecode(source: bool, env: dict[str, str]) -> str:
    """Compile this tree's bot, handlers and bare app to bytecode (their __pycache__, as Python
    itself writes it); with `source`, remove that bytecode and keep the processes from writing it.
    Says which way the processes start."""
    if source:
        for package in ("bot", "handlers", "benchmarks"):
            for cache in (c.ROOT / package).rglob("__pycache__"):
                shutil.rmtree(cache, ignore_errors=True)
        env["PYTHONDONTWRITEBYTECODE"] = "1"
        return "compiled from source at each start (--source)"
    compiled = all(compileall.compile_dir(c.ROOT / package, quiet=1) for package in ("bot", "handlers"))
    compiled = compiled and compileall.compile_file(c.BENCHMARKS / "bare_bolt_app.py", quiet=1)
    return "bytecode compiled ahead, as in the image" if compiled else "NOT all compiled (see above)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="fresh processes per variant and command (default 5)")
    parser.add_argument("--quick", action="store_true", help="2 runs each")
    parser.add_argument("--source", action="store_true", help="don't compile ahead: each start compiles from source")
    c.add_store_flag(parser)
    args = parser.parse_args()
    runs = 2 if args.quick else max(1, min(args.runs, 20))
    results: dict[tuple[str, str], list[float]] = {(v, k): [] for v in c.VARIANTS for k in COMMANDS}
    failures = 0
    with c.rig(args.store, "nb-cold-") as rig:
        c.header(
            "cold start: spawn → first HTTP 200 to a slash command",
            runs=runs,
            store=rig.backend.describe(),
            gunicorn=c.production_gunicorn(),
            python=bytecode(args.source, rig.env),
        )
        for n in range(runs):
            for key, text in COMMANDS.items():
                for variant in c.order(n + (key == "new"), c.VARIANTS):
                    seconds = first_ack(rig.serve(variant), text, rig.slack)
                    if seconds is None:
                        failures += 1
                    else:
                        results[variant, key].append(seconds)
    print()
    print(f"{'command':<28} {'variant':<10} {'median':>7} {'min':>7} {'max':>7}  ratio vs bare (median)")
    for key, text in COMMANDS.items():
        floor = c.median(results["bare Bolt", key])
        for variant in c.VARIANTS:
            times = results[variant, key]
            if not times:
                print(f"/notebook {text:<18} {variant:<10} {'(no ack)':>7}")
                continue
            r = c.ratio(c.median(times), floor)
            note = "" if variant == "bare Bolt" else f"  {r:5.2f}×  {c.verdict(r, GOAL)}"
            print(
                f"/notebook {text:<18} {variant:<10} {c.median(times):7.3f} {min(times):7.3f} {max(times):7.3f}{note}"
            )
    if failures:
        print(f"{failures} run(s) got no acknowledgement (left out above)")
    print("seconds; Slack allows 3.000 s for an acknowledgement")


if __name__ == "__main__":
    main()
