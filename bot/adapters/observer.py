"""What Workbench shows of the bot's instances: one list per zone per tick, shared by everyone.

Every launch being created and every stop, start or delete in flight is followed from the same
`instances.list` (filtered by the bot's label) instead of polling its own operation, so a tick
costs one call per zone with work in flight however many launches wait there. A list is taken
on first use in a tick and reused until the next tick begins (`new_tick`), also by steps that
run between ticks (a request's kick), which then see the latest tick's list.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.adapters.workbench import InstanceInfo, Workbench

BOT_LABEL = ("managed-by", "notebook-bot")


@dataclass(frozen=True)
class Seen:
    """One instance as the zone's list showed it (None: not in the list) and when it was taken."""

    info: InstanceInfo | None
    at: float

    def absent_since(self, moment: float) -> bool:
        """Not in a list taken strictly after `moment`: the instance is not there (or is gone).

        A list taken at or before the moment (the create call, say) can't tell "not yet" apart."""
        return self.info is None and self.at > moment


@dataclass(frozen=True)
class _Snapshot:
    instances: dict[str, InstanceInfo]
    at: float
    tick: int


class Observer:
    def __init__(self, workbench: Workbench, clock: Callable[[], float]) -> None:
        self.workbench = workbench
        self.clock = clock
        self._tick = 0
        self._snapshots: dict[str, _Snapshot] = {}
        self._lock = threading.Lock()
        self._zone_locks: dict[str, threading.Lock] = {}

    def new_tick(self) -> None:
        """A reconcile pass begins: the next look at a zone lists it again."""
        with self._lock:
            self._tick += 1

    def look(self, zone: str, instance_id: str) -> Seen:
        snapshot = self._snapshot(zone)
        return Seen(snapshot.instances.get(instance_id), snapshot.at)

    def _snapshot(self, zone: str) -> _Snapshot:
        with self._lock:
            zone_lock = self._zone_locks.setdefault(zone, threading.Lock())
        with zone_lock:  # callers at once share one list call
            with self._lock:
                current, tick = self._snapshots.get(zone), self._tick
            if current is not None and current.tick == tick:
                return current
            at = self.clock()
            found = {i.instance_id: i for i in self.workbench.list(zone, label=BOT_LABEL)}
            snapshot = _Snapshot(found, at, tick)
            with self._lock:
                self._snapshots[zone] = snapshot
            return snapshot
