"""Answering the one person a request came from."""

from __future__ import annotations

from typing import Any

from slack_bolt import Respond

from bot.run.services import Services

SORRY = (
    "⚠️ Something went wrong on my side while handling that. Work already recorded (a launch, a stop) "
    "carries on in the background; anything else, try again in a minute. If it keeps happening, an "
    "admin can find the details in the bot's logs."
)


def acting_user(body: dict[str, Any]) -> str | None:
    """Who a Slack request comes from, whatever its kind (command, interaction, event)."""
    user = body.get("user")
    if isinstance(user, dict):
        return user.get("id")
    return body.get("user_id") or (body.get("event") or {}).get("user")


def tell(services: Services, body: dict[str, Any], respond: Respond | None, text: str) -> None:
    """Answer only that person: ephemerally where Slack allows it, else in a DM (App Home clicks
    and events carry no response_url)."""
    if body.get("response_url") and respond is not None:
        respond(text=text, response_type="ephemeral", replace_original=False)
        return
    user = acting_user(body)
    if user:
        services.slack.dm(user, text)


def dedupe_key(body: dict[str, Any]) -> str:
    """One key per click or command: Slack resends a delivery with the same trigger_id, so a retried
    request maps to the launch or operation the first one recorded."""
    team = (body.get("team") or {}).get("id") or body.get("team_id") or (body.get("user") or {}).get("team_id")
    return f"{team or ''}:{body['trigger_id']}"
