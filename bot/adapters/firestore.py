"""The store on Cloud Firestore (native mode), spoken to over its REST API (v1).

Why not google-cloud-firestore: importing it (gRPC, protobuf, proto-plus) takes 0.3–0.5 s and
about 30 MB, and a `/notebook new` must write its record before Slack's 3 s are up, on a replica
that may have just started. The bot needs eleven operations of one small document store, and the
REST API serves them with the standard library's http.client (one keep-alive connection per
thread) and the same documents: what either client writes, the other reads
(tests/test_firestore_rest.py checks both ways against the emulator).

Semantics match the official client where the bot relies on them: a transaction reads, runs the
change, and commits; ABORTED (contention) and transient errors run it again, up to 10 times.
Writes that may be repeated safely (set, delete) are retried on transient errors; a create is
retried too, and a retry that finds the document already there counts as created only if it holds
what this call wrote. Credentials (in production) come from google-auth, imported on first use.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import math
import os
import random
import re
import select
import ssl
import threading
import time
from collections.abc import Callable, Sequence
from contextlib import suppress
from datetime import datetime
from typing import Any
from urllib.parse import quote

from bot.adapters.store import DUE_LIMIT, Change, Doc, check_batch

log = logging.getLogger(__name__)

API_HOST = "firestore.googleapis.com"
PREFIX = "notebook-bot-"  # of every collection's name, so several bots can share a database
SCOPE = "https://www.googleapis.com/auth/datastore"
TRANSIENT = {429, 500, 502, 503, 504}  # RESOURCE_EXHAUSTED, INTERNAL, UNAVAILABLE, DEADLINE_EXCEEDED
NO_REPLY = "UNAVAILABLE"  # the reason given when the connection failed before a reply
ATTEMPTS = 10  # of a transaction (like the official client's max_attempts) or of a transient error
TIMEOUT = 30.0  # seconds one HTTP exchange may take
SIMPLE_FIELD = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class StoreError(Exception):
    """A Firestore call that failed: the HTTP status, Google's status name and its message."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(f"Firestore {reason or status}: {message}")
        self.status = status
        self.reason = reason
        self.message = message

    @property
    def transient(self) -> bool:
        return self.status in TRANSIENT or self.reason in ("ABORTED", NO_REPLY)

    @property
    def expired_transaction(self) -> bool:
        """What a commit resent after its reply was lost gets: its transaction was used up."""
        return self.status == 400 and "transaction" in self.message.lower()


class _Lost(Exception):
    """The connection failed before a reply came: the request may or may not have been applied."""


# --- values ------------------------------------------------------------------------------------------
def encode(value: Any) -> dict[str, Any]:
    """A Python value as a Firestore Value (JSON form)."""
    if value is None:
        return {"nullValue": None}
    if isinstance(value, bool):
        return {"booleanValue": value}
    if isinstance(value, int):
        return {"integerValue": str(value)}
    if isinstance(value, float):
        if math.isnan(value):
            return {"doubleValue": "NaN"}
        if math.isinf(value):
            return {"doubleValue": "Infinity" if value > 0 else "-Infinity"}
        return {"doubleValue": value}
    if isinstance(value, str):
        return {"stringValue": value}
    if isinstance(value, bytes):
        return {"bytesValue": base64.b64encode(value).decode()}
    if isinstance(value, datetime):
        return {"timestampValue": value.isoformat()}
    if isinstance(value, list | tuple):
        return {"arrayValue": {"values": [encode(v) for v in value]}}
    if isinstance(value, dict):
        return {"mapValue": {"fields": encode_fields(value)}}
    raise TypeError(f"cannot keep a {type(value).__name__} in Firestore")


def encode_fields(doc: Doc) -> dict[str, Any]:
    return {str(k): encode(v) for k, v in doc.items()}


def decode(value: dict[str, Any]) -> Any:
    """A Firestore Value (JSON form) as the Python value the official client returns."""
    kind, raw = next(iter(value.items()))
    if kind == "integerValue":
        return int(raw)
    if kind == "doubleValue":
        return float(raw)  # a number, or "NaN" / "Infinity" as a string
    if kind in ("stringValue", "booleanValue", "nullValue", "referenceValue"):
        return raw
    if kind == "mapValue":
        return decode_fields(raw.get("fields", {}))
    if kind == "arrayValue":
        return [decode(v) for v in raw.get("values", [])]
    if kind == "timestampValue":
        return datetime.fromisoformat(raw)
    if kind == "bytesValue":
        return base64.b64decode(raw)
    if kind == "geoPointValue":
        return (raw.get("latitude", 0.0), raw.get("longitude", 0.0))
    raise ValueError(f"unknown Firestore value {kind}")


def decode_fields(fields: dict[str, Any]) -> Doc:
    return {k: decode(v) for k, v in fields.items()}


