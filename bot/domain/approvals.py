"""Approvals: asking approvers, and recording exactly one decision per launch.

A decision is a state transition taken in a store transaction, so two approvers clicking at
once (or one clicking twice) produce one decision; the loser is told who decided first.
A decision is never taken while a reconcile step holds the launch's lease (that step would
write its result over the decision), nor after the request's time ran out.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from bot.domain import audit
from bot.domain.errors import NotAllowed, UserError
from bot.domain.launches import Launch, Launcher, State
from bot.domain.spec import NotebookSpec, format_duration
from bot.ui.blocks import approval_message, clock_time
from bot.ui.forms import LaunchForm, lowered_form, same_spec

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
    BUSY_WAIT = 1.5  # seconds a decision waits for a reconcile step that holds the launch

    def __init__(self, launcher: Launcher) -> None:
        self.launcher = launcher
        self.store = launcher.store
        self.rules = launcher.rules
        self.slack = launcher.slack

    @property
    def expires_after(self) -> int:
        return self.rules.policy.approval_expires_after

    # --- asking -----------------------------------------------------------------------------------
    def ask(self, launch: Launch) -> None:
        """Post the request where approvers see it: the approval channel, else each approver's DM."""
        text, blocks = approval_message(
            launch, self.launcher.catalog, self.launcher.clock(), expires_at=launch.created_at + self.expires_after
        )
        access = self.rules.access
        posts: list[dict[str, str]] = []
        if access.approval_channel:
            try:
                posted = self.slack.post(access.approval_channel, text, blocks)
                posts.append({"channel": posted.channel, "ts": posted.ts})
            except Exception:
                log.exception("could not post in the approval channel; asking approvers in DMs instead")
        if not posts:
            people = self.rules.people(access.approvers) or self.rules.people(access.admins)
            for person in people:
                if person == launch.requester and not access.allow_self_approval:
                    continue
                try:
                    posted = self.slack.dm(person, text, blocks)
                    posts.append({"channel": posted.channel, "ts": posted.ts})
                except Exception:
                    log.exception("could not ask an approver", extra={"launch_id": launch.id, "user": person})
        self.store.update("launches", launch.id, lambda d: {**d, "approval_posts": posts} if d else None)
        if not posts:
            log.error("nobody to ask for approval: set [access] approval_channel or approvers")
            self._tell_requester(
                launch,
                f"<@{launch.requester}> I could not reach any approver for `{launch.instance_id}`; an admin "
                "needs to set `approval_channel` or `approvers` in the bot's config. The request stays open "
                f"for {format_duration(self.expires_after)}.",
            )

    # --- who may decide ---------------------------------------------------------------------------
    def check_approver(self, launch: Launch, user: str) -> None:
        """Refuse (NotAllowed) anyone who may not decide on this launch."""
        if not self.rules.is_approver(user):
            raise NotAllowed("Only approvers can decide on launch requests; nothing was changed.")
        if user == launch.requester and not self.rules.access.allow_self_approval:
            raise NotAllowed("You can't decide on your own request; another approver has to. Nothing was changed.")

    def check_open(self, launch: Launch) -> None:
        """Refuse (UserError) a request that is decided or whose time ran out."""
        if launch.state != State.PENDING_APPROVAL:
            raise UserError(closed_message(launch.to_doc()))
        if self._expired(launch.to_doc(), self.launcher.clock()):
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
        announce: bool = True,
    ) -> Decision:
        """Approve (optionally with a lowered spec) or deny. Raises NotAllowed / UserError.

        With announce=False only the decision is recorded (fast, for a modal's acknowledgement);
        call `announce(decision)` afterwards to update Slack and start the launch."""
        launch = self.launcher.get(launch_id)
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
        state = State.APPROVED if approve else State.DENIED
        won, busy, expired = [], [], []
        deadline = time.monotonic() + self.BUSY_WAIT
        while True:
            now = self.launcher.clock()

            def transition(doc: dict[str, Any] | None, now: float = now) -> dict[str, Any] | None:
                for flag in (won, busy, expired):
                    flag.clear()
                if doc is None or doc["state"] != State.PENDING_APPROVAL:
                    return None
                if self._expired(doc, now):
                    expired.append(True)
                    return None
                if doc.get("lease_owner") and doc.get("lease_until", 0) > now:
                    busy.append(True)  # a reconcile step is on it; its result would overwrite ours
                    return None
                won.append(True)
                decision: dict[str, Any] = {"by": approver, "at": now, "approved": approve, "reason": reason}
                changes: dict[str, Any] = {"state": state, "decision": decision, "updated_at": now, "next_at": 0.0}
                if after is not None:
                    decision["requested"] = doc["spec"]
                    changes["spec"] = after.to_dict()
                if not approve:
                    changes["error"] = f"Denied by <@{approver}>: {reason}"
                history = [*doc.get("history", []), {"state": state, "at": now, "by": approver}]
                return {**doc, **changes, "history": history}

            doc = self.store.update("launches", launch_id, transition)
            if not busy or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        if expired:
            self.launcher.step(launch_id)  # expire it now: the request's buttons go, the requester is told
            raise UserError(self._expired_message())
        if busy:
            raise UserError("This request is being updated right now; nothing was changed. Try again in a moment.")
        if not won:
            raise UserError(closed_message(doc or {}))
        launch = Launch.from_doc(doc or {})
        if after is not None:
            self.store.update("notebooks", launch.instance_id, lambda d: {**d, "spec": after.to_dict()} if d else None)
        if not approve:
            self.store.delete("notebooks", launch.instance_id)  # frees the name and the quota
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
        decision = Decision(launch, approve, before, after)
        if announce:
            self.announce(decision)
        return decision

    def announce(self, decision: Decision) -> None:
        """Show a recorded decision: the approval request shows it without buttons, the requester is
        told in their launch's thread, and an approved launch starts."""
        launch = decision.launch
        self.launcher.show(launch)  # for a denial this also tells the requester, with the reason
        if decision.approved:
            self.launcher.step(launch.id)  # the create call goes out now, not at the next reconcile pass
            self._tell_requester(launch, approved_text(launch, decision.before, decision.after, self.launcher.catalog))

    def decide_from_form(
        self,
        launch_id: str,
        approver: str,
        *,
        approve: bool,
        reason: str | None,
        form: LaunchForm,
        announce: bool = True,
    ) -> Decision:
        """The review modal: the approver's GPU and machine choices applied to the original request."""
        launch = self.launcher.get(launch_id)
        if launch is None:
            raise UserError("That launch request no longer exists.")
        new_spec = None
        if approve:
            self.check_approver(launch, approver)  # a refusal comes before any complaint about the form
            new_spec = self.launcher.check(lowered_form(launch, form).command())
        return self.decide(launch_id, approver, approve=approve, reason=reason, new_spec=new_spec, announce=announce)

    def pending_for(self, user: str) -> list[Launch]:
        """Requests this user could decide (empty for non-approvers)."""
        if not self.rules.is_approver(user):
            return []
        docs = self.store.query("launches", state=State.PENDING_APPROVAL.value)
        return [Launch.from_doc(d) for d in docs if d["requester"] != user or self.rules.access.allow_self_approval]

    # --- helpers ----------------------------------------------------------------------------------
    def _expired(self, doc: dict[str, Any], now: float) -> bool:
        return now - doc.get("created_at", now) > self.expires_after  # as the reconciler decides it

    def _expired_message(self) -> str:
        return (
            f"This request expired: nobody decided within {format_duration(self.expires_after)}. "
            "Nothing was changed; the requester can ask again."
        )

    def _tell_requester(self, launch: Launch, text: str) -> None:
        """A reply in the thread of the launch's own message, where the requester asked."""
        if not launch.message_channel or not launch.message_ts:
            return
        try:
            self.slack.post(launch.message_channel, text, thread_ts=launch.message_ts)
        except Exception:
            log.exception("could not tell the requester", extra={"launch_id": launch.id})


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


