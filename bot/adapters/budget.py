"""The process's pacing of Slack writes, by Slack's rate tiers, shared by every launch.

Slack allows chat.update about 50 times a minute per workspace (Tier 3) and chat.postMessage
about once a second per channel, with short bursts; over a limit it answers 429 with Retry-After.
A per-launch timer multiplies with the launches in flight; a budget doesn't. Each process keeps to
its share (the workspace's allowance over `replicas`, the most processes that run at once), as a
token bucket whose burst plus a minute's refill is that share, so no 60 s window goes over it.

Writes have a priority: an urgent one (a change of state) may use the whole bucket, a routine one
(a progress refresh, a launch message) leaves a reserve for urgent ones, and a pass's announcement
of links (one message per channel per pass, however many launches it names) may borrow up to one
burst ahead, which the routine writes after it then wait out. A write that gets no token is not
made now: its step is simply due again at the next pass. Nothing here waits, and nothing goes out
while Slack's Retry-After holds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

UPDATES_PER_MINUTE = 50.0  # chat.update, per workspace (Tier 3)
POSTS_PER_MINUTE = 60.0  # chat.postMessage, per channel (about 1 a second)


class Budget:
    """A token bucket over `per_minute` in any minute: `burst` at once, the rest refilled evenly."""

    def __init__(self, per_minute: float, clock: Callable[[], float], burst: float | None = None) -> None:
        self.capacity = burst if burst is not None else max(2.0, per_minute / 6)  # about 10 s worth at once
        self.rate = max(per_minute - self.capacity, per_minute / 6) / 60.0
        self.reserve = self.capacity / 3  # what routine takes leave for urgent ones
        self.clock = clock
        self._tokens = self.capacity
        self._at = clock()
        self._held_until = float("-inf")
        self._lock = threading.Lock()

    def take(self, *, urgent: bool = True, borrow: bool = False) -> bool:
        """One call's worth, if there is one now (never waits); a routine call leaves the reserve, a
        borrowing one may take up to one burst ahead."""
        with self._lock:
            if not self._has(urgent=urgent, borrow=borrow):
                return False
            self._tokens -= 1.0
            return True

    def ready(self, *, urgent: bool = True) -> bool:
        """Whether `take` would give a call's worth now (taking nothing)."""
        with self._lock:
            return self._has(urgent=urgent, borrow=False)

    def _has(self, *, urgent: bool, borrow: bool) -> bool:
        now = self._refill()
        floor = 1.0 - self.capacity if borrow else 1.0 + (0.0 if urgent else self.reserve)
        return now >= self._held_until and self._tokens >= floor

    def full(self) -> bool:
        """Whether the bucket is back to a fresh one's state (all its burst, no hold)."""
        with self._lock:
            return self._refill() >= self._held_until and self._tokens >= self.capacity

    def spend(self) -> None:
        """Count a call made without asking (one that can't wait): the calls after it wait longer,
        a minute's share at most (past that, Slack's own 429s do the pacing)."""
        with self._lock:
            self._refill()
            self._tokens = max(self._tokens - 1.0, -(self.capacity + self.rate * 60))

    def hold(self, seconds: float) -> None:
        """Slack said Retry-After: nothing until then, and an empty bucket after it."""
        with self._lock:
            now = self._refill()
            self._held_until = max(self._held_until, now + seconds)
            self._tokens = min(self._tokens, 0.0)

    def _refill(self) -> float:
        now = self.clock()
        if now >= self._held_until:
            since = max(self._at, self._held_until)  # a hold's time refills nothing
            self._tokens = min(self.capacity, self._tokens + max(0.0, now - since) * self.rate)
        self._at = now
        return now


class Pacing:
    """chat.update from one budget for the process; chat.postMessage from one budget per channel."""

    KEEP_CHANNELS = 1000  # past this many channels (DMs count), full buckets are forgotten

    def __init__(self, clock: Callable[[], float], replicas: int = 1) -> None:
        self.clock = clock
        self.replicas = max(1, replicas)
        self.updates = Budget(UPDATES_PER_MINUTE / self.replicas, clock)
        self._posts: dict[str, Budget] = {}
        self._posts_held = 0.0  # a 429 on a post holds every channel (the reply doesn't say which)
        self._lock = threading.Lock()

    def update(self, *, urgent: bool) -> bool:
        return self.updates.take(urgent=urgent)

    def post(self, channel: str, *, urgent: bool = False) -> bool:
        return self._channel(channel).take(urgent=urgent)

    def can_post(self, channel: str) -> bool:
        """Whether a routine post in `channel` would get a token now (taking none)."""
        return self._channel(channel).ready(urgent=False)

    def announce(self, channel: str) -> bool:
        """A pass's announcement of links in `channel`: it borrows rather than waits for a token."""
        return self._channel(channel).take(borrow=True)

    def rate_limited(self, method: str, retry_after: float) -> None:
        """Slack answered `method` with 429: no paced call of it before `retry_after` seconds."""
        if method == "chat.update":
            self.updates.hold(retry_after)
        elif method == "chat.postMessage":
            with self._lock:
                self._posts_held = max(self._posts_held, self.clock() + retry_after)
                budgets = list(self._posts.values())
            for budget in budgets:
                budget.hold(retry_after)

    def _channel(self, channel: str) -> Budget:
        with self._lock:
            budget = self._posts.get(channel)
            if budget is None:
                if len(self._posts) >= self.KEEP_CHANNELS:
                    self._forget_full()
                budget = self._posts[channel] = Budget(POSTS_PER_MINUTE / self.replicas, self.clock)
                held = self._posts_held - self.clock()
                if held > 0:
                    budget.hold(held)
            return budget

    def _forget_full(self) -> None:
        """Drop the channels whose bucket has refilled: a fresh one is the same, so a process that
        DMs thousands of people over its life keeps only the channels it posted in lately."""
        for channel in [c for c, budget in self._posts.items() if budget.full()]:
            del self._posts[channel]