def _field(name: str) -> dict[str, str]:
    quoted = name.replace("\\", "\\\\").replace("`", "\\`")
    return {"fieldPath": name if SIMPLE_FIELD.match(name) else f"`{quoted}`"}


# --- transport -----------------------------------------------------------------------------------------
class _Http:
    """One keep-alive connection per thread to the API or the emulator, with the credentials' token.

    The connections share one TLS context: http.client builds one per connection otherwise, loading
    the system's CA certificates each time (about 20 ms of CPU), and a burst reaching a fresh process
    opens a connection in each of its request threads at once."""

    def __init__(self, host: str, secure: bool, token: Callable[[], dict[str, str]]) -> None:
        self.host = host
        self.secure = secure
        self.token = token
        self._local = threading.local()
        self._tls = _tls_context() if secure else None

    def _connection(self) -> http.client.HTTPConnection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            if self._tls is not None:
                conn = http.client.HTTPSConnection(self.host, timeout=TIMEOUT, context=self._tls)
            else:
                conn = http.client.HTTPConnection(self.host, timeout=TIMEOUT)
            self._local.conn = conn
        elif conn.sock is not None and _readable(conn.sock):
            conn.close()  # readable while idle: the server closed this keep-alive; the next request reopens it
        return conn

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """One exchange. Raises StoreError for an error reply, _Lost when the connection failed (the
        request may or may not have been applied: the caller decides whether to send it again)."""
        payload = json.dumps(body).encode() if body is not None else None
        try:
            headers = {"Content-Type": "application/json", **self.token()}
        except Exception as exc:  # google-auth's RefreshError, TransportError: nothing was sent
            raise StoreError(503, "UNAVAILABLE", f"no credentials: {type(exc).__name__}: {exc}") from exc
        conn = self._connection()
        try:
            conn.request(method, path, body=payload, headers=headers)
            response = conn.getresponse()
            data = response.read()
        except (http.client.HTTPException, OSError) as exc:
            conn.close()
            raise _Lost(str(exc) or type(exc).__name__) from exc
        if response.status >= 400:
            raise _error(response.status, data)
        return json.loads(data) if data else {}


def _tls_context() -> ssl.SSLContext:
    """What http.client would build for each connection (verified, ALPN http/1.1), built once."""
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


def _readable(sock: Any) -> bool:
    poller = select.poll()  # not select.select, which fails on descriptors past 1023
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


def _error(status: int, data: bytes) -> StoreError:
    try:
        found = json.loads(data)
        error = next(p["error"] for p in found if "error" in p) if isinstance(found, list) else found["error"]
        return _google_error(status, error)
    except (ValueError, KeyError, TypeError, StopIteration):
        return StoreError(status, "", data[:1000].decode(errors="replace"))


def _google_error(status: int, error: dict[str, Any]) -> StoreError:
    """Google's error object ({code, status, message}) as a StoreError."""
    return StoreError(status, error.get("status", ""), error.get("message", ""))


def _raise_streamed(parts: list[dict[str, Any]]) -> None:
    """batchGet and runQuery answer with a list, in which an error may come after results."""
    for part in parts:
        if "error" in part:
            raise _google_error(int(part["error"].get("code", 500)), part["error"])


def _backoff(attempt: int) -> None:
    time.sleep(min(1.0, 0.05 * 2**attempt) * (0.5 + random.random()))


