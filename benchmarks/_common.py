"""What the benchmarks share: serving the bot or the bare Bolt app, the simulators, the store
back ends, a counting store, signed Slack requests, percentiles and RSS.

Only the bot's public surface is used: `notebook-bot serve` (HTTP endpoints), `Services(...)`,
`Services.reconcile()`, `Services.lifecycle.sweep()`, the Store protocol (bot/adapters/store.py)
and the simulators in bot/sim/. The few internal names a benchmark cannot avoid are here and
nowhere else, each marked INTERNAL:
  - the gunicorn settings inside bot/run/server.py:serve_gunicorn (read, not imported);
  - bot.run.server.build_web_app / serve_in_thread (the in-process HTTP app, as tests/harness.py uses);
  - WorkbenchSimulator._ops / _finish / _lock and _Operation fields (TimedWorkbench: operations that
    finish after simulated seconds instead of after a number of polls).
"""

from __future__ import annotations

import ast
import contextlib
import json
import logging
import math
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import zlib
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, ClassVar

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "benchmarks"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bot.sim.slack_api import SlackSimulator  # noqa: E402
from bot.sim.slack_driver import SlackDriver  # noqa: E402
from bot.sim.workbench_api import WorkbenchSimulator  # noqa: E402
from tests.support.emulators import firestore_emulator, free_port, new_project_id, reset_firestore  # noqa: E402

SECRET = "benchmark-signing-secret"
SLACK_ACK_LIMIT = 3.0  # seconds Slack waits for an acknowledgement
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback only, never a proxy


# --- output --------------------------------------------------------------------------------------
def header(title: str, **facts: Any) -> None:
    print(title)
    if facts:
        print("  " + ", ".join(f"{k.replace('_', ' ')}: {v}" for k, v in facts.items()))
    sys.stdout.flush()


def verdict(value: float, goal: float, unit: str = "×") -> str:
    """'meets' or 'MISSES' a `value <= goal` goal, with the goal stated."""
    if math.isnan(value):
        return f"(goal ≤ {goal:g}{unit}: not measured)"
    return f"{'meets' if value <= goal else 'MISSES'} goal ≤ {goal:g}{unit}"


def ratio(a: float, b: float) -> float:
    return a / b if b else math.nan


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100) of the values; nan when there are none."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[min(rank, len(ordered)) - 1]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def order(round_index: int, names: Sequence[str]) -> list[str]:
    """The variants in the order of this round: alternating, so neither always goes first."""
    return list(names) if round_index % 2 == 0 else list(reversed(names))


# --- users and simulators ------------------------------------------------------------------------
def bench_users(count: int, prefix: str = "B") -> dict[str, dict[str, Any]]:
    """`count` Slack users with emails and timezones, ids U0{prefix}0000…, for the Slack simulator."""
    zones = (("Europe/Paris", 3600), ("America/New_York", -18000), ("UTC", 0), ("Asia/Tokyo", 32400))
    users = {}
    for n in range(count):
        tz, offset = zones[n % len(zones)]
        name = f"{prefix.lower()}user{n:04d}"
        users[f"U0{prefix}{n:04d}"] = {
            "name": name,
            "real_name": f"Bench {prefix}{n}",
            "email": f"{name}@example.com",
            "tz": tz,
            "tz_offset": offset,
        }
    return users


def quiet(counts: Callable[[], int], *, still: float = 1.0, limit: float = 20.0, step: float = 0.05) -> float:
    """Wait until counts() stops changing for `still` seconds (at most `limit`); returns seconds waited."""
    started = time.monotonic()
    last, since = counts(), time.monotonic()
    while time.monotonic() - started < limit:
        time.sleep(step)
        now = counts()
        if now != last:
            last, since = now, time.monotonic()
        elif time.monotonic() - since >= still:
            break
    return time.monotonic() - started


def sim_activity(slack: SlackSimulator, workbench: WorkbenchSimulator) -> Callable[[], int]:
    return lambda: len(slack.calls()) + len(workbench.calls())


