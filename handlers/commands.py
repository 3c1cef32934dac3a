"""`/notebook …`: parse the verb, do the request's one recorded step, answer the caller.

Each verb is a function of its own; the work a verb records (a launch, an operation) is taken on
after the acknowledgement (`services.kick_…`), never before it. What only some verbs use (the forms,
the listings, and through `services` the domain and the config) is imported by those verbs, so a
fresh process answers `/notebook help` without loading any of it.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.domain import verbs
from bot.domain.errors import UserError
from bot.ui.blocks import error_reply, help_reply, launch_ack
from handlers.replies import dedupe_key

if TYPE_CHECKING:
    from slack_bolt import Ack, Respond
    from slack_sdk import WebClient

    from bot.domain.verbs import Command
    from bot.run.services import Services

log = logging.getLogger(__name__)


class Caller:
    """One slash command: who, where, and how to answer (ack once, then respond)."""

    def __init__(self, ack: Ack, respond: Respond, client: WebClient, command: dict[str, Any], services: Services):
        self._ack, self.respond, self.client, self.services = ack, respond, client, services
        self.user, self.channel = command["user_id"], command["channel_id"]
        self.command = command
        self.acked = False

    def ack(self, text: str = "", blocks: list | None = None) -> None:
        self.acked = True
        if blocks:
            self._ack(text=text, blocks=blocks)
        else:
            self._ack(text=text)

    def answer(self, text: str, blocks: list | None = None) -> None:
        """Before the acknowledgement, in it; after, through the response URL (only to the caller)."""
        if not self.acked:
            self.ack(text, blocks)
        else:
            self.respond(text=text, blocks=blocks, response_type="ephemeral", replace_original=False)

    @property
    def key(self) -> str:
        return dedupe_key(self.command)


def notebook_command(ack: Ack, command: dict[str, Any], respond: Respond, client: WebClient, services: Services):
    caller = Caller(ack, respond, client, command, services)
    customize = None  # a refused launch offers the form, prefilled with what was typed
    try:
        parsed = verbs.parse_command(command.get("text"))
        customize = parsed.rest if parsed.verb == "new" else None
        VERBS[parsed.verb](caller, parsed)
    except Exception as error:
        refusal = refusal_for(error)
        if refusal is None:
            raise
        caller.answer(*error_reply(refusal, customize=customize, offer_id=offer_id(caller.key)))


def refusal_for(error: Exception) -> UserError | None:
    """What the caller is told about `error`: a UserError as it is, Workbench trouble in its own words;
    None for anything else (Bolt's error hook answers that). The Workbench module is imported here
    rather than at start-up: a WorkbenchError can only come from code that has imported it."""
    if isinstance(error, UserError):
        return error
    from bot.adapters.workbench import WorkbenchError

    return UserError(str(error)) if isinstance(error, WorkbenchError) else None


def offer_id(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def help_verb(caller: Caller, command: Command) -> None:
    caller.ack(*help_reply())


def new_verb(caller: Caller, command: Command) -> None:
    services = caller.services
    if not command.rest:  # the form; trigger_id is good for 3 s, so it opens before anything slow
        caller.ack()
        from bot.ui.forms import default_form, launch_modal

        view = launch_modal(services.launcher, default_form(services.launcher), caller.channel)
        caller.client.views_open(trigger_id=caller.command["trigger_id"], view=view)
        return
    launch, created = services.launcher.request(
        requester=caller.user, channel=caller.channel, request=command.rest, dedupe_key=caller.key
    )
    caller.ack(launch_ack(launch.instance_id, launch.notebook_spec))
    if created:
        services.kick_launch(launch.id)


def list_verb(caller: Caller, command: Command) -> None:
    """Answered at once from the store; a look at the cloud follows and answers again if it differs."""
    services = caller.services
    everyone = verbs.list_everyone(command)
    if everyone:
        services.rules.check_admin(
            caller.user, "Only admins can list everyone's notebooks; `/notebook list` shows yours."
        )
    shown = services.listing(caller.user, everyone=everyone)
    caller.ack(*services.render(shown))

    def updated(text: str, blocks: list) -> None:
        caller.respond(text=f"Updated: {text}", blocks=blocks, response_type="ephemeral", replace_original=False)

    services.refresh_listing(caller.user, shown, updated)


def envs_verb(caller: Caller, command: Command) -> None:
    from bot.ui.listing import catalog_listing

    caller.ack(*catalog_listing(caller.services.config.catalog, caller.services.launcher.today()))


def costs_verb(caller: Caller, command: Command) -> None:
    """This week's and this month's costs, answered in the acknowledgement from the store alone."""
    services = caller.services
    team = verbs.costs_for_team(command)
    if team:
        services.rules.check_admin(caller.user, "Only admins can see the team's costs; `/notebook costs` shows yours.")
    reports = services.cost_reports.this_week_and_month(None if team else caller.user)
    title = "Team notebook costs" if team else "Your notebook costs"
    from bot.ui.costs_view import costs_reply

    caller.ack(*costs_reply(reports, title=title, people=team))


def operation_verb(caller: Caller, command: Command) -> None:
    """stop / start NAME: recorded, acknowledged, then carried out."""
    services = caller.services
    op, _ = services.notebooks.request(
        caller.user, verbs.one_name(command), command.verb, channel=caller.channel, dedupe_key=caller.key
    )
    caller.ack()
    services.kick_operation(op["id"])


def delete_verb(caller: Caller, command: Command) -> None:
    from bot.ui.listing import delete_confirmation

    notebooks = caller.services.notebooks
    notebook = notebooks.find(caller.user, verbs.one_name(command))
    notebooks.authorize(caller.user, notebook, "delete")
    caller.ack(*delete_confirmation(notebook))


def cancel_verb(caller: Caller, command: Command) -> None:
    services = caller.services
    launch = services.launcher.find_waiting(caller.user, verbs.one_name(command))
    services.launcher.cancel(caller.user, launch)
    caller.ack(f"↩️ Cancelling the launch of `{launch.instance_id}`…")
    services.kick_launch(launch.id)


def transfer_verb(caller: Caller, command: Command) -> None:
    name, new_owner = verbs.transfer_args(command)
    caller.ack()
    notebook = caller.services.notebooks.hand_over(caller.user, name, new_owner)
    caller.answer(f"✅ `{notebook.id}` now belongs to <@{new_owner}>.")


def adopt_verb(caller: Caller, command: Command) -> None:
    name, owner, zone = verbs.adopt_args(command)
    caller.ack()
    notebook = caller.services.notebooks.adopt(caller.user, name, owner, zone)
    caller.answer(f"✅ `{notebook.id}` is now managed by the bot and owned by <@{notebook.owner}>.")


VERBS: dict[str, Callable[[Caller, Command], None]] = {
    "help": help_verb,
    "new": new_verb,
    "list": list_verb,
    "envs": envs_verb,
    "costs": costs_verb,
    "stop": operation_verb,
    "start": operation_verb,
    "delete": delete_verb,
    "cancel": cancel_verb,
    "transfer": transfer_verb,
    "adopt": adopt_verb,
}


def register(app: Any) -> None:
    app.command("/notebook")(notebook_command)
