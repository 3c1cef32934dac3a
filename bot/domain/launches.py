"""The launch state machine, top to bottom: the store is the queue, every side effect a leased step.

    REQUESTED ──reserve──► PENDING_APPROVAL ──decision──► APPROVED ──create──► CREATING ──ACTIVE──► READY
        │ name taken,           │ deny / expire / cancel     │ cancel             │ error, timeout
        ▼ over quota            ▼                            ▼                    ▼ (cancel: deleted once created)
      FAILED            DENIED / EXPIRED / CANCELLED      CANCELLED        FAILED / CANCELLED

The request path only checks and writes the REQUESTED record; everything else is a step taken
under a lease (bot/domain/leases.py), so any number of workers, replicas and Scheduler ticks can
run passes and each step runs in one of them. A step does at most one side effect:

- reserve the name and the quota (one locked step, bot/domain/records.py);
- post the launch's one message, ask the approvers, note the decision, ping the outcome: each a
  named post made at most once and recovered if Slack's reply is lost (bot/domain/outbox.py);
- announce the launches that turned ready in one pass in one channel in one message (mentions and
  links), each launch claimed for it at most once, the message recovered if Slack's reply is lost;
- apply a decision or a cancel (an approver creates the launch's one decision document, a
  requester writes only the cancel field; the state machine makes the transition);
- call Workbench: create with request_id = launch id and a name derived from it, so a retried or
  lost create is the same create; then watch for the instance in its zone's one list per tick
  (bot/adapters/observer.py), reading the operation only to explain an instance that is missing.

Transient errors back off and retry for as long as creation may take (CREATE_TIMEOUT), counted
apart from how many times a step looked; a launch that gives up after a create may have gone
out hands the record to the cloud sync instead of forgetting an instance that may exist.

Slack writes are paced by its tiers (bot/adapters/budget.py, one pacing per process): a launch
message is posted once, in the state it is in (after the create is sent, not "queued" and then
updated); a change of state is shown before any progress refresh; a write that gets no token, or
a 429, is not made this pass and is due again at the next. The link never waits for chat.update:
the pass's announcement carries it, and the launch message shows it when the budget allows.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.adapters.notify import UNREACHABLE_CHANNEL, Posted, Slack
from bot.adapters.observer import Observer, Seen
from bot.adapters.store import Store
from bot.adapters.workbench import Workbench, WorkbenchError, label_value
from bot.domain import audit, leases, outbox
from bot.domain.buckets import BucketChecker
from bot.domain.catalog import Catalog
from bot.domain.errors import NotAllowed, UserError
from bot.domain.policy import Rules
from bot.domain.records import COLLECTION as NOTEBOOKS
from bot.domain.records import NotebookState, Records
from bot.domain.spec import NotebookRequest, NotebookSpec, SpecBounds, parse_request, resolve
from bot.domain.zones import nearest_zone
from bot.run.logs import log_context

log = logging.getLogger(__name__)
LAUNCH_NAMESPACE = uuid.UUID("6f0d1c1e-8a4b-4c55-9d59-2b1f3c6a7e10")
COLLECTION = "launches"
DECISIONS = "decisions"  # one document per launch, created once by the approver who decides first


class State(StrEnum):
    REQUESTED = "REQUESTED"
    PENDING_APPROVAL = "PENDING_APPROVAL"
    APPROVED = "APPROVED"  # queued: the create call goes out next
    CREATING = "CREATING"
    READY = "READY"
    FAILED = "FAILED"
    DENIED = "DENIED"
    EXPIRED = "EXPIRED"
    CANCELLED = "CANCELLED"


TERMINAL = frozenset({State.READY, State.FAILED, State.DENIED, State.EXPIRED, State.CANCELLED})
WAITING = (State.REQUESTED, State.PENDING_APPROVAL, State.APPROVED, State.CREATING)
PHASE = {
    State.PENDING_APPROVAL: NotebookState.PENDING_APPROVAL,
    State.APPROVED: NotebookState.QUEUED,
    State.CREATING: NotebookState.CREATING,
}


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
    stockout_zones: list[str] | None = None  # FAILED for lack of capacity: the zones Google said have it
    retry_zone: str | None = None  # ... and the nearest of them this launch may go to (the offer's zone)
    url: str | None = None
    owner_email: str | None = None
    approval_reason: str | None = None
    approval_posts: list[dict[str, str]] = field(default_factory=list)  # where approvers were asked
    approvers_asked: bool = False
    approval_closed: bool = False  # the approval request shows its outcome and has no buttons
    decision: dict[str, Any] | None = None  # written by an approver; applied by a step
    cancel: dict[str, Any] | None = None  # {by, at}: written by the requester or an admin; applied by a step
    approved_at: float | None = None
    create_sent_at: float | None = None  # a create call went out: an instance may exist from here on
    creating_since: float | None = None
    polls: int = 0  # looks at the zone's list (they never fail a launch)
    errors: int = 0  # transient errors in a row (they pace the retries; CREATE_TIMEOUT ends them)
    next_at: float = 0.0
    shown: str | None = None  # the state the launch message last showed
    announce: dict[str, Any] | None = None  # READY: the claim of the announcement that carries its link
    last_shown: float = 0.0
    effects: dict[str, Any] = field(default_factory=dict)
    kick: int = 0
    lease_owner: str | None = None
    lease_until: float = 0.0
    lease_kick: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)

    @classmethod
    def from_doc(cls, doc: dict[str, Any]) -> Launch:
        known = cls.__dataclass_fields__
        fields = {k: v for k, v in doc.items() if k in known}
        fields.setdefault("approvers_asked", bool(doc.get("approval_asked")))  # its name before 2026-12
        return cls(**fields)

    def to_doc(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def notebook_spec(self) -> NotebookSpec:
        return NotebookSpec.from_dict(self.spec)

    @property
    def waiting(self) -> bool:
        return self.state in WAITING


class Launcher:
    LEASE_SECONDS = 30  # a step is one or two API calls; a crashed worker delays its job this long
    CREATE_TIMEOUT = 45 * 60
    SHOW_EVERY = 30.0  # at most this often a "creating…" message's elapsed time, budget permitting
    ANNOUNCE_AT_ONCE = 40  # launches one announcement names (a section each, within Slack's 50 blocks)
    MAX_STEPS_AT_ONCE = 12  # `advance` runs a launch's due steps back to back, up to this many

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
        buckets: BucketChecker | None = None,
        poll_seconds: float = 2.0,
        messages: Any = None,
        observer: Observer | None = None,
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
        self.buckets = buckets  # UserError if a bucket= can't be mounted
        self.poll_seconds = poll_seconds
        self.observer = observer or Observer(workbench, clock)  # shared with operations: one list per zone per tick
        self.pacing = slack.pacing  # the process's one pacing of Slack writes, shared by all launches
        self._ready: dict[str, Launch] = {}  # turned READY, their link to announce at the end of the pass
        self._ready_lock = threading.Lock()
        self.records = Records(store, clock)
        self.outbox = outbox.Outbox(store, slack, clock)
        self.messages = messages  # bot/ui/launch_views.py LaunchViews: what each message says
        self.ask_approvers: Callable[[Launch], bool] | None = None  # bot/domain/approvals.py; False: nobody
        self.delete_instance: Callable[[Launch], None] | None = None  # a cancelled launch's instance
        self.on_finished: Callable[[Launch], None] | None = None  # e.g. refreshes the requester's App Home
        self.runner = leases.Runner(
            owner=self,
            collection=COLLECTION,
            name="launch",
            step=lambda doc: self._paced_step(Launch.from_doc(doc)),
            retries=leases.Retries(
                fatal=lambda exc: isinstance(exc, UserError) or leases.refused(exc),
                fail=lambda doc, exc: self._fail(Launch.from_doc(doc), exc),
                deadline=self._deadline,
                give_up=lambda doc, exc: self._give_up(Launch.from_doc(doc), f"Google kept failing: {exc}"),
            ),
            max_steps=self.MAX_STEPS_AT_ONCE,
            context=lambda doc: {"launch_id": doc["id"], "user": doc["requester"]},
            after=self._after,
        )

    # --- the request path: check, write one record ---------------------------------------------------
    def check(self, request: str | NotebookRequest) -> NotebookSpec:
        """Resolve a typed command or a form's request into a checked spec; raises UserError. Touches nothing."""
        parsed = parse_request(request) if isinstance(request, str) else request
        return resolve(parsed, self.catalog, self.bounds, self.today())

    def request(
        self, *, requester: str, channel: str, request: str | NotebookRequest, dedupe_key: str
    ) -> tuple[Launch, bool]:
        """Record a launch; returns (launch, created). The same dedupe_key returns the first launch.

        Raises UserError (bad spec, name taken, bucket= on a bot not set up for it) or NotAllowed
        (quota) with nothing recorded. Nothing here calls Slack or Google: the quota and name checks
        only read, and the reserve step takes them after asking Cloud Storage about the buckets.
        """
        launch_id = str(uuid.uuid5(LAUNCH_NAMESPACE, dedupe_key))
        with log_context(launch_id=launch_id, user=requester):
            spec = self.check(request)
            if self.buckets is not None:
                self.buckets.check_setup(spec)  # Cloud Storage itself is asked by the reserve step
            instance_id = spec.name or default_instance_id(spec, launch_id)
            # the same request already recorded, and the name taken: one round trip for both
            existing, named = self.store.get_many([(COLLECTION, launch_id), (NOTEBOOKS, instance_id)])
            if existing is not None:
                return Launch.from_doc(existing), False
            if named is not None:
                raise UserError(
                    f"A notebook named `{instance_id}` already exists; choose another `name=`.", field="name"
                )
            self.rules.check_quota(requester, spec, self.records.counted(requester))
            now = self.clock()
            launch = Launch(
                id=launch_id,
                requester=requester,
                channel=channel,
                spec=spec.to_dict(),
                instance_id=instance_id,
                state=State.REQUESTED,
                created_at=now,
                updated_at=now,
                approval_reason=self.rules.approval_reason(spec),
                history=[{"state": State.REQUESTED, "at": now, "by": requester}],
            )
            event = audit.entry(now, requester, "launch.requested", instance_id, launch=launch_id, spec=launch.spec)
            if not self.store.create_and_put(COLLECTION, launch_id, launch.to_doc(), [(audit.COLLECTION, *event)]):
                return self.get(launch_id) or launch, False  # the same request, recorded meanwhile
            return launch, True

    def cancel(self, user: str, launch: Launch) -> Launch:
        """Withdraw a launch that is waiting, queued or being created (the requester or an admin)."""
        if user != launch.requester and not self.rules.is_admin(user):
            raise NotAllowed(
                f"Only <@{launch.requester}>, who asked for `{launch.instance_id}`, or an admin can cancel it."
            )
        now = self.clock()
        won: list[bool] = []

        def withdraw(doc: dict[str, Any]) -> dict[str, Any] | None:
            won.clear()
            if doc["state"] in TERMINAL or doc.get("cancel"):
                return None
            won.append(True)
            return {**doc, "cancel": {"by": user, "at": now}}

        current = Launch.from_doc(leases.kick(self.store, COLLECTION, launch.id, withdraw) or launch.to_doc())
        if won:
            audit.record(self.store, now, user, "launch.cancel", launch.instance_id, launch=launch.id)
            return current
        if current.cancel:
            raise UserError(f"`{launch.instance_id}` is already being cancelled (by <@{current.cancel['by']}>).")
        raise UserError(f"`{launch.instance_id}` can't be cancelled any more: {self.messages.outcome(current)}")

    def relaunch_elsewhere(self, user: str, failed_id: object) -> tuple[Launch, Launch, bool]:
        """A stockout's one-click offer: the failed launch's spec as a new launch of its requester in
        the zone its message names, checked like any launch (quota, approval). The requester or an
        admin may take it, once: a second click finds the launch the first made (created False).
        Returns (the failed launch, the new one, created)."""
        failed = self.find_by_id(failed_id)
        if failed is None or failed.state != State.FAILED or not failed.retry_zone:
            raise UserError("That offer no longer exists; nothing was launched.")
        if user != failed.requester and not self.rules.is_admin(user):
            raise NotAllowed(
                f"Only <@{failed.requester}>, who asked for `{failed.instance_id}`, or an admin can launch it in "
                f"`{failed.retry_zone}`; nothing was launched."
            )
        request = replace(failed.notebook_spec.request(), zone=failed.retry_zone)
        launch, created = self.request(
            requester=failed.requester, channel=failed.channel, request=request, dedupe_key=f"elsewhere:{failed.id}"
        )
        if created:
            audit.record(
                self.store,
                self.clock(),
                user,
                "launch.elsewhere",
                launch.instance_id,
                launch=launch.id,
                failed=failed.id,
                zone=failed.retry_zone,
            )
        return failed, launch, created

    def record_decision(self, launch_id: str, decision: dict[str, Any]) -> Launch | None:
        """Record an approver's decision on a waiting launch; None when it was not waiting for one
        (decided already, withdrawn, expired or gone): the step applies it, exactly once.

        The decision is its own document, created once: approvers clicking at the same moment race
        on one create (one wins, the rest are refused at once) instead of queueing transactions on
        the launch, and only the winner nudges the launch."""
        launch = self.get(launch_id)
        if launch is None or launch.state not in (State.REQUESTED, State.PENDING_APPROVAL):
            return None
        expired = self.clock() - launch.created_at > self.rules.policy.approval_expires_after
        if launch.decision or launch.cancel or expired:
            return None
        if not self.store.create(DECISIONS, launch_id, decision):
            return None
        leases.kick(self.store, COLLECTION, launch_id, lambda doc: doc)
        return replace(launch, decision=decision)

    def with_decision(self, launch: Launch) -> Launch:
        """The launch with a decision recorded but not applied yet (what a late click is told)."""
        if launch.decision or launch.state != State.PENDING_APPROVAL:
            return launch
        return replace(launch, decision=self.store.get(DECISIONS, launch.id))

    # --- reading ------------------------------------------------------------------------------------
    def today(self) -> date:
        return datetime.fromtimestamp(self.clock(), UTC).date()

    def get(self, launch_id: str) -> Launch | None:
        doc = self.store.get(COLLECTION, launch_id)
        return Launch.from_doc(doc) if doc else None

    def find_by_id(self, launch_id: object) -> Launch | None:
        """The launch a button or a form names, or None for anything that isn't a launch id (a
        forged value never reaches the store as a key)."""
        if not isinstance(launch_id, str):
            return None
        try:
            return self.get(str(uuid.UUID(launch_id)))
        except ValueError:
            return None

    def pending_of(self, user: str) -> list[Launch]:
        """The user's launches still waiting for approval, queued or being created."""
        docs = self.store.query(COLLECTION, requester=user, open=True)
        return sorted((Launch.from_doc(d) for d in docs if d["state"] in WAITING), key=lambda launch: launch.created_at)

    def waiting_for(self, name: str) -> Launch | None:
        """The open launch of the notebook called `name`, if one is under way."""
        docs = self.store.query(COLLECTION, instance_id=name.strip().lower(), open=True)
        found = [Launch.from_doc(d) for d in docs if d["state"] in WAITING]
        return found[0] if found else None

    def find_waiting(self, user: str, name: str) -> Launch:
        """The launch under way that `name` names: its notebook's name, else the only one of the
        user's own launches whose name starts with it."""
        exact = self.waiting_for(name)
        if exact is not None:
            return exact
        wanted = name.strip().lower()
        mine = self.pending_of(user)
        matches = [launch for launch in mine if wanted and launch.instance_id.startswith(wanted)]
        if len(matches) == 1:
            return matches[0]
        names = ", ".join(f"`{launch.instance_id}`" for launch in mine)
        listing = f"Yours under way: {names}." if names else "You have no launches under way."
        raise UserError(f"No launch of `{name}` is under way. {listing}")

    # --- the reconciler -------------------------------------------------------------------------------
    def reconcile(self) -> int:
        """One pass: advance every launch that is due, then announce the links of those that turned
        ready. Returns how many were advanced."""
        advanced = leases.work_due(self.store, COLLECTION, self.clock(), self.advance, waiting=self._on_its_way)
        try:
            self.announce()
        except Exception:  # the launches are still due, and their claims say how far each got
            log.exception("could not announce the ready launches; the next pass tries again")
        return advanced

    def _on_its_way(self, doc: dict[str, Any]) -> bool:
        """A launch being created whose instance this tick's list shows still on its way, with nothing
        else to do now (its message posted, or no token to post it yet; no refresh of its elapsed time
        due, or no token for one): its look takes no lease and writes nothing (a hundred such
        launches cost a pass the due query's hundred reads, not three hundred reads and two hundred
        writes). It stays due, so the next pass looks again. Anything else, a failed list included,
        takes the leased step, which backs off and refreshes the message from the record as it is."""
        launch = Launch.from_doc(doc)
        now = self.clock()
        if (
            launch.state != State.CREATING
            or launch.cancel
            or (self._message_due(launch) and self.pacing.can_post(launch.channel))  # it goes out now
            or (launch.approval_posts and not launch.approval_closed)
            or self._creation_too_long(launch, now)
            or (self._refresh_due(launch, now) and self.pacing.updates.ready(urgent=False))
        ):
            return False
        try:
            return self._coming(launch, self.observer.look(launch.notebook_spec.zone, launch.instance_id))
        except Exception:
            return False

    def _coming(self, launch: Launch, seen: Seen) -> bool:
        """Whether the zone's list shows the instance still on its way: not in it yet (a list no newer
        than the create can't tell "not yet" from "gone"), or in it but not yet ACTIVE with a link."""
        if seen.info is None:
            return not seen.absent_since(launch.create_sent_at or launch.created_at)
        return seen.info.state != "ACTIVE" or not seen.info.url

    def _creation_too_long(self, launch: Launch, now: float) -> bool:
        return now - (launch.creating_since or launch.created_at) > self.CREATE_TIMEOUT

    def advance(self, launch_id: str) -> bool:
        """Run the launch's steps that are due now, one lease each; False if another worker holds it."""
        return self.runner.advance(launch_id)

    def _deadline(self, doc: dict[str, Any], trouble: Exception) -> float | None:
        """Trouble is retried for as long as creation may take; only a create under way gives up."""
        launch = Launch.from_doc(doc)
        if launch.state not in (State.APPROVED, State.CREATING):
            return None
        return (launch.create_sent_at or launch.approved_at or launch.created_at) + self.CREATE_TIMEOUT

    def _after(self, doc: dict[str, Any], closed: bool) -> None:
        launch = Launch.from_doc(doc)
        if launch.open and launch.next_at > self.clock() and launch.state not in TERMINAL:
            self._refresh(launch)  # not while a next step follows at once, nor once over (_wrap_up shows that)
        if closed:
            self._closed(launch)

    def _paced_step(self, launch: Launch) -> dict[str, Any]:
        """A step; one that Slack answered 429 is due again later (its Retry-After holds the pacing)."""
        try:
            return self._step(launch)
        except SlackApiError as exc:
            if not outbox.rate_limited(exc):
                raise
            log.info("Slack rate-limited a launch step; it is due again later")
            return self._later()

    def _later(self) -> dict[str, Any]:
        """Changes of a step that could not do its Slack write now (no token): due at the next pass."""
        return {"next_at": self.clock() + self.poll_seconds}

    def _message_due(self, launch: Launch) -> bool:
        """Whether the launch's one message is still to be posted. A queued launch posts it once its
        create is sent (it shows "being created" at once, with no update right after), and a ready
        one never: its announcement is its message."""
        if launch.message_ts or outbox.done(launch.to_doc(), "message") or launch.state == State.READY:
            return False
        return not (launch.state == State.APPROVED and launch.create_sent_at is None and not launch.errors)

    def _step(self, launch: Launch) -> dict[str, Any]:
        state = State(launch.state)
        if state == State.REQUESTED:
            return self._reserve(launch)
        if self._message_due(launch):
            if self.pacing.post(launch.channel):
                return self._post_message(launch)
            if state in TERMINAL:
                return self._later()  # its outcome is told in (or under) its message: wait for a token
        if state in TERMINAL:
            return self._wrap_up(launch)
        if launch.approval_posts and state != State.PENDING_APPROVAL and not launch.approval_closed:
            return self._close_approval_request(launch)
        if launch.cancel and state in (State.PENDING_APPROVAL, State.APPROVED):
            return self._finish(launch, State.CANCELLED, error=f"Withdrawn by <@{launch.cancel['by']}>.")
        if state == State.PENDING_APPROVAL:
            return self._await_decision(launch)
        if state == State.APPROVED:
            if launch.decision and launch.decision.get("approved") and not outbox.done(launch.to_doc(), "approved"):
                return self._note_approval(launch)
            if not launch.owner_email:
                return self._owner_email(launch)
            return self._create(launch)
        return self._follow(launch)

    # --- the steps ----------------------------------------------------------------------------------
    def _reserve(self, launch: Launch) -> dict[str, Any]:
        spec = launch.notebook_spec
        if self.buckets is not None:
            self.buckets(spec)  # UserError: the launch fails with the bucket's trouble, nothing reserved
        state = State.PENDING_APPROVAL if launch.approval_reason else State.APPROVED
        self.records.reserve(
            instance_id=launch.instance_id,
            owner=launch.requester,
            channel=launch.channel,
            spec=spec,
            launch_id=launch.id,
            state=PHASE[state],
            check_quota=lambda counted: self.rules.check_quota(launch.requester, spec, counted),
        )  # UserError / NotAllowed: the launch fails with that message, nothing reserved
        changes = self._to(launch, state)
        if state == State.APPROVED:
            changes["approved_at"] = self.clock()
        return changes

    def _post_message(self, launch: Launch) -> dict[str, Any]:
        text, blocks = self.messages.launch(launch, self.clock())
        posted = self.outbox.post(
            COLLECTION, launch.id, "message", launch.channel, text, blocks, dm_instead=launch.requester
        )
        where = {"message_channel": posted.channel, "message_ts": posted.ts} if posted else {}
        return {**where, "shown": launch.state, "last_shown": self.clock(), "errors": 0, "next_at": 0.0}

    def _await_decision(self, launch: Launch) -> dict[str, Any]:
        expires_at = launch.created_at + self.rules.policy.approval_expires_after
        launch = self.with_decision(launch)
        if launch.decision:
            return {"decision": launch.decision, **self._apply_decision(launch)}
        if self.clock() > expires_at:
            return self._finish(launch, State.EXPIRED, error="No approver decided in time.")
        if not launch.approvers_asked and self.ask_approvers is not None:
            reached = self.ask_approvers(launch)  # each post at most once; raises to be retried
            posts = [
                {"channel": e["channel"], "ts": e["ts"]}
                for name, e in launch_effects(self.store, launch.id).items()
                if name.startswith("approval:") and e.get("state") == outbox.DONE
            ]
            if not reached:
                self._thread_note(launch, "no-approvers", self.messages.no_approvers(launch))
            return {"approvers_asked": True, "approval_posts": posts, "errors": 0, "next_at": 0.0}
        return {"next_at": expires_at, "errors": 0}

    def _apply_decision(self, launch: Launch) -> dict[str, Any]:
        decision = launch.decision or {}
        by = decision["by"]
        if not decision.get("approved"):
            return self._finish(launch, State.DENIED, by=by, error=f"Denied by <@{by}>: {decision.get('reason')}")
        changes = self._to(launch, State.APPROVED, by=by)
        lowered = decision.get("spec")
        if lowered:
            changes["spec"] = lowered
        self.records.set_phase(
            launch.instance_id, launch.id, NotebookState.QUEUED, NotebookSpec.from_dict(lowered) if lowered else None
        )
        return {**changes, "approved_at": self.clock()}

    def _note_approval(self, launch: Launch) -> dict[str, Any]:
        if not self._paced_note(launch, "approved", self.messages.approved(launch)):
            return self._later()
        return {"errors": 0, "next_at": 0.0}

    def _owner_email(self, launch: Launch) -> dict[str, Any]:
        """The requester's email, which Workbench needs to make them the owner: a step of its own
        before the create, so a cancel made meanwhile is seen before anything is created."""
        email = self.slack.user(launch.requester).email
        if not email:
            return self._fail(
                launch,
                "Slack did not give me your email address, which Workbench needs to make you the notebook's "
                "owner. An admin must grant the app the users:read.email scope.",
            )
        return {"owner_email": email, "errors": 0, "next_at": 0.0}

    def _create(self, launch: Launch) -> dict[str, Any]:
        email = launch.owner_email
        spec = launch.notebook_spec
        labels = {
            "managed-by": "notebook-bot",
            "owner": label_value(launch.requester),
            "launch-id": launch.id,
            "created-by": "notebook-bot",
        }
        metadata = self.prepare_metadata(spec)
        sent_at = launch.create_sent_at or self.clock()
        if launch.create_sent_at is None:  # written before the call: from here an instance may exist
            self.store.update(COLLECTION, launch.id, lambda d: {**d, "create_sent_at": sent_at} if d else None)
        try:
            operation = self.workbench.create(
                spec,
                self.catalog,
                instance_id=launch.instance_id,
                owner_email=email,
                labels=labels,
                request_id=launch.id,
                metadata=metadata,
            )
        except WorkbenchError as exc:
            if exc.kind != "exists":
                raise
            existing = self.workbench.get(spec.zone, launch.instance_id)
            if existing is None or existing.labels.get("launch-id") != launch.id:
                return self._fail(launch, exc.message)
            operation = None  # ours, from an earlier attempt whose reply was lost: follow the instance
        self.records.set_phase(launch.instance_id, launch.id, NotebookState.CREATING)
        posted = launch.message_ts or outbox.done(launch.to_doc(), "message")
        return {
            **self._to(launch, State.CREATING),
            "creating_since": self.clock(),
            "create_sent_at": sent_at,
            "operation": operation,
            "owner_email": email,
            "polls": 0,
            "errors": 0,
            "next_at": self.clock() + self.poll_seconds if posted else 0.0,  # else its message now
        }

    def _follow(self, launch: Launch) -> dict[str, Any]:
        """CREATING: watch for the instance in its zone's list until it is ACTIVE with a link.

        The operation is read only where the list can't tell: the instance is missing from a list
        taken after the create went out (a failed create leaves nothing), which the error explains."""
        if self._creation_too_long(launch, self.clock()):
            return self._give_up(launch, "Creation took too long; the instance may still appear in `/notebook list`.")
        seen = self.observer.look(launch.notebook_spec.zone, launch.instance_id)
        if self._coming(launch, seen):
            return self.runner.looked(launch.polls)
        info = seen.info
        if info is None:
            if launch.operation:
                status = self.workbench.operation(launch.operation)
                if not status.done:
                    return self.runner.looked(launch.polls)
                if status.error is not None:
                    return self._fail(launch, status.error)
            return self._fail(launch, "The instance disappeared while it was being created.")
        self.records.mark_ready(launch.instance_id, launch.id, info.url)
        audit.record(self.store, self.clock(), "bot", "launch.ready", launch.instance_id, launch=launch.id)
        if launch.cancel and self.delete_instance is not None:
            self.delete_instance(launch)  # a delete operation of its own, followed and reported like any
            return self._finish(
                launch,
                State.CANCELLED,
                keep_record=True,
                error=f"Withdrawn by <@{launch.cancel['by']}> while it was being created: deleting the instance.",
            )
        return self._finish(launch, State.READY, url=info.url)

    def _close_approval_request(self, launch: Launch) -> dict[str, Any]:
        """Replace the approvers' buttons with the outcome (who decided, or who withdrew it)."""
        text, blocks = self.messages.approval(launch, self.clock())
        first, *others = launch.approval_posts  # a channel, or a DM to each approver
        if not self.slack.update(first["channel"], first["ts"], text, blocks, urgent=True):
            return self._later()
        for post in others:  # counted in the pacing, not asked: however many approvers, the step goes through
            self.slack.update(post["channel"], post["ts"], text, blocks)
        return {"approval_closed": True, "errors": 0, "next_at": 0.0}

    def _wrap_up(self, launch: Launch) -> dict[str, Any]:
        """A terminal launch: close the approvers' request, tell the outcome once (a ready one in the
        pass's announcement, another in its thread), show it in the launch message, and close."""
        if launch.approval_posts and not launch.approval_closed:
            return self._close_approval_request(launch)
        told = outbox.done(launch.to_doc(), "ping") or (launch.shown == launch.state and launch.state != State.READY)
        if not told and launch.state == State.READY:
            with self._ready_lock:  # announced at the end of this pass; until then due at the next
                self._ready[launch.id] = launch
            return self._later()
        if not told and launch.message_ts and not self._paced_note(launch, "ping", self.messages.ping(launch)):
            return self._later()
        adopted = self._adopt_message(launch)
        launch = replace(launch, **adopted)
        if launch.message_ts and launch.message_channel and launch.shown != launch.state:
            text, blocks = self.messages.launch(launch, self.clock())
            if not self.slack.update(launch.message_channel, launch.message_ts, text, blocks, urgent=True):
                return {**adopted, **self._later()}
            return {**adopted, "shown": launch.state, "last_shown": self.clock(), "open": False, "next_at": 0.0}
        return {**adopted, "open": False, "next_at": 0.0}

    def _adopt_message(self, launch: Launch) -> dict[str, Any]:
        """A launch message whose reply was lost, found in Slack so its outcome shows in it. A ready
        launch never posts its message late (its announcement told the person), but one Slack did
        post would otherwise say "Creating…" with a Cancel button forever."""
        if launch.message_ts or outbox.effect(launch.to_doc(), "message").get("state") != outbox.PENDING:
            return {}
        found = self.outbox.adopt(COLLECTION, launch.id, "message")
        return {"message_channel": found.channel, "message_ts": found.ts} if found else {}

    # --- transitions --------------------------------------------------------------------------------
    def _to(self, launch: Launch, state: State, *, by: str = "bot") -> dict[str, Any]:
        history = [*launch.history, {"state": state, "at": self.clock(), "by": by}]
        return {"state": state, "history": history, "errors": 0, "next_at": 0.0}

    def _finish(
        self, launch: Launch, state: State, *, keep_record: bool = False, by: str = "bot", **changes: Any
    ) -> dict[str, Any]:
        if state != State.READY and not keep_record:
            self.records.free(launch.instance_id, launch_id=launch.id)  # the name and the quota are free again
        if state not in (State.READY, State.DENIED):  # a denial is audited when it is recorded
            audit.record(
                self.store,
                self.clock(),
                by,
                f"launch.{state.lower()}",
                launch.instance_id,
                launch=launch.id,
                error=changes.get("error"),
            )
        return {**self._to(launch, state, by=by), "operation": None, **changes}

    def _fail(self, launch: Launch, error: str | Exception) -> dict[str, Any]:
        """Failed: the record is freed unless an instance may exist (the cloud sync follows it then)."""
        if launch.state == State.CREATING or (launch.state == State.APPROVED and launch.create_sent_at):
            exists = self._instance_exists(launch)
            if exists is not False:
                return self._give_up(launch, error)
        return self._finish(launch, State.FAILED, error=str(error), **self._elsewhere(launch, error))

    def _give_up(self, launch: Launch, error: str | Exception) -> dict[str, Any]:
        self.records.hand_to_sync(launch.instance_id, launch.id)
        return self._finish(launch, State.FAILED, keep_record=True, error=str(error), **self._elsewhere(launch, error))

    def _elsewhere(self, launch: Launch, error: str | Exception) -> dict[str, Any]:
        """For a stockout: the zones Google said have capacity, and the nearest one this launch may
        go to (allowed by the policy, and listing its GPU in the catalog), for the failure's offer."""
        if not isinstance(error, WorkbenchError) or error.kind != "stockout":
            return {}
        spec = launch.notebook_spec
        gpu = self.catalog.gpus.get(spec.gpu) if spec.gpu else None
        zone = nearest_zone(spec.zone, error.zones, allowed=self.bounds.allowed_zones, offered=gpu.zones if gpu else ())
        return {"stockout_zones": list(error.zones), "retry_zone": zone}

    def _instance_exists(self, launch: Launch) -> bool | None:
        try:
            return self.workbench.get(launch.notebook_spec.zone, launch.instance_id) is not None
        except WorkbenchError:
            return None  # can't tell: keep the record

    # --- Slack ----------------------------------------------------------------------------------------
    def _thread_note(self, launch: Launch, name: str, text: str) -> Posted | None:
        """A reply in the thread of the launch's message, at most once per name."""
        if not launch.message_channel or not launch.message_ts:
            return None
        return self.outbox.post(COLLECTION, launch.id, name, launch.message_channel, text, thread_ts=launch.message_ts)

    def _paced_note(self, launch: Launch, name: str, text: str) -> bool:
        """`_thread_note` when the channel's pacing allows a post now; False when it had to wait."""
        needs_token = not outbox.done(launch.to_doc(), name) and launch.message_channel
        if needs_token and not self.pacing.post(launch.message_channel):
            return False
        self._thread_note(launch, name, text)
        return True

    def _refresh(self, launch: Launch) -> None:
        """Bring the message of a launch under way up to date: a change of state first (urgent),
        the elapsed time of one being created at most every SHOW_EVERY, when the budget has room.
        One that gets no token now is tried after a later step (chat.update is safe to repeat)."""
        if not launch.message_ts or not launch.message_channel:
            return
        now = self.clock()
        changed = launch.shown != launch.state
        if not changed and not self._refresh_due(launch, now):
            return
        text, blocks = self.messages.launch(launch, now)
        try:
            if not self.slack.update(launch.message_channel, launch.message_ts, text, blocks, urgent=changed):
                return
        except Exception:
            log.warning("could not update the launch message; the next step tries again", exc_info=True)
            return
        state = launch.state
        self.store.update(COLLECTION, launch.id, lambda d: {**d, "shown": state, "last_shown": now} if d else None)

    def _refresh_due(self, launch: Launch, now: float) -> bool:
        """Whether a launch being created shows an elapsed time older than SHOW_EVERY."""
        return launch.state == State.CREATING and now - launch.last_shown >= self.SHOW_EVERY

    def _closed(self, launch: Launch) -> None:
        if self.on_finished is not None:
            try:
                self.on_finished(launch)
            except Exception:
                log.exception("after-launch hook failed")

    # --- the pass's announcement of links --------------------------------------------------------------
    def announce(self) -> int:
        """Tell the people whose launches turned ready in this pass their links: one message per channel
        (split past ANNOUNCE_AT_ONCE) with each person's mention and link, at once, whatever the budget
        of chat.update leaves for the launch messages. Each launch is claimed for one announcement, so
        replicas racing on the same launches announce each once; a claim whose message Slack refused
        is given back, one whose reply was lost is recovered by the next pass. Returns how many were told."""
        with self._ready_lock:
            ready, self._ready = list(self._ready.values()), {}
        told = 0
        claimed: dict[str, dict[str, Any]] = {}
        fresh: dict[str, list[Launch]] = {}
        for launch in ready:
            if launch.announce:  # claimed by an earlier pass: recovered once its announcer must be done
                if self.clock() - launch.announce["at"] >= self.LEASE_SECONDS:
                    claimed[launch.announce["by"]] = launch.announce
            else:
                fresh.setdefault(launch.message_channel or launch.channel, []).append(launch)
        for token, claim in claimed.items():
            told += self._announce_again(token, claim)
        for channel, launches in fresh.items():
            for start in range(0, len(launches), self.ANNOUNCE_AT_ONCE):
                told += self._announce(channel, launches[start : start + self.ANNOUNCE_AT_ONCE])
        return told

    def _announce(self, channel: str, launches: list[Launch]) -> int:
        if not self.pacing.announce(channel):
            return 0  # each is still due: the next pass announces it
        token = uuid.uuid4().hex
        claim = {"by": token, "channel": channel, "members": [launch.id for launch in launches], "at": self.clock()}

        def take(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            if doc is None or doc.get("announce") or outbox.done(doc, "ping"):
                return None
            return {**doc, "announce": claim}

        stood = self.store.update_many(COLLECTION, {launch.id: take for launch in launches})
        mine = _claimed_by(token, [stood.get(launch.id) for launch in launches])
        return self._send_announcement(token, channel, mine)

    def _announce_again(self, token: str, claim: dict[str, Any]) -> int:
        """An announcement whose reply was lost (or whose members were not marked): found, or posted.
        One pass recovers it: the claim's time moves on, in one transaction over its members, for the
        pass that saw it stalled; another pass that saw the same finds it moved and leaves it."""
        mark, now = uuid.uuid4().hex, self.clock()

        def take(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            current = (doc or {}).get("announce") or {}
            if doc is None or current.get("by") != token or current.get("at") != claim["at"]:
                return None
            return {**doc, "announce": {**current, "at": now, "recovery": mark}}

        stood = self.store.update_many(COLLECTION, {key: take for key in claim["members"]})
        docs = [stood.get(key) for key in claim["members"]]
        if not any(((doc or {}).get("announce") or {}).get("recovery") == mark for doc in docs):
            return 0  # another pass is recovering it
        mine = _claimed_by(token, docs)
        if not mine or all(outbox.done(launch.to_doc(), "ping") for launch in mine):
            return 0
        posted = outbox.done(mine[0].to_doc(), f"announce:{token}")  # then only the marks are left
        if not posted and not self.pacing.announce(claim["channel"]):
            return 0
        return self._send_announcement(token, claim["channel"], mine)

    def _send_announcement(self, token: str, channel: str, mine: list[Launch]) -> int:
        """Post the announcement of `mine` once (on the first one's record), then mark each told.
        Where the bot can't post in the channel, each person is told in their DM instead."""
        mine = [launch for launch in mine if not outbox.done(launch.to_doc(), "ping")]
        in_dm = [launch for launch in mine if outbox.effect(launch.to_doc(), f"announce:{token}:dm")]
        if in_dm:  # a DM was tried for these (the channel refused the bot): their DM is recovered, not repeated
            told = sum(self._announce_in_dm(token, launch) for launch in in_dm)
            return told + self._send_announcement(token, channel, [launch for launch in mine if launch not in in_dm])
        if not mine:
            return 0
        first = mine[0]
        alone = len(mine) == 1 and first.message_ts and first.message_channel == channel
        text, blocks = self.messages.announcement(mine)
        try:
            posted = self.outbox.post(
                COLLECTION,
                first.id,
                f"announce:{token}",
                channel,
                text,
                blocks,
                thread_ts=first.message_ts if alone else None,
                dm_instead=first.requester if len(mine) == 1 else None,
            )
        except Exception as exc:
            unreachable = isinstance(exc, SlackApiError) and exc.response.get("error") in UNREACHABLE_CHANNEL
            if unreachable and len(mine) > 1:
                return sum(self._announce_in_dm(token, launch) for launch in mine)
            if outbox.definite(exc):  # nothing was posted: the claims go back, and the next pass tries again

                def give_back(doc: dict[str, Any] | None) -> dict[str, Any] | None:
                    if doc is None or (doc.get("announce") or {}).get("by") != token:
                        return None
                    return {**doc, "announce": None}

                self.store.update_many(COLLECTION, {launch.id: give_back for launch in mine})
            log.warning("could not announce %d ready launch(es); the next pass tries again: %s", len(mine), exc)
            return 0
        self._mark_told(mine, posted)
        return len(mine)

    def _announce_in_dm(self, token: str, launch: Launch) -> int:
        """One person's link in their DM (a post of its own name on their launch, recovered like any);
        if it fails, the claim stays and a later pass tries again."""
        try:
            text, blocks = self.messages.announcement([launch])
            dm = self.slack.dm_channel(launch.requester)
            posted = self.outbox.post(COLLECTION, launch.id, f"announce:{token}:dm", dm, text, blocks)
        except Exception as exc:
            log.warning("could not tell a ready launch's link in a DM; a later pass tries again: %s", exc)
            return 0
        self._mark_told([launch], posted)
        return 1

    def _mark_told(self, launches: list[Launch], posted: Posted | None) -> None:
        told = {"state": outbox.UNKNOWN}  # Slack can't be asked whether it has it: at most once wins
        if posted:
            told = {"state": outbox.DONE, "channel": posted.channel, "ts": posted.ts}

        def mark(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            return outbox.with_effect(doc, "ping", told) if doc else None

        self.store.update_many(COLLECTION, {launch.id: mark for launch in launches})


def _claimed_by(token: str, docs: list[dict[str, Any] | None]) -> list[Launch]:
    """The launches of `docs` whose announcement claim is `token`'s, in order."""
    return [Launch.from_doc(d) for d in docs if d and (d.get("announce") or {}).get("by") == token]


def launch_effects(store: Store, launch_id: str) -> dict[str, Any]:
    return (store.get(COLLECTION, launch_id) or {}).get("effects") or {}


def default_instance_id(spec: NotebookSpec, launch_id: str) -> str:
    return f"{spec.environment}-{launch_id.replace('-', '')[:8]}"
