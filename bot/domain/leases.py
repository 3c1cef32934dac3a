"""Leases on store records: how several workers share one queue without doing a job twice.

A worker claims a record in a transaction (only if no live lease is on it), does one step of
work outside the transaction, then writes the step's result in another transaction that checks
it still holds the lease. A worker that dies leaves a lease that simply expires.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bot.adapters.store import Store

log = logging.getLogger(__name__)

Doc = dict[str, Any]


class LeaseLost(Exception):
    """Another worker took the record over (our lease had expired); our result is discarded."""


def claim(store: Store, collection: str, key: str, worker: str, now: float, seconds: float) -> Doc | None:
    """Take the lease on an open record; None when it is closed, missing or leased by someone else."""
    won: list[bool] = []

    def take(doc: Doc | None) -> Doc | None:
        won.clear()
        if doc is None or not doc.get("open") or doc.get("lease_until", 0) > now:
            return None
        won.append(True)
        return {**doc, "lease_owner": worker, "lease_until": now + seconds, "lease_kick": doc.get("kick", 0)}

    doc = store.update(collection, key, take)
    return doc if won else None


def release(store: Store, collection: str, key: str, worker: str, now: float, changes: Doc) -> Doc:
    """Write a step's changes and drop the lease; raises LeaseLost if the lease is no longer ours."""

    def apply(doc: Doc | None) -> Doc:
        if doc is None or doc.get("lease_owner") != worker:
            raise LeaseLost(key)
        new = {**doc, **changes, "lease_owner": None, "lease_until": 0.0, "updated_at": now}
        if doc.get("kick", 0) != doc.get("lease_kick", 0):
            new["next_at"] = 0.0  # nudged while we worked (a decision, a cancel): look again at once
        return new

    doc = store.update(collection, key, apply)
    assert doc is not None
    return doc


def kick(store: Store, collection: str, key: str, change: Callable[[Doc], Doc | None]) -> Doc | None:
    """Apply `change` to an open record and make it due now, even if a worker holds it meanwhile.

    `change` returns None to refuse (nothing is written; the current doc is returned)."""

    def nudge(doc: Doc | None) -> Doc | None:
        if doc is None:
            return None
        new = change(doc)
        if new is None:
            return None
        return {**new, "kick": doc.get("kick", 0) + 1, "next_at": 0.0}

    return store.update(collection, key, nudge)


def close(store: Store, collection: str, key: str) -> bool:
    """Mark a record done (open=False); True only for the one caller that closed it."""
    closed: list[bool] = []

    def shut(doc: Doc | None) -> Doc | None:
        closed.clear()
        if doc is None or not doc.get("open"):
            return None
        closed.append(True)
        return {**doc, "open": False}

    store.update(collection, key, shut)
    return bool(closed)


def first(store: Store, collection: str, key: str, flag: str) -> bool:
    """Set `flag` on a record; True only for the one caller that set it (at-most-once side effects)."""
    won: list[bool] = []

    def mark(doc: Doc | None) -> Doc | None:
        won.clear()
        if doc is None or doc.get(flag):
            return None
        won.append(True)
        return {**doc, flag: True}

    store.update(collection, key, mark)
    return bool(won)


def due(store: Store, collection: str, now: float) -> list[Doc]:
    """Open records whose next look is due and that nobody holds, oldest first."""
    return [d for d in store.due(collection, now) if d.get("lease_until", 0) <= now]


def work_due(store: Store, collection: str, now: float, advance: Callable[[str], bool]) -> int:
    """One pass over a queue: offer each due record to `advance`; count those it advanced.

    A record that fails (a store transaction that won't commit, say) is logged and left for the
    next pass; it must not hold up every other record behind it.
    """
    advanced = 0
    for doc in due(store, collection, now):
        try:
            advanced += bool(advance(doc["id"]))
        except Exception:
            log.exception("could not advance %s/%s; the next pass tries again", collection, doc["id"])
    return advanced


def throttle(store: Store, key: str, now: float, every: float) -> bool:
    """True for one caller per `every` seconds across all workers (periodic work like sweeps)."""
    took: list[bool] = []

    def take(doc: Doc | None) -> Doc | None:
        took.clear()
        if doc is not None and now - doc.get("at", 0) < every:
            return None
        took.append(True)
        return {"at": now}

    store.update("meta", key, take)
    return bool(took)
