"""The REST Firestore store against the emulator: the same documents as the official client, clear
errors, and lost replies recovered (a proxy between the store and the emulator drops them)."""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import suppress

import pytest
from google.cloud import firestore

from bot.adapters.firestore import FirestoreStore, StoreError, _Http

PREFIX = "notebook-bot-"
DOC = {
    "id": "nb:1/ü",
    "count": 3,
    "big": 2**62,
    "at": 1732846800.25,
    "whole": 2.0,
    "open": True,
    "none": None,
    "text": 'héllo ✓ "quoted" `ticks`',
    "spec": {"gpu": "l4", "buckets": ["a", "b/c"], "nested": {"deep": [1, 2.5, {"x": False}]}},
    "empty_list": [],
    "empty_map": {},
}
KEYS = ["plain", "with:colon", "with space", "ünïcode", "dots.and-dashes", "C0123:1700000000.123"]


@pytest.fixture
def official(firestore_project: str) -> firestore.Client:
    return firestore.Client(project=firestore_project)


@pytest.mark.parametrize("key", KEYS)
def test_what_the_official_client_wrote_reads_the_same(store: FirestoreStore, official, key: str) -> None:
    official.collection(PREFIX + "things").document(key).set(DOC)
    assert store.get("things", key) == DOC
    assert store.get_many([("things", key)]) == [DOC]
    assert store.query("things", count=3, open=True) == [DOC]


@pytest.mark.parametrize("key", KEYS)
def test_what_the_store_wrote_the_official_client_reads_the_same(store: FirestoreStore, official, key: str) -> None:
    assert store.create("things", key, DOC)
    snapshot = official.collection(PREFIX + "things").document(key).get()
    assert snapshot.exists and snapshot.to_dict() == DOC
    assert store.update("things", key, lambda d: {**d, "count": d["count"] + 1})["count"] == 4
    assert official.collection(PREFIX + "things").document(key).get().to_dict()["count"] == 4


def test_an_integer_and_a_float_of_the_same_value_keep_their_types(store: FirestoreStore) -> None:
    store.put("things", "n", {"i": 2, "f": 2.0})
    found = store.get("things", "n")
    assert found == {"i": 2, "f": 2.0}
    assert type(found["i"]) is int and type(found["f"]) is float


def test_a_missing_project_database_is_a_clear_error(firestore_project: str) -> None:
    store = FirestoreStore.connect(firestore_project, database="no such db!")
    with pytest.raises(StoreError) as raised:
        store.put("things", "a", {"v": 1})
    assert "Firestore" in str(raised.value) and raised.value.status >= 400


def test_a_value_firestore_cannot_keep_changes_nothing(store: FirestoreStore) -> None:
    with pytest.raises(TypeError, match="cannot keep a set"):
        store.put("things", "a", {"v": {1, 2}})
    assert store.get("things", "a") is None


def test_a_burst_of_threads_connecting_to_google_builds_one_tls_context(monkeypatch) -> None:
    """Each request thread of a fresh process opens its own connection when a burst arrives; a TLS
    context loads the system's CA certificates (about 20 ms of CPU), so the store builds one, not one
    per connection as http.client does when given none."""
    built: list[ssl.SSLContext] = []

    def counted(build):
        def build_and_count(*args, **kwargs):
            built.append(context := build(*args, **kwargs))
            return context

        return build_and_count

    monkeypatch.setattr(ssl, "create_default_context", counted(ssl.create_default_context))
    monkeypatch.setattr(ssl, "_create_default_https_context", counted(ssl._create_default_https_context))
    http_ = _Http("firestore.googleapis.com", secure=True, token=dict)
    connections = []
    threads = [threading.Thread(target=lambda: connections.append(http_._connection())) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(conn) for conn in connections}) == 8, "a keep-alive connection per thread, as before"
    assert len(built) == 1
    assert built[0].verify_mode == ssl.CERT_REQUIRED and built[0].check_hostname


