"""A shared allowance of Slack calls that can wait: progress refreshes of messages in flight.

Slack allows chat.update about 50 times a minute per workspace (Tier 3) and chat.postMessage
about once a second per channel. A per-launch timer multiplies with the launches in flight; a
budget doesn't: however many launches are being created, their "creating… (4m 10s)" refreshes
share `per_minute` tokens, and what doesn't get one is simply shown at a later refresh. Changes
of state (the link, a failure) never wait for a token: they are what the person is waiting for.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Budget:
    def __init__(self, per_minute: float, clock: Callable[[], float], burst: float | None = None) -> None:
        self.rate = per_minute / 60.0
        self.capacity = burst if burst is not None else max(1.0, per_minute / 6)  # about 10 s worth at once
        self.clock = clock
        self._tokens = self.capacity
        self._at = clock()
        self._lock = threading.Lock()

    def take(self) -> bool:
        """One call's worth, if there is one now (never waits)."""
        with self._lock:
            now = self.clock()
            self._tokens = min(self.capacity, self._tokens + max(0.0, now - self._at) * self.rate)
            self._at = now
            if self._tokens < 1.0:
                return False
            self._tokens -= 1.0
            return True
