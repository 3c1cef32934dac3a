"""Sends requests to a Bolt app exactly as Slack does: signed slash commands, button clicks,
modal interactions and Events API deliveries, each with a response_url / trigger_id the
SlackSimulator knows, so whatever the app does next lands in the simulator."""

from __future__ import annotations

import hashlib
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

from bot.sim.slack_api import APP_ID, BOT_USER_ID, TEAM_DOMAIN, Message, SlackSimulator

VERIFICATION_TOKEN = "sim-verification-token"  # the deprecated `token` field Slack still sends

# element type -> how Slack reports a chosen value in state.values and in block_actions
_OPTION = "selected_option"
_STATE_KEYS = {
    "plain_text_input": "value",
    "number_input": "value",
    "email_text_input": "value",
    "url_text_input": "value",
    "static_select": _OPTION,
    "external_select": _OPTION,
    "radio_buttons": _OPTION,
    "multi_static_select": "selected_options",
    "multi_external_select": "selected_options",
    "checkboxes": "selected_options",
    "users_select": "selected_user",
    "multi_users_select": "selected_users",
    "conversations_select": "selected_conversation",
    "multi_conversations_select": "selected_conversations",
    "channels_select": "selected_channel",
    "multi_channels_select": "selected_channels",
    "datepicker": "selected_date",
    "timepicker": "selected_time",
}
_INITIAL_KEYS = {
    "value": "initial_value",
    _OPTION: "initial_option",
    "selected_options": "initial_options",
    "selected_user": "initial_user",
    "selected_users": "initial_users",
    "selected_conversation": "initial_conversation",
    "selected_conversations": "initial_conversations",
    "selected_channel": "initial_channel",
    "selected_channels": "initial_channels",
    "selected_date": "initial_date",
    "selected_time": "initial_time",
}


@dataclass
class Response:
    status: int  # 0: Slack sent nothing (a view_closed for a view without notify_on_close)
    body: str
    headers: dict[str, str] = field(default_factory=dict)

    def json(self) -> Any:
        """The body as Slack reads it: JSON, or a plain-text body as {"text": body}; {} when empty.

        (Bolt's `ack("text")` with text only answers text/plain, which Slack shows as the message.)
        """
        if not self.body.strip():
            return {}
        if "json" in self.headers.get("content-type", "") or self.body.lstrip().startswith(("{", "[")):
            return json.loads(self.body)
        return {"text": self.body}


