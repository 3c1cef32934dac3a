"""Button clicks: launch offers, the launch form's live choices, and approvers' decisions."""

from __future__ import annotations

import json
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from bot.errors import UserError
from bot.forms import LAUNCH_CALLBACK, REVIEW_CALLBACK, LaunchForm, form_for_text, launch_modal, review_modal
from bot.services import Services
from handlers.commands import start_launch


def channel_of(body: dict[str, Any]) -> str:
    return (body.get("container") or {}).get("channel_id") or (body.get("channel") or {}).get("id") or ""


def team_of(body: dict[str, Any]) -> str:
    return (body.get("team") or {}).get("id") or body["user"].get("team_id") or ""


def refuse(respond: Respond, error: UserError) -> None:
    respond(text=f"⚠️ {error.message}", response_type="ephemeral", replace_original=False)


def register(app: App, services: Services) -> None:
    @app.action("launch_offer")
    def launch_offer(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        """'Launch with L4 instead': the corrected command, launched as the person who clicked."""
        ack()
        start_launch(
            services,
            respond,
            user=body["user"]["id"],
            channel=channel_of(body),
            text=action["value"],
            dedupe_key=f"{team_of(body)}:{body['trigger_id']}",
        )

    @app.action("customize_launch")
    def customize(ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        ack()
        form = form_for_text(services.launcher, action.get("value") or "")
        client.views_open(trigger_id=body["trigger_id"], view=launch_modal(services.launcher, form, channel_of(body)))

    @app.action("open_notebook")
    def open_notebook(ack: Ack) -> None:
        ack()  # a link button: Slack opens the URL; the click still has to be acknowledged

    @app.action("value")
    def form_changed(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        """A live select changed in a form: rebuild the choices and the price (views.update)."""
        ack()
        view = body["view"]
        values = view["state"]["values"]
        meta = json.loads(view.get("private_metadata") or "{}")
        launcher = services.launcher
        if view["callback_id"] == LAUNCH_CALLBACK:
            new = launch_modal(launcher, LaunchForm.from_state(values, form_for_text(launcher, "")), meta["channel"])
        elif view["callback_id"] == REVIEW_CALLBACK:
            launch = launcher.get(meta["launch"])
            if launch is None:
                return
            form = LaunchForm.from_state(values, LaunchForm(**meta["form"]))
            decision = (values.get("decision") or {}).get("value", {}).get("selected_option") or {}
            new = review_modal(launcher, launch, form, deny=decision.get("value") == "deny")
        else:
            return
        client.views_update(view_id=view["id"], hash=view["hash"], view=new)

    @app.action("approve_launch")
    def approve(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        ack()
        try:
            services.approvals.decide(action["value"], body["user"]["id"], approve=True)
        except UserError as error:
            refuse(respond, error)

    @app.action("deny_launch")
    @app.action("review_launch")
    def review(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient) -> None:
        """Deny needs a reason and Review may lower the spec: both open the review form."""
        ack()
        launch = services.launcher.get(action["value"])
        try:
            if launch is None:
                raise UserError("That launch request no longer exists.")
            services.approvals.check_approver(launch, body["user"]["id"])
        except UserError as error:
            refuse(respond, error)
            return
        view = review_modal(services.launcher, launch, deny=action["action_id"] == "deny_launch")
        client.views_open(trigger_id=body["trigger_id"], view=view)
