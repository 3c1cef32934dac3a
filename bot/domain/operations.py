"""Stop, start and delete as leased jobs: the same queue pattern as launches, one record each.

    REQUESTED ──call──► RUNNING ──operation done──► DONE
        │ refused           │ error / timeout
        ▼                   ▼
      FAILED              FAILED

The request path checks who asks and writes the REQUESTED record; a step makes the Workbench call
(delete carries request_id = the operation's id), follows its instance in the zone's list
(bot/adapters/observer.py), applies the outcome to the notebook record through bot/domain/records.py
and shows it in Slack: the message the click came from is replaced, or one message is posted at most
once (bot/domain/outbox.py).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from enum import StrEnum

from bot.adapters.notify import Slack
from bot.adapters.observer import Observer
from bot.adapters.store import Doc, Store
from bot.adapters.workbench import InstanceInfo, Workbench, WorkbenchError
from bot.domain import audit, leases, outbox
from bot.domain.errors import UserError
from bot.domain.policy import Rules
from bot.domain.records import Notebook, NotebookState, Records
from bot.ui.blocks import actions, button, section

log = logging.getLogger(__name__)
OPERATION_NAMESPACE = uuid.UUID("0b7a4f5e-2c1d-4e8f-9a3b-5d6c7e8f9a01")
COLLECTION = "operations"


class OpState(StrEnum):
    REQUESTED = "REQUESTED"
    RUNNING = "RUNNING"
    DONE = "DONE"
    FAILED = "FAILED"


IN_PASSING = {"STARTING", "PROVISIONING", "INITIALIZING", "STOPPING", "DELETED", "UPGRADING", "SUSPENDING"}


class Action(StrEnum):
    STOP = "stop"
    START = "start"
    DELETE = "delete"

    @property
    def doing(self) -> str:
        return {Action.STOP: "Stopping", Action.START: "Starting", Action.DELETE: "Deleting"}[self]

    @property
    def done(self) -> str:
        return {Action.STOP: "⏹ Stopped", Action.START: "▶️ Started", Action.DELETE: "🗑 Deleted"}[self]

    @property
    def target(self) -> str | None:
        """The instance state Workbench shows once done (None: the instance is gone)."""
        return {Action.STOP: "STOPPED", Action.START: "ACTIVE", Action.DELETE: None}[self]

    @property
    def leaves(self) -> NotebookState | None:
        """The notebook's state once done; None: the record is forgotten."""
        return {Action.STOP: NotebookState.STOPPED, Action.START: NotebookState.ACTIVE, Action.DELETE: None}[self]