class TimedWorkbench(WorkbenchSimulator):
    """The Workbench simulator, but an operation finishes once `seconds[kind]` of the given clock
    have passed since it began, however often it is polled (a real create takes minutes).

    `jitter` adds up to that many seconds to each operation, fixed per instance (a hash of its
    name), so instances do not all turn ACTIVE exactly on a tick.
    `active_at[instance name]` is the simulated time a create finished: when the instance turned
    ACTIVE with its proxy URI. Call `advance()` after moving the clock; every request does too.
    INTERNAL: uses the simulator's _lock, _ops, _finish and _Operation fields (kind, created, done,
    error, target); if bot/sim/workbench_api.py changes them, this class is the one place to fix.
    """

    DEFAULT_SECONDS: ClassVar[dict[str, float]] = {
        "create": 120.0,
        "start": 60.0,
        "stop": 30.0,
        "reset": 60.0,
        "delete": 30.0,
        "update": 0.0,
    }

    def __init__(
        self, clock: Callable[[], float], seconds: dict[str, float] | None = None, jitter: float = 0.0
    ) -> None:
        super().__init__(op_polls_until_done=10**9, clock=lambda: datetime.fromtimestamp(clock(), UTC))
        self.seconds = {**self.DEFAULT_SECONDS, **(seconds or {})}
        self.jitter = jitter
        self._seconds_clock = clock
        self.active_at: dict[str, float] = {}

    def advance(self) -> None:
        now = self._seconds_clock()
        with self._lock:
            for op in list(self._ops.values()):
                if op.done:
                    continue
                began = datetime.strptime(op.created, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC).timestamp()
                spread = self.jitter * (zlib.crc32(op.target.encode()) % 1000) / 1000
                due = began + self.seconds.get(op.kind, 0.0) + spread
                if due <= now:
                    self._finish(op)
                    if op.kind == "create" and op.error is None:
                        self.active_at.setdefault(op.target, due)

    def handle(self, verb: str, raw_path: str, body: dict[str, Any] | None) -> tuple[int, dict[str, Any]]:
        self.advance()
        return super().handle(verb, raw_path, body)


# --- store back ends -----------------------------------------------------------------------------
def firestore_available() -> bool:
    return bool(shutil.which("gcloud") and shutil.which(os.environ.get("JAVA", "java")))


@dataclass
class Backend:
    """Where the bot keeps its records during a benchmark: the Firestore emulator or SQLite."""

    kind: str  # "firestore" or "sqlite"
    host: str = ""  # the Firestore emulator's host:port
    tmp: str = ""
    warm_up: list[float] = field(default_factory=list)  # seconds of each block of warm_emulator
    _count: int = 0

    def describe(self) -> str:
        if self.kind != "firestore":
            return "embedded SQLite (a file)"
        blocks = " ".join(f"{s:.2f}" for s in self.warm_up)
        return f"Firestore emulator at {self.host} (warmed up, seconds per block of {WARM_CALLS} calls: {blocks})"

    def fresh(self) -> dict[str, str]:
        """Environment for a bot process with a store of its own, empty."""
        self._count += 1
        if self.kind == "firestore":
            return {
                "NOTEBOOK_BOT_STORE": "firestore",
                "FIRESTORE_EMULATOR_HOST": self.host,
                "GOOGLE_CLOUD_PROJECT": new_project_id().replace("test-", "bench-"),
            }
        return {
            "NOTEBOOK_BOT_STORE": f"sqlite:{self.tmp}/store-{self._count}.sqlite3",
            "GOOGLE_CLOUD_PROJECT": "bench-project",
        }

    def open(self, env: dict[str, str]) -> Any:
        """The same store in this process (the Store protocol), for benchmarks that run Services here."""
        from bot.adapters.store import open_store

        os.environ.update(env)
        return open_store(env["NOTEBOOK_BOT_STORE"], env["GOOGLE_CLOUD_PROJECT"])

    def empty(self, env: dict[str, str], store: Any) -> Any:
        """The store `env` names, emptied: Firestore keeps its client (and warm connection) and
        deletes the project's documents; SQLite starts a new file."""
        if self.kind == "firestore":
            reset_firestore(self.host, env["GOOGLE_CLOUD_PROJECT"])
            return store
        env.update(self.fresh())
        return self.open(env)


@contextlib.contextmanager
def store_backend(choice: str) -> Iterator[Backend]:
    """`auto` is the Firestore emulator when gcloud and java are installed (production-like), else SQLite."""
    if choice == "auto":
        choice = "firestore" if firestore_available() else "sqlite"
        if choice == "sqlite":
            print("note: gcloud/java not found, so the embedded SQLite store stands in for Firestore")
    with tempfile.TemporaryDirectory(prefix="nb-bench-") as tmp:
        if choice == "firestore":
            with firestore_emulator() as host:
                yield Backend("firestore", host=host, tmp=tmp, warm_up=warm_emulator(host))
        else:
            yield Backend("sqlite", tmp=tmp)


