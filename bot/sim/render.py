"""Plain-text pictures of what Slack would show for a message or a view (for the terminal sandbox).

Pure functions. Buttons are numbered [1], [2], … in reading order (`first_button` shifts the
numbering, so a caller can number buttons across several messages); link buttons show their URL.
"""

from __future__ import annotations

import re
from typing import Any

from bot.sim.slack_api import Message

RULE = "─" * 40
_LINK = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")


def render_message(msg: Message, *, first_button: int = 1) -> str:
    if not msg.blocks:
        return mrkdwn(msg.text)
    return "\n".join(_render_blocks(msg.blocks, {}, [first_button]))


def render_view(view: dict[str, Any], *, first_button: int = 1) -> str:
    """A modal or Home tab: title, blocks with the inputs' current values, and the modal's buttons."""
    title = _text(view.get("title")) or ("Home" if view.get("type") == "home" else "")
    lines = [
        f"┌ {title}",
        *_render_blocks(view.get("blocks") or [], (view.get("state") or {}).get("values") or {}, [first_button]),
    ]
    if view.get("type") == "modal":
        footer = [f"( {_text(view.get('close')) or 'Cancel'} )"]
        if view.get("submit"):
            footer.append(f"( {_text(view['submit'])} )")
        lines.append("└ " + "  ".join(footer))
    return "\n".join(lines)


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


# --- blocks -------------------------------------------------------------------------------------
def _render_blocks(blocks: list[dict[str, Any]], values: dict[str, Any], counter: list[int]) -> list[str]:
    lines: list[str] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "header":
            title = _text(block.get("text"))
            lines += [title, "═" * max(len(title), 3)]
        elif kind == "section":
            if block.get("text"):
                lines += _text(block["text"]).splitlines()
            lines += ["  " + line for field in block.get("fields") or [] for line in _text(field).splitlines()]
            if block.get("accessory"):
                lines.append("  " + _element(block["accessory"], _current(values, block, block["accessory"]), counter))
        elif kind == "divider":
            lines.append(RULE)
        elif kind == "context":
            lines.append(
                " · ".join(
                    _text(e) if e.get("type") != "image" else f"[{e.get('alt_text', 'image')}]"
                    for e in block.get("elements") or []
                )
            )
        elif kind == "actions":
            lines += [_element(e, _current(values, block, e), counter) for e in block.get("elements") or []]
        elif kind == "input":
            element = block.get("element") or {}
            optional = " (optional)" if block.get("optional") else ""
            shown = _element(element, _current(values, block, element), counter)
            lines.append(f"{_text(block.get('label'))}{optional}: {shown}")
            if block.get("hint"):
                lines.append("  " + _text(block["hint"]))
        elif kind == "image":
            lines.append(f"[image: {block.get('alt_text', '')}]")
        elif kind == "rich_text":
            lines += "".join(_rich_text(block)).splitlines()
        else:
            lines.append(f"[{kind} block]")
    return lines


def _element(element: dict[str, Any], current: dict[str, Any] | None, counter: list[int]) -> str:
    kind = element.get("type", "")
    if kind == "button":
        number = counter[0]
        counter[0] += 1
        url = f" → {element['url']}" if element.get("url") else ""
        style = {"primary": " (primary)", "danger": " (danger)"}.get(element.get("style", ""), "")
        return f"[{number}] {_text(element.get('text'))}{style}{url}"
    if kind == "image":
        return f"[image: {element.get('alt_text', '')}]"
    if kind == "overflow":
        return "[⋯ " + " | ".join(_text(o.get("text")) for o in element.get("options") or []) + "]"
    shown = _value(current) if current else ""
    placeholder = _text(element.get("placeholder"))
    if kind.endswith("input"):
        return f"[{shown or (f'({placeholder})' if placeholder else '')}]"
    return f"[{shown or placeholder or 'choose'} ▾]"


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
