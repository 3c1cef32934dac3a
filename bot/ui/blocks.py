"""Block Kit builders: pure functions from data to the (text, blocks) Slack shows.

`text` is always set too: it is the notification and screen-reader fallback.

Every block is built with slack_sdk's block models (slack_sdk.models.blocks), which check Slack's
limits when the block is rendered (`to_dict()`), and what a person typed is cut to fit first, with a
visible ellipsis: a message over a limit is refused by Slack (invalid_blocks) and the person would get
no answer at all. The helpers return plain dicts, so callers can still add to them.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    MarkdownTextObject,
    Option,
    SectionBlock,
    StaticSelectElement,
)

from bot.domain.errors import UserError, clip
from bot.domain.verbs import USAGE

if TYPE_CHECKING:
    from bot.domain.spec import NotebookSpec

Blocks = list[dict[str, Any]]

# The modals' callback ids (bot/ui/forms.py builds the modals): here, so that the listeners that match
# on them are registered without importing the forms.
LAUNCH_CALLBACK = "launch_modal"
REVIEW_CALLBACK = "review_modal"

# Slack's limits (docs.slack.dev, Block Kit reference); the models enforce them, these cut input to fit.
SECTION_TEXT = 3000
FIELD_TEXT = 2000
CONTEXT_TEXT = 3000
BUTTON_TEXT = 75
BUTTON_VALUE = 2000
HEADER_TEXT = 150
MESSAGE_BLOCKS = 50
VIEW_BLOCKS = 100


def mrkdwn(text: str, limit: int = SECTION_TEXT) -> MarkdownTextObject:
    return MarkdownTextObject(text=clip(text, limit))


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
    """A section of mrkdwn text (cut to 3,000 characters); `extra`: block_id, accessory, fields."""
    return SectionBlock(text=mrkdwn(text), **extra).to_dict()


def fields_section(fields: Iterable[str], block_id: str | None = None) -> dict[str, Any]:
    """A section of at most 10 two-column fields, each cut to 2,000 characters."""
    return SectionBlock(fields=[mrkdwn(f, FIELD_TEXT) for f in list(fields)[:10]], block_id=block_id).to_dict()


def context(text: str, block_id: str | None = None) -> dict[str, Any]:
    return ContextBlock(elements=[mrkdwn(text, CONTEXT_TEXT)], block_id=block_id).to_dict()


def header(text: str) -> dict[str, Any]:
    return HeaderBlock(text=clip(text, HEADER_TEXT)).to_dict()


def confirmation(title: str, text: str, yes: str, no: str, *, style: str | None = None) -> dict[str, Any]:
    """A confirmation dialog for a button (title ≤ 100, text ≤ 300, buttons ≤ 30 characters)."""
    return ConfirmObject(
        title=clip(title, 100), text=mrkdwn(text, 300), confirm=clip(yes, 30), deny=clip(no, 30), style=style
    ).to_dict()


def button(
    text: str,
    action_id: str,
    value: str | None = None,
    *,
    url: str | None = None,
    style: str | None = None,
    confirm: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """A button: its label cut to 75 characters with an ellipsis, its value (data, not shown) to 2,000."""
    return ButtonElement(
        text=clip(text, BUTTON_TEXT),
        action_id=action_id,
        value=None if value is None else value[:BUTTON_VALUE],
        url=url,
        style=style,
        confirm=ConfirmObject.parse(confirm) if confirm else None,
    ).to_dict()


def select_menu(action_id: str, placeholder: str, options: list[tuple[str, str]]) -> dict[str, Any]:
    """A static select of (value, label) options, labels shortened between words to fit."""
    return StaticSelectElement(
        action_id=action_id,
        placeholder=clip(placeholder, 150),
        options=[Option(value=value[:150], label=shorten(label, 75)) for value, label in options[:100]],
    ).to_dict()


def actions(*elements: dict[str, Any], block_id: str | None = None) -> dict[str, Any]:
    return ActionsBlock(elements=list(elements), block_id=block_id).to_dict()


def packed(lines: list[str], *, title: str = "", more: str = "", max_blocks: int = MESSAGE_BLOCKS - 5) -> Blocks:
    """Lines as few sections as fit them (3,000 characters each, a line never split unless it alone is
    too long); past `max_blocks` sections the rest is counted in a last line: "…and N more"."""
    chunks: list[list[str]] = []
    size = 0
    for line in [title, *lines] if title else lines:
        line = clip(line, SECTION_TEXT)
        if not chunks or size + 1 + len(line) > SECTION_TEXT:
            chunks.append([])
            size = -1
        chunks[-1].append(line)
        size += 1 + len(line)
    if len(chunks) > max_blocks:
        shown = sum(len(c) for c in chunks[: max_blocks - 1]) - (1 if title else 0)
        rest = len(lines) - shown
        chunks = [*chunks[: max_blocks - 1], [f"…and {rest} more{more}"]]
    return [section("\n".join(chunk)) for chunk in chunks]


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
    if error.link:
        buttons.append(button("Open JupyterLab", "open_notebook", url=error.link, style="primary"))
    return text, [section(text), actions(*buttons)] if buttons else [section(text)]


def notices_reply(spec: NotebookSpec) -> str:
    return "\n".join(f"ℹ️ {n}" for n in spec.notices)


def launch_ack(instance_id: str, spec: NotebookSpec) -> str:
    """What `/notebook new` answers at once: in a busy channel the launch message may come minutes
    later (Slack lets a bot post about once a second there), so the person knows it is under way."""
    said = f"🚀 Launching `{instance_id}`: its message follows in this channel, and I'll mention you with the link."
    return "\n".join(filter(None, (said, notices_reply(spec))))


HELP = f"""*Launch and manage Jupyter notebooks (Vertex AI Workbench) from Slack.*
{USAGE}
Examples:
• `/notebook new` — opens a form
• `/notebook new tf-2-8 gpu=l4` — TensorFlow 2.8 with one NVIDIA L4
• `/notebook new pytorch gpu=t4x2 disk=500 idle=2h`
• `/notebook new base machine=n2-standard-8 name=churn-model bucket=my-data/training`
Other commands: `/notebook list`, `/notebook envs`, `/notebook costs` (this week and month; admins: \
`/notebook costs team`), `/notebook stop|start|delete NAME`,
`/notebook cancel NAME` (a launch under way), `/notebook transfer NAME @user`.
Idle notebooks stop by themselves after the idle time (default 3h).
Off-hours: by the team's schedule, GPU notebooks stop in the evening (your time) after a DM with
*Keep it tonight*; `schedule=21:30`, `schedule=default+weekends` or (where allowed) `schedule=off` sets
one notebook's own."""


def help_reply() -> tuple[str, Blocks]:
    return HELP, [section(HELP)]
