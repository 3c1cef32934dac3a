"""Events: the App Home tab is drawn fresh each time it is opened."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from slack_sdk import WebClient

    from bot.run.services import Services


def home_opened(event: dict[str, Any], client: WebClient, services: Services) -> None:
    if event.get("tab", "home") != "home":
        return
    client.views_publish(user_id=event["user"], view=services.home(event["user"]))


def register(app: Any) -> None:
    app.event("app_home_opened")(home_opened)
