"""Plain-text pictures of what Slack would show for a message or a view (for the terminal sandbox).

Pure functions. Controls a person can press or pick from (buttons, select menus and overflow menus
outside inputs) are numbered [1], [2], … in reading order (`first` shifts the numbering, so a
caller can number controls across several messages); link buttons show their URL. `picture`
also returns the numbered controls, so a caller can act on "[3]". With `fields=True` a view's
inputs show the field name to fill and, for menus, the values to choose from.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from bot.sim.slack_api import Message

RULE = "─" * 40
_LINK = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")
NUMBERED = ("button", "overflow", "static_select", "external_select", "users_select", "conversations_select")


@dataclass(frozen=True)
class Control:
    """A numbered button or menu: the block it sits in and the element as the app sent it."""

    number: int
    block_id: str
    element: dict[str, Any]

    @property
    def label(self) -> str:
        return _text(self.element.get("text")) or _text(self.element.get("placeholder")) or "menu"

    @property
    def options(self) -> list[dict[str, Any]]:
        return _options(self.element)


def render_message(msg: Message, *, first_button: int = 1) -> str:
    return "\n".join(picture(msg.blocks, text=msg.text, first=first_button)[0])


def render_view(view: dict[str, Any], *, first_button: int = 1, fields: bool = False) -> str:
    return "\n".join(view_picture(view, first=first_button, fields=fields)[0])


def picture(
    blocks: list[dict[str, Any]],
    *,
    text: str = "",
    values: dict[str, Any] | None = None,
    first: int = 1,
    fields: bool = False,
) -> tuple[list[str], list[Control]]:
    """The lines Slack would show for these blocks (or the fallback text without blocks), and the
    numbered controls among them."""
    if not blocks:
        return mrkdwn(text).splitlines(), []
    controls: list[Control] = []
    lines = _render_blocks(blocks, values or {}, _Counter(first, controls), fields)
    return lines, controls


def view_picture(view: dict[str, Any], *, first: int = 1, fields: bool = False) -> tuple[list[str], list[Control]]:
    """A modal or Home tab: title, blocks with the inputs' current values, and the modal's buttons."""
    title = _text(view.get("title")) or ("Home" if view.get("type") == "home" else "")
    values = (view.get("state") or {}).get("values") or {}
    body, controls = picture(view.get("blocks") or [], values=values, first=first, fields=fields)
    lines = [f"┌ {title}", *body]
    if view.get("type") == "modal":
        footer = [f"( {_text(view.get('close')) or 'Cancel'} )"]
        if view.get("submit"):
            footer.append(f"( {_text(view['submit'])} )")
        lines.append("└ " + "  ".join(footer))
    return lines, controls


def mrkdwn(text: str) -> str:
    """Slack's <…> markup as a person reads it: <@U1> → @U1, <#C1|general> → #general,
    <https://x|label> → label (https://x), <!here> → @here; &lt; &gt; &amp; unescaped."""

    def link(match: re.Match[str]) -> str:
        target, label = match.group(1), match.group(2)
        if target.startswith("@"):
            return "@" + (label or target[1:])
        if target.startswith("#"):
            return "#" + (label or target[1:])
        if target.startswith("!"):
            return label or "@" + target[1:].split("^")[0]
        return f"{label} ({target})" if label else target

    return _LINK.sub(link, text).replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


class _Counter:
    def __init__(self, first: int, controls: list[Control]) -> None:
        self.next = first
        self.controls = controls

    def take(self, block: dict[str, Any], element: dict[str, Any]) -> int:
        number = self.next
        self.next += 1
        self.controls.append(Control(number, block.get("block_id", ""), element))
        return number


# --- blocks -------------------------------------------------------------------------------------
def _render_blocks(blocks: list[dict[str, Any]], values: dict[str, Any], counter: _Counter, fields: bool) -> list[str]:
    lines: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            title = _text(block.get("text"))
            lines += [title, "═" * max(len(title), 3)]
        elif kind == "section":
            if block.get("text"):
                lines += _text(block["text"]).splitlines()
            lines += ["  " + " ".join(_text(field).splitlines()) for field in block.get("fields") or []]
            if block.get("accessory"):
                accessory = block["accessory"]
                lines.append("  " + _control(block, accessory, _current(values, block, accessory), counter))
        elif kind == "divider":
            lines.append(RULE)
        elif kind == "context":
            lines += " · ".join(
                _text(e) if e.get("type") != "image" else f"[{e.get('alt_text', 'image')}]"
                for e in block.get("elements") or []
            ).splitlines()
        elif kind == "actions":
            lines += [_control(block, e, _current(values, block, e), counter) for e in block.get("elements") or []]
        elif kind == "input":
            element = block.get("element") or {}
            optional = " (optional)" if block.get("optional") else ""
            shown = _element(element, _current(values, block, element))
            lines.append(f"{_text(block.get('label'))}{optional}: {shown}")
            if block.get("hint"):
                lines.append("  " + _text(block["hint"]))
            if fields:
                lines.append("  ↳ " + _how_to_fill(block, element))
        elif kind == "image":
            lines.append(f"[image: {block.get('alt_text', '')}]")
        elif kind == "rich_text":
            lines += "".join(_rich_text(block)).splitlines()
        else:
            lines.append(f"[{kind} block]")
    return lines


