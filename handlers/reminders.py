"""Answers to reminder DMs: Stop now, Delete, Keep for a while. Ownership is checked like everywhere."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond

from bot.domain.errors import UserError
from bot.run.services import Services
from handlers.replies import dedupe_key, tell


def _message(body: dict[str, Any]) -> tuple[str, str] | None:
    container = body.get("container") or {}
    if container.get("channel_id") and container.get("message_ts"):
        return container["channel_id"], container["message_ts"]
    return None


def register(app: App, services: Services) -> None:
    def operate(action_name: str):
        def handler(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
            """The operation's outcome replaces the reminder, so the DM ends with what happened."""
            ack()
            user = body["user"]["id"]
            try:
                op = services.notebooks.request(
                    user,
                    action["value"],
                    action_name,
                    channel=None,
                    message=_message(body),
                    dedupe_key=dedupe_key(body),
                )
            except UserError as error:
                tell(services, body, respond, f"⚠️ {error.message}")
                return
            services.lifecycle.answered(op["notebook"])
            services.notebooks.advance(op["id"])

        return handler

    app.action("lifecycle_stop")(operate("stop"))
    app.action("lifecycle_delete")(operate("delete"))

    @app.action("lifecycle_snooze")
    def snooze(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        ack()
        notebook, _, seconds = action["selected_option"]["value"].partition("|")
        try:
            services.lifecycle.snooze(body["user"]["id"], notebook, int(seconds), _message(body))
        except (UserError, ValueError) as error:
            tell(services, body, respond, f"⚠️ {error}")
