"""The notebook record: one per instance the bot manages, and this module is its only writer.

A record is created when a launch reserves its name (and its place in the owner's quota), moves
through the launch's phases, then follows the instance in the cloud until it is deleted. Every
change is a named transition in a store transaction; nothing else writes the `notebooks`
collection (tests/test_record_ownership.py holds that).

Quota rule (the README and config.example.toml say the same): every notebook a person owns
counts, in any state, except stopped ones and ones deleted outside the bot. A stopped notebook
only costs its disks, so stopping one makes room; starting it again is checked like a launch.
"""

from __future__ import annotations

import dataclasses
import random
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from bot.adapters.store import MAX_BATCH, Doc, Store
from bot.domain import audit
from bot.domain.costs import month_of
from bot.domain.errors import UserError, one_of
from bot.domain.spec import INSTANCE_NAME, NotebookSpec, instance_name

COLLECTION = "notebooks"
RETIRED = "retired_notebooks"  # deleted notebooks' last records, kept so their costs still count
HISTORY_SECONDS = 62 * 86400  # state history kept: a month's report and the week before it
HISTORY_KEPT = 400  # and at most this many changes, whatever happens


class NotebookState(StrEnum):
    # the launch's phases: the name is reserved, no instance exists yet (or is being created)
    PENDING_APPROVAL = "PENDING_APPROVAL"
    QUEUED = "QUEUED"
    CREATING = "CREATING"
    # what Workbench says of the instance
    PROVISIONING = "PROVISIONING"
    STARTING = "STARTING"
    INITIALIZING = "INITIALIZING"
    ACTIVE = "ACTIVE"
    STOPPING = "STOPPING"
    STOPPED = "STOPPED"
    SUSPENDING = "SUSPENDING"
    SUSPENDED = "SUSPENDED"
    UPGRADING = "UPGRADING"
    GONE = "GONE"  # deleted outside the bot

    @classmethod
    def of_cloud(cls, state: str) -> NotebookState:
        """Workbench's word for an instance's state; anything new to us reads as provisioning."""
        try:
            found = cls(state)
        except ValueError:
            return cls.PROVISIONING
        return cls.PROVISIONING if found in LAUNCH_PHASES or found == cls.GONE else found


LAUNCH_PHASES = frozenset({NotebookState.PENDING_APPROVAL, NotebookState.QUEUED, NotebookState.CREATING})
LEGACY_STATES = {"REQUESTED": NotebookState.QUEUED}  # written by versions before the launch phases had names
NOT_COUNTED = frozenset({NotebookState.STOPPED, NotebookState.GONE})  # the quota rule above


@dataclass(frozen=True)
class OffHoursMarks:
    """What off-hours (bot/domain/offhours.py) did about a notebook; instants are epoch seconds."""

    heads_up_for: float | None = None  # the stop point the latest heads-up was about ...
    heads_up_at: float | None = None  # ... and when it went out
    kept_until: float | None = None  # "Keep it tonight": no off-hours stop before this
    kept_by: str | None = None
    stopped_at: float | None = None  # when off-hours last stopped it
    reported: bool = False  # that stop was reported to the owner

    @classmethod
    def from_doc(cls, data: Any) -> OffHoursMarks:
        if not isinstance(data, dict):
            return cls()
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclass(frozen=True)
class Notebook:
    id: str
    zone: str
    owner: str
    state: NotebookState
    spec: NotebookSpec
    created_at: float
    state_since: float
    running_seconds: float
    url: str | None
    channel: str | None
    launch_id: str | None
    adopted: bool
    stopped_outside: bool
    snoozed_until: float
    unanswered: int
    unanswered_run: float | None
    said: tuple[str, ...] = ()  # claim keys of the latest lifecycle messages sent about it (Records.swept)
    history: tuple[tuple[str, float], ...] = ()  # (state, since), oldest first, bounded (_history)
    offhours: OffHoursMarks = OffHoursMarks()

    @classmethod
    def from_doc(cls, doc: Doc) -> Notebook:
        return cls(
            id=doc["id"],
            zone=doc.get("zone", ""),
            owner=doc.get("owner", ""),
            state=NotebookState(LEGACY_STATES.get(doc.get("state", ""), doc.get("state", NotebookState.QUEUED))),
            spec=NotebookSpec.from_dict(doc["spec"]),
            created_at=doc.get("created_at", 0.0),
            state_since=doc.get("state_since") or doc.get("created_at", 0.0),
            running_seconds=doc.get("running_seconds", 0.0),
            url=doc.get("url"),
            channel=doc.get("channel"),
            launch_id=doc.get("launch_id"),
            adopted=bool(doc.get("adopted")),
            stopped_outside=bool(doc.get("stopped_outside")),
            snoozed_until=doc.get("snoozed_until", 0.0),
            unanswered=doc.get("unanswered", 0),
            unanswered_run=doc.get("unanswered_run"),
            said=tuple(doc.get("said") or ()),
            history=tuple((h["state"], h["at"]) for h in _history(doc)),
            offhours=OffHoursMarks.from_doc(doc.get("offhours")),
        )

    @property
    def launching(self) -> bool:
        return self.state in LAUNCH_PHASES

    @property
    def counts_towards_quota(self) -> bool:
        return self.state not in NOT_COUNTED

    def uptime(self, now: float) -> float:
        """Seconds this notebook has been running in all, including the current run."""
        return self.running_seconds + (now - self.state_since if self.state == NotebookState.ACTIVE else 0.0)

    def cost_so_far(self, now: float) -> float:
        return self.uptime(now) / 3600 * self.spec.usd_per_hour

    def agrees_with(self, state: str, url: str | None) -> bool:
        """The record already says what a list or get call saw: `Records.observed` would write nothing."""
        return self.state == NotebookState.of_cloud(state) and (not url or url == self.url)


