"""Leases on store records: how several workers share one queue without doing a job twice.

A worker claims a record in a transaction (only if no live lease is on it), does one step of
work outside the transaction, then writes the step's result in another transaction that checks
it still holds the lease. A worker that dies leaves a lease that simply expires. `Runner` is that
loop, once, for every kind of job (launches, operations, idle-timeout extensions).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from bot.adapters.store import DUE_LIMIT, Store
from bot.adapters.workbench import WorkbenchError
from bot.run.logs import log_context

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


def work_due(
    store: Store,
    collection: str,
    now: float,
    advance: Callable[[str], bool],
    waiting: Callable[[Doc], bool] = lambda doc: False,
    limit: int = DUE_LIMIT,
) -> int:
    """One pass over a queue: offer each due record to `advance`, up to `limit` of them; count those
    it advanced.

    A record `waiting` says has nothing to do yet (by a look that needs no lease) is left due as it
    is: no lease taken, nothing written. Such records stay at the head of the queue, so when a whole
    page of it is waiting the query reaches further (twice as far each time) rather than leave the
    records behind them to wait for ever. A record that fails (a store transaction that won't commit,
    say) is logged and left for the next pass; it must not hold up every other record behind it.
    """
    advanced = offered = 0
    seen: set[str] = set()
    reach = limit
    while True:
        page = store.due(collection, now, reach)
        for doc in page:
            if doc["id"] in seen or doc.get("lease_until", 0) > now:
                continue
            seen.add(doc["id"])
            try:
                if waiting(doc):
                    continue
                offered += 1
                advanced += bool(advance(doc["id"]))
            except Exception:
                log.exception("could not advance %s/%s; the next pass tries again", collection, doc["id"])
            if offered >= limit:
                return advanced
        if len(page) < reach:
            return advanced
        reach *= 2


class Throttle:
    """Periodic work (a sweep, the cloud sync) done by one worker per `every` seconds across all.

    The period is taken in a store transaction on `meta/KEY`. A worker remembers when it last saw the
    period taken (by itself or another), and until that period is over it answers from memory: an
    idle pass reads nothing, and replicas read once per period each, not once per pass each.
    """

    def __init__(self, store: Store, key: str) -> None:
        self.store = store
        self.key = key
        self._taken_at = float("-inf")  # the start of the latest period this worker saw taken

    def take(self, now: float, every: float) -> bool:
        """True for one caller per `every` seconds across all workers."""
        if now - self._taken_at < every:
            return False
        took: list[bool] = []

        def take(doc: Doc | None) -> Doc | None:
            took.clear()
            if doc is not None and now - doc.get("at", 0) < every:
                return None
            took.append(True)
            return {"at": now}

        doc = self.store.update("meta", self.key, take)
        self._taken_at = now if took else (doc or {}).get("at", float("-inf"))
        return bool(took)


def refused(exc: Exception) -> bool:
    """A Workbench error no retry can help (a refusal, a stockout, a bad request)."""
    return isinstance(exc, WorkbenchError) and not exc.retriable


def about_notebook(doc: Doc) -> dict[str, Any]:
    """The log context of a job on a notebook: who asked, and which notebook."""
    return {"user": doc.get("requester"), "instance": doc.get("notebook")}


@dataclass(frozen=True, kw_only=True)
class Retries:
    """How a job judges a step that raised: `fatal` errors end it at once with `fail`'s changes;
    anything else is retried until `deadline` passes (None: no deadline for this error), when
    `give_up` (or else `fail`) ends it. `quiet` errors are expected and retried without a log line."""

    fail: Callable[[Doc, Exception], Doc]
    deadline: Callable[[Doc, Exception], float | None]
    give_up: Callable[[Doc, Exception], Doc] | None = None
    fatal: Callable[[Exception], bool] = refused
    quiet: tuple[type[Exception], ...] = (WorkbenchError,)

    @classmethod
    def call(cls, failed: str, timeout: float) -> Retries:
        """A job around one Workbench call: it ends in `failed` with the error's words when Google
        refuses, or when Google's transient errors outlast `timeout` from the request; anything
        else (Slack, the store) is retried for as long as it takes."""
        return cls(
            fail=lambda doc, exc: {"state": failed, "error": str(exc), "next_at": 0.0},
            deadline=lambda doc, exc: doc["created_at"] + timeout if isinstance(exc, WorkbenchError) else None,
        )


class Owner(Protocol):
    """What a runner takes from the object whose job it runs."""

    LEASE_SECONDS: ClassVar[float]
    store: Store
    clock: Callable[[], float]
    worker_id: str
    poll_seconds: float  # a look again waits this long, and the first retry twice as long


@dataclass(kw_only=True)
class Runner:
    """Runs one kind of leased job: claim a record, run one step, release it with the step's changes,
    and carry on while the next step is due now (up to `max_steps`, a fresh lease each).

    A step that raises is judged by `retries`; one to be retried backs off from the owner's
    `poll_seconds`, doubling with each error in a row up to MAX_BACKOFF (a step that gets through
    resets `errors` in its own changes: some steps count looks, not errors).
    """

    MAX_BACKOFF: ClassVar[float] = 60.0

    owner: Owner
    collection: str
    name: str  # the job in log lines
    step: Callable[[Doc], Doc]  # one step of an open record: the changes to write
    retries: Retries
    max_steps: int = 6
    context: Callable[[Doc], dict[str, Any]] = about_notebook  # for the step's log lines
    after: Callable[[Doc, bool], None] | None = None  # the record as a step left it, and whether it closed

    def advance(self, key: str) -> bool:
        """Run the record's due steps back to back; False if another worker holds it."""
        ran = False
        for _ in range(self.max_steps):
            doc = self._step(key)
            if doc is None:
                return ran
            ran = True
            if not doc.get("open") or doc.get("next_at", 0) > self.owner.clock():
                break
        return ran

    def looked(self, polls: int) -> Doc:
        """A step's changes when all it did was look (and must look again): the look is counted, and a
        run of errors is over."""
        return {"polls": polls + 1, "errors": 0, "next_at": self.owner.clock() + self.owner.poll_seconds}

    def _step(self, key: str) -> Doc | None:
        owner = self.owner
        doc = claim(owner.store, self.collection, key, owner.worker_id, owner.clock(), owner.LEASE_SECONDS)
        if doc is None:
            return None
        with log_context(**self.context(doc)):
            changes = self._guarded(doc)
            try:
                doc = release(owner.store, self.collection, key, owner.worker_id, owner.clock(), changes)
            except LeaseLost:
                log.warning("lease lost; another worker carries on")
                return None
            if self.after is not None:
                self.after(doc, changes.get("open") is False)
            return doc

    def _guarded(self, doc: Doc) -> Doc:
        try:
            return self.step(doc)
        except Exception as exc:
            return self._trouble(doc, exc)

    def _trouble(self, doc: Doc, exc: Exception) -> Doc:
        retries, clock = self.retries, self.owner.clock
        if retries.fatal(exc):
            return retries.fail(doc, exc)
        if not isinstance(exc, retries.quiet):  # Slack or the store: the same step is tried again later
            log.warning("%s step failed; retrying: %s", self.name, exc, exc_info=not isinstance(exc, OSError))
        deadline = retries.deadline(doc, exc)
        if deadline is not None and clock() > deadline:
            return (retries.give_up or retries.fail)(doc, exc)
        errors = doc.get("errors", 0) + 1
        return {"errors": errors, "next_at": clock() + min(self.owner.poll_seconds * 2**errors, self.MAX_BACKOFF)}
