"""What the sandbox shows: every message, form and App Home as Slack would draw it, with the
buttons and menus numbered across the session so that `click 3` can press one.

Messages of the whole workspace are shown (a sandbox is for seeing what everyone sees), each
labelled with where it is and who alone sees it (an ephemeral reply, a DM); acting on one is
refused to anyone else, as Slack would never show it to them.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from bot.sim.render import Control, picture, view_picture
from bot.sim.slack_api import Message, SlackSimulator
from bot.sim.workspace import channel_name

_USER_ID = re.compile(r"@([UW][A-Z0-9]{2,})\b")


@dataclass(frozen=True)
class Target:
    """Where a numbered control was shown: a message (channel, ts) or a view (its id)."""

    number: int
    message: tuple[str, str] | None
    view_id: str | None
    control: Control


@dataclass(frozen=True)
class Found:
    """A control as it is now, in the message or view it sits in."""

    block_id: str
    element: dict[str, Any]
    message: Message | None = None
    view: dict[str, Any] | None = None

    @property
    def owner(self) -> str | None:
        """Who alone can see it; None for everyone in the channel."""
        if self.view is not None:
            return self.view.get("user")
        assert self.message is not None
        return owner_of(self.message)


def owner_of(message: Message) -> str | None:
    if message.ephemeral:
        return message.user
    if message.channel.startswith("D"):  # the simulator's DM with a user is "D" + their ID
        return message.channel[1:]
    return None


class Screen:
    def __init__(self, slack: SlackSimulator, out: Callable[[str], None]) -> None:
        self.slack = slack
        self._out = out
        self.lines: list[str] = []  # everything shown, for the demo's checks
        self.targets: dict[int, Target] = {}
        self.replies: dict[tuple[str, str], Message] = {}  # acknowledgements: Slack gives them no ts
        self.home_for: str | None = None  # whose App Home is open
        self._next = 1
        self._shown: dict[Any, Any] = {}
        self._open_forms: set[str] = set()
        self._lock = threading.RLock()

    # --- text -------------------------------------------------------------------------------------
    def say(self, text: str) -> None:
        with self._lock:
            for line in self.names(text).splitlines() or [""]:
                self.lines.append(line)
                self._out(line)

    def names(self, text: str) -> str:
        """@U0ALICE as @alice, as Slack shows a mention."""

        def name(match: re.Match[str]) -> str:
            user = self.slack.users.get(match.group(1))
            return "@" + user["name"] if user else match.group(0)

        return _USER_ID.sub(name, text)

    def name_of(self, user: str | None) -> str:
        return self.names(f"@{user}") if user else "everyone"

    # --- messages, forms and the App Home ---------------------------------------------------------
    def reply(self, channel: str, user: str, body: dict[str, Any]) -> None:
        """The acknowledgement of a slash command: shown to the person who typed it."""
        with self._lock:
            ts = f"reply.{len(self.replies) + 1}"
            message = Message(channel, ts, body.get("text", ""), body.get("blocks") or [], None, user, True, 0)
            self.replies[(channel, ts)] = message
            self._show_message(message, updated=False)

    def show_changes(self) -> None:
        """Print every message, form and Home tab that is new or changed since it was last shown."""
        with self._lock:
            for message in self.slack.messages():
                key = (message.channel, message.ts)
                fingerprint = (message.updates, message.text, json.dumps(message.blocks, sort_keys=True))
                if self._shown.get(key) != fingerprint:
                    self._show_message(message, updated=key in self._shown)
            forms = {vid: view for vid, view in self.slack.views().items() if view.get("type") == "modal"}
            for view_id, view in forms.items():
                self._show_view(view, "a form opened" if view_id not in self._open_forms else "the form changed")
            for view_id in self._open_forms - forms.keys():
                self.say(f"\n── the form closed ({self._form_title(view_id)})")
            self._open_forms = set(forms)
            home = self.slack.home(self.home_for) if self.home_for else None
            if home is not None:
                self._show_view(home, f"@{self.home_for}'s App Home")

    def forget_home(self) -> None:
        """Show the Home tab again on the next look, even unchanged (it was opened anew)."""
        with self._lock:
            if self.home_for:
                self._shown.pop(("view", self.home_for), None)

    def _show_message(self, message: Message, *, updated: bool) -> None:
        key = (message.channel, message.ts)
        self._shown[key] = (message.updates, message.text, json.dumps(message.blocks, sort_keys=True))
        where = f"#{channel_name(message.channel)}" if message.channel[:1] in "CG" else "DM"
        owner = owner_of(message)
        labels = [where]
        if message.thread_ts:
            labels.append("in the thread")
        if owner and message.ephemeral:
            labels.append(f"only @{owner} sees this")
        elif owner:
            labels[0] = f"DM to @{owner}"
        if updated:
            labels.append("updated")
        lines, controls = picture(message.blocks, text=message.text, first=self._next)
        self._register(controls, message=key)
        self.say(f"\n── {' · '.join(labels)}")
        for line in lines:
            self.say("   " + line)
        self._hint(controls)

    def _show_view(self, view: dict[str, Any], what: str) -> None:
        key = ("view", view.get("user") if view.get("type") == "home" else view["id"])
        seen = view_picture(view, fields=True)[0]  # numbered from 1: the same view reads the same
        before = self._shown.get(key)
        if before == seen:
            return
        self._shown[key] = seen
        lines, controls = view_picture(view, first=self._next, fields=True)
        self._register(controls, view_id=view["id"])
        modal = view.get("type") == "modal"
        owner = view.get("user")
        if modal and before is not None:  # a form that changed as you filled it: what changed
            changed = [i for i, line in enumerate(seen) if line not in before]
            if len(changed) <= len(seen) // 2:
                lines = [lines[i] for i in changed]
        self.say(f"\n── {what}" + (f" (only @{owner} sees it)" if owner and modal else ""))
        for line in lines:
            self.say("   " + line)
        if modal and before is None:
            self.say("   (`set FIELD VALUE` fills a field, then `submit` or `cancel`)")
        self._hint(controls)

    def _form_title(self, view_id: str) -> str:
        return ((self.slack.view(view_id).get("title") or {}).get("text")) or view_id

    def _register(
        self, controls: list[Control], *, message: tuple[str, str] | None = None, view_id: str | None = None
    ) -> None:
        for control in controls:
            self.targets[control.number] = Target(control.number, message, view_id, control)
            self._next = max(self._next, control.number + 1)

    def _hint(self, controls: list[Control]) -> None:
        if not controls:
            return
        menus = [c.number for c in controls if c.element.get("type") != "button"]
        hint = "`click N` presses [N]"
        if menus:
            hint += f"; `choose {menus[0]} OPTION` picks from a menu"
        self.say(f"   ({hint})")

    # --- finding what was shown -------------------------------------------------------------------
    def current(self, target: Target) -> Found | None:
        """The control as it is now, or None when its message or view no longer has it."""
        if target.view_id is not None:
            view = self.slack.view(target.view_id)
            hit = _locate(view.get("blocks") or [], target.control)
            return Found(hit[0], hit[1], view=view) if hit else None
        assert target.message is not None
        message = self._message(target.message)
        if message is None:
            return None
        hit = _locate(message.blocks, target.control)
        return Found(hit[0], hit[1], message=message) if hit else None

    def _message(self, key: tuple[str, str]) -> Message | None:
        try:
            return self.slack.message(*key)
        except KeyError:
            reply = self.replies.get(key)
            return replace(reply) if reply else None


def _locate(blocks: list[dict[str, Any]], control: Control) -> tuple[str, dict[str, Any]] | None:
    """The (block_id, element) with the control's action and value: block ids the app did not set
    are new after each update, so they can't be what identifies a control."""
    wanted = (control.element.get("action_id"), control.element.get("value"))
    for block in blocks:
        elements = list(block.get("elements") or []) if block.get("type") == "actions" else []
        if isinstance(block.get("accessory"), dict):
            elements.append(block["accessory"])
        for element in elements:
            if (element.get("action_id"), element.get("value")) == wanted:
                return block.get("block_id", ""), element
    return None