class SlackDriver:
    def __init__(
        self,
        app_url: str,
        signing_secret: str,
        slack: SlackSimulator,
        *,
        team_id: str = "T0SIM",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.app_url = app_url
        self.slack = slack
        self.team_id = team_id
        self.clock = clock
        self._verifier = SignatureVerifier(signing_secret)

    # --- slash commands -------------------------------------------------------------------------
    def command(
        self,
        user: str,
        text: str,
        *,
        channel: str = "C0GENERAL",
        command: str = "/notebook",
        retry_num: int | None = None,
        trigger_id: str | None = None,
    ) -> Response:
        fields = {
            "token": VERIFICATION_TOKEN,
            "team_id": self.team_id,
            "team_domain": TEAM_DOMAIN,
            "channel_id": channel,
            "channel_name": _channel_name(channel),
            "user_id": user,
            "user_name": self.slack.user(user)["name"],
            "command": command,
            "text": self.slack.escape(text),
            "api_app_id": APP_ID,
            "is_enterprise_install": "false",
            "response_url": self.slack.response_url(channel=channel, user=user),
            "trigger_id": self.slack.trigger_id(user, trigger_id=trigger_id),
        }
        return self.send(urlencode(fields).encode(), "application/x-www-form-urlencoded", retry_num=retry_num)

    # --- interactivity --------------------------------------------------------------------------
    def click(
        self, user: str, message: Message, action_id: str, *, value: str | None = None, block_id: str | None = None
    ) -> Response:
        """Press a button of `message` as it is given (a stale copy reproduces a second, racing click)."""
        block, button = _find_element(message.blocks, action_id=action_id, block_id=block_id)
        return self._message_action(user, message, self._button_action(block, button, value))

    def choose(
        self, user: str, message: Message, action_id: str, value: str, *, block_id: str | None = None
    ) -> Response:
        """Pick `value` in a select menu of `message` (e.g. a reminder's "Keep it…" menu)."""
        block, element = _find_element(message.blocks, action_id=action_id, block_id=block_id)
        action = {
            "action_id": action_id,
            "block_id": _block_id(block),
            "type": element.get("type", "static_select"),
            "selected_option": _option(element, value),
            "action_ts": self._action_ts(),
        }
        return self._message_action(user, message, action)

    def _message_action(self, user: str, message: Message, action: dict[str, Any]) -> Response:
        payload = self._base_payload("block_actions", user)
        payload.update(
            {
                "container": {
                    "type": "message",
                    "message_ts": message.ts,
                    "channel_id": message.channel,
                    "is_ephemeral": message.ephemeral,
                },
                "trigger_id": self.slack.trigger_id(user),
                "channel": {"id": message.channel, "name": _channel_name(message.channel)},
                "state": {"values": {}},
                "response_url": self.slack.response_url(
                    channel=message.channel, user=user, original_ts=message.ts, original_ephemeral=message.ephemeral
                ),
                "actions": [action],
            }
        )
        if not message.ephemeral:  # Slack leaves `message` out for ephemeral messages
            payload["message"] = self.slack.as_api_message(message)
        return self._interaction(payload)

    def click_home(self, user: str, action_id: str, *, value: str | None = None) -> Response:
        """Press a button on the user's published Home tab (no response_url, as in Slack)."""
        home = self.slack.home(user)
        if home is None:
            raise LookupError(f"{user} has no published Home view")
        return self.click_view(user, home["id"], action_id, value=value)

    def click_view(
        self, user: str, view_id: str, action_id: str, *, value: str | None = None, block_id: str | None = None
    ) -> Response:
        """Press a button in a modal or Home view the simulator holds."""
        view = self.slack.view(view_id)
        block, button = _find_element(view["blocks"], action_id=action_id, block_id=block_id)
        return self._view_action(user, view, self._button_action(block, button, value))

    def select(self, user: str, view_id: str, block_id: str, action_id: str, value: Any) -> Response:
        """Change a select (or other input) inside a view; Slack sends block_actions and keeps the value."""
        view = self.slack.view(view_id)
        _, element = _find_element(view["blocks"], action_id=action_id, block_id=block_id)
        state = _state_value(element, value)
        view = self.slack.set_view_state(view_id, {block_id: {action_id: state}})
        action = {"action_id": action_id, "block_id": block_id, **state, "action_ts": self._action_ts()}
        if "placeholder" in element:
            action["placeholder"] = element["placeholder"]
        return self._view_action(user, view, action)

    def enter(self, user: str, view_id: str, block_id: str, action_id: str, value: Any) -> Response:
        """Type or pick a value in a modal's input as a person does: Slack keeps it in the view's state
        and sends block_actions only when the input dispatches actions (dispatch_action); status 0
        when it sent nothing."""
        view = self.slack.view(view_id)
        block, element = _find_element(view["blocks"], action_id=action_id, block_id=block_id)
        if block.get("type") != "input" or block.get("dispatch_action"):
            return self.select(user, view_id, block_id, action_id, value)
        self.slack.set_view_state(view_id, {block_id: {action_id: _state_value(element, value)}})
        return Response(status=0, body="")

    def submit(self, user: str, view_id: str, values: dict[str, dict[str, Any]]) -> Response:
        """Submit a modal with `values` {block_id: {action_id: value}}; other inputs keep what the user
        selected before, their initial value, or null. Then applies the app's response_action."""
        view = self.slack.view(view_id)
        state = {block_id: dict(actions) for block_id, actions in view["state"]["values"].items()}
        inputs = [(b, b["element"]) for b in view["blocks"] if b.get("type") == "input" and b.get("element")]
        for block, element in inputs:
            state.setdefault(block["block_id"], {}).setdefault(element["action_id"], _initial(element))
        for block_id, actions in values.items():
            for action_id, value in actions.items():
                _, element = _find_element(view["blocks"], action_id=action_id, block_id=block_id)
                state.setdefault(block_id, {})[action_id] = _state_value(element, value)
        for block, element in inputs:
            if not block.get("optional") and _empty(state[block["block_id"]][element["action_id"]]):
                raise ValueError(f"Slack would not submit: required input {block['block_id']!r} is empty")
        view = self.slack.set_view_state(view_id, state)
        payload = self._base_payload("view_submission", user)
        payload.update({"trigger_id": self.slack.trigger_id(user, view_id=view_id), "view": view, "response_urls": []})
        response = self._interaction(payload)
        if response.status == 200:
            self.slack.apply_view_response(view_id, user, response.json() if response.body.strip() else {})
        return response

    def close(self, user: str, view_id: str) -> Response:
        """The user closes a modal; Slack sends view_closed only if the view set notify_on_close."""
        view = self.slack.view(view_id)
        self.slack.close_view(view_id)
        if not view.get("notify_on_close"):
            return Response(status=0, body="")
        payload = self._base_payload("view_closed", user)
        payload.update({"view": view, "is_cleared": False})
        return self._interaction(payload)

    # --- Events API -----------------------------------------------------------------------------
    def event(self, event: dict[str, Any], *, retry_num: int | None = None, event_id: str | None = None) -> Response:
        """An event_callback delivery. app_home_opened gets the user's Home view, as in Slack."""
        event = dict(event)
        now = self.clock()
        event.setdefault("event_ts", f"{now:.6f}")
        if event.get("type") == "app_home_opened":
            event.setdefault("tab", "home")
            home = self.slack.home(event.get("user", ""))
            if home is not None:
                event.setdefault("view", home)
        body = {
            "token": VERIFICATION_TOKEN,
            "team_id": self.team_id,
            "api_app_id": APP_ID,
            "event": event,
            "type": "event_callback",
            "event_id": event_id or "Ev" + uuid.uuid4().hex[:10].upper(),
            "event_time": int(now),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": self.team_id,
                    "user_id": BOT_USER_ID,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
        }
        return self.send(json.dumps(body).encode(), "application/json", retry_num=retry_num)

    # --- HTTP -----------------------------------------------------------------------------------
    def signed_headers(self, body: bytes, timestamp: int | None = None) -> dict[str, str]:
        ts = str(int(self.clock()) if timestamp is None else timestamp)
        signature = self._verifier.generate_signature(timestamp=ts, body=body)
        return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature or ""}

    def send(
        self,
        body: bytes,
        content_type: str,
        *,
        retry_num: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> Response:
        """POST a signed body; `headers` override (e.g. a forged X-Slack-Signature)."""
        all_headers = {
            "Content-Type": content_type,
            "User-Agent": "Slackbot 1.0 (+https://api.slack.com/robots)",
            **self.signed_headers(body),
        }
        if retry_num is not None:
            all_headers.update({"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": "http_timeout"})
        all_headers.update(headers or {})
        request = urllib.request.Request(self.app_url, data=body, headers=all_headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as reply:
                return Response(reply.status, reply.read().decode(), _lower(reply.headers))
        except urllib.error.HTTPError as error:
            return Response(error.code, error.read().decode(), _lower(error.headers))

    # --- helpers --------------------------------------------------------------------------------
    def _interaction(self, payload: dict[str, Any]) -> Response:
        return self.send(urlencode({"payload": json.dumps(payload)}).encode(), "application/x-www-form-urlencoded")

    def _base_payload(self, kind: str, user: str) -> dict[str, Any]:
        name = self.slack.user(user)["name"]
        return {
            "type": kind,
            "user": {"id": user, "username": name, "name": name, "team_id": self.team_id},
            "api_app_id": APP_ID,
            "token": VERIFICATION_TOKEN,
            "team": {"id": self.team_id, "domain": TEAM_DOMAIN},
            "enterprise": None,
            "is_enterprise_install": False,
        }

    def _view_action(self, user: str, view: dict[str, Any], action: dict[str, Any]) -> Response:
        payload = self._base_payload("block_actions", user)
        payload.update(
            {
                "container": {"type": "view", "view_id": view["id"]},
                "trigger_id": self.slack.trigger_id(user, view_id=view["id"]),
                "view": view,
                "state": view["state"],
                "actions": [action],
            }
        )
        return self._interaction(payload)

    def _button_action(self, block: dict[str, Any], button: dict[str, Any], value: str | None) -> dict[str, Any]:
        if button.get("type") != "button":
            raise ValueError(f"{button.get('action_id')!r} is a {button.get('type')}, not a button; use select()")
        action = {
            "action_id": button["action_id"],
            "block_id": _block_id(block),
            "text": button.get("text"),
            "type": "button",
            "action_ts": self._action_ts(),
        }
        chosen = value if value is not None else button.get("value")
        if chosen is not None:
            action["value"] = chosen
        for key in ("style", "url"):
            if key in button:
                action[key] = button[key]
        return action

    def _action_ts(self) -> str:
        return f"{self.clock():.6f}"


def _find_element(
    blocks: list[dict[str, Any]], *, action_id: str, block_id: str | None = None
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The (block, element) with that action_id: actions elements, section accessories, input elements."""
    seen = []
    for block in blocks:
        candidates = list(block.get("elements") or []) if block.get("type") == "actions" else []
        candidates += [block[k] for k in ("accessory", "element") if isinstance(block.get(k), dict)]
        for element in candidates:
            seen.append(f"{block.get('block_id')}/{element.get('action_id')}")
            if element.get("action_id") == action_id and block_id in (None, block.get("block_id")):
                return block, element
    raise LookupError(f"no element {block_id or '*'}/{action_id} in these blocks; there are {seen}")


def _block_id(block: dict[str, Any]) -> str:
    """The block's id; for blocks Slack got outside the simulator (an acknowledgement's reply),
    a stable stand-in for the id Slack would have assigned."""
    if block.get("block_id"):
        return block["block_id"]
    return hashlib.sha1(json.dumps(block, sort_keys=True).encode()).hexdigest()[:5]


def _state_value(element: dict[str, Any], value: Any) -> dict[str, Any]:
    """How Slack reports `value` chosen in `element` (in state.values and in block_actions)."""
    kind = element.get("type", "")
    key = _STATE_KEYS.get(kind)
    if key is None:
        raise ValueError(f"don't know how Slack reports a {kind} element")
    if key == _OPTION:
        return {"type": kind, key: _option(element, value)}
    if key == "selected_options":
        return {"type": kind, key: [_option(element, v) for v in value]}
    return {"type": kind, key: value}


def _option(element: dict[str, Any], value: str) -> dict[str, Any]:
    options = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        options += group.get("options") or []
    if element.get("type", "").endswith("external_select") and not options:
        return {"text": {"type": "plain_text", "text": value}, "value": value}
    for option in options:
        if option.get("value") == value:
            return option
    raise ValueError(f"{value!r} is not an option of {element.get('action_id')}: {[o.get('value') for o in options]}")


def _initial(element: dict[str, Any]) -> dict[str, Any]:
    key = _STATE_KEYS.get(element.get("type", ""), "value")
    return {"type": element.get("type"), key: element.get(_INITIAL_KEYS[key])}


def _empty(state: dict[str, Any]) -> bool:
    return all(v in (None, "", []) for k, v in state.items() if k != "type")


def _channel_name(channel: str) -> str:
    if channel.startswith("D"):
        return "directmessage"
    if channel.startswith("G"):
        return "privategroup"
    return channel.removeprefix("C0").lower() or channel


def _lower(headers: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()} if headers else {}
