"""Block Kit builders: pure functions from data to the (text, blocks) Slack shows.

`text` is always set too: it is the notification and screen-reader fallback.
"""

from __future__ import annotations

from typing import Any

from bot.domain.errors import UserError
from bot.domain.spec import USAGE, NotebookSpec

Blocks = list[dict[str, Any]]


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


# --- replies to the person who typed the command -----------------------------------------------------
def error_reply(error: UserError, customize: str | None = None, offer_id: str | None = None) -> tuple[str, Blocks]:
    """The refusal, with one-click ways forward: the catalog's offer, and the form prefilled.

    The offer's button carries `offer_id` (unique to the refused request), so however often it is
    clicked, and by whom, it launches once."""
    text = f"⚠️ {error.message}"
    buttons = []
    if error.offer and offer_id:
        label = error.offer_label or "Launch this instead"
        buttons.append(button(label, "launch_offer", f"{offer_id} {error.offer}", style="primary"))
    if customize is not None:
        buttons.append(button("Customize", "customize_launch", (error.offer or customize)[:2000]))
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