def closed_message(doc: dict[str, Any]) -> str:
    """What a click on a request that is no longer open is told."""
    state = doc.get("state", "")
    if state == State.EXPIRED:
        return "This request expired before anyone decided; nothing was changed."
    decision = doc.get("decision") or {}
    if decision.get("by"):
        verdict = "approved" if decision.get("approved") else "denied"
        return (
            f"This request was already {verdict} by <@{decision['by']}> at {clock_time(decision['at'])}; "
            "nothing was changed."
        )
    return f"This request is no longer waiting for a decision ({str(state).lower() or 'gone'}); nothing was changed."


def approved_text(launch: Launch, before: NotebookSpec, after: NotebookSpec | None, catalog: Any) -> str:
    decision = launch.decision or {}
    text = f"✅ <@{launch.requester}> your request for `{launch.instance_id}` was approved by <@{decision.get('by')}>"
    if after is not None:
        text += (
            f", lowered from {before.gpu_label(catalog)} on {before.machine} (≈${before.usd_per_hour:.2f}/h) "
            f"to {after.gpu_label(catalog)} on {after.machine} (≈${after.usd_per_hour:.2f}/h)"
        )
    text += "."
    if decision.get("reason"):
        text += f" Reason: {decision['reason']}"
    return text + " Creating it now."