@dataclass(frozen=True)
class Reminded:
    """A reminder a sweep sent: its claim key, the run it was about, and the message as posted."""

    key: str
    run: float
    posted: Doc


@dataclass(frozen=True)
class Swept:
    """What one sweep did about one notebook: the claim keys of the messages it sent (later sweeps
    skip those claims), that its owner now knows it was stopped outside the bot, and one more
    unanswered reminder for a run (a new run starts counting from zero)."""

    instance_id: str
    said: tuple[str, ...] = ()
    told_stopped_outside: bool = False
    reminder: Reminded | None = None


def _history(doc: Doc) -> list[Doc]:
    """The record's state changes as {state, at}; a record written before there was a history has
    its current state since `state_since`."""
    if "history" in doc:
        return list(doc["history"])
    if not doc.get("state"):
        return []
    state = LEGACY_STATES.get(doc["state"], doc["state"])
    return [{"state": state, "at": doc.get("state_since") or doc.get("created_at", 0.0)}]


def _with_change(doc: Doc, state: str, now: float) -> list[Doc]:
    """The history with `state` from `now`, bounded: changes that ended HISTORY_SECONDS ago are
    dropped (the one in force then stays: it says what the state was), and so are the oldest
    beyond HISTORY_KEPT. A list of maps, as Firestore stores no arrays inside arrays."""
    history = [*_history(doc), {"state": state, "at": now}]
    cutoff = now - HISTORY_SECONDS
    while len(history) > 1 and history[1]["at"] <= cutoff:
        history.pop(0)
    return history[-HISTORY_KEPT:]


def _moved(doc: Doc, state: NotebookState, now: float) -> Doc:
    """The doc moved to `state`, with running time accounted (it is what the cost estimate uses)
    and the change added to its history (what `/notebook costs` reads)."""
    if doc.get("state") == state:
        return doc
    new = {**doc, "state": str(state), "state_since": now, "history": _with_change(doc, str(state), now)}
    if doc.get("state") == NotebookState.ACTIVE:
        since = doc.get("state_since") or doc.get("created_at", now)
        new["running_seconds"] = doc.get("running_seconds", 0.0) + max(0.0, now - since)
    return new


