"""The launch state machine and its reconciler: the store is the queue.

    PENDING_APPROVAL ──approve──► APPROVED ──create──► CREATING ──operation done──► READY
           │ deny / expire                    │ error            │ error / timeout
           ▼                                  ▼                  ▼
     DENIED / EXPIRED                       FAILED             FAILED

Every step runs under a lease taken in a store transaction, so any number of bot processes
(Cloud Run replicas, a Scheduler tick, a restarted laptop) can run passes at once and each
launch advances in exactly one of them. Cloud calls are idempotent: the instance name is
derived from the launch id and the launch id is the create request's `request_id`.
Slack messages are updated in place with chat.update, which is safe to repeat.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from bot.adapters.notify import Slack
from bot.adapters.store import Store
from bot.adapters.workbench import Workbench, WorkbenchError, label_value
from bot.domain import audit, leases
from bot.domain.catalog import Catalog
from bot.domain.errors import UserError
from bot.domain.policy import Rules
from bot.domain.spec import NotebookSpec, SpecBounds, parse_request, resolve
from bot.run.logs import log_context
from bot.ui.blocks import approval_message, launch_message

log = logging.getLogger(__name__)
LAUNCH_NAMESPACE = uuid.UUID("6f0d1c1e-8a4b-4c55-9d59-2b1f3c6a7e10")


class State(StrEnum):
    PENDING_APPROVAL = "PENDING_APPROVAL"
    APPROVED = "APPROVED"
    CREATING = "CREATING"
    READY = "READY"
    FAILED = "FAILED"
    DENIED = "DENIED"
    EXPIRED = "EXPIRED"


TERMINAL = {State.READY, State.FAILED, State.DENIED, State.EXPIRED}


@dataclass
class Launch:
    id: str
    requester: str
    channel: str
    spec: dict[str, Any]
    instance_id: str
    state: str
    created_at: float
    updated_at: float
    open: bool = True  # the reconciler still has something to do (work, or a final message)
    message_channel: str | None = None
    message_ts: str | None = None
    operation: str | None = None
    error: str | None = None
    url: str | None = None
    owner_email: str | None = None
    approval_reason: str | None = None
    approval_posts: list[dict[str, str]] = field(default_factory=list)  # where approvers were asked
    approval_closed: bool = False  # the approval request shows its outcome and has no buttons
    approval_asked: bool = False
    creating_since: float | None = None  # when the create call went out (approval wait excluded)
    decision: dict[str, Any] | None = None
    attempts: int = 0
    next_at: float = 0.0
    last_shown: float = 0.0
    lease_owner: str | None = None
    lease_until: float = 0.0
    history: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Launch:
        known = cls.__dataclass_fields__
        return cls(**{k: v for k, v in doc.items() if k in known})

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def notebook_spec(self) -> NotebookSpec:
        return NotebookSpec.from_dict(self.spec)


class Launcher:
    LEASE_SECONDS = 30  # a step is one or two API calls; a crashed worker delays its job this long
    MAX_ATTEMPTS = 6
    CREATE_TIMEOUT = 45 * 60
    SHOW_EVERY = 10.0  # seconds between "creating…" message refreshes

    def __init__(
        self,
        *,
        store: Store,
        workbench: Workbench,
        slack: Slack,
        catalog: Catalog,
        rules: Rules,
        bounds: SpecBounds,
        clock: Callable[[], float] = time.time,
        worker_id: str | None = None,
        prepare_metadata: Callable[[NotebookSpec], dict[str, str]] | None = None,
        check_buckets: Callable[[NotebookSpec], None] | None = None,
        poll_seconds: float = 2.0,
        on_pending: Callable[[Launch], None] | None = None,
        on_finished: Callable[[Launch], None] | None = None,
    ) -> None:
        self.store = store
        self.workbench = workbench
        self.slack = slack
        self.catalog = catalog
        self.rules = rules
        self.bounds = bounds
        self.clock = clock
        self.worker_id = worker_id or uuid.uuid4().hex[:12]
        self.prepare_metadata = prepare_metadata or (lambda spec: {})
        self.check_buckets = check_buckets or (lambda spec: None)  # UserError if a bucket= can't be mounted
        self.poll_seconds = poll_seconds
        self.on_pending = on_pending  # asks approvers (bot/domain/approvals.py)
        self.on_finished = on_finished  # e.g. refreshes the requester's App Home

    # --- requests -------------------------------------------------------------------------------
    def check(self, text: str) -> NotebookSpec:
        """Parse and resolve a `/notebook new` text; raises UserError. Touches nothing."""
        return resolve(parse_request(text), self.catalog, self.bounds, self.today())

    def request(self, *, requester: str, channel: str, text: str, dedupe_key: str) -> tuple[Launch | None, bool]:
        """Record a launch; returns (launch, created). A repeated dedupe_key returns the first launch
        (None while a concurrent delivery of the same request is still recording it).

        Raises UserError (bad spec, name taken) or NotAllowed (quota) with nothing recorded.
        """
        launch_id = str(uuid.uuid5(LAUNCH_NAMESPACE, dedupe_key))
        with log_context(launch_id=launch_id, user=requester):
            return self._request(launch_id, requester, channel, text)

    def _request(self, launch_id: str, requester: str, channel: str, text: str) -> tuple[Launch | None, bool]:
        existing = self.get(launch_id)
        if existing is not None:
            return existing, False
        spec = self.check(text)
        self.check_buckets(spec)  # asks Cloud Storage, so here and not in the pure check()
        self.rules.check_quota(requester, spec, running_specs(self.store, requester))
        instance_id = spec.name or default_instance_id(spec, launch_id)
        now = self.clock()
        reason = self.rules.approval_reason(spec)
        state = State.PENDING_APPROVAL if reason else State.APPROVED
        notebook = {
            "id": instance_id,
            "zone": spec.zone,
            "owner": requester,
            "channel": channel,
            "spec": spec.to_dict(),
            "launch_id": launch_id,
            "state": "REQUESTED",
            "created_at": now,
            "managed": True,
        }
        if not self.store.create("notebooks", instance_id, notebook):
            taken = self.store.get("notebooks", instance_id) or {}
            if taken.get("launch_id") == launch_id:  # a concurrent retry of this same request
                return self.get(launch_id), False
            raise UserError(f"A notebook named `{instance_id}` already exists; choose another `name=`.", field="name")
        launch = Launch(
            id=launch_id,
            requester=requester,
            channel=channel,
            spec=spec.to_dict(),
            instance_id=instance_id,
            state=state,
            created_at=now,
            updated_at=now,
            approval_reason=reason,
            history=[{"state": state, "at": now, "by": requester}],
        )
        if not self.store.create("launches", launch_id, launch.to_doc()):
            return self.get(launch_id), False
        audit.record(self.store, now, requester, "launch.requested", instance_id, launch=launch_id, spec=launch.spec)
        return launch, True

    def begin(self, *, requester: str, channel: str, text: str, dedupe_key: str) -> Launch | None:
        """Request a launch and start it (see `start`)."""
        launch, created = self.request(requester=requester, channel=channel, text=text, dedupe_key=dedupe_key)
        return self.start(launch) if created and launch else launch

    def start(self, launch: Launch) -> Launch:
        """Show a new launch in its channel, then create it now or ask approvers. Slack failing that
        first post stops nothing: the launch goes on, and the reconciler posts its message (show)."""
        try:
            launch = self.post(launch)
        except Exception:
            log.warning("could not post the launch message; a reconcile pass posts it", exc_info=True)
        self.step(launch.id)  # creates it, or asks approvers (a step, so a crash here is retried)
        return launch

    def today(self) -> date:
        return datetime.fromtimestamp(self.clock(), UTC).date()

    def get(self, launch_id: str) -> Launch | None:
        doc = self.store.get("launches", launch_id)
        return Launch.from_doc(doc) if doc else None

    def pending_of(self, user: str) -> list[Launch]:
        """The user's launches still waiting for approval or being created."""
        docs = self.store.query("launches", requester=user, open=True)
        waiting = (State.PENDING_APPROVAL, State.APPROVED, State.CREATING)
        return [Launch.from_doc(d) for d in docs if d["state"] in waiting]

    # --- the reconciler -------------------------------------------------------------------------
    def reconcile(self) -> int:
        """One pass: advance every launch that is due. Returns how many were advanced."""
        return leases.work_due(self.store, "launches", self.clock(), self.step)

    def step(self, launch_id: str) -> bool:
        """Advance one launch by one step if no other worker holds it. Returns whether it ran."""
        doc = leases.claim(self.store, "launches", launch_id, self.worker_id, self.clock(), self.LEASE_SECONDS)
        if doc is None:
            return False
        launch = Launch.from_doc(doc)
        with log_context(launch_id=launch.id, user=launch.requester):
            return self._step(launch)

    def _step(self, launch: Launch) -> bool:
        launch_id = launch.id
        try:
            changes = self._advance(launch)
        except WorkbenchError as exc:  # transient trouble talking to Workbench: back off and retry
            changes = self._retry_or_fail(launch, exc)
        except Exception:
            log.exception("launch step failed", extra={"launch_id": launch.id})
            changes = self._retry_or_fail(launch, WorkbenchError("unknown", "an internal error", retriable=True))
        try:
            launch = Launch.from_doc(
                leases.release(self.store, "launches", launch.id, self.worker_id, self.clock(), changes)
            )
        except leases.LeaseLost:
            log.warning("lease lost; another worker carries on", extra={"launch_id": launch_id})
            return True
        self.show(launch)
        return True

    def _advance(self, launch: Launch) -> dict[str, Any]:
        now = self.clock()
        if launch.state == State.PENDING_APPROVAL:
            if now - launch.created_at > self.rules.policy.approval_expires_after:
                return self._finish(launch, State.EXPIRED, error="No approver decided in time.")
            if self.on_pending is not None and leases.first(self.store, "launches", launch.id, "approval_asked"):
                try:
                    self.on_pending(launch)
                except Exception:  # nobody was asked: let the next step try again
                    self.store.update("launches", launch.id, lambda d: {**d, "approval_asked": False} if d else None)
                    raise
            return {"next_at": launch.created_at + self.rules.policy.approval_expires_after}
        if launch.state == State.APPROVED:
            return self._create(launch)
        if launch.state == State.CREATING:
            if now - (launch.creating_since or launch.created_at) > self.CREATE_TIMEOUT:
                # The instance may yet appear: keep its record so the cloud sync follows it.
                self.store.update(
                    "notebooks", launch.instance_id, lambda d: {**d, "state": "PROVISIONING"} if d else None
                )
                return {
                    **self._finish(launch, State.FAILED, keep_record=True),
                    "error": "Creation took too long; the instance may still appear in `/notebook list`.",
                }
            return self._poll(launch)
        return {}  # a terminal state: only its final message is left to show

    def _create(self, launch: Launch) -> dict[str, Any]:
        email = launch.owner_email or self.slack.user(launch.requester).email
        if not email:
            return self._finish(
                launch,
                State.FAILED,
                error="Slack did not give me your email address, which Workbench needs to make you the "
                "notebook's owner. An admin must grant the app the users:read.email scope.",
            )
        spec = launch.notebook_spec
        labels = {
            "managed-by": "notebook-bot",
            "owner": label_value(launch.requester),
            "launch-id": launch.id,
            "created-by": "notebook-bot",
        }
        try:
            operation = self.workbench.create(
                spec,
                self.catalog,
                instance_id=launch.instance_id,
                owner_email=email,
                labels=labels,
                request_id=launch.id,
                metadata=self.prepare_metadata(spec),
            )
        except WorkbenchError as exc:
            if exc.kind != "exists":
                raise
            existing = self.workbench.get(spec.zone, launch.instance_id)
            if existing is None or existing.labels.get("launch-id") != launch.id:
                return self._finish(launch, State.FAILED, error=exc.message)
            operation = None  # ours, from an earlier attempt whose reply was lost: follow the instance
        return {
            "state": State.CREATING,
            "creating_since": self.clock(),
            "operation": operation,
            "owner_email": email,
            "attempts": 0,
            "next_at": self._next_look(0),
        }

    def _poll(self, launch: Launch) -> dict[str, Any]:
        spec = launch.notebook_spec
        if launch.operation:
            status = self.workbench.operation(launch.operation)
            if not status.done:
                return {
                    "attempts": launch.attempts + 1,
                    "next_at": self._next_look(launch.attempts + 1),
                }
            if status.error is not None:
                return self._finish(launch, State.FAILED, error=status.error.message)
        info = self.workbench.get(spec.zone, launch.instance_id)
        if info is None:
            return self._finish(launch, State.FAILED, error="The instance disappeared while it was being created.")
        if info.state != "ACTIVE" or not info.url:
            return {
                "operation": None,
                "attempts": launch.attempts + 1,
                "next_at": self._next_look(launch.attempts + 1),
            }
        now = self.clock()

        def ready(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            if doc is None:  # deleted meanwhile (say by an admin); don't resurrect half a record
                return None
            return {**doc, "state": "ACTIVE", "url": info.url, "ready_at": now, "state_since": now}

        self.store.update("notebooks", launch.instance_id, ready)
        audit.record(self.store, now, "bot", "launch.ready", launch.instance_id, launch=launch.id)
        return self._finish(launch, State.READY, url=info.url)

    def _finish(self, launch: Launch, state: State, *, keep_record: bool = False, **changes: Any) -> dict[str, Any]:
        if state != State.READY:
            if not keep_record:
                self.store.delete("notebooks", launch.instance_id)  # frees the name and the quota
            audit.record(
                self.store,
                self.clock(),
                "bot",
                f"launch.{state.lower()}",
                launch.instance_id,
                launch=launch.id,
                error=changes.get("error"),
            )
        return {"state": state, "operation": None, "next_at": 0.0, **changes}

    def _retry_or_fail(self, launch: Launch, exc: WorkbenchError) -> dict[str, Any]:
        attempts = launch.attempts + 1
        if not exc.retriable or attempts >= self.MAX_ATTEMPTS:
            return self._finish(launch, State.FAILED, error=exc.message)
        return {"attempts": attempts, "next_at": self._next_look(attempts)}

    def _close_approval_request(self, launch: Launch) -> None:
        """Replace the approvers' buttons with the outcome (who decided and when), once."""
        text, blocks = approval_message(launch, self.catalog, self.clock())
        for post in launch.approval_posts:
            try:
                self.slack.update(post["channel"], post["ts"], text, blocks)
            except Exception:
                log.exception("could not update the approval request", extra={"launch_id": launch.id})
                return
        self.store.update("launches", launch.id, lambda d: {**d, "approval_closed": True} if d else None)

    def _next_look(self, attempt: int) -> float:
        """When to look at an operation again, after `attempt` looks."""
        return self.clock() + leases.backoff(self.poll_seconds, attempt)

    # --- Slack ----------------------------------------------------------------------------------
    def post(self, launch: Launch) -> Launch:
        """Post the launch's message where it was asked for (or DM the requester) and remember it."""
        text, blocks = launch_message(launch, self.catalog, self.clock())
        posted = self.slack.post_or_dm(launch.channel, launch.requester, text, blocks)
        doc = self.store.update(
            "launches",
            launch.id,
            lambda d: {**d, "message_channel": posted.channel, "message_ts": posted.ts} if d else None,
        )
        return Launch.from_doc(doc) if doc else launch

    def show(self, launch: Launch) -> None:
        """Bring the launch's messages up to date; announce the outcome once in its thread."""
        now = self.clock()
        final = launch.state in TERMINAL
        if launch.approval_posts and launch.state != State.PENDING_APPROVAL and not launch.approval_closed:
            self._close_approval_request(launch)
        try:
            if launch.message_ts is None or launch.message_channel is None:
                launch = self.post(launch)
            elif final or now - launch.last_shown >= self.SHOW_EVERY:
                text, blocks = launch_message(launch, self.catalog, now)
                self.slack.update(launch.message_channel, launch.message_ts, text, blocks)
            else:
                return
        except Exception:
            log.exception("could not show the launch in Slack", extra={"launch_id": launch.id})
            return
        if not final:
            self.store.update("launches", launch.id, lambda d: {**d, "last_shown": now} if d else None)
            return
        if not leases.close(self.store, "launches", launch.id):  # only the closer pings: at most once
            return
        if self.on_finished is not None:
            self.on_finished(launch)
        who, name = f"<@{launch.requester}>", f"`{launch.instance_id}`"
        ping = {
            State.READY: f"{who} your notebook {name} is ready.",
            State.FAILED: f"{who} your notebook {name} could not be created.",
            State.EXPIRED: f"{who} your request for {name} expired unapproved.",
            State.DENIED: f"{who} your request for {name} was denied. {launch.error}",
        }[State(launch.state)]
        try:
            self.slack.post(launch.message_channel, ping, thread_ts=launch.message_ts)
        except Exception:
            log.exception("could not announce the outcome", extra={"launch_id": launch.id})


def running_specs(store: Store, user: str, *, besides: str | None = None) -> list[NotebookSpec]:
    """Specs of the user's notebooks that run or are being launched: what quotas count."""
    docs = store.query("notebooks", owner=user)
    return [
        NotebookSpec.from_dict(d["spec"])
        for d in docs
        if d.get("state") not in ("STOPPED", "GONE") and d["id"] != besides
    ]


def default_instance_id(spec: NotebookSpec, launch_id: str) -> str:
    return f"{spec.environment}-{launch_id.replace('-', '')[:8]}"