WARM_BLOCK = 50  # exercises of warm_emulator's block, from 8 threads: 7 calls each
WARM_CALLS = 7 * WARM_BLOCK


def warm_emulator(host: str, blocks: int = 8, limit: float = 40.0) -> list[float]:
    """Bring the emulator's JVM up to speed before anything is measured; returns each block's seconds.

    The emulator is a JVM started for this run, and it serves its first few thousand requests
    interpreted or half-compiled, with its JIT compiler threads taking CPU from everything else on
    the machine; production's Firestore is a service that is always warm. Measured (2026-12-02, on
    the shared 2-core machine): the same block of 350 calls from 8 threads took 3.6, 1.6, 1.3, 0.9 s,
    then 0.7-0.9 s from the 6th block on. After the single block this function used to run, a bot's
    first burst of 50 `/notebook new` cost the emulator 1.0-1.3 s of CPU (0.4-0.6 s of it compiling)
    against 0.5-0.8 s for the same calls in the next burst, and its p99 was 0.6-1.2 s against 0.3-0.5 s;
    warming the bot's own project instead of one of its own did no better, so the cost is the JVM's,
    not a project's (benchmarks/README.md, "The first burst"). Every kind of call the store makes,
    from 8 threads at once, on a project of its own: the bot's project starts empty, as ever."""
    from concurrent.futures import ThreadPoolExecutor

    from bot.adapters.firestore import FirestoreStore

    store = FirestoreStore.connect("bench-warm-up", emulator=host)

    def exercise(n: int) -> None:  # 7 calls, like a launch's request path and its first steps
        key, owner = f"k{n}", f"U{n % WARM_BLOCK}"
        store.get_many([("launches", key), ("notebooks", key)])
        store.query("notebooks", owner=owner)
        notebook = ("notebooks", key, {"id": key, "owner": owner})
        store.create_and_put("launches", key, {"id": key, "open": True, "next_at": 0.0}, [("audit", key, {}), notebook])
        store.update("launches", key, lambda d: {**(d or {}), "n": n})  # begin, read, commit
        store.due("launches", 1.0, limit=10)

    seconds: list[float] = []
    started = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        for block in range(blocks):
            began = time.perf_counter()
            list(pool.map(exercise, range(block * WARM_BLOCK, (block + 1) * WARM_BLOCK)))
            seconds.append(time.perf_counter() - began)
            if time.perf_counter() - started > limit:
                break
    return seconds


