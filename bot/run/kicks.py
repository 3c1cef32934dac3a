"""Steps a request has just recorded, started at once in threads of their own.

The request path writes one record and acknowledges; the first steps of that launch or operation
(Slack posts, Google calls) run here instead of in Bolt's listener threads, so a burst of
requests never queues acknowledgements behind cloud calls. The reconciler would take the same
steps at its next pass anyway: a kick only makes them start now, and one lost in a crash costs a
pass's delay, nothing else.

Kicks also give way to acknowledgements: a kick starts once no request has been on its way to its
acknowledgement for QUIET seconds (at most HOLD_LIMIT seconds after it was kicked), so a burst of
fifty `/notebook new` is acknowledged first and its fifty launches' steps follow, instead of
competing with the acks for the process's CPU and the store. The reconcile worker inside `serve` gives way the same way.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from bot.run.logs import ContextPropagatingExecutor

log = logging.getLogger(__name__)


class Kicks:
    HOLD_LIMIT = 2.0  # seconds a kick gives way to acknowledgements in progress before it starts anyway
    QUIET = 0.15  # seconds without a request on its way to its acknowledgement: the burst is over

    def __init__(self, threads: int = 4) -> None:
        self._pool = ContextPropagatingExecutor(max_workers=threads, thread_name_prefix="notebook-bot-kick")
        self._waiting: set[str] = set()  # kicked and not started yet: a second kick adds nothing
        self._running = 0
        self._acknowledging = 0  # requests on their way to their acknowledgement
        self._acknowledged_at = float("-inf")  # when the last of them was acknowledged (monotonic)
        self._lock = threading.Condition()

    @contextmanager
    def acknowledging(self) -> Iterator[None]:
        """Around a request's path to its acknowledgement: kicks wait until none is in progress."""
        with self._lock:
            self._acknowledging += 1
        try:
            yield
        finally:
            with self._lock:
                self._acknowledging -= 1
                self._acknowledged_at = time.monotonic()
                self._lock.notify_all()

    def submit(self, key: str, steps: Callable[[], object]) -> None:
        """Run `steps` soon in a kick thread; a key already waiting is not queued twice."""
        with self._lock:
            if key in self._waiting:
                return
            self._waiting.add(key)
            self._running += 1
        self._pool.submit(self._run, key, steps)

    def give_way(self) -> None:
        """Wait until no request has been on its way to its acknowledgement for QUIET seconds (the
        next of a burst comes within that), at most HOLD_LIMIT seconds in all."""
        deadline = time.monotonic() + self.HOLD_LIMIT
        with self._lock:
            while (now := time.monotonic()) < deadline:
                quiet_for = now - self._acknowledged_at if self._acknowledging == 0 else 0.0
                if quiet_for >= self.QUIET:
                    return
                self._lock.wait(min(self.QUIET - quiet_for, deadline - now))

    def _run(self, key: str, steps: Callable[[], object]) -> None:
        self.give_way()
        with self._lock:
            self._waiting.discard(key)
        try:
            steps()
        except Exception:  # the record is durable: the next reconcile pass takes it up
            log.exception("steps after a request failed; the next pass carries on")
        finally:
            with self._lock:
                self._running -= 1
                self._lock.notify_all()

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Wait until every kick so far has run (shutdown, tests); False if the time ran out."""
        with self._lock:
            return self._lock.wait_for(lambda: self._running == 0, timeout)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=False)
