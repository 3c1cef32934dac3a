"""100 launches in flight in one zone, creation taking 2 minutes: what each reconcile tick costs.

Simulated time, not real time. The bot runs in this process (its real Bolt app over HTTP, as in
tests/harness.py) on a clock the benchmark moves; the Workbench simulator finishes an operation
once --create seconds of that clock have passed since it began, however often it is polled
(TimedWorkbench in _common.py). A "tick" is one `Services.reconcile()` pass per replica after the
clock moved by --tick seconds (default: the serve worker's interval, Settings.worker_interval),
which is what `notebook-bot serve` does every tick in real time.

Phase A, launches in flight: --launches users (default 100) each send `/notebook new base` in one
channel at t=0 (or over --spread ticks); each create takes --create seconds plus a fixed
per-instance part of a tick, so instances turn ACTIVE between passes, as real ones do. Ticks run
until every instance's link is posted and every launch is over (its message shows the outcome:
the bot paces its Slack writes, so the last chat.updates may follow the links by minutes; bounded).
The bot paces Slack as one of --slack-replicas processes (default 1: it alone may use the whole
workspace's allowance, the tightest test of the tiers; production's default is 3, a third each).
Per tick: the Workbench calls by method (from the simulator's log), the Slack calls by method,
the store calls and documents read (a counting proxy around the store, in this benchmark only),
and for each instance the delay from turning ACTIVE (the simulated moment its create finished)
to the first Slack message or update carrying its URL.
Phase B, idle passes: passes with nothing due. First with no launch open, then after --pending
users (default 100) asked for `/notebook new tf-2-8`, which this run's config sends to approval
(open for a day, so not due), then with --replicas bots (default 3) sharing the store, each
running its pass every tick.

Goals (issue 11): ≤ 2 Workbench calls per tick in steady state (all launches created, none ACTIVE
yet); link ≤ one tick after ACTIVE; Slack within its tiers (chat.update ≈ 50 a minute per
workspace, chat.postMessage ≈ 1 a second per channel); store reads per idle pass O(due), not
O(open), and not multiplied by replicas.

    python benchmarks/launches_in_flight.py [--launches 100] [--create 120] [--tick S]
        [--spread TICKS] [--pending 100] [--replicas 3] [--slack-replicas 1]
        [--store auto|firestore|sqlite] [--quick] [--brief]
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import _common as c

from bot.run.config import Settings, load_config
from bot.run.services import Services

CHANNEL = "C0GENERAL"
APPROVALS = "C0APPROVALS"
CONFIG = f"""
[access]
approvers = ["U0APPROVER"]
approval_channel = "{APPROVALS}"

[policy]
approval_environments = ["tf-2-8"]
"""
SLACK_TIERS = {"chat.update": 50, "chat.postMessage": 60}  # per minute: workspace / per channel
WB_GOAL = 2


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Tick:
    index: int
    at: float  # simulated seconds since t0
    wall: float  # real seconds the tick took
    workbench: Counter
    slack: Counter
    posts: Counter  # chat.postMessage by channel
    store: dict[str, Counter]
    created: int
    active: int
    linked: int

    @property
    def reads(self) -> int:
        return sum(self.store["reads"].values())

    @property
    def store_calls(self) -> int:
        return sum(self.store["calls"].values())


@dataclass
class Observer:
    """What happened since the last look: the simulators' logs and the counting store, diffed."""

    slack: c.SlackSimulator
    workbench: c.TimedWorkbench
    store: c.CountingStore
    clock: Clock
    t0: float
    wb_seen: int = 0
    slack_seen: int = 0
    store_seen: dict[str, Counter] = field(default_factory=dict)
    linked: dict[str, float] = field(default_factory=dict)  # instance name -> simulated time of its link
    linked_tick: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.skip()

    def skip(self) -> None:
        """Forget what happened so far (set-up that is not to be counted)."""
        self.wb_seen, self.slack_seen = len(self.workbench.calls()), len(self.slack.calls())
        self.store_seen = self.store.snapshot()

    def look(self, index: int, wall: float) -> Tick:
        wb = self.workbench.calls()[self.wb_seen :]
        sl = self.slack.calls()[self.slack_seen :]
        self.wb_seen += len(wb)
        self.slack_seen += len(sl)
        snap = self.store.snapshot()
        store, self.store_seen = c.diff(snap, self.store_seen), snap
        instances = self.workbench.instances()
        waiting = {
            name: instances.get(name, {}).get("proxyUri")
            for name in self.workbench.active_at
            if name not in self.linked
        }
        if waiting:
            blob = "\n".join(
                [c.dumps(call.args) for call in sl] + [m.text + c.dumps(m.blocks) for m in self.slack.messages()]
            )
            for name, proxy in waiting.items():
                if proxy and proxy in blob:
                    self.linked[name] = self.clock()
                    self.linked_tick[name] = index
        posts = Counter(call.args.get("channel", "?") for call in sl if call.method == "chat.postMessage")
        return Tick(
            index=index,
            at=self.clock() - self.t0,
            wall=wall,
            workbench=Counter(call.kind for call in wb),
            slack=Counter(call.method for call in sl),
            posts=posts,
            store=store,
            created=len(instances),
            active=len(self.workbench.active_at),
            linked=len(self.linked),
        )


