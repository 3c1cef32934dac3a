"""One contract, two stores: the embedded SQLite store and Firestore (on its emulator)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from bot.adapters.firestore import FirestoreStore
from bot.adapters.store import MAX_BATCH, SqliteStore, Store


@pytest.fixture(params=["sqlite", "firestore"])
def store(request: pytest.FixtureRequest, tmp_path) -> Iterator[Store]:
    if request.param == "sqlite":
        yield SqliteStore(tmp_path / "store.sqlite3")
    else:
        request.getfixturevalue("firestore_host")
        project = request.getfixturevalue("firestore_project")
        yield FirestoreStore.connect(project)


def test_create_refuses_an_existing_key_and_keeps_the_first_doc(store: Store) -> None:
    assert store.create("things", "a", {"v": 1})
    assert not store.create("things", "a", {"v": 2})
    assert store.get("things", "a") == {"v": 1}
    assert store.get("things", "missing") is None


def test_get_many_reads_docs_of_several_collections_in_the_order_asked(store: Store) -> None:
    store.put("things", "a", {"v": 1})
    store.put("others", "a", {"v": 2})
    store.put("things", "b", {"v": 3})
    asked = [("things", "b"), ("others", "missing"), ("others", "a"), ("things", "a")]
    assert store.get_many(asked) == [{"v": 3}, None, {"v": 2}, {"v": 1}]
    assert store.get_many([]) == []


def test_create_and_put_writes_all_or_nothing(store: Store) -> None:
    assert store.create_and_put("things", "a", {"v": 1}, [("log", "1", {"e": "a"}), ("log", "2", {"e": "b"})])
    assert store.get_many([("things", "a"), ("log", "1"), ("log", "2")]) == [{"v": 1}, {"e": "a"}, {"e": "b"}]
    assert not store.create_and_put("things", "a", {"v": 2}, [("log", "3", {"e": "c"})])
    assert store.get_many([("things", "a"), ("log", "3")]) == [{"v": 1}, None]


def test_documents_round_trip_nested_values(store: Store) -> None:
    doc = {"at": 1732846800.25, "spec": {"gpu": "l4", "buckets": ["a", "b/c"]}, "open": True, "none": None}
    store.put("things", "x", doc)
    assert store.get("things", "x") == doc


def test_update_writes_what_the_change_returns(store: Store) -> None:
    store.put("things", "a", {"n": 1})
    after = store.update("things", "a", lambda d: {**d, "n": d["n"] + 1})
    assert after == {"n": 2}
    assert store.get("things", "a") == {"n": 2}


def test_update_returning_none_changes_nothing(store: Store) -> None:
    store.put("things", "a", {"n": 1})
    assert store.update("things", "a", lambda d: None) == {"n": 1}
    assert store.update("things", "missing", lambda d: None) is None
    assert store.get("things", "missing") is None


def test_update_can_create_a_missing_doc(store: Store) -> None:
    assert store.update("things", "new", lambda d: {"n": 0} if d is None else None) == {"n": 0}
    assert store.get("things", "new") == {"n": 0}


def test_an_exception_in_the_change_aborts_the_write(store: Store) -> None:
    store.put("things", "a", {"n": 1})

    def boom(doc):
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        store.update("things", "a", boom)
    assert store.get("things", "a") == {"n": 1}


def test_update_many_changes_each_doc_as_it_stands_in_one_transaction(store: Store) -> None:
    store.put("things", "a", {"n": 1})
    store.put("things", "b", {"n": 5})
    stood = store.update_many(
        "things",
        {
            "a": lambda d: {**d, "n": d["n"] + 1},
            "b": lambda d: None,  # writes nothing
            "new": lambda d: {"n": 0} if d is None else None,
            "missing": lambda d: None,
        },
    )
    assert stood == {"a": {"n": 2}, "b": {"n": 5}, "new": {"n": 0}, "missing": None}
    assert [store.get("things", k) for k in ("a", "b", "new", "missing")] == [{"n": 2}, {"n": 5}, {"n": 0}, None]
    assert store.update_many("things", {}) == {}


def test_an_exception_in_one_change_of_many_writes_none_of_them(store: Store) -> None:
    store.put("things", "a", {"n": 1})

    def boom(doc):
        raise RuntimeError("no")

    with pytest.raises(RuntimeError):
        store.update_many("things", {"a": lambda d: {"n": 2}, "b": boom})
    assert store.get("things", "a") == {"n": 1} and store.get("things", "b") is None


def test_put_many_writes_every_doc(store: Store) -> None:
    store.put("things", "a", {"n": 0})
    store.put_many("things", {"a": {"n": 1}, "b": {"n": 2}})
    store.put_many("things", {})
    assert [store.get("things", k) for k in ("a", "b")] == [{"n": 1}, {"n": 2}]


def test_one_write_holds_at_most_a_batch(store: Store) -> None:
    with pytest.raises(ValueError):
        store.put_many("things", {str(n): {"n": n} for n in range(MAX_BATCH + 1)})
    assert store.get("things", "0") is None


def test_concurrent_updates_lose_nothing(store: Store) -> None:
    store.put("counters", "c", {"n": 0})

    def bump() -> None:
        for _ in range(5):
            store.update("counters", "c", lambda d: {"n": d["n"] + 1})

    # Two writers, as two bot replicas would be; the Firestore emulator times out under heavier
    # contention on one document (a known emulator limit, not one of Firestore itself).
    threads = [threading.Thread(target=bump) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert store.get("counters", "c") == {"n": 10}


def test_query_by_equality_and_by_any_of(store: Store) -> None:
    store.put("nb", "1", {"owner": "U1", "state": "ACTIVE"})
    store.put("nb", "2", {"owner": "U1", "state": "STOPPED"})
    store.put("nb", "3", {"owner": "U2", "state": "ACTIVE"})
    store.put("other", "4", {"owner": "U1", "state": "ACTIVE"})
    assert sorted(d["state"] for d in store.query("nb", owner="U1")) == ["ACTIVE", "STOPPED"]
    assert len(store.query("nb", state=["ACTIVE", "STOPPED"])) == 3
    assert store.query("nb", owner="U1", state="STOPPED") == [{"owner": "U1", "state": "STOPPED"}]
    assert store.query("nb", owner="nobody") == []
    assert len(store.query("nb")) == 3


def test_delete_removes_the_doc(store: Store) -> None:
    store.put("things", "a", {"n": 1})
    store.delete("things", "a")
    store.delete("things", "never-there")
    assert store.get("things", "a") is None


def test_two_sqlite_stores_on_one_file_serialise_their_transactions(tmp_path) -> None:
    """Two bot processes on one laptop share the file; their updates must not interleave."""
    path = tmp_path / "shared.sqlite3"
    first, second = SqliteStore(path), SqliteStore(path)
    first.put("counters", "c", {"n": 0})

    def bump(store: Store) -> None:
        for _ in range(25):
            store.update("counters", "c", lambda d: {"n": d["n"] + 1})

    threads = [threading.Thread(target=bump, args=(s,)) for s in (first, second)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert second.get("counters", "c") == {"n": 50}


def test_due_reads_only_open_records_whose_time_has_come_soonest_first(store: Store) -> None:
    store.put("queue", "later", {"id": "later", "open": True, "next_at": 200.0})
    store.put("queue", "soon", {"id": "soon", "open": True, "next_at": 50.0})
    store.put("queue", "now", {"id": "now", "open": True, "next_at": 100.0})
    store.put("queue", "closed", {"id": "closed", "open": False, "next_at": 0.0})
    store.put("other", "elsewhere", {"id": "elsewhere", "open": True, "next_at": 0.0})
    assert [d["id"] for d in store.due("queue", 100.0)] == ["soon", "now"]
    assert [d["id"] for d in store.due("queue", 100.0, limit=1)] == ["soon"]
    assert store.due("queue", 10.0) == []
