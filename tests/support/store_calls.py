"""A real store that also notes each call it forwards, so a test can say what a pass cost."""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

from bot.adapters.store import DUE_LIMIT, Change, Doc, Store

WRITES = ("create", "create_and_put", "put", "update", "delete", "update_many", "put_many")


class CountedStore:
    """Forwards every call to `inner` (a real Store) and counts (method, collection)."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.calls: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    def _note(self, method: str, collection: str) -> None:
        with self._lock:
            self.calls[method, collection] += 1

    def count(self, method: str, collection: str) -> int:
        return self.calls[method, collection]

    def writes(self, collection: str) -> int:
        """Calls that write or may write (an update is a transaction, even one writing nothing)."""
        return sum(self.calls[m, collection] for m in WRITES)

    def get(self, collection: str, key: str) -> Doc | None:
        self._note("get", collection)
        return self.inner.get(collection, key)

    def get_many(self, keys: list[tuple[str, str]]) -> list[Doc | None]:
        for collection in dict.fromkeys(c for c, _ in keys):  # one call, noted once per collection it reads
            self._note("get_many", collection)
        return self.inner.get_many(keys)

    def create(self, collection: str, key: str, doc: Doc) -> bool:
        self._note("create", collection)
        return self.inner.create(collection, key, doc)

    def create_and_put(self, collection: str, key: str, doc: Doc, others: list[tuple[str, str, Doc]]) -> bool:
        self._note("create_and_put", collection)
        return self.inner.create_and_put(collection, key, doc, others)

    def put(self, collection: str, key: str, doc: Doc) -> None:
        self._note("put", collection)
        self.inner.put(collection, key, doc)

    def update(self, collection: str, key: str, change: Change) -> Doc | None:
        self._note("update", collection)
        return self.inner.update(collection, key, change)

    def update_many(self, collection: str, changes: dict[str, Change]) -> dict[str, Doc | None]:
        self._note("update_many", collection)
        return self.inner.update_many(collection, changes)

    def put_many(self, collection: str, docs: dict[str, Doc]) -> None:
        self._note("put_many", collection)
        self.inner.put_many(collection, docs)

    def query(self, collection: str, **where: Any) -> list[Doc]:
        self._note("query", collection)
        return self.inner.query(collection, **where)

    def due(self, collection: str, now: float, limit: int = DUE_LIMIT) -> list[Doc]:
        self._note("due", collection)
        return self.inner.due(collection, now, limit)

    def delete(self, collection: str, key: str) -> None:
        self._note("delete", collection)
        self.inner.delete(collection, key)


class DyingStore(CountedStore):
    """The counted store, except that while `dead` it writes no notebook record in a batch, as a
    process that dies after its messages went out and before its bookkeeping was written."""

    dead = False

    def update_many(self, collection: str, changes: dict[str, Change]) -> dict[str, Doc | None]:
        if collection == "notebooks" and self.dead:
            raise ConnectionError("the process died before the records were written")
        return super().update_many(collection, changes)
