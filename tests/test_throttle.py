"""Periodic work across replicas: one of them takes each period, and none reads the store on the
passes in between (three replicas passing every 3 s cost three reads per period, not per pass)."""

from __future__ import annotations

from itertools import pairwise

from bot.adapters.firestore import FirestoreStore
from bot.domain.leases import Throttle
from tests.support.store_calls import CountedStore

EVERY = 300.0
TICK = 3.0


def test_each_period_is_taken_once_and_replicas_read_once_per_period(store: FirestoreStore) -> None:
    counted = CountedStore(store)
    replicas = [Throttle(counted, "sweep") for _ in range(3)]
    taken: list[tuple[int, float]] = []
    now = 1_000_000.0
    for _ in range(int(3 * EVERY / TICK)):  # three periods of passes, every replica each tick
        for n, replica in enumerate(replicas):
            if replica.take(now, EVERY):
                taken.append((n, now))
        now += TICK
    starts = [at for _, at in taken]
    assert len(taken) == 3 and all(b - a >= EVERY for a, b in pairwise(starts))
    assert counted.count("update", "meta") == 3 * 3  # each replica once a period, not 300 passes × 3


def test_a_replica_that_started_late_does_not_take_a_period_already_taken(store: FirestoreStore) -> None:
    assert Throttle(store, "sync").take(1000.0, EVERY)
    late = Throttle(store, "sync")
    assert not late.take(1000.0 + EVERY / 2, EVERY)
    assert not late.take(1000.0 + EVERY - 1, EVERY)  # answered from memory
    assert late.take(1000.0 + EVERY, EVERY)
