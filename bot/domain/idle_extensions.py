"""Extending a notebook's idle shutdown from a heads-up's button, as a leased job of its own.

    REQUESTED ──PATCH idle-timeout-seconds──► PATCHING ──operation done──► DONE (record updated)
        │ refused / error                        │ error / timeout
        ▼                                        ▼
      FAILED                                   FAILED

The click checks who asks (owner or admin) and that the timeout is the one offered within the
policy's bounds, writes one record keyed by the offer, and is acknowledged; a step makes the call.
A second click on the same offer, by anyone, finds that record and changes nothing. The PATCH
sets a value, so a step repeated after a lost reply does no harm; the heads-up message is then
replaced with the outcome (chat.update, also safe to repeat).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from enum import StrEnum

from bot.adapters.notify import Slack
from bot.adapters.store import Doc, Store
from bot.adapters.workbench import Workbench
from bot.domain import audit, leases
from bot.domain.errors import UserError
from bot.domain.notebooks import Notebooks
from bot.domain.records import NotebookState, Records
from bot.domain.spec import format_duration
from bot.ui.blocks import section

COLLECTION = "idle-extensions"
NAMESPACE = uuid.UUID("6f1d2c3b-7a8e-4b9c-8d0e-1f2a3b4c5d6e")


class ExtState(StrEnum):
    REQUESTED = "REQUESTED"
    PATCHING = "PATCHING"
    DONE = "DONE"
    FAILED = "FAILED"


class IdleExtensions:
    LEASE_SECONDS = 30
    TIMEOUT = 30 * 60  # transient errors are retried this long from the click

    def __init__(
        self,
        *,
        store: Store,
        workbench: Workbench,
        slack: Slack,
        notebooks: Notebooks,
        offered: Callable[[], int],
        clock: Callable[[], float] = time.time,
        poll_seconds: float = 2.0,
        worker_id: str | None = None,
    ) -> None:
        self.store = store
        self.workbench = workbench
        self.slack = slack
        self.notebooks = notebooks
        self.offered = offered  # the timeout heads-ups offer (within the policy's idle bounds)
        self.clock = clock
        self.poll_seconds = poll_seconds
        self.worker_id = worker_id or uuid.uuid4().hex[:12]
        self.records = Records(store, clock)
        self.runner = leases.Runner(
            owner=self,
            collection=COLLECTION,
            name="idle-timeout",
            step=self._step,
            retries=leases.Retries.call(ExtState.FAILED, self.TIMEOUT),
        )

    # --- the click ----------------------------------------------------------------------------------
    def request(self, user: str, value: str, *, dedupe_key: str, message: tuple[str, str] | None) -> tuple[Doc, bool]:
        """Record the extension a button offered (`NAME|SECONDS`); (record, False) for a repeated offer."""
        key = str(uuid.uuid5(NAMESPACE, dedupe_key))
        earlier = self.store.get(COLLECTION, key)
        if earlier is not None:
            return earlier, False
        name, _, raw = value.partition("|")
        seconds = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 9 else None
        if seconds is None or seconds != self.offered():
            raise UserError("That is not the idle timeout the heads-up offered; nothing was changed.")
        notebook = self.notebooks.find(user, name)
        self.notebooks.authorize(user, notebook, "extend the idle timeout of")
        if notebook.launching or notebook.state == NotebookState.GONE:
            raise UserError(f"`{notebook.id}` has no instance to change right now; nothing was changed.")
        now = self.clock()
        record = {
            "id": key,
            "notebook": notebook.id,
            "zone": notebook.zone,
            "owner": notebook.owner,
            "requester": user,
            "seconds": seconds,
            "message_channel": message[0] if message else None,
            "message_ts": message[1] if message else None,
            "state": ExtState.REQUESTED,
            "operation": None,
            "error": None,
            "open": True,
            "errors": 0,
            "next_at": 0.0,
            "created_at": now,
        }
        if not self.store.create(COLLECTION, key, record):  # the same offer clicked twice at once
            return self.store.get(COLLECTION, key) or record, False
        audit.record(self.store, now, user, "notebook.idle-timeout", notebook.id, seconds=seconds)
        return record, True

    # --- the worker ---------------------------------------------------------------------------------
    def reconcile(self) -> int:
        return leases.work_due(self.store, COLLECTION, self.clock(), self.advance)

    def advance(self, key: str) -> bool:
        """Run the record's due steps back to back; False if another worker holds it."""
        return self.runner.advance(key)

    def _step(self, doc: Doc) -> Doc:
        state = ExtState(doc["state"])
        if state in (ExtState.DONE, ExtState.FAILED):
            self._show(doc)
            return {"open": False, "next_at": 0.0}
        if state == ExtState.REQUESTED:
            name = self.workbench.set_idle_timeout(doc["zone"], doc["notebook"], doc["seconds"])
            return {"state": ExtState.PATCHING, "operation": name, "errors": 0, "next_at": self.clock()}
        status = self.workbench.operation(doc["operation"])
        if not status.done:
            return {"errors": 0, "next_at": self.clock() + self.poll_seconds}
        if status.error is not None:
            return {"state": ExtState.FAILED, "error": status.error.message, "next_at": 0.0}
        self.records.set_idle_timeout(doc["notebook"], doc["seconds"])
        audit.record(self.store, self.clock(), doc["requester"], "notebook.idle-timeout.done", doc["notebook"])
        return {"state": ExtState.DONE, "errors": 0, "next_at": 0.0}

    def _show(self, doc: Doc) -> None:
        if not doc.get("message_ts"):
            return
        text = describe(doc)
        self.slack.update(doc["message_channel"], doc["message_ts"], text, [section(text)])


def describe(doc: Doc) -> str:
    """The extension in one line: in progress, or its outcome."""
    name, who, to = f"`{doc['notebook']}`", f"<@{doc['requester']}>", format_duration(doc["seconds"])
    if doc["state"] == ExtState.DONE:
        return (
            f"✅ {name}'s idle timeout is now {to} (asked by {who}): Workbench stops it after {to} "
            "without notebook activity."
        )
    if doc["state"] == ExtState.FAILED:
        return f"❌ Couldn't extend {name}'s idle timeout: {doc.get('error')}"
    return f"⏳ Extending {name}'s idle timeout to {to} for {who}…"
