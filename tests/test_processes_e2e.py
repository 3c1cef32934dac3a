"""Real `notebook-bot serve` processes (gunicorn) on one Firestore: killed mid-creation, and two
replicas sharing the queue."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from bot.adapters.firestore import FirestoreStore
from bot.sim.slack_api import SlackSimulator
from bot.sim.slack_driver import SlackDriver
from bot.sim.workbench_api import WorkbenchSimulator
from tests.support.emulators import free_port

SECRET = "process-test-secret"


@pytest.fixture
def cloud(firestore_host: str, firestore_project: str) -> Iterator[dict]:
    with SlackSimulator() as slack, WorkbenchSimulator(op_polls_until_done=4) as workbench:
        env = {
            **os.environ,
            "SLACK_BOT_TOKEN": slack.bot_token,
            "SLACK_SIGNING_SECRET": SECRET,
            "SLACK_API_URL": slack.base_url,
            "NOTEBOOKS_EMULATOR_HOST": workbench.host,
            "FIRESTORE_EMULATOR_HOST": firestore_host,
            "GOOGLE_CLOUD_PROJECT": firestore_project,
            "NOTEBOOK_BOT_STORE": "firestore",
            "HOST": "127.0.0.1",
            "NOTEBOOK_BOT_WORKER_INTERVAL": "0.3",
            "NOTEBOOK_BOT_POLL_SECONDS": "0.3",
        }
        store = FirestoreStore.connect(firestore_project)
        yield {"slack": slack, "workbench": workbench, "env": env, "store": store}


@contextmanager
def serve(env: dict[str, str]) -> Iterator[tuple[subprocess.Popen, str]]:
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "bot", "serve"],
        env={**env, "PORT": str(port)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/healthz", timeout=1) as response:
                    if response.status == 200:
                        break
            except OSError:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(f"serve did not start: {process.stderr.read().decode()[-2000:]}") from None
                time.sleep(0.1)
        yield process, url
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        process.stderr.close()


def ready_messages(slack: SlackSimulator) -> list:
    return [m for m in slack.messages() if m.thread_ts is None and "is ready for" in m.text]


def told_ready(slack: SlackSimulator) -> set[str]:
    """The people told their notebook is ready: in their launch message, or (a launch that turned ready
    before its paced message went out) in the pass's announcement, which is then its message."""
    said = [m.text for m in slack.messages() if not m.ephemeral and "ready" in m.text]
    return {user for text in said for user in re.findall(r"<@(U[A-Z0-9]+)>", text)}


def test_a_bot_killed_mid_creation_posts_the_link_exactly_once_after_restart(cloud: dict) -> None:
    slack, workbench, store = cloud["slack"], cloud["workbench"], cloud["store"]
    with serve(cloud["env"]) as (process, url):
        driver = SlackDriver(f"{url}/slack/events", SECRET, slack)
        assert driver.command("U0ALICE", "new tf-2-8 gpu=l4").status == 200
        slack.wait_for(lambda: workbench.count("create") == 1, timeout=20)

        def creating_and_free() -> bool:
            launches = store.query("launches")
            return bool(launches) and launches[0]["state"] == "CREATING" and not launches[0]["lease_owner"]

        slack.wait_for(creating_and_free, timeout=20)
        os.killpg(process.pid, signal.SIGKILL)  # no clean shutdown: the process is simply gone
        process.wait()
    assert ready_messages(slack) == []

    with serve(cloud["env"]):
        # up to a lease (30 s), plus the Firestore emulator's lock timeout if the kill landed in a transaction
        slack.wait_for(lambda: ready_messages(slack), timeout=120)
        time.sleep(2)  # a few more passes: nothing more may be posted
    [ready] = ready_messages(slack)
    posts_with_link = [c for c in slack.calls("chat.postMessage") if "Open JupyterLab" in str(c.args)]
    assert [c.args.get("thread_ts") for c in posts_with_link] == [ready.ts], "the link told once, in its thread"
    assert len([m for m in slack.messages() if m.thread_ts == ready.ts]) == 1, "one ping to the owner"
    assert workbench.count("create") == 1 and len(workbench.instances()) == 1


def test_two_replicas_on_one_firestore_never_create_an_instance_twice(cloud: dict) -> None:
    slack, workbench = cloud["slack"], cloud["workbench"]
    with serve(cloud["env"]) as (_, first), serve(cloud["env"]) as (_, second):
        drivers = [SlackDriver(f"{u}/slack/events", SECRET, slack) for u in (first, second)]
        users = ["U0ALICE", "U0BOB", "U0ADMIN", "U0APPROVER"]
        for n, user in enumerate(users):
            assert drivers[n % 2].command(user, f"new name=replica-{n}").status == 200
        slack.wait_for(lambda: told_ready(slack) == set(users), timeout=90)
        time.sleep(2)
    assert told_ready(slack) == set(users)
    creates = [c for c in workbench.calls() if c.kind == "create"]
    assert len({c.query["instanceId"] for c in creates}) == len(users) == len(workbench.instances())
    assert len({c.query["requestId"] for c in creates}) == len(users) == len(creates), "one create call each"
