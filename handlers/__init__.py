"""Slack listeners only: they turn payloads into calls on bot/ and results into Block Kit."""

from __future__ import annotations

from slack_bolt import App

from bot.notify import web_client
from bot.services import Services


def build_app(services: Services, *, process_before_response: bool = False) -> App:
    from handlers import actions, commands, events, manage, reminders, views

    settings = services.settings
    app = App(
        client=web_client(settings.slack_bot_token),
        signing_secret=settings.slack_signing_secret,
        process_before_response=process_before_response,
    )
    commands.register(app, services)
    actions.register(app, services)
    views.register(app, services)
    manage.register(app, services)
    events.register(app, services)
    reminders.register(app, services)
    return app
