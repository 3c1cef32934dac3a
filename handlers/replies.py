"""Answering the one person a request came from, and naming what a request is about."""

from __future__ import annotations

import hashlib
from typing import TYPE_CHECKING, Any

from bot.adapters.notify import is_slack_url

if TYPE_CHECKING:
    from slack_bolt import Respond

    from bot.run.services import Services

SORRY = (
    "⚠️ Something went wrong on my side while handling that. Work already recorded (a launch, a stop) "
    "carries on in the background; anything else, try again in a minute. If it keeps happening, an "
    "admin can find the details in the bot's logs."
)

UNREADABLE = (
    "⚠️ Slack sent me your last click or form in a shape I couldn't read, so I did nothing with it. "
    "Try again; if it keeps happening, an admin can find the details in the bot's logs."
)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def acting_user(body: Any) -> str | None:
    """Who a Slack request comes from, whatever its kind (command, interaction, event); None when
    the body doesn't say (or says it in a shape Slack never sends)."""
    if not isinstance(body, dict):
        return None
    user = body.get("user")
    if isinstance(user, dict):
        return _text(user.get("id"))
    event = body.get("event")
    return _text(body.get("user_id")) or (_text(event.get("user")) if isinstance(event, dict) else None)


def tell(services: Services, body: dict[str, Any], respond: Respond | None, text: str) -> None:
    """Answer only that person: ephemerally where Slack allows it, else in a DM (App Home clicks
    and events carry no response_url). Only Slack's own response URLs are ever posted to."""
    if respond is not None and is_slack_url(body.get("response_url")):
        respond(text=text, response_type="ephemeral", replace_original=False)
        return
    user = acting_user(body)
    if user:
        services.slack.dm(user, text)


def team_of(body: dict[str, Any]) -> str:
    """The workspace a request comes from, read only from the shapes Slack sends."""
    team, user = body.get("team"), body.get("user")
    team_id = (
        (_text(team.get("id")) if isinstance(team, dict) else None)
        or _text(body.get("team_id"))
        or (_text(user.get("team_id")) if isinstance(user, dict) else None)
    )
    return team_id or ""


def dedupe_key(body: dict[str, Any]) -> str:
    """One key per command or form: Slack resends a delivery with the same trigger_id, so a retried
    request maps to the launch or operation the first one recorded."""
    return f"{team_of(body)}:{body['trigger_id']}"


def offer_key(body: dict[str, Any], action: dict[str, Any]) -> str:
    """One key per offer: the button on the message (or Home view) it was shown in, whoever clicks
    and however often, so a second click finds what the first one did."""
    container = body.get("container") or {}
    where = container.get("message_ts") or (body.get("view") or {}).get("hash") or body.get("trigger_id")
    place = container.get("channel_id") or container.get("view_id") or ""
    raw = f"{place}:{where}:{action.get('action_id')}:{action.get('value') or ''}"
    return f"{team_of(body)}:offer:{hashlib.sha256(raw.encode()).hexdigest()[:32]}"


def offered_key(offer_id: str) -> str:
    """The key of a launch offered by the bot under `offer_id` (embedded in the offer's button)."""
    return f"offer:{offer_id}"


def message_of(body: dict[str, Any]) -> tuple[str, str] | None:
    """The message a click came from, when it is one the bot can update (not ephemeral)."""
    container = body.get("container") or {}
    if container.get("channel_id") and container.get("message_ts") and not container.get("is_ephemeral"):
        return container["channel_id"], container["message_ts"]
    return None


def channel_of(body: dict[str, Any]) -> str:
    return (body.get("container") or {}).get("channel_id") or (body.get("channel") or {}).get("id") or ""


def from_home(body: dict[str, Any]) -> bool:
    return (body.get("view") or {}).get("type") == "home"
