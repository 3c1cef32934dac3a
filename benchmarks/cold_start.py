"""Cold start to first acknowledgement: `notebook-bot serve` against a bare Bolt app.

Each run starts a fresh process (gunicorn, as on Cloud Run) and sends a signed
`/notebook new tf-2-8 gpu=l4` until it is acknowledged; the time from spawning the process to
that HTTP 200 is what a user's first command after a scale-from-zero waits for. Slack allows 3 s.

Variants, measured in the same run:
  bare Bolt       a Bolt app that only acks (benchmarks/bare_bolt_app.py): the floor
  notebook-bot    the real `notebook-bot serve`, Google clients created on first use
  eager clients   the same, but importing and building the Workbench and Firestore clients first,
                  as a bot that created them at start-up would

    python benchmarks/cold_start.py [--runs 5]
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.sim.slack_api import SlackSimulator  # noqa: E402
from bot.sim.slack_driver import SlackDriver  # noqa: E402
from tests.support.emulators import free_port  # noqa: E402

SECRET = "benchmark-secret"
EAGER = (
    "import sys; from google.auth.credentials import AnonymousCredentials;"
    "from google.cloud import firestore, notebooks_v2;"
    "notebooks_v2.NotebookServiceClient(credentials=AnonymousCredentials(), transport='rest');"
    "firestore.Client(project='bench', credentials=AnonymousCredentials());"
    "from bot.run.cli import main; sys.exit(main(['serve']))"
)
VARIANTS = {
    "bare Bolt": [
        sys.executable,
        "-m",
        "gunicorn",
        "--chdir",
        str(ROOT / "benchmarks"),
        "-w",
        "1",
        "--threads",
        "4",
        "-k",
        "gthread",
        "bare_bolt_app:wsgi",
    ],
    "notebook-bot": [sys.executable, "-m", "bot", "serve"],
    "eager clients": [sys.executable, "-c", EAGER],
}


def first_ack(command: list[str], slack: SlackSimulator, env: dict[str, str]) -> float:
    port = free_port()
    args = [*command, "--bind", f"127.0.0.1:{port}"] if "gunicorn" in command else command
    started = time.perf_counter()
    process = subprocess.Popen(
        args,
        env={**env, "PORT": str(port)},
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    driver = SlackDriver(f"http://127.0.0.1:{port}/slack/events", SECRET, slack)
    try:
        while True:
            try:
                if driver.command("U0ALICE", "new tf-2-8 gpu=l4").status == 200:
                    return time.perf_counter() - started
            except OSError:
                pass
            if process.poll() is not None or time.perf_counter() - started > 30:
                raise RuntimeError(f"{command} never acknowledged")
            time.sleep(0.01)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with SlackSimulator() as slack:
        env = {
            **os.environ,
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.base_url,
            "NOTEBOOK_BOT_STORE": "memory",
            "HOST": "127.0.0.1",
            "NOTEBOOK_BOT_WORKER_INTERVAL": "60",
        }
        results = {name: [first_ack(cmd, slack, env) for _ in range(args.runs)] for name, cmd in VARIANTS.items()}
    floor = statistics.median(results["bare Bolt"])
    print(f"cold start to first ack, {args.runs} runs each (Slack allows 3.000 s)")
    print(f"{'variant':<15} {'median':>8} {'min':>8} {'max':>8} {'vs bare':>9}")
    for name, times in results.items():
        median = statistics.median(times)
        print(f"{name:<15} {median:8.3f} {min(times):8.3f} {max(times):8.3f} {median - floor:+9.3f}")


if __name__ == "__main__":
    main()