def emulator_cpu(host: str) -> Callable[[], tuple[float, float]] | None:
    """CPU seconds used so far by the Firestore emulator's JVM at `host`, in all and in its JIT
    compiler threads (from /proc); None when its process is not found (not Linux, or not running)."""
    port = host.rsplit(":", 1)[1].encode()
    pid = None
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):
            args = cmdline.read_bytes().split(b"\0")
            if args[0].endswith(b"java") and b"--port=" + port in args:
                pid = cmdline.parent.name
                break
    if pid is None:
        return None
    tick = os.sysconf("SC_CLK_TCK")

    def used() -> tuple[float, float]:
        total = jit = 0.0
        for task in Path(f"/proc/{pid}/task").glob("*"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
                seconds = (int(fields[11]) + int(fields[12])) / tick  # utime + stime
                total += seconds
                if "Compiler" in (task / "comm").read_text():  # "C1 CompilerThre", "C2 CompilerThre"
                    jit += seconds
        return total, jit

    return used


def add_store_flag(parser: Any, default: str = "auto") -> None:
    parser.add_argument(
        "--store",
        choices=("auto", "firestore", "sqlite"),
        default=default,
        help="the bot's store: the Firestore emulator, embedded SQLite, or auto (Firestore if gcloud is present)",
    )


# --- counting store ------------------------------------------------------------------------------
class CountingStore:
    """Any Store, forwarded, with every call counted by (method, collection) and the documents it
    read and wrote. `update` counts one read per run of its change function (a retried transaction
    reads again) and a write when the change returns a document; `update_many` and `put_many` count
    each of their documents the same way. Unknown methods (a rewrite may add some) are forwarded and
    counted; a list they return counts as that many documents read."""

    KNOWN = (
        "get",
        "get_many",
        "create",
        "create_and_put",
        "put",
        "update",
        "update_many",
        "put_many",
        "query",
        "delete",
    )

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self._lock = threading.Lock()
        self.calls: Counter[tuple[str, str]] = Counter()
        self.reads: Counter[str] = Counter()  # by collection
        self.writes: Counter[str] = Counter()

    def _count(self, method: str, collection: str, reads: int = 0, writes: int = 0) -> None:
        with self._lock:
            self.calls[method, collection] += 1
            self.reads[collection] += reads
            self.writes[collection] += writes

    def snapshot(self) -> dict[str, Counter]:
        with self._lock:
            return {"calls": Counter(self.calls), "reads": Counter(self.reads), "writes": Counter(self.writes)}

    def get(self, collection: str, key: str) -> Any:
        doc = self.inner.get(collection, key)
        self._count("get", collection, reads=1)
        return doc

    def get_many(self, keys: list[tuple[str, str]]) -> list[Any]:
        """One round trip: counted as a call on each collection it reads, one read per document."""
        docs = self.inner.get_many(keys)
        for collection, n in Counter(c for c, _ in keys).items():
            self._count("get_many", collection, reads=n)
        return docs

    def create(self, collection: str, key: str, doc: Any) -> bool:
        created = self.inner.create(collection, key, doc)
        self._count("create", collection, writes=int(bool(created)))
        return created

    def create_and_put(self, collection: str, key: str, doc: Any, others: list[tuple[str, str, Any]]) -> bool:
        """One write: counted on `collection`, with each document written where it went."""
        created = self.inner.create_and_put(collection, key, doc, others)
        self._count("create_and_put", collection, writes=int(bool(created)))
        for other, _, _ in others if created else ():
            self._count("create_and_put", other, writes=1)
        return created

    def put(self, collection: str, key: str, doc: Any) -> None:
        self.inner.put(collection, key, doc)
        self._count("put", collection, writes=1)

    def update(self, collection: str, key: str, change: Callable[[Any], Any]) -> Any:
        runs: list[bool] = []

        def counted(doc: Any) -> Any:
            new = change(doc)
            runs.append(new is not None)
            return new

        try:
            return self.inner.update(collection, key, counted)
        finally:
            self._count("update", collection, reads=len(runs), writes=int(bool(runs and runs[-1])))

    def update_many(self, collection: str, changes: dict[str, Callable[[Any], Any]]) -> Any:
        """One transaction over several documents: reads and writes counted per document, as `update`."""
        runs: dict[str, list[bool]] = {key: [] for key in changes}

        def counted(key: str, change: Callable[[Any], Any]) -> Callable[[Any], Any]:
            def run(doc: Any) -> Any:
                new = change(doc)
                runs[key].append(new is not None)
                return new

            return run

        try:
            return self.inner.update_many(collection, {key: counted(key, ch) for key, ch in changes.items()})
        finally:
            reads = sum(len(r) for r in runs.values())
            self._count("update_many", collection, reads=reads, writes=sum(bool(r and r[-1]) for r in runs.values()))

    def put_many(self, collection: str, docs: dict[str, Any]) -> None:
        self.inner.put_many(collection, docs)
        self._count("put_many", collection, writes=len(docs))

    def query(self, collection: str, **where: Any) -> list[Any]:
        docs = self.inner.query(collection, **where)
        self._count("query", collection, reads=len(docs))
        return docs

    def delete(self, collection: str, key: str) -> None:
        self.inner.delete(collection, key)
        self._count("delete", collection, writes=1)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.inner, name)
        if name.startswith("_") or not callable(value):
            return value

        def forwarded(*args: Any, **kwargs: Any) -> Any:
            result = value(*args, **kwargs)
            collection = args[0] if args and isinstance(args[0], str) else str(kwargs.get("collection", "?"))
            self._count(name, collection, reads=len(result) if isinstance(result, list) else 0)
            return result

        return forwarded


def diff(after: dict[str, Counter], before: dict[str, Counter]) -> dict[str, Counter]:
    return {k: after[k] - before[k] for k in after}


def by_method(calls: Counter) -> Counter:
    """(method, collection) counts folded by method."""
    out: Counter[str] = Counter()
    for (method, _), n in calls.items():
        out[method] += n
    return out


