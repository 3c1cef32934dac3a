"""Approvals: who is asked, who may decide, and recording exactly one decision per launch.

A decision is the launch's one decision document, created once, so two approvers clicking at
once (or one clicking twice) record one decision; the loser is told who decided first. The launch
state machine (bot/domain/launches.py) applies it in its next step, whatever worker holds the
launch meanwhile, so a decision never waits for a step and no step writes over one.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.domain import audit
from bot.domain.errors import NotAllowed, UserError
from bot.domain.launches import Launch, Launcher, State
from bot.domain.outbox import definite, rate_limited
from bot.domain.spec import NotebookRequest, NotebookSpec, format_duration

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    launch: Launch
    approved: bool
    before: NotebookSpec  # as requested
    after: NotebookSpec | None  # as lowered by the approver; None when unchanged

    @property
    def changed(self) -> bool:
        return self.after is not None


class Approvals:
    """Who is asked, who may decide, and recording the one decision; the state machine applies it."""

    def __init__(self, launcher: Launcher) -> None:
        self.launcher = launcher
        self.store = launcher.store
        self.rules = launcher.rules
        self.slack = launcher.slack

    @property
    def expires_after(self) -> int:
        return self.rules.policy.approval_expires_after

    # --- asking (a step of the launch: each post at most once) ------------------------------------
    def ask(self, launch: Launch) -> bool:
        """Post the request where approvers see it: the approval channel, else each approver's DM.
        Returns whether anyone was reached."""
        text, blocks = self.launcher.messages.approval(launch, self.launcher.clock())
        access = self.rules.access
        post = self.launcher.outbox.post
        if access.approval_channel:
            try:
                post(
                    "launches", launch.id, f"approval:{access.approval_channel}", access.approval_channel, text, blocks
                )
                return True
            except SlackApiError as exc:
                if not definite(exc) or rate_limited(exc):  # a 429: the step asks again later
                    raise
                log.warning("could not post in the approval channel (%s); asking approvers in DMs", exc)
        reached = False
        people = self.rules.people(access.approvers) or self.rules.people(access.admins)
        for person in people:
            if person == launch.requester and not access.allow_self_approval:
                continue
            try:
                post("launches", launch.id, f"approval:{person}", self.slack.dm_channel(person), text, blocks)
                reached = True
            except SlackApiError as exc:
                if not definite(exc) or rate_limited(exc):  # a 429: the step asks again later
                    raise
                log.warning("could not ask an approver: %s", exc, extra={"launch_id": launch.id, "user": person})
        if not reached:
            log.warning("nobody to ask for approval: set [access] approval_channel or approvers")
        return reached

    # --- who may decide ---------------------------------------------------------------------------
    def check_approver(self, launch: Launch, user: str) -> None:
        """Refuse (NotAllowed) anyone who may not decide on this launch."""
        if not self.rules.is_approver(user):
            raise NotAllowed("Only approvers can decide on launch requests; nothing was changed.")
        if user == launch.requester and not self.rules.access.allow_self_approval:
            raise NotAllowed("You can't decide on your own request; another approver has to. Nothing was changed.")

    def check_open(self, launch: Launch) -> None:
        """Refuse (UserError) a request that is decided, withdrawn or whose time ran out."""
        if launch.state != State.PENDING_APPROVAL or launch.decision or launch.cancel:
            raise UserError(closed_message(launch))
        if self.expired(launch):
            raise UserError(self._expired_message())

    def check_can_decide(self, launch: Launch, user: str) -> None:
        self.check_approver(launch, user)
        self.check_open(launch)

    # --- deciding ---------------------------------------------------------------------------------
    def decide(
        self,
        launch_id: str,
        approver: str,
        *,
        approve: bool,
        reason: str | None = None,
        new_spec: NotebookSpec | None = None,
    ) -> Decision:
        """Record an approval (optionally with a lowered spec) or a denial. Raises NotAllowed / UserError.

        Only the decision is written (one transaction, whoever else is working on the launch); the
        launch's next step applies it, updates the approvers' message and tells the requester."""
        launch = self.launcher.find_by_id(launch_id)
        if launch is None:
            raise UserError("That launch request no longer exists.")
        self.check_approver(launch, approver)
        reason = (reason or "").strip() or None
        if not approve and not reason:
            raise UserError("Give a reason when you deny a request; the requester will see it.", field="reason")
        before = launch.notebook_spec
        if new_spec is not None:
            check_lower(before, new_spec, self.launcher.catalog)
        after = new_spec if new_spec is not None and not same_spec(new_spec, before) else None
        now = self.launcher.clock()
        decision: dict[str, Any] = {"by": approver, "at": now, "approved": approve, "reason": reason}
        if after is not None:
            decision["spec"] = after.to_dict()
            decision["requested"] = launch.spec
        recorded = self.launcher.record_decision(launch_id, decision)
        if recorded is None:
            current = self.launcher.with_decision(self.launcher.get(launch_id) or launch)
            if current.state == State.PENDING_APPROVAL and not current.decision and not current.cancel:
                raise UserError(self._expired_message())
            raise UserError(closed_message(current))
        audit.record(
            self.store,
            now,
            approver,
            "launch.approved" if approve else "launch.denied",
            launch.instance_id,
            launch=launch.id,
            requester=launch.requester,
            reason=reason,
            changed=after is not None,
            spec_before=before.to_dict(),
            spec_after=(after or before).to_dict(),
        )
        return Decision(recorded, approve, before, after)

    def decide_lowered(
        self, launch_id: str, approver: str, *, approve: bool, reason: str | None, request: NotebookRequest
    ) -> Decision:
        """The review modal: `request` is the original with the approver's GPU and machine choices."""
        launch = self.launcher.find_by_id(launch_id)
        if launch is None:
            raise UserError("That launch request no longer exists.")
        new_spec = None
        if approve:
            self.check_approver(launch, approver)  # a refusal comes before any complaint about the form
            new_spec = self.launcher.check(request)
        return self.decide(launch_id, approver, approve=approve, reason=reason, new_spec=new_spec)

    def pending_for(self, user: str) -> list[Launch]:
        """Requests this user could decide (empty for non-approvers)."""
        if not self.rules.is_approver(user):
            return []
        docs = self.store.query("launches", state=State.PENDING_APPROVAL.value)
        launches = [Launch.from_doc(d) for d in docs if not d.get("decision") and not d.get("cancel")]
        return [x for x in launches if x.requester != user or self.rules.access.allow_self_approval]

    def expired(self, launch: Launch) -> bool:
        """Whether the request's time ran out (the next step of the launch expires it)."""
        return self.launcher.clock() - launch.created_at > self.expires_after

    def _expired_message(self) -> str:
        return (
            f"This request expired: nobody decided within {format_duration(self.expires_after)}. "
            "Nothing was changed; the requester can ask again."
        )


