"""Form submissions: the launch modal and the approver's review modal."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App

from bot.domain.errors import UserError
from bot.run.services import Services
from bot.ui.blocks import notices_reply
from bot.ui.forms import (
    LAUNCH_CALLBACK,
    REVIEW_CALLBACK,
    LaunchForm,
    default_form,
    errors_for,
    view_meta,
    view_values,
)

log = logging.getLogger(__name__)


def register(app: App, services: Services) -> None:
    @app.view(LAUNCH_CALLBACK)
    def launch_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        """Same path as the slash command; problems are shown on the field at fault."""
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
                text=form.command(),
                dedupe_key=f"{body['team']['id']}:{view['id']}",
            )
        except UserError as error:
            ack(response_action="errors", errors=errors_for(error, view))
            return
        ack()
        if not created:
            return
        launcher.start(launch)
        notices = notices_reply(launch.notebook_spec)
        if notices:
            services.slack.ephemeral(channel, user, notices)

    @app.view(REVIEW_CALLBACK)
    def review_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        """The decision is recorded before the acknowledgement (so problems show on the form);
        Slack is updated and the launch started after it."""
        values = view_values(view)
        launch_id = view_meta(view).get("launch")
        launch = services.launcher.get(launch_id) if isinstance(launch_id, str) and launch_id else None
        try:
            if launch is None:
                raise UserError("That launch request no longer exists.")
            decision = services.approvals.decide_from_form(
                launch.id,
                body["user"]["id"],
                approve=values.get("decision") != "deny",
                reason=values.get("reason"),
                form=LaunchForm.from_view(view, LaunchForm.from_spec(launch.notebook_spec)),
                announce=False,
            )
        except UserError as error:
            ack(response_action="errors", errors=errors_for(error, view))
            return
        ack()
        services.approvals.announce(decision)

    def closed(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        """Cancel: nothing was asked for and nothing is decided; a request stays open for others."""
        ack()
        log.info("form closed unsubmitted", extra={"form": view.get("callback_id"), "user": body["user"]["id"]})

    app.view_closed(LAUNCH_CALLBACK)(closed)
    app.view_closed(REVIEW_CALLBACK)(closed)
