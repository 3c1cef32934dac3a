"""Form submissions: the launch modal and the approver's review modal."""

from __future__ import annotations

import json
from typing import Any

from slack_bolt import Ack, App

from bot.errors import UserError
from bot.forms import LAUNCH_CALLBACK, REVIEW_CALLBACK, LaunchForm, errors_for, form_for_text
from bot.services import Services


def register(app: App, services: Services) -> None:
    @app.view(LAUNCH_CALLBACK)
    def launch_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        """Same path as the slash command; problems are shown on the field at fault."""
        launcher = services.launcher
        form = LaunchForm.from_state(view["state"]["values"], form_for_text(launcher, ""))
        channel = json.loads(view.get("private_metadata") or "{}").get("channel", "")
        try:
            launch, created = launcher.request(
                requester=body["user"]["id"],
                channel=channel,
                text=form.command(),
                dedupe_key=f"{body['team']['id']}:{view['id']}",
            )
        except UserError as error:
            ack(response_action="errors", errors=errors_for(error))
            return
        ack()
        if created:
            launcher.start(launch)

    @app.view(REVIEW_CALLBACK)
    def review_submitted(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        values = view["state"]["values"]
        meta = json.loads(view.get("private_metadata") or "{}")
        decision = ((values.get("decision") or {}).get("value") or {}).get("selected_option") or {}
        reason = ((values.get("reason") or {}).get("value") or {}).get("value")
        form = LaunchForm.from_state(values, LaunchForm(**meta["form"]))
        try:
            services.approvals.decide_from_form(
                meta["launch"], body["user"]["id"], approve=decision.get("value") != "deny", reason=reason, form=form
            )
        except UserError as error:
            ack(response_action="errors", errors=errors_for(error))
            return
        ack()
