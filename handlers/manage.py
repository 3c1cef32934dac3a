"""`/notebook list|envs|stop|start|delete|transfer|adopt` and the buttons that do the same."""

from __future__ import annotations

import logging
import re
from typing import Any

from slack_bolt import Ack, App, Respond

from bot.adapters.workbench import WorkbenchError
from bot.domain.errors import NotAllowed, UserError
from bot.run.services import Services
from bot.ui.blocks import error_reply
from bot.ui.listing import catalog_listing, delete_confirmation, notebook_list
from handlers.replies import dedupe_key, tell

log = logging.getLogger(__name__)
MENTION = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")


def mentioned_user(word: str) -> str:
    match = MENTION.match(word.strip())
    if match is None:
        raise UserError(f"`{word}` is not a person: mention them with @ (e.g. `@alice`) so Slack sends who they are.")
    return match.group(1)


def run_command(
    verb: str, rest: str, slack_ack: Ack, respond: Respond, services: Services, command: dict[str, Any]
) -> None:
    """The management verbs of /notebook. Refusals are ephemeral and change nothing."""
    user, channel = command["user_id"], command["channel_id"]
    words = rest.split()
    acked = False

    def ack(**reply: Any) -> None:
        nonlocal acked
        acked = True
        slack_ack(**reply)

    try:
        if verb == "envs":
            text, blocks = catalog_listing(services.config.catalog, services.launcher.today())
            ack(text=text, blocks=blocks)
        elif verb == "list":
            everyone = words[:1] == ["all"]
            if everyone and not services.rules.is_admin(user):
                raise NotAllowed("Only admins can list everyone's notebooks; `/notebook list` shows yours.")
            ack()
            show_list(services, respond, user, everyone)
        elif verb in ("stop", "start"):
            name = _one_name(verb, words)
            ack()
            _operate(services, respond, user, name, verb, channel, dedupe_key(command))
        elif verb == "delete":
            notebook = services.notebooks.find(user, _one_name(verb, words))
            services.notebooks.authorize(user, notebook, "delete")
            text, blocks = delete_confirmation(notebook)
            ack(text=text, blocks=blocks)
        elif verb == "transfer":
            if len(words) != 2:
                raise UserError("Usage: `/notebook transfer NAME @person`")
            new_owner = mentioned_user(words[1])
            ack()
            nb = services.notebooks.transfer(user, words[0], new_owner)
            respond(text=f"✅ `{nb.id}` now belongs to <@{new_owner}>.", response_type="ephemeral")
            services.slack.dm(
                new_owner,
                f"<@{user}> handed the notebook `{nb.id}` to you: it is yours to stop, start and delete "
                "(`/notebook list`). Opening JupyterLab stays with the Google account it was created for, "
                "as Workbench can't change an instance's owner; ask an admin if you need access.",
            )
        elif verb == "adopt":
            if len(words) < 2:
                raise UserError("Usage: `/notebook adopt NAME @person [zone=ZONE]`")
            zone = next((w.split("=", 1)[1] for w in words[2:] if w.startswith("zone=")), None)
            ack()
            nb = services.notebooks.adopt(user, words[0], mentioned_user(words[1]), zone)
            respond(
                text=f"✅ `{nb.id}` is now managed by the bot and owned by <@{nb.owner}>.", response_type="ephemeral"
            )
    except (UserError, WorkbenchError) as error:
        refusal = error if isinstance(error, UserError) else UserError(str(error))
        text, blocks = error_reply(refusal)
        if acked:  # the work ran after the acknowledgement: answer through the response URL
            respond(text=text, blocks=blocks, response_type="ephemeral", replace_original=False)
        else:
            ack(text=text, blocks=blocks)


def _one_name(verb: str, words: list[str]) -> str:
    if len(words) != 1:
        raise UserError(f"Usage: `/notebook {verb} NAME` (`/notebook list` shows your notebooks).")
    return words[0]


def show_list(services: Services, respond: Respond, user: str, everyone: bool) -> None:
    try:
        unmanaged = services.notebooks.sync(fresher_than=10)  # fresh, but not a list call per keystroke
    except WorkbenchError as exc:
        log.warning("listing without a fresh look at the cloud: %s", exc)
        unmanaged = []
    notebooks = services.notebooks.everyone() if everyone else services.notebooks.owned_by(user)
    text, blocks = notebook_list(
        notebooks, services.config.catalog, services.clock(), everyone=everyone, unmanaged=unmanaged
    )
    respond(text=text, blocks=blocks, response_type="ephemeral")


def _operate(
    services: Services,
    respond: Respond,
    user: str,
    name: str,
    action: str,
    channel: str | None,
    key: str,
    message: tuple[str, str] | None = None,
) -> None:
    try:
        op = services.notebooks.request(user, name, action, channel=channel, dedupe_key=key, message=message)
    except UserError as error:
        text, blocks = error_reply(error)
        respond(text=text, blocks=blocks, response_type="ephemeral", replace_original=False)
        return
    services.notebooks.advance(op["id"])


def register(app: App, services: Services) -> None:
    def button_operation(action_name: str, channel_from_body: bool):
        def handler(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
            ack()
            user = body["user"]["id"]
            channel = (body.get("container") or {}).get("channel_id") if channel_from_body else None
            key = dedupe_key(body)
            try:
                op = services.notebooks.request(
                    user, action["value"], action_name, channel=channel or user, dedupe_key=key
                )
            except UserError as error:
                tell(services, body, respond, f"⚠️ {error.message}")
                return
            if channel_from_body and body.get("response_url"):
                respond(delete_original=True)
            services.notebooks.advance(op["id"])

        return handler

    app.action("notebook_stop")(button_operation("stop", channel_from_body=False))
    app.action("notebook_start")(button_operation("start", channel_from_body=False))
    app.action("notebook_delete")(button_operation("delete", channel_from_body=False))
    app.action("notebook_delete_confirm")(button_operation("delete", channel_from_body=True))

    @app.action("notebook_delete_cancel")
    def cancel(ack: Ack, respond: Respond) -> None:
        ack()
        respond(delete_original=True)
