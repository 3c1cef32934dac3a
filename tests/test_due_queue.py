"""A pass over a queue of due records, on the Firestore emulator: records that a look without a lease
finds still waiting (launches whose instance is on its way) don't starve the ones queued behind them,
and a pass still takes on at most its limit of records with work to do."""

from __future__ import annotations

from bot.adapters.firestore import FirestoreStore
from bot.domain.leases import work_due

NOW = 1_000_000.0


def queue(store: FirestoreStore, waiting: int, working: int) -> None:
    """`waiting` records due first (oldest next_at), then `working` records due after them."""
    for n in range(waiting + working):
        kind = "wait" if n < waiting else "work"
        store.put("jobs", f"{kind}{n:03d}", {"id": f"{kind}{n:03d}", "open": True, "next_at": NOW - 1000 + n})


def is_waiting(doc: dict) -> bool:
    return doc["id"].startswith("wait")


def test_a_page_of_waiting_records_does_not_starve_the_records_behind_it(store: FirestoreStore) -> None:
    queue(store, waiting=7, working=3)
    advanced: list[str] = []
    count = work_due(
        store,
        "jobs",
        NOW,
        lambda key: advanced.append(key) or True,
        waiting=lambda d: d["id"].startswith("wait"),
        limit=2,
    )
    assert advanced == ["work007", "work008"] and count == 2, "the first two behind the waiting ones, and no more"


def test_records_held_by_another_worker_or_not_yet_due_are_not_offered(store: FirestoreStore) -> None:
    queue(store, waiting=0, working=3)
    store.put("jobs", "work000", {"id": "work000", "open": True, "next_at": NOW - 5, "lease_until": NOW + 10})
    store.put("jobs", "later", {"id": "later", "open": True, "next_at": NOW + 60})
    advanced: list[str] = []
    work_due(store, "jobs", NOW, lambda key: advanced.append(key) or True)
    assert advanced == ["work001", "work002"]
