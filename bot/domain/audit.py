"""The audit trail: who did what to which notebook, when. Append-only."""

from __future__ import annotations

import time
import uuid
from typing import Any

from bot.adapters.store import Store


def record(store: Store, at: float, actor: str, action: str, target: str, **detail: Any) -> None:
    """`at` is the bot's clock; `recorded_ns` (the wall clock) orders events that share it."""
    event = {"at": at, "recorded_ns": time.time_ns(), "actor": actor, "action": action, "target": target, **detail}
    store.put("audit", f"{at:017.6f}-{uuid.uuid4().hex[:8]}", event)


def events(store: Store, **where: Any) -> list[dict[str, Any]]:
    return sorted(store.query("audit", **where), key=lambda e: (e["at"], e.get("recorded_ns", 0)))