def tick_row(t: Tick) -> str:
    wb = c.fmt_counts(t.workbench)
    sl = c.fmt_counts({k.removeprefix("chat."): v for k, v in t.slack.items()})
    return (
        f"{t.index:>4} {t.at:7.1f} {t.created - t.linked:>6} {t.active:>6} {t.linked:>6} "
        f"{sum(t.workbench.values()):>4} {sum(t.slack.values()):>4} {t.store_calls:>5} {t.reads:>5}  "
        f"wb[{wb}] slack[{sl}]"
    )


TICK_HEADER = (
    f"{'tick':>4} {'t (s)':>7} {'flight':>6} {'active':>6} {'linked':>6} {'wb':>4} {'slk':>4} {'store':>5} "
    f"{'reads':>5}  (flight: created, link not posted yet)"
)


def send_all(driver: c.SlackDriver, users: list[str], text: str) -> Counter:
    """Each user sends `text` once, 8 at a time; the HTTP statuses."""
    with ThreadPoolExecutor(max_workers=8) as pool:
        return Counter(status for _, status in pool.map(lambda u: c.timed_command(driver, u, text, CHANNEL), users))


def run_tick(
    clock: Clock,
    step: float,
    workbench: c.TimedWorkbench,
    replicas: list[Services],
    slack: Any,
    arrive: Any = None,
) -> float:
    """Move the clock, let the simulator finish what is due, deliver `arrive()` requests, run the passes."""
    started = time.perf_counter()
    clock.advance(step)
    workbench.advance()
    if arrive is not None:
        arrive()
        c.quiet(c.sim_activity(slack, workbench), still=0.5, limit=30)
    for services in replicas:
        services.reconcile()
    c.quiet(c.sim_activity(slack, workbench), still=0.05, limit=5, step=0.01)  # work a pass handed to threads
    return time.perf_counter() - started


def windows(ticks: list[Tick], count: Any, span: float = 60.0) -> int:
    """The most `count(tick)` adds up to over any `span` simulated seconds (windows start at a tick)."""
    best = 0
    for i, start in enumerate(ticks):
        best = max(best, sum(count(t) for t in ticks[i:] if t.at < start.at + span))
    return best