# --- the store -----------------------------------------------------------------------------------------
class FirestoreStore:
    """Cloud Firestore (native mode). Collections are prefixed so several bots can share a database."""

    def __init__(self, http_: _Http, project: str, database: str = "(default)", prefix: str = PREFIX) -> None:
        self._http = http_
        self._root = f"projects/{project}/databases/{database}/documents"
        self._prefix = prefix

    @classmethod
    def connect(
        cls, project: str | None, database: str | None = None, *, emulator: str | None = None, prefix: str = PREFIX
    ) -> FirestoreStore:
        """The database of `project` (None: the credentials' project). `emulator` (by default
        FIRESTORE_EMULATOR_HOST) points it at the emulator instead, with no credentials."""
        emulator = emulator if emulator is not None else os.environ.get("FIRESTORE_EMULATOR_HOST")
        if emulator:
            project = project or os.environ.get("GOOGLE_CLOUD_PROJECT") or "notebook-bot-local"
            http_ = _Http(emulator, secure=False, token=lambda: {"Authorization": "Bearer owner"})
        else:
            token, found = _credentials()
            project = project or found
            if not project:
                raise ValueError("no Google Cloud project: set GOOGLE_CLOUD_PROJECT")
            http_ = _Http(API_HOST, secure=True, token=token)
        return cls(http_, project, database or "(default)", prefix)

    # --- names
    def _name(self, collection: str, key: str) -> str:
        return f"{self._root}/{self._prefix}{collection}/{key}"

    def _method(self, verb: str) -> str:
        return f"/v1/{quote(self._root, safe='/()')}:{verb}"

    def _call(self, method: str, path: str, body: Any = None, *, once: bool = False) -> Any:
        """A call, sent again on transient errors and lost replies unless `once` (what must not be
        resent blindly: a create, a transaction's reads and commit; their callers decide)."""
        for attempt in range(ATTEMPTS):
            try:
                return self._http.call(method, path, body)
            except StoreError as exc:
                if once or not exc.transient or attempt == ATTEMPTS - 1:
                    raise
            except _Lost as exc:
                if once or attempt == ATTEMPTS - 1:
                    raise StoreError(0, NO_REPLY, f"no reply: {exc}") from exc
            _backoff(attempt)
        raise AssertionError("unreachable")

    # --- reads
    def get(self, collection: str, key: str) -> Doc | None:
        return self._batch_get([self._name(collection, key)])[0]  # as the official client does: a missing
        # document is "missing" there, while a 404 would also be what a missing database answers

    def get_many(self, keys: Sequence[tuple[str, str]]) -> list[Doc | None]:
        return self._batch_get([self._name(c, k) for c, k in keys])

    def _batch_get(self, names: list[str], transaction: str | None = None) -> list[Doc | None]:
        if not names:
            return []
        body: dict[str, Any] = {"documents": list(dict.fromkeys(names))}
        if transaction:
            body["transaction"] = transaction
        parts = self._call("POST", self._method("batchGet"), body, once=transaction is not None)
        _raise_streamed(parts)
        found: dict[str, Doc | None] = {}  # by path below the database, one entry per name, any order
        for part in parts:
            if "found" in part:
                found[_path(part["found"]["name"])] = decode_fields(part["found"].get("fields", {}))
            elif "missing" in part:
                found[_path(part["missing"])] = None
        unanswered = [name for name in names if _path(name) not in found]
        if unanswered:
            raise StoreError(500, "INTERNAL", f"batchGet did not answer for {unanswered[0]}")
        return [found[_path(name)] for name in names]

    def query(self, collection: str, **where: Any) -> list[Doc]:
        if any(isinstance(w, list | tuple) and not w for w in where.values()):
            return []  # "any of nothing" matches nothing (Firestore refuses an empty IN)
        return self._run_query(collection, [_equals(field, wanted) for field, wanted in where.items()])

    def due(self, collection: str, now: float, limit: int = DUE_LIMIT) -> list[Doc]:
        due_now = {"field": _field("next_at"), "op": "LESS_THAN_OR_EQUAL", "value": encode(float(now))}
        return self._run_query(
            collection,
            [_equals("open", True), {"fieldFilter": due_now}],
            orderBy=[{"field": _field("next_at"), "direction": "ASCENDING"}],
            limit=limit,
        )

    def _run_query(self, collection: str, filters: list[dict[str, Any]], **more: Any) -> list[Doc]:
        structured = {"from": [{"collectionId": self._prefix + collection}], **_where(filters), **more}
        parts = self._call("POST", self._method("runQuery"), {"structuredQuery": structured})
        _raise_streamed(parts)
        return [decode_fields(p["document"].get("fields", {})) for p in parts if "document" in p]

    # --- writes
    def _commit(self, writes: list[dict[str, Any]], transaction: str | None = None, *, once: bool = False) -> None:
        body: dict[str, Any] = {"writes": writes}
        if transaction:
            body["transaction"] = transaction
        self._call("POST", self._method("commit"), body, once=once or transaction is not None)

    def _set(self, collection: str, key: str, doc: Doc, *, new: bool = False) -> dict[str, Any]:
        write: dict[str, Any] = {"update": {"name": self._name(collection, key), "fields": encode_fields(doc)}}
        if new:
            write["currentDocument"] = {"exists": False}
        return write

    def create(self, collection: str, key: str, doc: Doc) -> bool:
        return self.create_and_put(collection, key, doc, ())

    def create_and_put(self, collection: str, key: str, doc: Doc, others: Sequence[tuple[str, str, Doc]]) -> bool:
        writes = [self._set(collection, key, doc, new=True), *(self._set(*other) for other in others)]
        retried = False
        for attempt in range(ATTEMPTS):
            try:
                self._commit(writes, once=True)
                return True
            except StoreError as exc:
                if exc.reason == "ALREADY_EXISTS":
                    # a retry that finds our own write: it was applied, only its reply was lost
                    return retried and self._written(writes[:1])
                if not exc.transient or attempt == ATTEMPTS - 1:
                    raise
            retried = True
            _backoff(attempt)
        raise AssertionError("unreachable")

    def put(self, collection: str, key: str, doc: Doc) -> None:
        self._commit([self._set(collection, key, doc)])

    def put_many(self, collection: str, docs: dict[str, Doc]) -> None:
        check_batch(len(docs))
        if docs:
            self._commit([self._set(collection, key, doc) for key, doc in docs.items()])

    def delete(self, collection: str, key: str) -> None:
        self._commit([{"delete": self._name(collection, key)}])

    # --- transactions
    def update(self, collection: str, key: str, change: Change) -> Doc | None:
        return self.update_many(collection, {key: change})[key]

    def update_many(self, collection: str, changes: dict[str, Change]) -> dict[str, Doc | None]:
        check_batch(len(changes))
        if not changes:
            return {}
        names = {key: self._name(collection, key) for key in changes}
        previous: str | None = None  # the aborted transaction this one retries (it keeps its place in line)
        for attempt in range(ATTEMPTS):
            last = attempt == ATTEMPTS - 1
            transaction = self._begin(previous)
            try:
                found = dict(zip(names, self._batch_get(list(names.values()), transaction), strict=True))
                stood, writes = self._apply(collection, changes, found)
            except StoreError as exc:
                self._rollback(transaction)
                if not exc.transient or last:
                    raise
                previous = transaction if exc.reason == "ABORTED" else None
                _backoff(attempt)
                continue
            except BaseException:
                self._rollback(transaction)
                raise
            try:
                self._commit(writes, transaction)
                return stood
            except StoreError as exc:
                if exc.reason == "ABORTED":  # contention: nothing was written
                    previous = transaction
                elif exc.transient or exc.expired_transaction:  # the reply was lost: written or not?
                    self._rollback(transaction)  # if it never arrived, its locks go now rather than in a minute
                    if self._written(writes):
                        return stood  # applied: the changes must not run again on their own result
                    previous = None
                else:
                    raise
                if last:
                    raise
                _backoff(attempt)
        raise AssertionError("unreachable")

    def _begin(self, previous: str | None) -> str:
        options = {"readWrite": {"retryTransaction": previous} if previous else {}}
        try:
            return self._call("POST", self._method("beginTransaction"), {"options": options})["transaction"]
        except StoreError as exc:
            if previous is None or exc.status != 400:
                raise
            return self._begin(None)  # the one to retry is gone (expired): a new one

    def _apply(
        self, collection: str, changes: dict[str, Change], found: dict[str, Doc | None]
    ) -> tuple[dict[str, Doc | None], list[dict[str, Any]]]:
        """Each change on its doc as read: the docs as they will stand, and the writes."""
        stood: dict[str, Doc | None] = {}
        writes = []
        for key, change in changes.items():
            new = change(json.loads(json.dumps(found[key])) if found[key] is not None else None)
            if new is not None:
                writes.append(self._set(collection, key, new))
            stood[key] = found[key] if new is None else new
        return stood, writes

    def _written(self, writes: list[dict[str, Any]]) -> bool:
        """Whether every document holds what `writes` wrote (a commit whose reply was lost)."""
        names = [w["update"]["name"] for w in writes]
        now = self._batch_get(names)
        return all(doc == decode_fields(w["update"]["fields"]) for doc, w in zip(now, writes, strict=True))

    def _rollback(self, transaction: str) -> None:
        with suppress(StoreError, _Lost):  # committed, aborted or expired: nothing is held either way
            self._http.call("POST", self._method("rollback"), {"transaction": transaction})


