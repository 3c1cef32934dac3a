"""Real Google Cloud emulators for tests, each on a free loopback port.

`firestore_emulator()` runs the Java Firestore emulator through `gcloud` in its own process
group and kills the whole group on exit (gcloud forks a shell script that forks java).
`storage_emulator()` runs gcp-storage-emulator in this process, on a daemon thread.
Both wait until the emulator answers before yielding and clean up even when the body raises.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

FIRESTORE_START_TIMEOUT = 60.0
STORAGE_START_TIMEOUT = 10.0
STOP_TIMEOUT = 10.0

# Never send loopback requests through an HTTP proxy a CI machine may have configured.
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class EmulatorError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def new_project_id() -> str:
    """A project id no other test uses: the emulator keeps each project's data apart."""
    return "test-" + uuid.uuid4().hex[:8]


def _request(method: str, url: str, timeout: float = 2.0) -> tuple[int, str]:
    request = urllib.request.Request(url, method=method)
    try:
        with _http.open(request, timeout=timeout) as response:
            return response.status, response.read().decode(errors="replace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode(errors="replace")


def _answers(url: str, expected: str) -> bool:
    try:
        status, body = _request("GET", url, timeout=1.0)
    except (OSError, urllib.error.URLError):
        return False
    return status == 200 and body.strip() == expected


# --- Firestore ---------------------------------------------------------------------------


def _missing_firestore_tools() -> list[str]:
    missing = []
    if not shutil.which("gcloud"):
        missing.append("`gcloud` is not on PATH (Debian package google-cloud-cli)")
    if not shutil.which(os.environ.get("JAVA", "java")):
        missing.append("`java` is not on PATH (Debian package openjdk-17-jre-headless)")
    return missing


def _group_alive(pgid: int) -> bool:
    """Whether any non-zombie process is left in the group (zombies wait for their reaper)."""
    proc = Path("/proc")
    if proc.is_dir():
        for stat in proc.glob("[0-9]*/stat"):
            with suppress(OSError):
                # pid (comm) state ppid pgrp ...; comm may contain spaces, so split after ')'.
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) == pgid and fields[0] != "Z":
                    return True
        return False
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    pgid = process.pid  # start_new_session=True made the child the leader of its own group
    for sig, wait in ((signal.SIGTERM, STOP_TIMEOUT), (signal.SIGKILL, STOP_TIMEOUT)):
        with suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=0.1)
            if process.returncode is not None and not _group_alive(pgid):
                return
    with suppress(subprocess.TimeoutExpired):
        process.wait(timeout=1)


def _tail(log: Path, lines: int = 40) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return "(no output)"
    return "\n".join(text.splitlines()[-lines:]) or "(no output)"


@contextmanager
def firestore_emulator(timeout: float = FIRESTORE_START_TIMEOUT) -> Iterator[str]:
    """Run `gcloud emulators firestore start` and yield its "127.0.0.1:PORT"."""
    missing = _missing_firestore_tools()
    if missing:
        raise EmulatorError(
            "cannot start the Firestore emulator: "
            + "; ".join(missing)
            + ". The emulator itself is the Debian package google-cloud-cli-firestore-emulator."
        )
    env = {
        **os.environ,
        "CLOUDSDK_CORE_DISABLE_PROMPTS": "1",
        "CLOUDSDK_COMPONENT_MANAGER_DISABLE_UPDATE_CHECK": "1",
        "CLOUDSDK_CORE_DISABLE_USAGE_REPORTING": "1",
    }
    with tempfile.TemporaryDirectory(prefix="firestore-emulator-") as tmp:
        log = Path(tmp) / "emulator.log"
        host = f"127.0.0.1:{free_port()}"
        command = ["gcloud", "emulators", "firestore", "start", f"--host-port={host}"]
        with log.open("wb") as out:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=tmp,
                start_new_session=True,
            )
        try:
            deadline = time.monotonic() + timeout
            while not _answers(f"http://{host}/", "Ok"):
                if process.poll() is not None:
                    raise EmulatorError(
                        f"the Firestore emulator exited with code {process.returncode} before it was ready.\n"
                        f"$ {' '.join(command)}\n{_tail(log)}"
                    )
                if time.monotonic() > deadline:
                    raise EmulatorError(
                        f"the Firestore emulator did not answer on http://{host}/ within {timeout:.0f} s.\n"
                        f"$ {' '.join(command)}\n{_tail(log)}"
                    )
                time.sleep(0.1)
            yield host
        finally:
            _kill_group(process)


def reset_firestore(host: str, project: str) -> None:
    """Delete every document of `project`'s default database in the emulator at `host`."""
    url = f"http://{host}/emulator/v1/projects/{project}/databases/(default)/documents"
    status, body = _request("DELETE", url, timeout=10.0)
    if status != 200:
        raise EmulatorError(f"resetting Firestore project {project!r} failed: HTTP {status}: {body[:500]}")


# --- Cloud Storage -----------------------------------------------------------------------


@contextmanager
def storage_emulator() -> Iterator[str]:
    """Run gcp-storage-emulator (in memory, in this process) and yield "http://127.0.0.1:PORT"."""
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket=None)
    # Its API thread is not a daemon: an interrupted run would hang on it at exit.
    api_thread = getattr(server, "_api", None)
    if isinstance(api_thread, threading.Thread):
        api_thread.daemon = True
    # Server.start() waits without a timeout for the thread to bind; if binding fails it would
    # wait forever, so start it from a throwaway thread and give up after a while.
    starter = threading.Thread(target=server.start, name="storage-emulator-start", daemon=True)
    starter.start()
    starter.join(STORAGE_START_TIMEOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        if starter.is_alive() or not _answers(url + "/", "OK"):
            raise EmulatorError(f"the Cloud Storage emulator did not come up on {url} (port taken?)")
        yield url
    finally:
        if not starter.is_alive():
            server.stop()
