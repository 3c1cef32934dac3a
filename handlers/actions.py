"""Button clicks: launch offers, the launch form's live choices, and approvers' decisions."""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError

from bot.domain.errors import UserError
from bot.run.services import Services
from bot.ui.forms import (
    LAUNCH_CALLBACK,
    REVIEW_CALLBACK,
    LaunchForm,
    default_form,
    form_for_text,
    launch_modal,
    review_modal,
    view_meta,
    view_values,
)
from handlers.commands import start_launch
from handlers.replies import dedupe_key, tell

log = logging.getLogger(__name__)


def channel_of(body: dict[str, Any]) -> str:
    return (body.get("container") or {}).get("channel_id") or (body.get("channel") or {}).get("id") or ""


def refuse(services: Services, body: dict[str, Any], respond: Respond, error: UserError) -> None:
    tell(services, body, respond, f"⚠️ {error.message}")


def from_home(body: dict[str, Any]) -> bool:
    return (body.get("view") or {}).get("type") == "home"


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
            dedupe_key=dedupe_key(body),
        )

    @app.action("customize_launch")
    def customize(ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient) -> None:
        """The launch form, prefilled with what was typed (empty from the App Home)."""
        ack()
        form = form_for_text(services.launcher, action.get("value") or "")
        client.views_open(trigger_id=body["trigger_id"], view=launch_modal(services.launcher, form, channel_of(body)))

    @app.action("open_notebook")
    def open_notebook(ack: Ack) -> None:
        ack()  # a link button: Slack opens the URL; the click still has to be acknowledged

    @app.action("value")
    def form_changed(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        """A live input changed in a form: rebuild the choices and the price (views.update)."""
        ack()
        view = body.get("view")
        if not isinstance(view, dict):
            return
        meta = view_meta(view)
        launcher = services.launcher
        if view.get("callback_id") == LAUNCH_CALLBACK:
            defaults = LaunchForm.from_meta(meta.get("form"), default_form(launcher))
            channel = meta.get("channel") if isinstance(meta.get("channel"), str) else ""
            new = launch_modal(launcher, LaunchForm.from_view(view, defaults), channel)
        elif view.get("callback_id") == REVIEW_CALLBACK:
            launch_id = meta.get("launch")
            launch = launcher.get(launch_id) if isinstance(launch_id, str) and launch_id else None
            if launch is None:
                return
            form = LaunchForm.from_view(view, LaunchForm.from_spec(launch.notebook_spec))
            new = review_modal(launcher, launch, form, deny=view_values(view).get("decision") == "deny")
        else:
            return
        try:
            client.views_update(view_id=view["id"], hash=view["hash"], view=new)
        except SlackApiError as exc:
            if exc.response.get("error") != "hash_conflict":
                raise
            log.info("the form changed again meanwhile; the newer change redraws it")

    @app.action("approve_launch")
    def approve(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond) -> None:
        ack()
        try:
            services.approvals.decide(action["value"], body["user"]["id"], approve=True)
        except UserError as error:
            refuse(services, body, respond, error)
        if from_home(body):
            services.publish_homes({body["user"]["id"]})

    @app.action("deny_launch")
    @app.action("review_launch")
    def review(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient) -> None:
        """Deny needs a reason and Review may lower the spec: both open the review form."""
        ack()
        launch = services.launcher.get(action["value"])
        try:
            if launch is None:
                raise UserError("That launch request no longer exists.")
            services.approvals.check_can_decide(launch, body["user"]["id"])
        except UserError as error:
            refuse(services, body, respond, error)
            return
        view = review_modal(services.launcher, launch, deny=action["action_id"] == "deny_launch")
        client.views_open(trigger_id=body["trigger_id"], view=view)