def _equals(field: str, wanted: Any) -> dict[str, Any]:
    if wanted is None:  # as the official client sends it: EQUAL null is refused
        return {"unaryFilter": {"field": _field(field), "op": "IS_NULL"}}
    if isinstance(wanted, list | tuple):
        return {"fieldFilter": {"field": _field(field), "op": "IN", "value": encode(list(wanted))}}
    return {"fieldFilter": {"field": _field(field), "op": "EQUAL", "value": encode(wanted)}}


def _path(name: str) -> str:
    """A document's path below its database (`collection/key`), however the server spelled the rest."""
    return name.partition("/documents/")[2]


def _where(filters: list[dict[str, Any]]) -> dict[str, Any]:
    if not filters:
        return {}
    if len(filters) == 1:
        return {"where": filters[0]}
    return {"where": {"compositeFilter": {"op": "AND", "filters": filters}}}


def _credentials() -> tuple[Callable[[], dict[str, str]], str | None]:
    """Application Default Credentials, refreshed when they expire: (headers, their project)."""
    import google.auth
    import google.auth.transport.requests

    credentials, project = google.auth.default(scopes=[SCOPE])
    request = google.auth.transport.requests.Request()
    lock = threading.Lock()

    def headers() -> dict[str, str]:
        with lock:
            if not credentials.valid:
                credentials.refresh(request)
            found = {"Authorization": f"Bearer {credentials.token}"}
            if getattr(credentials, "quota_project_id", None):
                found["x-goog-user-project"] = credentials.quota_project_id
            return found

    return headers, project
