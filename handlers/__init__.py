"""Slack listeners only: they turn payloads into calls on bot/ and results into Block Kit."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_bolt import App, BoltContext, BoltRequest, BoltResponse, Respond
from slack_bolt.error import BoltUnhandledRequestError
from slack_sdk.signature import SignatureVerifier

from bot.adapters.notify import web_client
from bot.run.logs import ContextPropagatingExecutor, log_context
from handlers.replies import SORRY, acting_user, tell

if TYPE_CHECKING:
    from slack_sdk.web import SlackResponse

    from bot.run.services import Services

log = logging.getLogger(__name__)


def build_app(
    services: Services, *, process_before_response: bool = False, verified: SlackResponse | None = None
) -> App:
    """The Bolt app with every listener. `verified`: Slack's answer to auth.test for the bot token,
    when the caller has just asked (`serve` has); Bolt asks otherwise."""
    from handlers import actions, commands, events, views

    settings = services.settings
    app = App(
        # named, or Bolt names it after its caller's file with inspect.stack(), which resolves the path
        # of every module loaded so far: ~15 ms of a cold start's first acknowledgement
        name="notebook-bot",
        client=web_client(settings.slack_bot_token, verified=verified),
        signing_secret=settings.slack_signing_secret,
        process_before_response=process_before_response,
        raise_error_for_unhandled_request=True,  # so the hook below acknowledges what no listener takes
        # listeners run after ack() in these threads; they keep the request's log context
        listener_executor=ContextPropagatingExecutor(max_workers=8),
    )

    @app.middleware
    def with_services_and_user_in_logs(body: dict[str, Any], context: BoltContext, next: Callable[[], Any]) -> Any:
        context["services"] = services  # listeners take `services` as an argument, like `ack` or `body`
        with log_context(user=acting_user(body)):
            return next()

    verifier = SignatureVerifier(settings.slack_signing_secret or "")

    def verified(request: BoltRequest) -> bool:
        """Socket Mode requests come over Slack's authenticated websocket; HTTP ones must be signed."""
        if request.mode == "socket_mode":
            return True
        headers = {k: v[0] for k, v in request.headers.items() if v}
        try:
            return bool(settings.slack_signing_secret) and verifier.is_valid_request(request.raw_body, headers)
        except ValueError:  # a timestamp that isn't a number
            return False

    @app.error
    def unexpected(
        error: Exception,
        body: dict[str, Any],
        request: BoltRequest,
        response: BoltResponse | None,
        respond: Respond | None = None,
    ) -> None:
        """Whatever a listener did not expect is logged; a verified request is still acknowledged
        (Slack shows an error otherwise) and its person told rather than left waiting. An
        unverified one gets nothing: no reply, no message, no call anywhere."""
        if isinstance(error, BoltUnhandledRequestError):  # e.g. a click on a button no listener knows
            if response is not None and verified(request):
                log.warning("no listener for a %s request; acknowledged", str(body.get("type"))[:40])
                response.status, response.body = 200, ""
            return
        log.error("listener failed: %s", error, exc_info=error)
        if not verified(request):
            log.warning("the failed request was not verified: nobody is told")
            return
        if response is not None and response.status >= 500:  # not acknowledged yet: acknowledge now
            response.status, response.body = 200, ""
        try:
            tell(services, body, respond, SORRY)
        except Exception:
            log.exception("could not tell the user about the failure either")

    for module in (commands, actions, views, events):
        module.register(app)
    return app