def check_lower(before: NotebookSpec, after: NotebookSpec, catalog: Any) -> None:
    """An approver may keep or lower a request, never raise it."""
    if after.usd_per_hour > before.usd_per_hour + 1e-9:
        raise UserError(
            f"An approver may only lower a request: ≈${after.usd_per_hour:.2f}/h is more than the "
            f"≈${before.usd_per_hour:.2f}/h asked for.",
            field="gpu",
        )
    if after.gpu_count > before.gpu_count:
        raise UserError(
            f"An approver may only lower a request: {after.gpu_label(catalog)} is more GPUs than the "
            f"{before.gpu_label(catalog)} asked for.",
            field="gpu",
        )


def closed_message(launch: Launch) -> str:
    """What a click on a request that is no longer open is told."""
    if launch.cancel:
        return f"This request was withdrawn by <@{launch.cancel['by']}>; nothing was changed."
    if launch.state == State.EXPIRED:
        return "This request expired before anyone decided; nothing was changed."
    decision = launch.decision or {}
    if decision.get("by"):
        verdict = "approved" if decision.get("approved") else "denied"
        return (
            f"This request was already {verdict} by <@{decision['by']}> at {clock_time(decision['at'])}; "
            "nothing was changed."
        )
    return f"This request is no longer waiting for a decision ({launch.state.lower()}); nothing was changed."


def same_spec(a: NotebookSpec, b: NotebookSpec) -> bool:
    """Equal as far as the notebook goes (notices are advice of the day, not part of it)."""
    return dataclasses.replace(a, notices=()) == dataclasses.replace(b, notices=())


def clock_time(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")
