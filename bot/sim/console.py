"""The sandbox's commands: what a person does in Slack, typed one line at a time.

Each line is sent to the app exactly as Slack would send it (bot/sim/slack_driver.py), then the
console waits until the app is quiet and shows what changed (bot/sim/screen.py).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from bot.domain.errors import UserError, did_you_mean
from bot.domain.spec import format_duration, parse_duration
from bot.sim.screen import Screen, Target
from bot.sim.slack_driver import Response
from bot.sim.workspace import CHANNELS, PEOPLE, Person, channel, channel_name, person

if TYPE_CHECKING:
    from bot.run.sandbox import Sandbox

log = logging.getLogger(__name__)
HELP = """\
Sandbox commands (you act as one person of the sandbox's team at a time):
  /notebook …              the slash command, as you, in the channel you are in (@bob mentions bob)
  as NAME                  become alice (launches), bob (approves) or carol (admin); `who` lists them
  in #CHANNEL              type commands in #general or #approvals
  home                     open your App Home tab
  click N | click LABEL    press button [N], or the latest button with that label (`click Approve`)
  choose N OPTION          pick OPTION from menu [N] (`choose "Keep it…" 24h`)
  set FIELD VALUE          fill a field of the open form (`set gpu t4`, `set reason too big`)
  submit | cancel          submit or close the open form
  wait DURATION            let time pass (`wait 9h`): reminders, escalations and expiries come due
  log                      where the bot's log is
  quit"""
VERBS = ("as", "in", "home", "click", "choose", "set", "submit", "cancel", "wait", "who", "log", "help", "quit")


class Console:
    def __init__(self, sandbox: Sandbox, *, out: Callable[[str], None] = print, user: str = "alice") -> None:
        self.sandbox = sandbox
        self.slack = sandbox.slack
        self.driver = sandbox.driver
        self.screen = Screen(sandbox.slack, out)
        me = person(user)
        if me is None:
            raise ValueError(f"no one called {user!r} in the sandbox: {', '.join(p.name for p in PEOPLE)}")
        self.me: Person = me
        self.here = CHANNELS["general"]
        self.log_path = sandbox.log_path
        self._confirming: int | None = None
        self._stop = threading.Event()

    # --- the session --------------------------------------------------------------------------------
    def introduce(self) -> None:
        s = self.sandbox
        self.out("notebook-bot sandbox: the real app on an embedded store, with simulated Slack and Workbench.")
        self.out("The team: " + " · ".join(f"@{p.name} ({p.role})" for p in PEOPLE))
        self.out(f"Channels: {', '.join('#' + c for c in CHANNELS)}. Config: {s.config_path}")
        self.out(f"Store and simulated cloud: {s.state_dir} (`--state DIR` keeps using one)")
        self.out(f"Logs: {s.log_path} (the bot's log; `tail -f` it in another terminal)")
        self.out(f"You are @{self.me.name} in #{channel_name(self.here)}. Type `/notebook help`, `help`, or `quit`.")

    def prompt(self) -> str:
        return f"{self.me.name} #{channel_name(self.here)}>"

    def out(self, text: str) -> None:
        self.screen.say(text)

    def watch(self) -> None:
        """Show what the app does meanwhile (until stop())."""
        while not self._stop.wait(0.2):
            self.screen.show_changes()

    def stop(self) -> None:
        self._stop.set()

    def mark(self) -> int:
        return len(self.screen.lines)

    def wait_for_output(self, expected: tuple[str, ...], *, since: int, timeout: float = 60.0) -> str | None:
        """The first of `expected` not shown since `since` within `timeout` seconds, else None."""
        deadline = time.monotonic() + timeout
        while True:
            self.screen.show_changes()
            shown = "\n".join(self.screen.lines[since:])
            missing = next((e for e in expected if e not in shown), None)
            if missing is None or time.monotonic() > deadline:
                return missing
            time.sleep(0.2)

    def settle(self, timeout: float = 60.0) -> None:
        """Wait until the app is quiet (nothing under way, no Slack call for half a second), then show."""
        deadline = time.monotonic() + timeout
        calls, quiet_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            now = self.slack.call_count()
            if now != calls or self.sandbox.busy():
                calls, quiet_since = now, time.monotonic()
            elif time.monotonic() - quiet_since >= 0.5:
                break
            time.sleep(0.1)
        self.screen.show_changes()

    # --- commands -----------------------------------------------------------------------------------
    def run(self, line: str) -> bool:
        """Do one line; False when it says to quit."""
        line = line.strip()
        if not line or line.startswith("#"):  # a comment, in a script of commands
            return True
        word, _, rest = line.partition(" ")
        word, rest = word.lower(), rest.strip()
        if word in ("quit", "exit"):
            return False
        handlers: dict[str, Callable[[str], None]] = {
            "as": self.become,
            "in": self.go,
            "home": lambda _: self.home(),
            "click": self.click,
            "choose": self.choose,
            "set": self.set_field,
            "submit": lambda _: self.submit(),
            "cancel": lambda _: self.cancel(),
            "wait": self.wait,
            "who": lambda _: self.who(),
            "log": lambda _: self.out(f"The bot's log: {self.log_path}"),
            "help": lambda _: self.out(HELP),
        }
        if line.startswith("/"):
            action = partial(self.slash, line)
        elif word in handlers:
            action = partial(handlers[word], rest)
        else:
            self.out(f"I don't know `{word}`.{did_you_mean(word, VERBS)} Type `help` for the sandbox's commands.")
            return True
        if word not in ("click", "choose"):
            self._confirming = None  # a confirmation dialog is answered by the very next click
        try:
            action()
        except Exception as failure:  # the sandbox's own trouble: say so and carry on
            log.exception("sandbox command failed: %s", line)
            self.out(f"(the sandbox could not do that: {failure}; details in {self.log_path})")
        self.settle()
        return True

    def slash(self, line: str) -> None:
        command, _, text = line.partition(" ")
        if command != "/notebook":
            self.out(f"Slack: `{command}` is not a valid command (this workspace has `/notebook`).")
            return
        self.screen.home_for = None  # typing in a channel: you are looking at the channel
        response = self.driver.command(self.me.id, text, channel=self.here, command=command)
        if self._failed(response):
            return
        if response.body.strip():
            self.screen.reply(self.here, self.me.id, response.json())

    def become(self, who: str) -> None:
        found = person(who)
        if found is None:
            self.out(f"There is no `{who}` here; the team is {', '.join('@' + p.name for p in PEOPLE)} (`who`).")
            return
        self.me, self.screen.home_for = found, None
        self.out(f"You are @{found.name} ({found.role}), in #{channel_name(self.here)}.")

    def go(self, where: str) -> None:
        found = channel(where)
        if found is None:
            self.out(f"There is no channel `{where}`; there are {', '.join('#' + c for c in CHANNELS)}.")
            return
        self.here, self.screen.home_for = found, None
        self.out(f"You are in #{channel_name(found)}.")

    def who(self) -> None:
        for p in PEOPLE:
            self.out(f"{'→' if p == self.me else ' '} @{p.name} ({p.id}): {p.role}")

    def home(self) -> None:
        before = (self.slack.home(self.me.id) or {}).get("hash")
        response = self.driver.event({"type": "app_home_opened", "user": self.me.id, "channel": "D" + self.me.id})
        if self._failed(response):
            return
        self.screen.home_for = self.me.id
        self.screen.forget_home()
        deadline = time.monotonic() + 10
        while (self.slack.home(self.me.id) or {}).get("hash") == before and time.monotonic() < deadline:
            time.sleep(0.05)

    def click(self, what: str) -> None:
        number = self._find(what.strip(), menus=False)
        if number is None:
            self.out(f"There is no button `{what}` to press; buttons are numbered in [brackets].")
            return
        target = self.screen.targets[number]
        found = self._reachable(target)
        if found is None:
            return
        element = found.element
        if element.get("type") != "button":
            options = " | ".join(o["text"]["text"] for o in target.control.options)
            self.out(f"[{number}] is a menu: `choose {number} OPTION`, one of {options}.")
            return
        if element.get("confirm") and self._confirming != number:
            self._confirming = number
            dialog = element["confirm"]
            self.out(f"\n── Slack asks: {dialog['title']['text']} {self.screen.names(dialog['text']['text'])}")
            self.out(f"   `click {number}` again: {dialog['confirm']['text']}; anything else: {dialog['deny']['text']}")
            return
        self._confirming = None
        if element.get("url"):
            self.out(f"(your browser opens {element['url']})")
        action, value = element["action_id"], element.get("value")
        if found.view is not None:
            response = self.driver.click_view(
                self.me.id, found.view["id"], action, value=value, block_id=found.block_id
            )
        else:
            assert found.message is not None
            response = self.driver.click(
                self.me.id, found.message, action, value=value, block_id=found.block_id or None
            )
        self._failed(response)

    def choose(self, rest: str) -> None:
        what, option = _first_word(rest)
        number = self._find(what, menus=True)
        if number is None or not option:
            self.out("Write `choose N OPTION` with the number of a menu, e.g. `choose 4 24h`.")
            return
        target = self.screen.targets[number]
        found = self._reachable(target)
        if found is None:
            return
        picked = _pick(target.control.options, option)
        if picked is None:
            offered = " | ".join(o["text"]["text"] for o in target.control.options)
            self.out(f"[{number}] offers {offered}; `{option}` is not one of them.")
            return
        action = found.element["action_id"]
        if found.view is not None:
            response = self.driver.select(self.me.id, found.view["id"], found.block_id, action, picked["value"])
        else:
            assert found.message is not None
            response = self.driver.choose(
                self.me.id, found.message, action, picked["value"], block_id=found.block_id or None
            )
        self._failed(response)

    def set_field(self, rest: str) -> None:
        view = self._my_form()
        if view is None:
            return
        field, value = _first_word(rest)
        inputs = [b for b in view["blocks"] if b.get("type") == "input" and b.get("element")]
        block = _field(inputs, field)
        if block is None:
            names = ", ".join(b["block_id"].split(":", 1)[0] for b in inputs)
            self.out(f"The form has no field `{field}`; its fields are {names}.")
            return
        element = block["element"]
        if element.get("options"):
            picked = _pick(element["options"], value)
            if picked is None:
                offered = " | ".join(str(o["value"]) for o in element["options"])
                self.out(f"`{value}` is not a choice of {field}: {offered}.")
                return
            value = picked["value"]
        if _value_in(view, block) == value:
            self.out(f"{block['label']['text']} is {value} already.")
            return
        self._failed(self.driver.enter(self.me.id, view["id"], block["block_id"], element["action_id"], value))

    def submit(self) -> None:
        view = self._my_form()
        if view is None:
            return
        try:
            response = self.driver.submit(self.me.id, view["id"], {})
        except ValueError as refused:  # Slack itself refuses to send a form with a required field empty
            self.out(f"Slack won't send the form: {refused}".replace("Slack would not submit: ", ""))
            return
        if self._failed(response):
            return
        body = response.json() if response.body.strip() else {}
        labels = {b.get("block_id"): b.get("label", {}).get("text", "") for b in view["blocks"]}
        for block_id, message in (body.get("errors") or {}).items() if body.get("response_action") == "errors" else ():
            self.out(f"   ⚠️ {labels.get(block_id) or block_id}: {self.screen.names(message)}")

    def cancel(self) -> None:
        view = self._my_form()
        if view is not None:
            self._failed(self.driver.close(self.me.id, view["id"]))

    def wait(self, duration: str) -> None:
        try:
            seconds = parse_duration(duration) if duration else 0
        except UserError:
            seconds = 0
        if seconds <= 0:
            self.out("Write how long, e.g. `wait 9h`, `wait 90m` or `wait 3d`.")
            return
        self.settle()  # a step under way finishes before the clock moves (as its lease expects)
        self.sandbox.advance(seconds)
        now = datetime.fromtimestamp(self.sandbox.clock()).strftime("%a %d %b %H:%M")
        self.out(f"⏩ {format_duration(seconds)} later: it is now {now} in the sandbox.")
        self.sandbox.sweep()

    # --- helpers ------------------------------------------------------------------------------------
    def _find(self, what: str, *, menus: bool) -> int | None:
        """A control by number, or the latest one still shown with that label, yours first."""
        if what.isdigit():
            return int(what) if int(what) in self.screen.targets else None
        wanted = _plain(what)
        shown = [t for _, t in sorted(self.screen.targets.items(), reverse=True) if _is_menu(t) == menus]
        now = {t.number: found for t in shown if (found := self.screen.current(t)) is not None}
        live = [t for t in shown if t.number in now]
        mine = [t for t in live if now[t.number].owner in (None, self.me.id)]
        for pool in (mine, live):
            hits = [t.number for t in pool if _plain(t.control.label).startswith(wanted)]
            if hits:
                return hits[0]  # the latest shown: what a person who just read it means
        return None

    def _reachable(self, target: Target) -> Any:
        found = self.screen.current(target)
        if found is None:
            self.out(f"[{target.number}] is gone: its message changed since. Use the number shown last.")
            return None
        if found.owner not in (None, self.me.id):
            name = self.screen.name_of(found.owner)
            self.out(f"[{target.number}] is in what only {name} sees; `as {name.lstrip('@')}` first.")
            return None
        return found

    def _my_form(self) -> dict[str, Any] | None:
        forms = [v for v in self.slack.views().values() if v.get("type") == "modal" and v.get("user") == self.me.id]
        if not forms:
            self.out("No form is open for you. `/notebook new` opens the launch form; Review opens the review form.")
            return None
        return forms[-1]

    def _failed(self, response: Response) -> bool:
        if response.status in (0, 200):
            return False
        self.out(f"[Slack would show an error: the app answered HTTP {response.status}; see {self.log_path}]")
        return True


def _is_menu(target: Target) -> bool:
    return target.control.element.get("type") != "button"


def _plain(text: str) -> str:
    return " ".join(text.replace("...", "…").lower().split())


def _first_word(text: str) -> tuple[str, str]:
    """('Keep it…', '24h') from '"Keep it…" 24h'; ('gpu', 't4') from 'gpu t4'."""
    text = text.strip()
    quote = text[:1]
    if quote in ("'", '"'):
        end = text.find(quote, 1)
        return (text[1:end], text[end + 1 :].strip()) if end != -1 else (text[1:], "")
    word, _, rest = text.partition(" ")
    return word, rest.strip()


def _pick(options: list[dict[str, Any]], wanted: str) -> dict[str, Any] | None:
    """An option by its value, its text, or words its text ends with (`24h` for "Keep for 24h")."""
    plain = _plain(wanted)
    for test in (
        lambda o: str(o.get("value", "")).lower() == plain,
        lambda o: _plain(o["text"]["text"]) == plain,
        lambda o: _plain(o["text"]["text"]).endswith(plain) or _plain(o["text"]["text"]).startswith(plain),
    ):
        hits = [o for o in options if test(o)]
        if hits:
            return hits[0]
    return None


def _value_in(view: dict[str, Any], block: dict[str, Any]) -> Any:
    """What an input of the view holds now: the person's entry, else its initial value."""
    element = block["element"]
    state = ((view.get("state") or {}).get("values") or {}).get(block["block_id"], {}).get(element["action_id"])
    if state:
        option = state.get("selected_option")
        return option.get("value") if isinstance(option, dict) else state.get("value")
    return (element.get("initial_option") or {}).get("value") or element.get("initial_value")


def _field(inputs: list[dict[str, Any]], field: str) -> dict[str, Any] | None:
    wanted = _plain(field).replace("-", "_")
    for block in inputs:
        if block["block_id"].split(":", 1)[0].lower() == wanted:
            return block
    return next((b for b in inputs if _plain(b["label"]["text"]).startswith(_plain(field))), None)
