"""Button clicks on launch messages and replies."""

from __future__ import annotations

from typing import Any

from slack_bolt import Ack, App, Respond

from bot.services import Services
from handlers.commands import start_launch


def register(app: App, services: Services) -> None:
    @app.action("launch_offer")
    def launch_offer(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        """'Launch with L4 instead': the corrected command, launched as the person who clicked."""
        ack()
        channel = (body.get("container") or {}).get("channel_id") or (body.get("channel") or {}).get("id")
        start_launch(
            services,
            respond,
            user=body["user"]["id"],
            channel=channel,
            text=action["value"],
            dedupe_key=f"{body['user'].get('team_id') or (body.get('team') or {}).get('id')}:{body['trigger_id']}",
        )

    @app.action("open_notebook")
    def open_notebook(ack: Ack) -> None:
        ack()  # a link button: Slack opens the URL; the click still has to be acknowledged