# --- lost replies ------------------------------------------------------------------------------------
class Proxy:
    """A TCP proxy to the emulator. Armed with `drop_next_reply_to`, it forwards the next matching
    request and closes the connection instead of relaying the reply (the write happened, the client
    never hears of it); with `drop_next_request_to`, it closes the connection without forwarding."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self.target = (host, int(port))
        self.drop_next_reply_to = b""  # armed: the next request whose first line contains this
        self.drop_next_request_to = b""
        self.dropped = 0
        self._server = socket.create_server(("127.0.0.1", 0))
        self.address = f"127.0.0.1:{self._server.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client, socket.create_connection(self.target) as upstream:
            while request := _read_message(client):
                if self.drop_next_request_to and self.drop_next_request_to in request.split(b"\r\n", 1)[0]:
                    self.drop_next_request_to = b""
                    self.dropped += 1
                    return  # never arrived
                upstream.sendall(request)
                reply = _read_message(upstream)
                armed = self.drop_next_reply_to
                if armed and armed in request.split(b"\r\n", 1)[0]:
                    self.drop_next_reply_to = b""
                    self.dropped += 1
                    return  # the request was applied; its reply is lost
                client.sendall(reply)

    def close(self) -> None:
        self._server.close()


def _read_message(sock: socket.socket) -> bytes:
    """One HTTP/1.1 message with a Content-Length body (what http.client and the emulator send)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            return b""
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        (int(line.split(b":", 1)[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
        0,
    )
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return head + b"\r\n\r\n" + body


@pytest.fixture
def proxied(firestore_host: str, firestore_project: str) -> Iterator[tuple[FirestoreStore, Proxy]]:
    proxy = Proxy(firestore_host)
    http_ = _Http(proxy.address, secure=False, token=lambda: {"Authorization": "Bearer owner"})
    yield FirestoreStore(http_, firestore_project), proxy
    with suppress(OSError):
        proxy.close()


def test_a_create_whose_reply_was_lost_counts_as_created(proxied, store: FirestoreStore) -> None:
    through_proxy, proxy = proxied
    proxy.drop_next_reply_to = b":commit"
    assert through_proxy.create("things", "a", {"v": 1}) is True
    assert proxy.dropped == 1
    assert store.get("things", "a") == {"v": 1}
    assert through_proxy.create("things", "a", {"v": 1}) is False  # a second create is refused as ever


def test_a_create_that_lost_its_reply_to_someone_elses_doc_is_refused(proxied, store: FirestoreStore) -> None:
    through_proxy, proxy = proxied
    store.put("things", "a", {"v": "theirs"})
    proxy.drop_next_reply_to = b":batchGet"  # a read's reply lost: read again, nothing to recover
    assert through_proxy.get_many([("things", "a")]) == [{"v": "theirs"}]
    assert through_proxy.create("things", "a", {"v": "mine"}) is False
    assert store.get("things", "a") == {"v": "theirs"}


def claimer(runs: list[dict]) -> tuple[list[bool], object]:
    """A change as leases.claim writes one: it notes whether it won in a flag each run starts afresh."""
    won: list[bool] = []

    def claim(doc: dict | None) -> dict | None:
        runs.append(dict(doc or {}))
        won.clear()
        if doc and doc["claimed_by"] is not None:
            return None  # already claimed
        won.append(True)
        return {"claimed_by": "me"}

    return won, claim


@pytest.mark.parametrize(
    ("lost", "runs_of_the_change"),
    [
        ("reply", 1),  # applied, its reply lost: not run again on its own write
        ("request", 2),  # never arrived: run again
    ],
)
def test_a_claim_whose_commit_was_lost_is_won_once(
    proxied, store: FirestoreStore, lost: str, runs_of_the_change: int
) -> None:
    through_proxy, proxy = proxied
    store.put("things", "a", {"claimed_by": None})
    runs: list[dict] = []
    won, claim = claimer(runs)
    setattr(proxy, f"drop_next_{lost}_to", b":commit")
    assert through_proxy.update("things", "a", claim) == {"claimed_by": "me"}
    assert proxy.dropped == 1
    assert won == [True], "the caller learns that it won"
    assert runs == [{"claimed_by": None}] * runs_of_the_change
    assert store.get("things", "a") == {"claimed_by": "me"}


def test_query_for_a_missing_value_finds_the_docs_that_hold_null(store: FirestoreStore) -> None:
    store.put("things", "a", {"owner": None, "v": 1})
    store.put("things", "b", {"owner": "U1", "v": 2})
    assert store.query("things", owner=None) == [{"owner": None, "v": 1}]