def _how_to_fill(block: dict[str, Any], element: dict[str, Any]) -> str:
    field = block.get("block_id", "").split(":", 1)[0]
    choices = [str(o.get("value")) for o in _options(element)]
    return f"set {field} " + (" | ".join(choices) if choices else "…")


def _control(block: dict[str, Any], element: dict[str, Any], current: dict[str, Any] | None, counter: _Counter) -> str:
    if element.get("type") not in NUMBERED:
        return _element(element, current)
    number = counter.take(block, element)
    if element["type"].endswith("select") and not current:  # a menu in a message: what it offers
        placeholder = _text(element.get("placeholder")) or "choose"
        choices = " | ".join(_text(o.get("text")) for o in _options(element))
        return f"[{number}] {placeholder} ▾" + (f" ({choices})" if choices else "")
    return f"[{number}] {_element(element, current)}"


def _element(element: dict[str, Any], current: dict[str, Any] | None) -> str:
    kind = element.get("type", "")
    if kind == "button":
        url = f" → {element['url']}" if element.get("url") else ""
        style = {"primary": " (primary)", "danger": " (danger)"}.get(element.get("style", ""), "")
        return f"{_text(element.get('text'))}{style}{url}"
    if kind == "image":
        return f"[image: {element.get('alt_text', '')}]"
    if kind == "overflow":
        return "⋯ " + " | ".join(_text(o.get("text")) for o in element.get("options") or [])
    shown = _value(current) if current else ""
    placeholder = _text(element.get("placeholder"))
    if kind.endswith("input"):
        return f"[{shown or (f'({placeholder})' if placeholder else '')}]"
    return f"[{shown or placeholder or 'choose'} ▾]"


def _options(element: dict[str, Any]) -> list[dict[str, Any]]:
    options = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        options += group.get("options") or []
    return options


def _current(values: dict[str, Any], block: dict[str, Any], element: dict[str, Any]) -> dict[str, Any] | None:
    """What the user entered, else the element's initial value, as a state.values entry."""
    entered = (values.get(block.get("block_id", "")) or {}).get(element.get("action_id", ""))
    if entered:
        return entered
    for key in (
        "initial_value",
        "initial_option",
        "initial_options",
        "initial_user",
        "initial_users",
        "initial_conversation",
        "initial_channel",
        "initial_date",
        "initial_time",
    ):
        if element.get(key) is not None:
            return {key.replace("initial_", "selected_") if key != "initial_value" else "value": element[key]}
    return None


def _value(state: dict[str, Any]) -> str:
    parts: list[str] = []
    for key, value in state.items():
        if key == "type" or value in (None, "", []):
            continue
        items = value if isinstance(value, list) else [value]
        for item in items:
            if isinstance(item, dict):
                parts.append(_text(item.get("text")) or str(item.get("value", "")))
            elif key.endswith(("user", "users")):
                parts.append(f"@{item}")
            elif key.endswith(("conversation", "conversations", "channel", "channels")):
                parts.append(f"#{item}")
            else:
                parts.append(str(item))
    return ", ".join(parts)


def _text(obj: Any) -> str:
    if not obj:
        return ""
    if isinstance(obj, str):
        return obj
    text = obj.get("text", "")
    return mrkdwn(text) if obj.get("type") == "mrkdwn" else text


def _rich_text(node: dict[str, Any]) -> list[str]:
    kind = node.get("type")
    if kind == "text":
        return [node.get("text", "")]
    if kind == "link":
        return [node.get("text") or node.get("url", "")]
    if kind == "user":
        return ["@" + node.get("user_id", "")]
    if kind == "channel":
        return ["#" + node.get("channel_id", "")]
    if kind == "emoji":
        return [f":{node.get('name', '')}:"]
    parts = [p for child in node.get("elements") or [] for p in _rich_text(child)]
    if kind in ("rich_text_section", "rich_text_preformatted", "rich_text_quote"):
        parts.append("\n")
    return parts
