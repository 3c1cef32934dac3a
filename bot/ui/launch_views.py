"""What a launch says in Slack: its one message (updated in place), the approvers' request, and
the replies in its thread. Pure functions of the launch record."""

from __future__ import annotations

from bot.domain.approvals import clock_time
from bot.domain.catalog import Catalog
from bot.domain.launches import Launch, State
from bot.domain.spec import NotebookSpec, format_duration
from bot.ui.blocks import Blocks, actions, button, context, elapsed, section

STATE_WORDS = {
    State.REQUESTED: "being recorded",
    State.PENDING_APPROVAL: "waiting for approval",
    State.APPROVED: "queued",
    State.CREATING: "being created",
    State.READY: "ready",
    State.FAILED: "failed",
    State.DENIED: "denied",
    State.EXPIRED: "expired unapproved",
    State.CANCELLED: "withdrawn",
}


def cancel_button(launch: Launch) -> dict:
    return button("Cancel", "cancel_launch", launch.id)


class LaunchViews:
    def __init__(self, catalog: Catalog, approval_expires_after: int) -> None:
        self.catalog = catalog
        self.expires_after = approval_expires_after

    def state_words(self, launch: Launch) -> str:
        return STATE_WORDS[State(launch.state)]

    def outcome(self, launch: Launch) -> str:
        name = f"`{launch.instance_id}`"
        if launch.state == State.READY:
            return f"{name} is ready (`/notebook stop {launch.instance_id}` or `delete` it)."
        return f"{name} is {self.state_words(launch)}. {launch.error or ''}".strip()

    # --- the launch message ---------------------------------------------------------------------
    def launch(self, launch: Launch, now: float) -> tuple[str, Blocks]:
        spec = NotebookSpec.from_dict(launch.spec)
        who, name = f"<@{launch.requester}>", f"`{launch.instance_id}`"
        summary = context(f"{spec.summary(self.catalog)} · launch `{launch.id[:8]}`")
        state = State(launch.state)
        cancel = actions(cancel_button(launch), block_id=f"launch:{launch.id}")
        if launch.cancel and state not in (State.CANCELLED, State.FAILED, State.READY):
            text = f"🚫 {name} for {who}: withdrawn by <@{launch.cancel['by']}>, stopping the launch…"
            return text, [section(text), summary]
        if state == State.REQUESTED:
            text = f"🕐 {who} asked for {name}…"
            return text, [section(text), summary]
        if state == State.PENDING_APPROVAL:
            text = f"⏸ {who} asked for {name}; it needs approval: {launch.approval_reason}."
            return text, [section(text), summary, cancel]
        if state == State.APPROVED:
            text = f"🕐 {name} for {who} is queued."
            return text, [section(text), summary, cancel]
        if state == State.CREATING:
            text = f"⏳ Creating {name} for {who}… ({elapsed(now - (launch.creating_since or launch.created_at))})"
            hint = context("This usually takes 3–8 minutes. I'll update this message. Cancel deletes it once created.")
            return text, [section(text), summary, hint, cancel]
        if state == State.READY:
            text = f"✅ {name} is ready for {who}."
            return text, [
                section(text),
                actions(
                    button("Open JupyterLab", "open_notebook", launch.instance_id, url=launch.url, style="primary")
                ),
                summary,
                context(f"Only its owner can open it. Stop it when you're done: `/notebook stop {launch.instance_id}`"),
            ]
        verdict = {
            State.FAILED: "❌ Couldn't create",
            State.DENIED: "🚫 Denied:",
            State.EXPIRED: "⌛ Expired:",
            State.CANCELLED: "🚫 Cancelled:",
        }[state]
        text = f"{verdict} {name} for {who}. {launch.error or ''}".strip()
        return text, [section(text), summary, *self.elsewhere(launch)]

    def elsewhere(self, launch: Launch) -> Blocks:
        """A stockout's way forward: one click to launch the same spec in the nearest zone that has
        it, or, when no zone this launch may go to has it, the plain reason why there is no button."""
        if launch.state != State.FAILED or launch.stockout_zones is None:
            return []
        if launch.retry_zone:
            return [
                actions(
                    button(f"Launch in {launch.retry_zone}", "launch_elsewhere", launch.id, style="primary"),
                    block_id=f"elsewhere:{launch.id}",
                ),
                context(
                    f"The same notebook in `{launch.retry_zone}`, which Google says has capacity now: a new launch, "
                    f"checked like any (quota, approval). Only <@{launch.requester}> or an admin can use it, once.",
                    block_id=f"elsewhere-note:{launch.id}",
                ),
            ]
        if not launch.stockout_zones:
            return [context("Google named no zone that has capacity for it, so I have no other zone to offer.")]
        return [
            context(
                f"Google says {', '.join(f'`{z}`' for z in launch.stockout_zones)} have capacity, but none of them is "
                "a zone this notebook may be launched in here (the policy's allowed zones, and the catalog's zones "
                "for its GPU), so I have no other zone to offer."
            )
        ]

    def relaunched(self, failed: Launch, launch: Launch, by: str) -> tuple[str, Blocks]:
        """The failure message once its offer was taken: no button, and where the new launch went."""
        text, blocks = self.launch(failed, failed.updated_at)
        note = f"↪️ <@{by}> launched it again in `{launch.notebook_spec.zone}` as `{launch.instance_id}`."
        kept = [b for b in blocks if not str(b.get("block_id", "")).startswith("elsewhere")]
        return text, [*kept, context(note)]

    # --- the approvers' request -----------------------------------------------------------------
    def approval(self, launch: Launch, now: float) -> tuple[str, Blocks]:
        """The request approvers see; once decided or withdrawn, the outcome without buttons."""
        decision = launch.decision or {}
        requested = NotebookSpec.from_dict(decision.get("requested") or launch.spec)  # as asked, before lowering
        ask = (
            f"<@{launch.requester}> asks for `{launch.instance_id}`: {requested.summary(self.catalog)}\n"
            f"*≈${requested.usd_per_hour:.2f}/h, ≈${requested.usd_per_hour * 24:.2f}/day.* Needs approval because "
            f"{launch.approval_reason}."
        )
        if launch.cancel and not decision:
            outcome = f"↩️ Withdrawn by <@{launch.cancel['by']}> at {clock_time(launch.cancel['at'])}."
        elif launch.state == State.PENDING_APPROVAL and not decision:
            text = f"🔔 Launch request from <@{launch.requester}>"
            expires_at = launch.created_at + self.expires_after
            return text, [
                section(f"{text}\n{ask}"),
                actions(
                    button("Approve", "approve_launch", launch.id, style="primary"),
                    button("Deny", "deny_launch", launch.id, style="danger"),
                    button("Review", "review_launch", launch.id),
                    block_id=f"approval:{launch.id}",
                ),
                context(f"Expires at {clock_time(expires_at)} if nobody decides. Review can lower it."),
            ]
        elif launch.state == State.EXPIRED:
            outcome = "⌛ Expired: nobody decided in time."
        elif decision.get("approved"):
            outcome = f"✅ Approved by <@{decision['by']}> at {clock_time(decision['at'])}"
            if decision.get("requested"):
                spec = NotebookSpec.from_dict(decision.get("spec") or launch.spec)
                outcome += (
                    f", lowered to {spec.gpu_label(self.catalog)} on {spec.machine} (≈${spec.usd_per_hour:.2f}/h)"
                )
            outcome += "." + (f" Reason: {decision['reason']}" if decision.get("reason") else "")
        elif decision:
            outcome = f"🚫 Denied by <@{decision['by']}> at {clock_time(decision['at'])}: {decision.get('reason')}"
        else:
            outcome = f"State: {self.state_words(launch)}."
        return outcome, [section(ask), context(outcome)]

    # --- replies in the launch's thread ---------------------------------------------------------
    def ping(self, launch: Launch) -> str:
        who, name = f"<@{launch.requester}>", f"`{launch.instance_id}`"
        return {
            State.READY: f"{who} your notebook {name} is ready.",
            State.FAILED: f"{who} your notebook {name} could not be created.",
            State.EXPIRED: f"{who} your request for {name} expired unapproved.",
            State.DENIED: f"{who} your request for {name} was denied. {launch.error}",
            State.CANCELLED: f"{who} the launch of {name} is cancelled. {launch.error or ''}".strip(),
        }[State(launch.state)]

    def announcement(self, launches: list[Launch]) -> tuple[str, Blocks]:
        """The links of launches that turned ready together: each person's mention, notebook and an
        Open JupyterLab button, a section each (Launcher.ANNOUNCE_AT_ONCE of them fit in a message)."""
        lines = [f"<@{launch.requester}> your notebook `{launch.instance_id}` is ready." for launch in launches]
        rows = [
            section(line, accessory=button("Open JupyterLab", "open_notebook", launch.instance_id, url=launch.url))
            for line, launch in zip(lines, launches, strict=True)
        ]
        if len(launches) == 1:
            return lines[0], rows
        title = f"✅ {len(launches)} notebooks are ready"
        return f"{title}: " + " ".join(f"<@{launch.requester}>" for launch in launches), [section(f"*{title}*"), *rows]

    def approved(self, launch: Launch) -> str:
        decision = launch.decision or {}
        text = (
            f"✅ <@{launch.requester}> your request for `{launch.instance_id}` was approved by <@{decision.get('by')}>"
        )
        if decision.get("requested"):
            before = NotebookSpec.from_dict(decision["requested"])
            after = launch.notebook_spec
            text += (
                f", lowered from {before.gpu_label(self.catalog)} on {before.machine} (≈${before.usd_per_hour:.2f}/h) "
                f"to {after.gpu_label(self.catalog)} on {after.machine} (≈${after.usd_per_hour:.2f}/h)"
            )
        text += "."
        if decision.get("reason"):
            text += f" Reason: {decision['reason']}"
        return text + " Creating it now."

    def no_approvers(self, launch: Launch) -> str:
        return (
            f"<@{launch.requester}> I could not reach any approver for `{launch.instance_id}`; an admin needs to set "
            f"`approval_channel` or `approvers` in the bot's config. The request stays open for "
            f"{format_duration(self.expires_after)}."
        )
