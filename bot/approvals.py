"""Approvals: asking approvers, and recording exactly one decision per launch.

A decision is a state transition taken in a store transaction, so two approvers clicking at
once (or one clicking twice) produce one decision; the loser is told who decided first.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

from bot import audit
from bot.blocks import approval_message
from bot.errors import NotAllowed, UserError
from bot.forms import AUTO, NO_GPU, LaunchForm
from bot.launches import Launch, Launcher, State
from bot.spec import NotebookSpec

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Decision:
    launch: Launch
    approved: bool
    changed: bool  # the approver lowered the spec


class Approvals:
    def __init__(self, launcher: Launcher) -> None:
        self.launcher = launcher
        self.store = launcher.store
        self.rules = launcher.rules
        self.slack = launcher.slack

    def ask(self, launch: Launch) -> None:
        """Post the request where approvers see it: the approval channel, or each approver's DM."""
        text, blocks = approval_message(launch, self.launcher.catalog, self.launcher.clock())
        channel = self.rules.access.approval_channel
        targets = [channel] if channel else [a for a in self.rules.access.approvers if a.startswith(("U", "W"))]
        if not targets:
            targets = [a for a in self.rules.access.admins if a.startswith(("U", "W"))]
        posts = []
        for target in targets:
            try:
                posted = (
                    self.slack.post(target, text, blocks) if target == channel else self.slack.dm(target, text, blocks)
                )
                posts.append({"channel": posted.channel, "ts": posted.ts})
            except Exception:
                log.exception("could not post the approval request", extra={"launch_id": launch.id})
        if not posts:
            log.error("nobody to ask for approval: set [access] approval_channel or approvers")
        self.store.update("launches", launch.id, lambda d: {**d, "approval_posts": posts} if d else None)

    def check_approver(self, launch: Launch, user: str) -> None:
        if not self.rules.is_approver(user):
            raise NotAllowed("Only approvers can decide on launch requests; nothing was changed.")
        if user == launch.requester and not self.rules.access.allow_self_approval:
            raise NotAllowed("You can't approve your own request; another approver has to.")

    def decide(
        self,
        launch_id: str,
        approver: str,
        *,
        approve: bool,
        reason: str | None = None,
        new_spec: NotebookSpec | None = None,
    ) -> Decision:
        """Approve (optionally with a lowered spec) or deny. Raises NotAllowed / UserError."""
        launch = self.launcher.get(launch_id)
        if launch is None:
            raise UserError("That launch request no longer exists.")
        self.check_approver(launch, approver)
        if not approve and not (reason and reason.strip()):
            raise UserError("Give a reason when you deny a request; the requester will see it.", field="reason")
        before = launch.notebook_spec
        if new_spec is not None and new_spec.usd_per_hour > before.usd_per_hour + 1e-9:
            raise UserError(
                f"An approver may only lower a request: ≈${new_spec.usd_per_hour:.2f}/h is more than the "
                f"≈${before.usd_per_hour:.2f}/h asked for.",
                field="gpu",
            )
        now = self.launcher.clock()
        state = State.APPROVED if approve else State.DENIED
        after = new_spec if new_spec is not None and new_spec != before else None
        won: list[bool] = []

        def transition(doc: dict[str, Any] | None) -> dict[str, Any] | None:
            won.clear()
            if doc is None or doc["state"] != State.PENDING_APPROVAL:
                return None
            won.append(True)
            decision = {"by": approver, "at": now, "approved": approve, "reason": reason}
            changes: dict[str, Any] = {"state": state, "decision": decision, "updated_at": now, "next_at": 0.0}
            if after is not None:
                changes["spec"] = after.to_dict()
            if not approve:
                changes["error"] = f"Denied by <@{approver}>: {reason}"
            history = [*doc.get("history", []), {"state": state, "at": now, "by": approver}]
            return {**doc, **changes, "history": history}

        doc = self.store.update("launches", launch_id, transition)
        if not won:
            decided = (doc or {}).get("decision") or {}
            who = f"<@{decided['by']}>" if decided.get("by") else "the bot"
            raise UserError(f"This request was already decided ({(doc or {}).get('state', '?').lower()}) by {who}.")
        launch = Launch.from_doc(doc or {})
        if after is not None:
            self.store.update("notebooks", launch.instance_id, lambda d: {**d, "spec": after.to_dict()} if d else None)
        if not approve:
            self.store.delete("notebooks", launch.instance_id)
        audit.record(
            self.store,
            now,
            approver,
            "launch.approved" if approve else "launch.denied",
            launch.instance_id,
            launch=launch.id,
            reason=reason,
            spec_before=before.to_dict(),
            spec_after=(after or before).to_dict(),
        )
        self.launcher.show(launch)
        if approve:
            self.launcher.step(launch.id)
        return Decision(launch, approve, after is not None)

    def decide_from_form(
        self, launch_id: str, approver: str, *, approve: bool, reason: str | None, form: LaunchForm
    ) -> Decision:
        """The review modal: the approver's GPU and machine choices applied to the original request."""
        launch = self.launcher.get(launch_id)
        if launch is None:
            raise UserError("That launch request no longer exists.")
        new_spec = None
        if approve:
            lowered = dataclasses.replace(
                launch.notebook_spec.request(),
                gpu=None if form.gpu == NO_GPU else form.gpu,
                gpu_count=form.gpu_count,
                machine=None if form.machine == AUTO else form.machine,
            )
            new_spec = self.launcher.check(lowered.command())
        return self.decide(launch_id, approver, approve=approve, reason=reason, new_spec=new_spec)

    def pending_for(self, user: str) -> list[Launch]:
        """Requests this user could decide (empty for non-approvers)."""
        if not self.rules.is_approver(user):
            return []
        docs = self.store.query("launches", state=State.PENDING_APPROVAL.value)
        return [Launch.from_doc(d) for d in docs if d["requester"] != user or self.rules.access.allow_self_approval]
