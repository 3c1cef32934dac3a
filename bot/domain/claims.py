"""At-most-once claims for the messages a sweep sends: the `reminders` collection, this module its
only writer.

Each message a sweep may send about a notebook has a key (the notebook, the moment it is about: its
run or a stop, what it is, its period). The sweep that creates the key's document sends it; a sweep
that finds the document there does not, so however many replicas sweep at once it goes out once.
A sweep claims everything it is about to send together, one transaction per MAX_BATCH keys (a key
is created only where no document is), not one store call per message. A claim whose message was
not sent (its send failed, or a step before it) is given back, so a later sweep tries again; one
whose sender died after sending stays, so the message is never repeated.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from bot.adapters.store import MAX_BATCH, Change, Doc, Store

log = logging.getLogger(__name__)
COLLECTION = "reminders"


def key(instance_id: str, moment: float, kind: str, period: int = 0) -> str:
    """The claim of the message of `kind` (and `period`, for repeated ones) about `moment`: a run's
    start, a stop point, a stop."""
    return f"{instance_id}:{moment:.0f}:{kind}:{period}"


class MaybeSent(Exception):
    """A message's post failed in a way that leaves it unknown whether Slack posted it (the reply
    was lost): its claim counts as used, as at most once wins over delivery."""


@dataclass(frozen=True)
class Taken:
    """One claiming's outcome: each key's claim as it stood after the transaction."""

    token: str  # written in this claiming's documents, so a retried transaction still knows its own
    stood: Mapping[str, Doc | None]

    def mine(self, key: str) -> bool:
        """This claiming created the key's document: its message is this sweep's to send."""
        doc = self.stood.get(key)
        return doc is not None and doc.get("by") == self.token

    def at(self, key: str) -> float | None:
        """When the key was claimed (by whichever sweep), if it was asked about here and is claimed."""
        doc = self.stood.get(key)
        return doc.get("at") if doc else None

    @contextmanager
    def once(self, key: str, said: list[str]) -> Iterator[bool]:
        """Exactly one sweep, on any replica, sends the message `key` names: the body runs for the one
        whose claiming got it (True). A claim used is added to `said`, for the record; one whose body
        failed is not, and Claims.give_back_unused gives it back, so the message is tried again later
        rather than lost; except when Slack may have posted it (MaybeSent): then it counts as used,
        so the message is never repeated."""
        mine = self.mine(key)
        try:
            yield mine
        except MaybeSent:
            if mine:
                said.append(key)
            raise
        if mine:
            said.append(key)


class Claims:
    def __init__(self, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.clock = clock

    def take(self, wanted: Mapping[str, Mapping[str, Any]]) -> Taken:
        """Claim each key of `wanted` (key -> what its document says besides when and by whom) that no
        sweep has claimed; one transaction per MAX_BATCH keys."""
        token, at = uuid.uuid4().hex, self.clock()
        keys = list(wanted)
        stood: dict[str, Doc | None] = {}
        for start in range(0, len(keys), MAX_BATCH):
            batch = keys[start : start + MAX_BATCH]
            changes = {key: _create({**wanted[key], "at": at, "by": token}) for key in batch}
            stood.update(self.store.update_many(COLLECTION, changes))
        return Taken(token, stood)

    def give_back_unused(self, taken: Taken, keys: Iterable[str], said: list[str]) -> None:
        """Give back the claims of `keys` that `taken` got but whose messages were not sent (not in
        `said`): a later sweep may claim them again."""
        for key in keys:
            if taken.mine(key) and key not in said:
                try:
                    self.store.delete(COLLECTION, key)
                except Exception:  # the message is then lost, never repeated
                    log.exception("could not give back the claim %s", key)

    def claimed(self, key: str) -> bool:
        """Some sweep holds the key's claim now (read from the store, not from a claiming)."""
        return self.store.get(COLLECTION, key) is not None


def _create(doc: Doc) -> Change:
    return lambda current: dict(doc) if current is None else None
