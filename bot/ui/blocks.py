"""Block Kit builders: pure functions from data to the (text, blocks) Slack shows.

`text` is always set too: it is the notification and screen-reader fallback.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from bot.domain.catalog import Catalog
from bot.domain.errors import UserError
from bot.domain.spec import USAGE, NotebookSpec

if TYPE_CHECKING:
    from bot.domain.launches import Launch

Blocks = list[dict[str, Any]]


def shorten(text: str, limit: int) -> str:
    """`text` in at most `limit` characters (Slack refuses longer option and button texts): cut at a
    word boundary, before a parenthesis the cut would leave open, with an ellipsis."""
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    if " " in cut:
        cut = cut[: cut.rindex(" ")]
    if cut.count("(") > cut.count(")"):
        cut = cut[: cut.rindex("(")]
    return cut.rstrip(" ,;:—–-") + "…"


def section(text: str, **extra: Any) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}, **extra}


def context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text}]}


def button(text: str, action_id: str, value: str | None = None, *, url: str | None = None, style: str | None = None):
    element: dict[str, Any] = {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
    }
    if value is not None:
        element["value"] = value
    if url is not None:
        element["url"] = url
    if style is not None:
        element["style"] = style
    return element


def actions(*elements: dict[str, Any], block_id: str | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "actions", "elements": list(elements)}
    if block_id:
        block["block_id"] = block_id
    return block


def elapsed(seconds: float) -> str:
    seconds = max(0, int(seconds))
    minutes, secs = divmod(seconds, 60)
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


# --- the launch message, updated in place ------------------------------------------------------------
def launch_message(launch: Launch, catalog: Catalog, now: float) -> tuple[str, Blocks]:
    spec = NotebookSpec.from_dict(launch.spec)
    who = f"<@{launch.requester}>"
    name = f"`{launch.instance_id}`"
    summary = context(f"{spec.summary(catalog)} · launch `{launch.id[:8]}`")
    state = launch.state
    if state == "PENDING_APPROVAL":
        text = f"⏸ {who} asked for {name}; it needs approval: {launch.approval_reason}."
        return text, [section(text), summary]
    if state == "APPROVED":
        text = f"🕐 {name} for {who} is queued."
        return text, [section(text), summary]
    if state == "CREATING":
        text = f"⏳ Creating {name} for {who}… ({elapsed(now - (launch.creating_since or launch.created_at))})"
        return text, [
            section(text),
            summary,
            context("This usually takes 3–8 minutes. I'll update this message."),
        ]
    if state == "READY":
        text = f"✅ {name} is ready for {who}."
        return text, [
            section(text),
            actions(button("Open JupyterLab", "open_notebook", launch.instance_id, url=launch.url, style="primary")),
            summary,
            context(
                "Only its owner can open it. Stop it when you're done: `/notebook stop " + launch.instance_id + "`"
            ),
        ]
    verdict = {"FAILED": "❌ Couldn't create", "DENIED": "🚫 Denied:", "EXPIRED": "⌛ Expired:"}.get(state, state)
    text = f"{verdict} {name} for {who}. {launch.error or ''}".strip()
    return text, [section(text), summary]


# --- the approval request, in the approval channel ----------------------------------------------------
def clock_time(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


def approval_message(
    launch: Launch, catalog: Catalog, now: float, *, expires_at: float | None = None
) -> tuple[str, Blocks]:
    """The request approvers see; once decided, the same message with the outcome and no buttons."""
    decision = launch.decision or {}
    requested = NotebookSpec.from_dict(decision.get("requested") or launch.spec)  # as asked, before any lowering
    ask = (
        f"<@{launch.requester}> asks for `{launch.instance_id}`: {requested.summary(catalog)}\n"
        f"*≈${requested.usd_per_hour:.2f}/h, ≈${requested.usd_per_hour * 24:.2f}/day.* Needs approval because "
        f"{launch.approval_reason}."
    )
    if launch.state == "PENDING_APPROVAL":
        text = f"🔔 Launch request from <@{launch.requester}>"
        blocks = [
            section(f"{text}\n{ask}"),
            actions(
                button("Approve", "approve_launch", launch.id, style="primary"),
                button("Deny", "deny_launch", launch.id, style="danger"),
                button("Review", "review_launch", launch.id),
                block_id=f"approval:{launch.id}",
            ),
        ]
        if expires_at is not None:
            blocks.append(context(f"Expires at {clock_time(expires_at)} if nobody decides. Review can lower it."))
        return text, blocks
    if launch.state == "EXPIRED":
        outcome = "⌛ Expired: nobody decided in time."
    elif decision.get("approved"):
        outcome = f"✅ Approved by <@{decision['by']}> at {clock_time(decision['at'])}"
        if decision.get("requested"):
            spec = NotebookSpec.from_dict(launch.spec)
            outcome += f", lowered to {spec.gpu_label(catalog)} on {spec.machine} (≈${spec.usd_per_hour:.2f}/h)"
        outcome += "." + (f" Reason: {decision['reason']}" if decision.get("reason") else "")
    elif decision:
        outcome = f"🚫 Denied by <@{decision['by']}> at {clock_time(decision['at'])}: {decision.get('reason')}"
    else:
        outcome = f"State: {launch.state.lower()}."
    return outcome, [section(ask), context(outcome)]


# --- replies to the person who typed the command -----------------------------------------------------
def error_reply(error: UserError, customize: str | None = None) -> tuple[str, Blocks]:
    """The refusal, with one-click ways forward: the catalog's offer, and the form prefilled."""
    text = f"⚠️ {error.message}"
    buttons = []
    if error.offer:
        buttons.append(button(error.offer_label or "Launch this instead", "launch_offer", error.offer, style="primary"))
    if customize is not None:
        buttons.append(button("Customize", "customize_launch", (error.offer or customize)[:2000]))
    if error.link:
        buttons.append(button("Open JupyterLab", "open_notebook", url=error.link, style="primary"))
    return text, [section(text), actions(*buttons)] if buttons else [section(text)]


def notices_reply(spec: NotebookSpec) -> str:
    return "\n".join(f"ℹ️ {n}" for n in spec.notices)


HELP = f"""*Launch and manage Jupyter notebooks (Vertex AI Workbench) from Slack.*
{USAGE}
Examples:
• `/notebook new` — opens a form
• `/notebook new tf-2-8 gpu=l4` — TensorFlow 2.8 with one NVIDIA L4
• `/notebook new pytorch gpu=t4x2 disk=500 idle=2h`
• `/notebook new base machine=n2-standard-8 name=churn-model bucket=my-data/training`
Other commands: `/notebook list`, `/notebook envs`, `/notebook stop|start|delete NAME`, `/notebook transfer NAME @user`.
Idle notebooks stop by themselves after the idle time (default 3h)."""


def help_reply() -> tuple[str, Blocks]:
    return HELP, [section(HELP)]