def summary_line(label: str, values: list[float]) -> str:
    if not values:
        return f"{label}: (none)"
    return f"{label}: mean {sum(values) / len(values):.1f}, median {c.median(values):.0f}, max {max(values):.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--launches", type=int, default=100)
    parser.add_argument("--create", type=float, default=120.0, help="simulated seconds a create takes (120)")
    parser.add_argument("--tick", type=float, default=Settings().worker_interval, help="simulated seconds per tick")
    parser.add_argument("--pending", type=int, default=100, help="launches waiting for approval in phase B")
    parser.add_argument("--replicas", type=int, default=3, help="bots sharing the store in phase B's last part")
    parser.add_argument(
        "--slack-replicas", type=int, default=1, help="the bot's NOTEBOOK_BOT_REPLICAS: it paces Slack to 1/N (1)"
    )
    parser.add_argument("--idle-ticks", type=int, default=5)
    parser.add_argument(
        "--spread", type=int, default=0, help="send the launches over this many ticks (default 0: all at t=0)"
    )
    parser.add_argument("--brief", action="store_true", help="print only ticks whose calls differ from the tick before")
    parser.add_argument("--quick", action="store_true", help="30 launches, 60 s creation, 30 pending, 2 replicas")
    c.add_store_flag(parser)
    args = parser.parse_args()
    if args.quick:
        args.launches, args.create, args.pending, args.replicas, args.idle_ticks = 30, 60.0, 30, 2, 3
    launches, pending = max(1, min(args.launches, 300)), max(1, min(args.pending, 300))
    step, create = max(0.5, args.tick), max(1.0, min(args.create, 900.0))
    max_ticks = math.ceil((create + 480) / step)  # creation, then up to 8 minutes for the links and last updates
    users_a, users_b = c.bench_users(launches, "L"), c.bench_users(pending, "P")
    clock = Clock()
    with (
        c.store_backend(args.store) as backend,
        c.SlackSimulator(users={**users_a, **users_b}) as slack,
        c.TimedWorkbench(clock, {"create": create}, jitter=step * 0.95) as workbench,
        tempfile.TemporaryDirectory(prefix="nb-flight-") as tmp,
    ):
        env = backend.fresh()
        env.update(
            SLACK_API_URL=slack.base_url,
            NOTEBOOKS_EMULATOR_HOST=workbench.host,
            SLACK_BOT_TOKEN=slack.bot_token,
            SLACK_SIGNING_SECRET=c.SECRET,
        )
        store = c.CountingStore(backend.open(env))  # also puts env in os.environ, for the clients
        config_path = Path(tmp) / "config.toml"
        config_path.write_text(CONFIG)
        config = load_config(config_path)
        settings = replace(Settings.from_env(env), replicas=max(1, args.slack_replicas))
        logs = c.LogCounter.install()
        bot = Services(settings, config=config, clock=clock, store=store)
        app = c.serve_in_process(bot, slack)
        c.header(
            f"{launches} launches in flight in one zone, creation {create:.0f} s + <1 tick (simulated time)",
            tick=f"{step:g} s",
            store=backend.describe(),
            tiers="chat.update 50/min per workspace, chat.postMessage 60/min (1/s) per channel",
            pacing=f"as one of {settings.replicas} replica(s): {1 / settings.replicas:.2g} of each tier",
        )
        t0 = clock()
        seen = Observer(slack, workbench, store, clock, t0)

        # --- phase A: launches in flight -----------------------------------------------------------
        spread = max(1, min(args.spread, max_ticks // 2))
        batches = [sorted(users_a)[n::spread] for n in range(spread)]  # tick k's arrivals
        statuses: Counter[int] = Counter()

        def arrivals(k: int) -> Any:
            if k >= len(batches):
                return None
            return lambda: statuses.update(send_all(app.driver, batches[k], "new base"))

        started = time.perf_counter()
        arrivals(0)()
        c.quiet(c.sim_activity(slack, workbench), still=1.0, limit=60)
        ticks = [seen.look(0, time.perf_counter() - started)]
        print(
            f"requests: {launches} × `/notebook new base` from as many users in {CHANNEL}, "
            f"{len(batches[0])} at t 0 (tick 0, the clock stopped while they are handled)"
            + (f", then {len(batches[-1])}–{len(batches[1])} before each of ticks 1–{spread - 1}" if spread > 1 else "")
        )
        print(TICK_HEADER)
        print(tick_row(ticks[0]))
        after_last_link = 0

        def open_launches() -> int:
            return len(store.inner.query("launches", open=True))  # not counted: the benchmark's own look

        for index in range(1, max_ticks + 1):
            wall = run_tick(clock, step, workbench, [bot], slack, arrivals(index))
            tick = seen.look(index, wall)
            ticks.append(tick)
            previous = ticks[-2]
            interesting = (
                tick.workbench != previous.workbench
                or tick.slack != previous.slack
                or tick.active != previous.active
                or tick.linked != previous.linked
                or index <= 3
                or index % 10 == 0
            )
            if not args.brief or interesting:
                print(tick_row(tick), flush=True)
            if tick.created >= launches and tick.linked >= tick.created and not open_launches():
                after_last_link += 1
                if after_last_link > 2:  # two more ticks for final messages
                    break
        phase_a = ticks
        print(
            f"phase A: {len(ticks) - 1} ticks, {sum(t.wall for t in ticks):.1f} s of real time; "
            f"the requests were answered {dict(statuses)}"
        )

        # --- phase B: idle passes --------------------------------------------------------------------
        def idle(replicas: list[Services], label: str) -> list[Tick]:
            seen.skip()
            out = []
            for n in range(args.idle_ticks):
                out.append(seen.look(n, run_tick(clock, step, workbench, replicas, slack)))
            reads = [t.reads for t in out]
            by_coll = sum((t.store["reads"] for t in out), Counter())
            per_pass = {k: round(v / len(out), 1) for k, v in by_coll.items()}
            calls = c.by_method(sum((t.store["calls"] for t in out), Counter()))
            print(
                f"  {label:<44} reads per tick: median {c.median(reads):.0f}, max {max(reads)}; "
                f"by collection per tick {c.fmt_counts(per_pass)}; store calls {c.fmt_counts(calls)}"
            )
            return out

        def settle(done: Any = lambda: True, limit: int = 60) -> int:
            """Ticks until one passes with no Slack call and done() holds (a bot that paces its
            messages may take a while); returns how many ran."""
            for n in range(1, limit + 1):
                before = len(slack.calls())
                run_tick(clock, step, workbench, [bot], slack)
                if len(slack.calls()) == before and done():
                    return n
            return limit

        def asked() -> int:
            return len([m for m in slack.messages(APPROVALS) if m.thread_ts is None])

        print(f"\nphase B: idle passes ({args.idle_ticks} ticks each)")
        settled = settle()
        idle_empty = idle([bot], "no launch open")
        statuses = send_all(app.driver, sorted(users_b), "new tf-2-8")
        c.quiet(c.sim_activity(slack, workbench), still=1.0, limit=60)
        settled_b = settle(lambda: asked() >= pending)
        print(
            f"  {pending} × `/notebook new tf-2-8` answered {dict(statuses)}; approval requests posted: {asked()} "
            f"(settling ticks before each measurement: {settled}, {settled_b})"
        )
        idle_pending = idle([bot], f"{pending} launches awaiting approval (not due)")
        replicas = [bot] + [
            Services(settings, config=config, clock=clock, store=store) for _ in range(args.replicas - 1)
        ]
        idle_replicas = idle(replicas, f"the same, {len(replicas)} replicas each passing")
        app.close()

    # --- summary ---------------------------------------------------------------------------------------
    active_at = {name: at - t0 for name, at in workbench.active_at.items()}
    first_active = min(active_at.values(), default=math.inf)
    create_ticks = [t.index for t in phase_a if t.workbench.get("create")]
    steady = [t for t in phase_a if create_ticks and t.index > max(create_ticks) and t.at < first_active]
    wb_total = sum((t.workbench for t in phase_a), Counter())
    slack_total = sum((t.slack for t in phase_a), Counter())
    print("\nphase A summary")
    print(f"  Workbench calls: {sum(wb_total.values())} {c.fmt_counts(wb_total)}")
    print(
        f"    per launch: {sum(wb_total.values()) / launches:.1f} calls, "
        f"{wb_total['get_operation'] / launches:.1f} operation polls, {wb_total['get'] / launches:.1f} gets"
    )
    wb_steady = [sum(t.workbench.values()) for t in steady]
    if steady:
        print(
            f"    {summary_line(f'per tick in steady state (ticks {steady[0].index}-{steady[-1].index})', wb_steady)}"
            f"  → {c.verdict(max(wb_steady), WB_GOAL, ' calls')}"
        )
    else:
        print("    per tick in steady state: no tick had every launch created and none ACTIVE")
    print(f"    {summary_line('per tick, all of phase A', [sum(t.workbench.values()) for t in phase_a])}")
    print(f"  Slack calls: {sum(slack_total.values())} {c.fmt_counts(slack_total)}")
    updates_min = windows(phase_a, lambda t: t.slack.get("chat.update", 0))
    channels = {ch for t in phase_a for ch in t.posts}
    posts_min = max((windows(phase_a, lambda t, ch=ch: t.posts.get(ch, 0)) for ch in channels), default=0)
    posts_tick = max((n for t in phase_a for n in t.posts.values()), default=0)
    print(
        f"    chat.update, most in any minute: {updates_min} "
        f"({c.verdict(updates_min, SLACK_TIERS['chat.update'], '/min per workspace')})"
    )
    print(
        f"    chat.postMessage, most in any minute in one channel: {posts_min} "
        f"({c.verdict(posts_min, SLACK_TIERS['chat.postMessage'], '/min per channel')}); "
        f"most in one tick in one channel: {posts_tick} (1/s is {step:g} per tick; Slack allows short bursts)"
    )
    minutes: dict[int, Counter] = {}
    for t in phase_a:
        minutes.setdefault(int(t.at // 60), Counter()).update(
            {k.removeprefix("chat."): v for k, v in t.slack.items() if k in SLACK_TIERS}
        )
    print("    chat.* per simulated minute: " + "; ".join(f"min {m}: {c.fmt_counts(n)}" for m, n in minutes.items()))
    non_request = phase_a[1:]
    print(
        f"    of which in the request phase (tick 0): {c.fmt_counts(phase_a[0].slack)}; "
        f"per tick after: {summary_line('calls', [sum(t.slack.values()) for t in non_request])}"
    )
    reads_steady = [t.reads for t in steady]
    print(f"  store reads per tick in steady state: {summary_line('reads', reads_steady)}")
    reads_by = sum((t.store["reads"] for t in steady), Counter())
    if steady:
        print(
            f"    by collection per tick: {c.fmt_counts({k: round(v / len(steady), 1) for k, v in reads_by.items()})}"
        )
    calls_by = c.by_method(sum((t.store["calls"] for t in phase_a), Counter()))
    print(f"  store calls, all of phase A: {sum(calls_by.values())} {c.fmt_counts(calls_by)}")
    delays = [seen.linked[n] - workbench.active_at[n] for n in seen.linked]
    passes = [
        sum(1 for t in phase_a if t.at + t0 >= workbench.active_at[n] and t.index <= seen.linked_tick[n])
        for n in seen.linked
    ]
    never = len(workbench.active_at) - len(seen.linked)
    print(f"  link after ACTIVE ({len(delays)} of {len(workbench.active_at)} ACTIVE instances linked, {never} never):")
    if delays:
        print(
            f"    seconds: median {c.median(delays):.1f}, p90 {c.percentile(delays, 90):.1f}, max {max(delays):.1f}"
            f"  → {c.verdict(max(delays), step, ' s (one tick)')}"
        )
        print(
            f"    passes after ACTIVE until the link (1 = the first pass after it): median {c.median(passes):.0f}, "
            f"max {max(passes)}  → {c.verdict(max(passes), 1, ' pass')}"
        )
    base = c.median([t.reads for t in idle_empty])
    with_pending = c.median([t.reads for t in idle_pending])
    with_replicas = c.median([t.reads for t in idle_replicas])
    per_open = (with_pending - base) / pending
    print("\nphase B summary (median store reads per tick)")
    print(f"  no launch open: {base:.0f}; {pending} open, none due: {with_pending:.0f}")
    print(
        f"    → {per_open:.2f} reads per open launch per pass: "
        f"{'O(open)' if per_open >= 0.5 else 'O(due)'} (goal: O(due), ≈ 0 per open launch that is not due)"
    )
    one = sum(t.reads for t in idle_pending) / len(idle_pending)
    many = sum(t.reads for t in idle_replicas) / len(idle_replicas)
    print(
        f"  {len(replicas)} replicas: reads per tick median {with_replicas:.0f}, mean {many:.1f}, max "
        f"{max(t.reads for t in idle_replicas)} (one replica: median {with_pending:.0f}, mean {one:.1f})"
        f" → {'multiplied by replicas' if with_replicas >= 1.5 * max(with_pending, 1) else 'not multiplied'}"
        " (goal: not multiplied; a replica reads a periodic job's meta document once a period, not once a pass)"
    )
    print(logs.summary())


if __name__ == "__main__":
    main()
