"""`/notebook ...`: parse the verb, answer the caller, hand the work to bot/."""

from __future__ import annotations

import html
import logging
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.domain.errors import UserError, did_you_mean
from bot.domain.spec import as_typed
from bot.run.services import Services
from bot.ui.blocks import error_reply, help_reply, notices_reply
from bot.ui.forms import default_form, launch_modal
from handlers import manage
from handlers.replies import dedupe_key

log = logging.getLogger(__name__)
MANAGE_VERBS = ("list", "envs", "stop", "start", "delete", "transfer", "adopt")
VERBS = ("new", "help", *MANAGE_VERBS)


def register(app: App, services: Services) -> None:
    @app.command("/notebook")
    def notebook(ack: Ack, command: dict[str, Any], respond: Respond, client: WebClient) -> None:
        # Slack escapes &, < and > in what people type; mentions (<@U…>) arrive unescaped.
        verb, _, rest = as_typed(html.unescape(command.get("text") or "")).strip().partition(" ")
        verb = verb.lower()
        if verb in ("", "help"):
            text, blocks = help_reply()
            ack(text=text, blocks=blocks)
        elif verb == "new" and not rest.strip():
            ack()
            view = launch_modal(services.launcher, default_form(services.launcher), command["channel_id"])
            client.views_open(trigger_id=command["trigger_id"], view=view)
        elif verb == "new":
            launch(ack, respond, services, command, rest.strip())
        elif verb in MANAGE_VERBS:
            manage.run_command(verb, rest, ack, respond, services, command)
        else:
            text, blocks = error_reply(
                UserError(f"I don't know `/notebook {verb}`.{did_you_mean(verb, VERBS)} Try `/notebook help`.")
            )
            ack(text=text, blocks=blocks)


def launch(ack: Ack, respond: Respond, services: Services, command: dict[str, Any], text: str) -> None:
    """Check the spec before acknowledging (pure and fast), then record and start the launch."""
    try:
        spec = services.launcher.check(text)
    except UserError as error:
        reply, blocks = error_reply(error, customize=text)
        ack(text=reply, blocks=blocks)
        return
    ack(text=notices_reply(spec))  # "" acknowledges silently
    start_launch(
        services,
        respond,
        user=command["user_id"],
        channel=command["channel_id"],
        text=text,
        dedupe_key=dedupe_key(command),
    )


def start_launch(services: Services, respond: Respond, *, user: str, channel: str, text: str, dedupe_key: str) -> None:
    try:
        services.launcher.begin(requester=user, channel=channel, text=text, dedupe_key=dedupe_key)
    except UserError as error:
        reply, blocks = error_reply(error)
        respond(text=reply, blocks=blocks, response_type="ephemeral", replace_original=False)
