"""Slack listeners only: they turn payloads into calls on bot/ and results into Block Kit."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import App, BoltContext, Respond

from bot.adapters.notify import web_client
from bot.run.logs import ContextPropagatingExecutor, log_context
from bot.run.services import Services
from handlers.replies import SORRY, acting_user, tell

log = logging.getLogger(__name__)


def build_app(services: Services, *, process_before_response: bool = False) -> App:
    from handlers import actions, commands, events, views

    settings = services.settings
    app = App(
        client=web_client(settings.slack_bot_token),
        signing_secret=settings.slack_signing_secret,
        process_before_response=process_before_response,
        # listeners run after ack() in these threads; they keep the request's log context
        listener_executor=ContextPropagatingExecutor(max_workers=8),
    )

    @app.middleware
    def with_services_and_user_in_logs(body: dict[str, Any], context: BoltContext, next: Callable[[], Any]) -> Any:
        context["services"] = services  # listeners take `services` as an argument, like `ack` or `body`
        with log_context(user=acting_user(body)):
            return next()

    @app.error
    def unexpected(error: Exception, body: dict[str, Any], respond: Respond | None = None) -> None:
        """Whatever a listener did not expect is logged, and the person is told rather than left waiting."""
        log.error("listener failed: %s", error, exc_info=error)
        try:
            tell(services, body, respond, SORRY)
        except Exception:
            log.exception("could not tell the user about the failure either")

    for module in (commands, actions, views, events):
        module.register(app)
    return app