def fmt_counts(counts: Counter | dict[str, int], width: int = 0) -> str:
    text = " ".join(f"{k}={v}" for k, v in sorted(counts.items()) if v) or "-"
    return text.ljust(width) if width else text


# --- serving -------------------------------------------------------------------------------------
FALLBACK_GUNICORN = {"workers": 1, "threads": 8, "worker_class": "gthread", "timeout": 0}


def production_gunicorn() -> dict[str, Any]:
    """The gunicorn settings `notebook-bot serve` uses, read from bot/run/server.py so the bare Bolt
    app is served exactly the same way. INTERNAL: finds the dict literal that has a "worker_class"
    key; falls back to FALLBACK_GUNICORN (and says so) if the file no longer has one."""
    source = (ROOT / "bot" / "run" / "server.py").read_text()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Dict) and any(
            isinstance(k, ast.Constant) and k.value == "worker_class" for k in node.keys
        ):
            found = {
                k.value: v.value
                for k, v in zip(node.keys, node.values, strict=True)
                if isinstance(k, ast.Constant) and isinstance(v, ast.Constant)
            }
            settings = {k: found[k] for k in FALLBACK_GUNICORN if k in found}
            if len(settings) == len(FALLBACK_GUNICORN):
                return settings
    print(f"note: could not read the gunicorn settings from bot/run/server.py; using {FALLBACK_GUNICORN}")
    return dict(FALLBACK_GUNICORN)


def command_for(variant: str, port: int) -> list[str]:
    """How to start a variant: the real `notebook-bot serve`, or the bare Bolt app under the same gunicorn."""
    if variant == "bot":
        return [sys.executable, "-m", "bot", "serve"]
    g = production_gunicorn()
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--chdir",
        str(BENCHMARKS),
        "--workers",
        str(g["workers"]),
        "--threads",
        str(g["threads"]),
        "--worker-class",
        str(g["worker_class"]),
        "--timeout",
        str(g["timeout"]),
        "--bind",
        f"127.0.0.1:{port}",
        "bare_bolt_app:wsgi",
    ]


VARIANTS = ("bare Bolt", "bot")
LABELS = {"bare Bolt": "bare", "bot": "bot"}


@dataclass
class Rig:
    """What a script that spawns `serve` processes needs: a store back end, the Slack and Workbench
    simulators, a directory for the processes' logs, and the environment that points them there."""

    backend: Backend
    slack: SlackSimulator
    workbench: WorkbenchSimulator
    logs: str
    env: dict[str, str]

    def serve(self, variant: str, fresh_store: bool = True) -> Served:
        """A fresh process tree of `variant`, with an empty store of its own unless told otherwise."""
        return Served(variant, {**self.env, **(self.backend.fresh() if fresh_store else {})}, self.logs)


@contextlib.contextmanager
def rig(store: str, prefix: str, **slack: Any) -> Iterator[Rig]:
    with (
        store_backend(store) as backend,
        SlackSimulator(**slack) as slack_sim,
        WorkbenchSimulator() as workbench,
        tempfile.TemporaryDirectory(prefix=prefix) as logs,
    ):
        yield Rig(backend, slack_sim, workbench, logs, base_env(slack_sim, workbench))


def base_env(slack: SlackSimulator, workbench: WorkbenchSimulator | None) -> dict[str, str]:
    env = {
        **os.environ,
        "SLACK_BOT_TOKEN": slack.bot_token,
        "SLACK_SIGNING_SECRET": SECRET,
        "SLACK_API_URL": slack.base_url,
        "HOST": "127.0.0.1",
        "LOG_LEVEL": os.environ.get("LOG_LEVEL", "WARNING"),
    }
    if workbench is not None:
        env["NOTEBOOKS_EMULATOR_HOST"] = workbench.host
    for name in ("NOTEBOOK_BOT_STORE", "GOOGLE_CLOUD_PROJECT", "FIRESTORE_EMULATOR_HOST", "NOTEBOOK_BOT_CONFIG"):
        env.pop(name, None)
    return env


