"""Where the bot keeps its records: Firestore in production (bot/adapters/firestore.py), SQLite on a laptop.

The store is a small document store (collections of JSON-like dicts keyed by id) with one
transactional primitive, `update` (and `update_many`, the same over several docs), on which
leases, state transitions and "exactly once" are built. Both implementations pass the same
contract tests (tests/test_store_contract.py). Timestamps are stored as float epoch seconds so
both back ends hold the same values.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

Doc = dict[str, Any]
Change = Callable[[Doc | None], Doc | None]
DUE_LIMIT = 500  # records one pass takes on; the rest are due at the next


class Store(Protocol):
    def get(self, collection: str, key: str) -> Doc | None: ...

    def get_many(self, keys: Sequence[tuple[str, str]]) -> list[Doc | None]:
        """Several docs, from any collections, in one round trip: each (collection, key)'s doc or None,
        in the order asked (what a request reads before its one write, read at once)."""
        ...

    def create(self, collection: str, key: str, doc: Doc) -> bool:
        """Write `doc` unless `key` exists; False when it did (nothing is changed then)."""
        ...

    def create_and_put(self, collection: str, key: str, doc: Doc, others: Sequence[tuple[str, str, Doc]]) -> bool:
        """`create`, with `put` of each (collection, key, doc) of `others` in the same write: all of them
        are written, or (when `key` exists) none, and False. A request's record and its audit event in
        one round trip."""
        ...

    def put(self, collection: str, key: str, doc: Doc) -> None: ...

    def update(self, collection: str, key: str, change: Change) -> Doc | None:
        """Read-modify-write in one transaction.

        `change` gets the current doc (or None) and returns the doc to write, or None to
        write nothing. It may run more than once (on contention), so it must not have side
        effects; raising from it aborts the transaction. Returns the doc as it now stands.
        """
        ...

    def update_many(self, collection: str, changes: dict[str, Change]) -> dict[str, Doc | None]:
        """`update` of several docs (at most MAX_BATCH) in one transaction: every change sees its doc
        as it is, and all the docs they return are written, or none. Returns each doc as it now stands."""
        ...

    def put_many(self, collection: str, docs: dict[str, Doc]) -> None:
        """`put` of several docs (at most MAX_BATCH) in one write."""
        ...

    def query(self, collection: str, **where: Any) -> list[Doc]:
        """Docs whose fields equal the given values; a list or tuple value means 'any of these'."""
        ...

    def due(self, collection: str, now: float, limit: int = DUE_LIMIT) -> list[Doc]:
        """Open docs (`open` true) whose `next_at` is at most `now`, soonest first, at most `limit`.

        What a reconcile pass reads: the work that is due, not every open record. On Firestore it
        needs the composite index (open ASC, next_at ASC) on each queue collection (README)."""
        ...

    def delete(self, collection: str, key: str) -> None: ...


MAX_BATCH = 500  # writes in one Firestore transaction or batch


def check_batch(size: int) -> None:
    if size > MAX_BATCH:
        raise ValueError(f"{size} documents in one write; at most {MAX_BATCH}")


def matches(doc: Doc, where: dict[str, Any]) -> bool:
    for field, wanted in where.items():
        value = doc.get(field)
        if isinstance(wanted, list | tuple):
            if value not in wanted:
                return False
        elif value != wanted:
            return False
    return True


class SqliteStore:
    """An embedded store: one SQLite file, safe across threads and processes.

    Transactions take SQLite's write lock up front (BEGIN IMMEDIATE), so two processes sharing
    the file serialise their updates just as Firestore transactions would.
    """

    def __init__(self, path: str | Path = ":memory:") -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS docs (collection TEXT, key TEXT, body TEXT, PRIMARY KEY (collection, key))"
        )
        self._lock = threading.RLock()

    def _read(self, collection: str, key: str) -> Doc | None:
        row = self._db.execute("SELECT body FROM docs WHERE collection = ? AND key = ?", (collection, key)).fetchone()
        return json.loads(row[0]) if row else None

    def _write(self, collection: str, key: str, doc: Doc) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO docs (collection, key, body) VALUES (?, ?, ?)",
            (collection, key, json.dumps(doc)),
        )

    def _transaction(self, work: Callable[[], Any]) -> Any:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                result = work()
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")
            return result

    def get(self, collection: str, key: str) -> Doc | None:
        with self._lock:
            return self._read(collection, key)

    def get_many(self, keys: Sequence[tuple[str, str]]) -> list[Doc | None]:
        with self._lock:
            return [self._read(collection, key) for collection, key in keys]

    def create(self, collection: str, key: str, doc: Doc) -> bool:
        def work() -> bool:
            if self._read(collection, key) is not None:
                return False
            self._write(collection, key, doc)
            return True

        return self._transaction(work)

    def create_and_put(self, collection: str, key: str, doc: Doc, others: Sequence[tuple[str, str, Doc]]) -> bool:
        def work() -> bool:
            if self._read(collection, key) is not None:
                return False
            self._write(collection, key, doc)
            for other in others:
                self._write(*other)
            return True

        return self._transaction(work)

    def put(self, collection: str, key: str, doc: Doc) -> None:
        self._transaction(lambda: self._write(collection, key, doc))

    def update(self, collection: str, key: str, change: Change) -> Doc | None:
        def work() -> Doc | None:
            current = self._read(collection, key)
            new = change(json.loads(json.dumps(current)) if current is not None else None)
            if new is None:
                return current
            self._write(collection, key, new)
            return new

        return self._transaction(work)

    def update_many(self, collection: str, changes: dict[str, Change]) -> dict[str, Doc | None]:
        check_batch(len(changes))

        def work() -> dict[str, Doc | None]:
            stood: dict[str, Doc | None] = {}
            for key, change in changes.items():
                current = self._read(collection, key)
                new = change(json.loads(json.dumps(current)) if current is not None else None)
                if new is not None:
                    self._write(collection, key, new)
                stood[key] = current if new is None else new
            return stood

        return self._transaction(work)

    def put_many(self, collection: str, docs: dict[str, Doc]) -> None:
        check_batch(len(docs))

        def work() -> None:
            for key, doc in docs.items():
                self._write(collection, key, doc)

        self._transaction(work)

    def query(self, collection: str, **where: Any) -> list[Doc]:
        with self._lock:
            rows = self._db.execute("SELECT body FROM docs WHERE collection = ?", (collection,)).fetchall()
        docs = (json.loads(row[0]) for row in rows)
        return [doc for doc in docs if matches(doc, where)]

    def due(self, collection: str, now: float, limit: int = DUE_LIMIT) -> list[Doc]:
        with self._lock:
            rows = self._db.execute(
                "SELECT body FROM docs WHERE collection = ? AND json_extract(body, '$.open') = 1"
                " AND json_extract(body, '$.next_at') <= ? ORDER BY json_extract(body, '$.next_at') LIMIT ?",
                (collection, now, limit),
            ).fetchall()
        return [json.loads(row[0]) for row in rows]

    def delete(self, collection: str, key: str) -> None:
        self._transaction(
            lambda: self._db.execute("DELETE FROM docs WHERE collection = ? AND key = ?", (collection, key))
        )


def open_store(url: str, project: str | None = None) -> Store:
    """`firestore`, `firestore:DATABASE`, `sqlite:PATH` or `memory`."""
    kind, _, rest = url.partition(":")
    if kind == "firestore":
        from bot.adapters.firestore import FirestoreStore

        return FirestoreStore.connect(project, rest or None)
    if kind == "sqlite" and rest:
        return SqliteStore(Path(rest).expanduser())
    if kind == "memory":
        return SqliteStore(":memory:")
    raise ValueError(f"NOTEBOOK_BOT_STORE={url!r} is not one of firestore, firestore:DATABASE, sqlite:PATH, memory")
