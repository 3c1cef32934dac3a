"""Form submissions: the launch modal and the approver's review modal. Problems show on their field.

The forms are imported by the listeners, not here: registering them is part of every cold start."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.domain.errors import UserError
from bot.ui.blocks import LAUNCH_CALLBACK, REVIEW_CALLBACK, notices_reply
from handlers.replies import team_of

if TYPE_CHECKING:
    from slack_bolt import Ack

    from bot.run.services import Services

log = logging.getLogger(__name__)


def launch_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any], services: Services) -> None:
    """The same path as the slash command, from the form's typed request (not through command text)."""
    from bot.ui.forms import LaunchForm, default_form, errors_for, view_meta

    launcher = services.launcher
    user = body["user"]["id"]
    meta = view_meta(view)
    form = LaunchForm.from_view(view, LaunchForm.from_meta(meta.get("form"), default_form(launcher)))
    channel = meta.get("channel") if isinstance(meta.get("channel"), str) else None
    channel = channel or user  # opened from the App Home: the launch is followed in a DM
    try:
        launch, created = launcher.request(
            requester=user,
            channel=channel,
            request=form.request(),
            dedupe_key=f"{team_of(body)}:{view['id']}",
        )
    except UserError as error:
        ack(response_action="errors", errors=errors_for(error, view))
        return
    ack()
    if not created:
        return
    services.kick_launch(launch.id)
    notices = notices_reply(launch.notebook_spec)
    if notices:  # a form's acknowledgement can't carry a message: told from a kick, not this request
        services.kicks.submit(f"notices:{launch.id}", lambda: services.slack.ephemeral(channel, user, notices))


def review_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any], services: Services) -> None:
    """The decision is recorded before the acknowledgement (so problems show on the form); the
    launch's next step, taken right after, applies it."""
    from bot.ui.forms import LaunchForm, errors_for, lowered_form, view_meta, view_values

    values = view_values(view)
    launch = services.launcher.find_by_id(view_meta(view).get("launch"))
    try:
        if launch is None:
            raise UserError("That launch request no longer exists.")
        form = LaunchForm.from_view(view, LaunchForm.from_spec(launch.notebook_spec))
        decision = services.approvals.decide_lowered(
            launch.id,
            body["user"]["id"],
            approve=values.get("decision") != "deny",
            reason=values.get("reason"),
            request=lowered_form(launch, form).request(),
        )
    except UserError as error:
        ack(response_action="errors", errors=errors_for(error, view))
        return
    ack()
    services.kick_launch(decision.launch.id)


def form_closed(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
    """Cancel: nothing was asked for and nothing is decided; a request stays open for others."""
    ack()
    log.info("form closed unsubmitted", extra={"form": view.get("callback_id"), "user": body["user"]["id"]})


def register(app: Any) -> None:
    app.view(LAUNCH_CALLBACK)(launch_submitted)
    app.view(REVIEW_CALLBACK)(review_submitted)
    app.view_closed(LAUNCH_CALLBACK)(form_closed)
    app.view_closed(REVIEW_CALLBACK)(form_closed)