class Served:
    """A gunicorn process tree (master + workers) serving one variant on a free loopback port."""

    def __init__(self, variant: str, env: dict[str, str], log_dir: str) -> None:
        self.variant = variant
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = Path(log_dir) / f"{LABELS.get(variant, variant)}-{self.port}.log"
        self.started = time.perf_counter()
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                command_for(variant, self.port),
                env={**env, "PORT": str(self.port)},
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def driver(self, slack: SlackSimulator) -> SlackDriver:
        return SlackDriver(f"{self.url}/slack/events", SECRET, slack)

    def answers(self, timeout: float = 2.0) -> bool:
        """Whether anything answers HTTP on the port (the bare app 404s /healthz; that counts)."""
        try:
            with _http.open(f"{self.url}/healthz", timeout=timeout):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False

    def wait_ready(self, limit: float = 30.0) -> float:
        """Seconds from spawn until it answers HTTP."""
        while not self.answers():
            self.check_alive()
            if time.perf_counter() - self.started > limit:
                raise RuntimeError(f"{self.variant} did not answer within {limit:.0f} s; log:\n{self.tail()}")
            time.sleep(0.01)
        return time.perf_counter() - self.started

    def check_alive(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"{self.variant} exited with code {self.process.returncode}; log:\n{self.tail()}")

    def pids(self) -> list[int]:
        """The master and all its descendants (gunicorn workers)."""
        children: dict[int, list[int]] = {}
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = stat.read_text().rsplit(")", 1)[1].split()
                children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
        found, todo = [], [self.process.pid]
        while todo:
            pid = todo.pop()
            found.append(pid)
            todo.extend(children.get(pid, []))
        return found

    def rss_mb(self) -> float:
        """Resident memory of master + workers, from /proc/PID/status (VmRSS), in MB (10^6 bytes)."""
        total_kb = 0
        for pid in self.pids():
            with contextlib.suppress(OSError):
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total_kb += int(line.split()[1])
        return total_kb * 1024 / 1e6

    def cpu_seconds(self) -> float:
        """CPU (user + system) used so far by the master and its live workers, from /proc."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0.0
        for pid in self.pids():
            with contextlib.suppress(OSError, ValueError, IndexError):
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / tick
        return total

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:]) or "(no output)"
        except OSError:
            return "(no log)"

    def stop(self) -> None:
        for sig, wait in ((signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=wait)
                return

    def __enter__(self) -> Served:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def timed_reply(driver: SlackDriver, user: str, text: str, channel: str = "C0GENERAL") -> tuple[float | None, int, str]:
    """Seconds until the app answered a signed slash command (None: no answer), the HTTP status and body."""
    started = time.perf_counter()
    try:
        response = driver.command(user, text, channel=channel)
    except OSError:  # refused, reset, or the driver's 10 s timeout
        return None, 0, ""
    return time.perf_counter() - started, response.status, response.body


def timed_command(driver: SlackDriver, user: str, text: str, channel: str = "C0GENERAL") -> tuple[float | None, int]:
    seconds, status, _ = timed_reply(driver, user, text, channel)
    return seconds, status


# --- in-process bot ------------------------------------------------------------------------------
@dataclass
class InProcess:
    services: Any
    url: str
    driver: SlackDriver
    server: Any = field(repr=False, default=None)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve_in_process(services: Any, slack: SlackSimulator) -> InProcess:
    """The bot's real WSGI app (Bolt and all) on a loopback thread, as tests/harness.py serves it.
    INTERNAL: bot.run.server.build_web_app and serve_in_thread."""
    from bot.run.server import build_web_app, serve_in_thread

    server, port = serve_in_thread(build_web_app(services))
    url = f"http://127.0.0.1:{port}"
    return InProcess(services, url, SlackDriver(f"{url}/slack/events", SECRET, slack), server)


class LogCounter(logging.Handler):
    """Counts the bot's warnings and errors by level (in-process benchmarks), keeping the first few
    distinct ones (their first line)."""

    KEEP = 5

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.counts: Counter[str] = Counter()
        self.first: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.counts[record.levelname] += 1
        with contextlib.suppress(Exception):
            line = f"{record.levelname} {record.name}: {record.getMessage().strip().splitlines()[0][:200]}"
            if len(self.first) < self.KEEP and line not in self.first:
                self.first.append(line)

    @classmethod
    def install(cls) -> LogCounter:
        handler = cls()
        root = logging.getLogger()
        root.handlers = [handler]
        root.setLevel(logging.WARNING)
        return handler

    def summary(self) -> str:
        if not self.counts:
            return "bot log: no warnings or errors"
        return f"bot log: {fmt_counts(self.counts)}; first: " + " | ".join(self.first)


def dumps(value: Any) -> str:
    return json.dumps(value, default=str, ensure_ascii=False)