class Operations:
    LEASE_SECONDS = 30
    TIMEOUT = 30 * 60  # transient errors are retried this long from the request

    def __init__(
        self,
        *,
        store: Store,
        workbench: Workbench,
        slack: Slack,
        rules: Rules,
        clock: Callable[[], float] = time.time,
        worker_id: str | None = None,
        poll_seconds: float = 2.0,
        observer: Observer | None = None,
    ) -> None:
        self.store = store
        self.workbench = workbench
        self.slack = slack
        self.rules = rules
        self.clock = clock
        self.worker_id = worker_id or uuid.uuid4().hex[:12]
        self.poll_seconds = poll_seconds
        self.observer = observer or Observer(workbench, clock)  # shared with launches: one list per zone per tick
        self.records = Records(store, clock)
        self.outbox = outbox.Outbox(store, slack, clock)
        self.on_change: Callable[[set[str]], None] | None = None  # refreshes App Homes of these users
        self.runner = leases.Runner(
            owner=self,
            collection=COLLECTION,
            name="operation",
            step=self._step,
            retries=leases.Retries.call(OpState.FAILED, self.TIMEOUT),
            after=self._after,
        )

    # --- the request path ---------------------------------------------------------------------------
    def request(
        self,
        user: str,
        notebook: Notebook,
        action: Action,
        *,
        channel: str | None,
        dedupe_key: str,
        message: tuple[str, str] | None = None,
    ) -> tuple[Doc, bool]:
        """Record a stop/start/delete of a notebook the caller may act on (checked by the caller).

        `message` (channel, ts) is replaced with the progress and the outcome; otherwise one is posted
        in `channel` (none for the bot's own policy actions). A repeated dedupe_key (a retried
        delivery, or a second click on the same offer) returns the first record unchanged, and False."""
        op_id = self.op_id(dedupe_key)
        earlier = self.store.get(COLLECTION, op_id)
        if earlier is not None:
            return earlier, False
        if notebook.launching:
            raise UserError(
                f"`{notebook.id}` is still being launched; `/notebook cancel {notebook.id}` withdraws the launch."
            )
        if notebook.state == NotebookState.GONE and action != Action.DELETE:
            raise UserError(
                f"`{notebook.id}` was deleted outside the bot; `/notebook delete {notebook.id}` forgets it."
            )
        if action == Action.STOP and notebook.state == NotebookState.STOPPED:
            raise UserError(f"`{notebook.id}` is already stopped.")
        if action == Action.START and notebook.state == NotebookState.ACTIVE:
            raise UserError(f"`{notebook.id}` is already running.", link=notebook.url)
        for other in self.store.query(COLLECTION, notebook=notebook.id, open=True):
            if other["id"] == op_id:  # the same offer clicked twice at once: the other click recorded it
                return other, False
            raise UserError(
                f"`{notebook.id}` is already {Action(other['action']).doing.lower()} (asked by "
                f"<@{other['requester']}>); try again when that is done."
            )
        if action == Action.START and user != "bot":
            self.records.check_start_quota(
                notebook, lambda counted: self.rules.check_quota(notebook.owner, notebook.spec, counted)
            )
        now = self.clock()
        record = {
            "id": op_id,
            "action": str(action),
            "notebook": notebook.id,
            "zone": notebook.zone,
            "owner": notebook.owner,
            "requester": user,
            "channel": channel,
            "message_channel": message[0] if message else None,
            "message_ts": message[1] if message else None,
            "state": OpState.REQUESTED,
            "operation": None,
            "error": None,
            "url": None,
            "open": True,
            "polls": 0,
            "errors": 0,
            "next_at": 0.0,
            "created_at": now,
        }
        if not self.store.create(COLLECTION, op_id, record):
            return self.store.get(COLLECTION, op_id) or record, False
        audit.record(self.store, now, user, f"notebook.{action}", notebook.id, owner=notebook.owner)
        return record, True

    @staticmethod
    def op_id(dedupe_key: str) -> str:
        return str(uuid.uuid5(OPERATION_NAMESPACE, dedupe_key))

    def get(self, op_id: str) -> Doc | None:
        return self.store.get(COLLECTION, op_id)

    # --- the reconciler -------------------------------------------------------------------------------
    def reconcile(self) -> int:
        """One pass: advance every stop, start and delete that is due."""
        return leases.work_due(self.store, COLLECTION, self.clock(), self.advance)

    def advance(self, op_id: str) -> bool:
        """Run the operation's due steps back to back; False if another worker holds it."""
        return self.runner.advance(op_id)

    def _after(self, op: Doc, closed: bool) -> None:
        if closed and self.on_change:
            self.on_change({op["owner"], op["requester"]} - {"bot"})  # "bot": auto-stop and auto-delete

    def _step(self, op: Doc) -> Doc:
        state, action = OpState(op["state"]), Action(op["action"])
        if not op.get("message_ts") and op.get("channel") and not outbox.done(op, "message"):
            return self._post(op)
        if state in (OpState.DONE, OpState.FAILED):
            self._show(op)
            return {"open": False, "next_at": 0.0}
        if state == OpState.REQUESTED:
            return self._call(op, action)
        return self._follow(op, action)

    def _follow(self, op: Doc, action: Action) -> Doc:
        """RUNNING: done when the zone's list shows the instance where the action leaves it; the
        operation is read only where the list can't tell (neither there nor on its way: a failure)."""
        seen = self.observer.look(op["zone"], op["notebook"])
        if seen.at <= op.get("called_at", 0.0):
            return self.runner.looked(op.get("polls", 0))  # the list predates the call
        info = seen.info
        if (info is None) if action == Action.DELETE else (info is not None and info.state == action.target):
            return self._finish(op, action, info)
        if info is not None and info.state in IN_PASSING:
            return self.runner.looked(op.get("polls", 0))
        status = self.workbench.operation(op["operation"])
        if not status.done:
            return self.runner.looked(op.get("polls", 0))
        if status.error is not None:
            return {"state": OpState.FAILED, "error": status.error.message, "next_at": 0.0}
        return self._finish(op, action, self.workbench.get(op["zone"], op["notebook"]))

    def _call(self, op: Doc, action: Action) -> Doc:
        zone, instance = op["zone"], op["notebook"]
        notebook = self.records.get(instance)
        if action == Action.DELETE and (notebook is None or notebook.state == NotebookState.GONE):
            return self._finish(op, action)  # nothing left in the cloud: forget the record
        try:
            if action == Action.DELETE:
                name = self.workbench.delete(zone, instance, request_id=op["id"])
            else:
                name = (self.workbench.stop if action == Action.STOP else self.workbench.start)(zone, instance)
        except WorkbenchError as exc:
            if exc.kind != "not_found":
                raise
            self.records.mark_gone(instance)
            if action == Action.DELETE:
                return self._finish(op, action)
            raise
        self._show({**op, "state": OpState.RUNNING})
        now = self.clock()
        return {
            "state": OpState.RUNNING,
            "operation": name,
            "called_at": now,
            "polls": 0,
            "errors": 0,
            "next_at": now + self.poll_seconds,
        }

    def _finish(self, op: Doc, action: Action, info: InstanceInfo | None = None) -> Doc:
        instance, url = op["notebook"], None
        if action.leaves is None:
            self.records.free(instance)
        else:
            self.records.operation_done(instance, action.leaves)
        if action == Action.START:
            url = info.url if info else None
            if url:
                self.records.observed(instance, "ACTIVE", url)
        audit.record(self.store, self.clock(), op["requester"], f"notebook.{action}.done", instance)
        return {"state": OpState.DONE, "url": url, "errors": 0, "next_at": 0.0}

    # --- Slack ----------------------------------------------------------------------------------------
    def _post(self, op: Doc) -> Doc:
        text = describe(op)
        posted = self.outbox.post(
            COLLECTION, op["id"], "message", op["channel"], text, op_blocks(op), dm_instead=op["requester"]
        )
        where = {"message_channel": posted.channel, "message_ts": posted.ts} if posted else {}
        return {**where, "errors": 0, "next_at": 0.0}

    def _show(self, op: Doc) -> None:
        """Replace the operation's message with its progress or outcome (safe to repeat)."""
        if not op.get("message_ts"):
            return
        try:
            self.slack.update(op["message_channel"], op["message_ts"], describe(op), op_blocks(op))
        except Exception:
            log.warning("could not show the operation in Slack", exc_info=True)


def op_blocks(op: Doc) -> list[dict]:
    """The operation's message: what happens, and a started notebook's link as a button."""
    blocks = [section(describe(op))]
    if op["state"] == OpState.DONE and op.get("url"):
        blocks.append(
            actions(button("Open JupyterLab", "open_notebook", op["notebook"], url=op["url"], style="primary"))
        )
    return blocks


def describe(op: Doc) -> str:
    """The operation in one line: in progress, or its outcome."""
    action = Action(op["action"])
    name, who = f"`{op['notebook']}`", f"<@{op['requester']}>"
    if op["state"] == OpState.DONE:
        return f"{action.done} {name} (asked by {who})."
    if op["state"] == OpState.FAILED:
        return f"❌ Couldn't {action} {name}: {op.get('error')}"
    return f"⏳ {action.doing} {name} for {who}…"