class Records:
    """Reads and named transitions of notebook records."""

    OWNER_LOCK_SECONDS = 5.0  # a reservation is a query and a create; a crashed one frees the lock this fast
    LOCK_WAIT_SECONDS = 3.0

    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    # --- reading ------------------------------------------------------------------------------------
    def get(self, instance_id: str) -> Notebook | None:
        if not INSTANCE_NAME.fullmatch(instance_id):
            return None  # not a name any record can have (and not a safe store key)
        doc = self.store.get(COLLECTION, instance_id)
        return Notebook.from_doc(doc) if doc else None

    def owned_by(self, user: str) -> list[Notebook]:
        docs = self.store.query(COLLECTION, owner=user)
        return sorted((Notebook.from_doc(d) for d in docs), key=lambda n: n.created_at)

    def everyone(self) -> list[Notebook]:
        docs = self.store.query(COLLECTION)
        return sorted((Notebook.from_doc(d) for d in docs), key=lambda n: (n.owner, n.id))

    def counted(self, user: str, *, besides: str | None = None) -> list[Notebook]:
        """The user's notebooks that count towards their quota (the rule in the module docstring)."""
        return [n for n in self.owned_by(user) if n.counts_towards_quota and n.id != besides]

    def find(self, user: str, name: str) -> Notebook:
        """The notebook `name` names: exact, else the caller's only notebook starting with it."""
        wanted = instance_name(name, partial=True)  # before it becomes a store key
        exact = self.get(wanted)
        if exact is not None:
            return exact
        mine = self.owned_by(user)
        matches = [n for n in mine if n.id.startswith(wanted)] if wanted else []
        if len(matches) == 1:
            return matches[0]
        names = [n.id for n in mine]
        if len(matches) > 1:
            raise UserError(f"`{name}` matches several of your notebooks: {one_of(m.id for m in matches)}.")
        listing = f"Yours: {one_of(names)}." if names else "You have no notebooks (`/notebook new` makes one)."
        raise UserError(f"I don't know a notebook called `{name}`. {listing}")

    # --- the owner's lock: quota checks and the write they allow are one step -----------------------
    @contextmanager
    def owner_lock(self, owner: str) -> Iterator[None]:
        """Serialise the quota-checked changes of one person's notebooks across workers and replicas.

        Firestore transactions can't lock a query's absent results, so two reservations could both
        see room; a short-lived lock document makes them take turns instead. It is taken with a
        plain create (no transaction to contend on), and one left by a crashed worker expires."""
        token = uuid.uuid4().hex
        deadline = time.monotonic() + self.LOCK_WAIT_SECONDS
        pause = 0.02
        while not self._take_lock(owner, token):
            if time.monotonic() > deadline:
                raise UserError("Your notebooks are being changed right now; try again in a moment.")
            time.sleep(pause * (0.5 + random.random()))  # jittered, so waiting workers don't retry in step
            pause = min(pause * 2, 0.4)
        try:
            yield
        finally:
            held = self.store.get("locks", owner)
            if held and held.get("token") == token:
                self.store.delete("locks", owner)

    def _take_lock(self, owner: str, token: str) -> bool:
        now = self.clock()
        if self.store.create("locks", owner, {"token": token, "until": now + self.OWNER_LOCK_SECONDS}):
            return True
        held = self.store.get("locks", owner)
        if held is None or held.get("until", 0) > now:
            return False
        taken: list[bool] = []

        def take_over(doc: Doc | None) -> Doc | None:  # the holder crashed: its lock ran out
            taken.clear()
            if doc is not None and doc.get("until", 0) > now:
                return None
            taken.append(True)
            return {"token": token, "until": now + self.OWNER_LOCK_SECONDS}

        self.store.update("locks", owner, take_over)
        return bool(taken)

    # --- transitions: launches ----------------------------------------------------------------------
    def reserve(
        self,
        *,
        instance_id: str,
        owner: str,
        channel: str | None,
        spec: NotebookSpec,
        launch_id: str,
        state: NotebookState,
        check_quota: Callable[[list[Notebook]], None],
    ) -> Notebook:
        """Take the name and a place in the owner's quota for a launch, or raise with nothing taken.

        Idempotent for its launch: a retried step finds its own reservation and returns it."""
        with self.owner_lock(owner):
            existing = self.get(instance_id)
            if existing is not None:
                if existing.launch_id == launch_id:
                    return existing
                raise UserError(
                    f"A notebook named `{instance_id}` already exists; choose another `name=`.", field="name"
                )
            check_quota(self.counted(owner))
            now = self.clock()
            doc = {
                "id": instance_id,
                "zone": spec.zone,
                "owner": owner,
                "channel": channel,
                "spec": spec.to_dict(),
                "launch_id": launch_id,
                "state": str(state),
                "state_since": now,
                "created_at": now,
                "managed": True,
                "history": [{"state": str(state), "at": now}],
            }
            if not self.store.create(COLLECTION, instance_id, doc):
                raise UserError(
                    f"A notebook named `{instance_id}` already exists; choose another `name=`.", field="name"
                )
            return Notebook.from_doc(doc)

    def set_phase(self, instance_id: str, launch_id: str, state: NotebookState, spec: NotebookSpec | None = None):
        """A launch moved on (approved, creating); an approver's lowered spec replaces the asked one."""
        now = self.clock()

        def change(doc: Doc | None) -> Doc | None:
            if doc is None or doc.get("launch_id") != launch_id or doc.get("state") not in LAUNCH_PHASES:
                return None
            new = _moved(doc, state, now)
            return {**new, "spec": spec.to_dict()} if spec is not None else new

        self.store.update(COLLECTION, instance_id, change)

    def mark_ready(self, instance_id: str, launch_id: str, url: str) -> None:
        now = self.clock()

        def ready(doc: Doc | None) -> Doc | None:
            if doc is None or doc.get("launch_id") != launch_id:
                return None  # deleted meanwhile (say by an admin); don't resurrect half a record
            return {**_moved(doc, NotebookState.ACTIVE, now), "url": url, "ready_at": now}

        self.store.update(COLLECTION, instance_id, ready)

    def hand_to_sync(self, instance_id: str, launch_id: str) -> None:
        """A launch gave up but an instance may exist: the cloud sync follows the record from here."""
        now = self.clock()
        self.store.update(
            COLLECTION,
            instance_id,
            lambda d: _moved(d, NotebookState.PROVISIONING, now) if d and d.get("launch_id") == launch_id else None,
        )

    def free(self, instance_id: str, *, launch_id: str | None = None) -> None:
        """Forget a record: its name and its place in the quota are free again. A notebook that
        existed in the cloud is retired first, so what it cost still counts (`retired`)."""
        doc = self.store.get(COLLECTION, instance_id)
        if doc is None:
            return
        if launch_id is not None and doc.get("launch_id") != launch_id:
            return  # the name was taken by another launch meanwhile: not ours to free
        self._retire(doc)
        self.store.delete(COLLECTION, instance_id)

    def _retire(self, doc: Doc) -> None:
        """Keep the record as it ends, in RETIRED, if it ever was an instance. Keyed by name and
        creation time, so a retry writes the same document and a later notebook of the same name
        another; `gone_month` (UTC) is what a report's query picks it by."""
        if all(h["state"] in LAUNCH_PHASES for h in _history(doc)):
            return  # a launch that never created anything cost nothing
        now = self.clock()
        gone = {**_moved(doc, NotebookState.GONE, now), "retired_at": now, "gone_month": month_of(now)}
        self.store.create(RETIRED, f"{doc['id']}:{doc.get('created_at', 0.0):.0f}", gone)

    def retired(self, months: Sequence[str]) -> list[Notebook]:
        """The notebooks deleted in these months ("2026-12", UTC) through the bot."""
        return [Notebook.from_doc(d) for d in self.store.query(RETIRED, gone_month=list(months))]

    # --- transitions: what the cloud and the bot's operations say -----------------------------------
    def observed(self, instance_id: str, state: str, url: str | None, *, seen: str | None = None) -> Notebook | None:
        """Record what a list or get call saw; the record as written, or None if that changed nothing.
        With `seen`, only if the record still says what it said before the call: a state the bot
        wrote meanwhile is newer than what the call saw."""
        now = self.clock()
        cloud = NotebookState.of_cloud(state)
        wrote: list[bool] = []

        def change(doc: Doc | None) -> Doc | None:
            wrote.clear()  # the store may run this more than once
            if doc is None or (seen is not None and doc.get("state") != seen):
                return None
            new = dict(_moved(doc, cloud, now))  # a copy: _moved returns `doc` itself when the state is the same
            if cloud == NotebookState.STOPPED and doc.get("state") in (NotebookState.ACTIVE, NotebookState.STOPPING):
                new["stopped_outside"] = True  # idle shutdown or the console; the owner is told once
            if url:
                new["url"] = url
            if new == doc:
                return None
            wrote.append(True)
            return new

        doc = self.store.update(COLLECTION, instance_id, change)
        return Notebook.from_doc(doc) if wrote and doc else None

    def mark_gone(self, instance_id: str, *, seen: str | None = None) -> Notebook | None:
        """The instance is no longer in the cloud: the record as written (and audited), or None if
        that changed nothing."""
        now = self.clock()
        wrote: list[bool] = []

        def gone(doc: Doc | None) -> Doc | None:
            wrote.clear()
            if doc is None or (seen is not None and doc.get("state") != seen) or doc.get("state") == NotebookState.GONE:
                return None
            wrote.append(True)
            return _moved(doc, NotebookState.GONE, now)

        doc = self.store.update(COLLECTION, instance_id, gone)
        if not (wrote and doc):
            return None
        audit.record(self.store, now, "bot", "notebook.gone", instance_id)
        return Notebook.from_doc(doc)

    def operation_done(self, instance_id: str, state: NotebookState) -> None:
        now = self.clock()
        self.store.update(COLLECTION, instance_id, lambda d: _moved(d, state, now) if d else None)

    def set_idle_timeout(self, instance_id: str, seconds: int) -> None:
        """The instance's idle shutdown timeout was changed in the cloud: the spec says so too."""

        def change(doc: Doc | None) -> Doc | None:
            if doc is None or doc.get("spec", {}).get("idle_seconds") == seconds:
                return None
            return {**doc, "spec": {**doc["spec"], "idle_seconds": seconds}}

        self.store.update(COLLECTION, instance_id, change)

    def transfer(self, instance_id: str, new_owner: str) -> Notebook | None:
        doc = self.store.update(COLLECTION, instance_id, lambda d: {**d, "owner": new_owner} if d else None)
        return Notebook.from_doc(doc) if doc else None

    def adopt(self, doc: Doc) -> bool:
        """An instance made elsewhere becomes a managed notebook; False if the name is managed already."""
        state = str(NotebookState.of_cloud(doc["state"]))
        history = [{"state": state, "at": self.clock()}]
        return self.store.create(COLLECTION, doc["id"], {**doc, "state": state, "history": history})

    def check_start_quota(self, notebook: Notebook, check_quota: Callable[[list[Notebook]], None]) -> None:
        """Starting a stopped notebook is checked like a launch (stopped ones don't count)."""
        with self.owner_lock(notebook.owner):
            check_quota(self.counted(notebook.owner, besides=notebook.id))

    # --- transitions: reminders -----------------------------------------------------------------------
    SAID_KEPT = 8  # a key dropped from a record only costs one refused claim in a later sweep

    def swept(self, visits: Sequence[Swept]) -> None:
        """What a sweep did about these notebooks, one transaction per MAX_BATCH of them; writing the
        same visits again changes nothing more (a reminder whose key the record lists is counted)."""
        if len({v.instance_id for v in visits}) != len(visits):
            raise ValueError("one visit per notebook")
        for start in range(0, len(visits), MAX_BATCH):
            batch = visits[start : start + MAX_BATCH]
            self.store.update_many(COLLECTION, {v.instance_id: self._sweep_change(v) for v in batch})

    def _sweep_change(self, visit: Swept) -> Callable[[Doc | None], Doc | None]:
        def change(doc: Doc | None) -> Doc | None:
            if doc is None:
                return None
            new = dict(doc)
            known = list(doc.get("said") or ())
            reminder = visit.reminder
            if reminder is not None and reminder.key not in known:
                run = reminder.run
                earlier = doc.get("unanswered", 0) if doc.get("unanswered_run") == run else 0
                new.update(unanswered=earlier + 1, unanswered_run=run, last_reminder=reminder.posted)
            if visit.said:
                new["said"] = [*(k for k in known if k not in visit.said), *visit.said][-self.SAID_KEPT :]
            if visit.told_stopped_outside and doc.get("stopped_outside"):
                new["stopped_outside"] = False
            return new if new != doc else None

        return change

    def snooze(self, instance_id: str, until: float) -> None:
        self.store.update(
            COLLECTION, instance_id, lambda d: {**d, "snoozed_until": until, "unanswered": 0} if d else None
        )

    def answered(self, instance_id: str) -> None:
        """The owner acted on a reminder: unanswered reminders start again from zero."""
        self.store.update(COLLECTION, instance_id, lambda d: {**d, "unanswered": 0} if d else None)

    # --- transitions: off-hours (bot/domain/offhours.py) ---------------------------------------------
    def offhours_marked(self, marks: Mapping[str, Mapping[str, Any]]) -> None:
        """What a sweep's off-hours did about these notebooks (a heads-up, a stop, a report), merged
        into each record's `offhours`, one transaction per MAX_BATCH; writing it again changes nothing."""
        items = list(marks.items())
        for start in range(0, len(items), MAX_BATCH):
            batch = items[start : start + MAX_BATCH]
            self.store.update_many(COLLECTION, {key: _merge_offhours(values) for key, values in batch})

    def keep_tonight(self, instance_id: str, until: float, by: str) -> bool:
        """Keep it tonight: no off-hours stop before `until`. False if it was kept that long already."""
        kept: list[bool] = []

        def keep(doc: Doc | None) -> Doc | None:
            kept.clear()
            marks = (doc or {}).get("offhours") or {}
            if doc is None or (marks.get("kept_until") or 0) >= until:
                return None
            kept.append(True)
            return {**doc, "offhours": {**marks, "kept_until": until, "kept_by": by}}

        self.store.update(COLLECTION, instance_id, keep)
        return bool(kept)


def _merge_offhours(values: Mapping[str, Any]) -> Callable[[Doc | None], Doc | None]:
    def change(doc: Doc | None) -> Doc | None:
        if doc is None:
            return None
        marks = doc.get("offhours") or {}
        merged = {**marks, **values}
        return None if merged == marks else {**doc, "offhours": merged}

    return change
