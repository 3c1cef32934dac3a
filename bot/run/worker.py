"""The background worker inside `serve` and `socket`: runs reconcile passes on a timer."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Worker:
    def __init__(
        self, run_pass: Callable[[], object], interval: float = 3.0, *, before_pass: Callable[[], object] = lambda: None
    ) -> None:
        self._run_pass = run_pass
        self._interval = interval
        self._before_pass = before_pass  # e.g. Kicks.give_way: a pass waits for acknowledgements in progress
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="notebook-bot-worker", daemon=True)

    def start(self) -> Worker:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            try:
                self._before_pass()
                self._run_pass()
            except Exception:  # a bad pass must not kill the worker; the next one tries again
                log.exception("reconcile pass failed")
