"""The audit trail: who did what to which notebook, when. Append-only."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

from bot.adapters.store import MAX_BATCH, Store

COLLECTION = "audit"


def record(store: Store, at: float, actor: str, action: str, target: str, **detail: Any) -> None:
    """`at` is the bot's clock; `recorded_ns` (the wall clock) orders events that share it."""
    store.put(COLLECTION, *entry(at, actor, action, target, **detail))


def entry(at: float, actor: str, action: str, target: str, **detail: Any) -> tuple[str, dict[str, Any]]:
    """An event as `record` writes it, (key, event), to write later with others (`record_all`)."""
    event = {"at": at, "recorded_ns": time.time_ns(), "actor": actor, "action": action, "target": target, **detail}
    return f"{at:017.6f}-{uuid.uuid4().hex[:8]}", event


def record_all(store: Store, entries: Sequence[tuple[str, dict[str, Any]]]) -> None:
    """Write events made by `entry`, a batch at a time (writing them again changes nothing)."""
    for start in range(0, len(entries), MAX_BATCH):
        store.put_many(COLLECTION, dict(entries[start : start + MAX_BATCH]))


def events(store: Store, **where: Any) -> list[dict[str, Any]]:
    return sorted(store.query(COLLECTION, **where), key=lambda e: (e["at"], e.get("recorded_ns", 0)))
