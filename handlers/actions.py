"""Button clicks and menu choices. Every one-click offer acts at most once: its key is the offer
(the message or Home view it was shown in), so a second click, by anyone, finds what the first did.

The forms are imported by the listeners that draw them, not here: registering these listeners is
part of every cold start, and a click on a form's button comes later than the first command."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from slack_sdk.errors import SlackApiError

from bot.domain.errors import UserError
from bot.ui.blocks import LAUNCH_CALLBACK, REVIEW_CALLBACK, error_reply, section
from handlers.replies import channel_of, from_home, message_of, offer_key, offered_key, tell

if TYPE_CHECKING:
    from slack_bolt import Ack, Respond
    from slack_sdk import WebClient

    from bot.domain.launches import Launch
    from bot.run.services import Services

log = logging.getLogger(__name__)


# --- launching ------------------------------------------------------------------------------------
def launch_offer(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, services: Services):
    """'Launch with L4 instead': the corrected command, launched once, as the person who clicked."""
    ack()
    offer, _, text = (action.get("value") or "").partition(" ")
    try:
        launch, created = services.launcher.request(
            requester=body["user"]["id"], channel=channel_of(body), request=text, dedupe_key=offered_key(offer)
        )
    except UserError as error:
        reply, blocks = error_reply(error)
        respond(text=reply, blocks=blocks, response_type="ephemeral", replace_original=False)
        return
    if not created:
        respond(text=already_used(services, launch), response_type="ephemeral", replace_original=False)
        return
    respond(text=f"✅ Launching `{launch.instance_id}` as offered (`{text}`).", replace_original=True)
    services.kick_launch(launch.id)


def launch_elsewhere(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, services: Services):
    """A stockout's "Launch in ZONE": the failed launch again in that zone, once, for its requester
    (who, or an admin, may click it); the failure message then says where it went."""
    ack()
    user = body["user"]["id"]
    try:
        failed, launch, created = services.launcher.relaunch_elsewhere(user, action.get("value"))
    except UserError as error:
        tell(services, body, respond, f"⚠️ {error.message}")
        return
    if not created:
        tell(services, body, respond, already_used(services, launch))
        return
    if body.get("response_url"):
        text, blocks = services.launcher.messages.relaunched(failed, launch, user)
        respond(text=text, blocks=blocks, replace_original=True)
    services.kick_launch(launch.id)


def already_used(services: Services, launch: Launch) -> str:
    """What a second click on a one-click launch offer is told: what the first one started."""
    return (
        f"This offer was already used: <@{launch.requester}> launched `{launch.instance_id}` "
        f"({services.launcher.messages.state_words(launch)}). Nothing new was started."
    )


def customize_launch(ack: Ack, body: dict[str, Any], action: dict[str, Any], client: WebClient, services: Services):
    """The launch form, prefilled with what was typed (empty from the App Home)."""
    ack()
    from bot.ui.forms import form_for_text, launch_modal

    form = form_for_text(services.launcher, action.get("value") or "")
    client.views_open(trigger_id=body["trigger_id"], view=launch_modal(services.launcher, form, channel_of(body)))


def open_notebook(ack: Ack) -> None:
    ack()  # a link button: Slack opens the URL; the click still has to be acknowledged


def form_changed(ack: Ack, body: dict[str, Any], client: WebClient, services: Services) -> None:
    """A live input changed in a form: rebuild the choices and the price (views.update)."""
    ack()
    view = body.get("view")
    if not isinstance(view, dict):
        return
    from bot.ui.forms import LaunchForm, default_form, launch_modal, review_modal, view_meta, view_values

    meta = view_meta(view)
    launcher = services.launcher
    if view.get("callback_id") == LAUNCH_CALLBACK:
        defaults = LaunchForm.from_meta(meta.get("form"), default_form(launcher))
        channel = meta.get("channel") if isinstance(meta.get("channel"), str) else ""
        new = launch_modal(launcher, LaunchForm.from_view(view, defaults), channel)
    elif view.get("callback_id") == REVIEW_CALLBACK:
        launch = launcher.find_by_id(meta.get("launch"))
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


def cancel_launch(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, services: Services):
    """Cancel on a launch message or in the App Home: the requester (or an admin) withdraws it."""
    ack()
    user = body["user"]["id"]
    launch = services.launcher.find_by_id(action.get("value"))
    try:
        if launch is None:
            raise UserError("That launch no longer exists.")
        services.launcher.cancel(user, launch)
    except UserError as error:
        tell(services, body, respond, f"⚠️ {error.message}")
        return
    services.kick_launch(launch.id)
    if from_home(body):
        services.publish_homes({user})


# --- approvers --------------------------------------------------------------------------------------
def approve_launch(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, services: Services):
    ack()
    user, launch = body["user"]["id"], services.launcher.find_by_id(action.get("value"))
    recorded = False
    try:
        if launch is None:
            raise UserError("That launch request no longer exists.")
        services.approvals.decide(launch.id, user, approve=True)
        recorded = True
    except UserError as error:
        tell(services, body, respond, f"⚠️ {error.message}")
    # the one who decided applies it; a late click only expires a request whose time ran out
    if launch is not None and (recorded or services.approvals.expired(launch)):
        services.kick_launch(launch.id)
    if from_home(body):
        services.publish_homes({user})


def review_launch(
    ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, client: WebClient, services: Services
) -> None:
    """Deny needs a reason and Review may lower the spec: both open the review form."""
    ack()
    launch = services.launcher.find_by_id(action.get("value"))
    try:
        if launch is None:
            raise UserError("That launch request no longer exists.")
        services.approvals.check_can_decide(launch, body["user"]["id"])
    except UserError as error:
        tell(services, body, respond, f"⚠️ {error.message}")
        return
    from bot.ui.forms import review_modal

    view = review_modal(services.launcher, launch, deny=action["action_id"] == "deny_launch")
    client.views_open(trigger_id=body["trigger_id"], view=view)


# --- stop, start, delete: from the App Home, a delete confirmation, or a reminder -------------------
def operate(action_name: str, *, replace: bool = False, answers_reminder: bool = False):
    """A listener that records `action_name` on the notebook named by the button, once per offer.

    `replace`: the ephemeral message clicked (a delete confirmation) gives way to the outcome.
    `answers_reminder`: the reminder DM is updated with the outcome, and the owner has answered."""

    def listener(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, services: Services):
        ack()
        user = body["user"]["id"]
        key = offer_key(body, action)
        try:
            op, created = services.notebooks.request(
                user,
                action.get("value") or "",
                action_name,
                channel=None if answers_reminder else (channel_of(body) if replace else user),
                message=message_of(body) if answers_reminder else None,
                dedupe_key=key,
            )
        except UserError as error:
            tell(services, body, respond, f"⚠️ {error.message}")
            return
        if not created:
            from bot.domain.operations import describe

            tell(services, body, respond, f"ℹ️ Already asked from this message: {describe(op)}")
            return
        if replace and body.get("response_url"):
            respond(delete_original=True)
        if answers_reminder:
            services.lifecycle.answered(op["notebook"])
        services.kick_operation(op["id"])

    listener.__name__ = f"{action_name}_notebook"
    return listener


def delete_cancelled(ack: Ack, respond: Respond) -> None:
    ack()
    respond(delete_original=True)


def lifecycle_snooze(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, services: Services):
    ack()
    notebook, _, seconds = ((action.get("selected_option") or {}).get("value") or "").partition("|")
    try:
        if not (seconds.isascii() and seconds.isdigit() and len(seconds) <= 9):
            raise UserError("That is not one of the offered times; nothing was changed.")
        services.lifecycle.snooze(body["user"]["id"], notebook, int(seconds), message_of(body))
    except (UserError, ValueError) as error:
        tell(services, body, respond, f"⚠️ {error}")


def extend_idle_timeout(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, services: Services):
    """A heads-up's "Extend idle timeout": owner or admin, once per offer; a worker makes the change."""
    ack()
    value = action.get("value")
    try:
        record, created = services.idle_extensions.request(
            body["user"]["id"],
            value if isinstance(value, str) else "",
            dedupe_key=offer_key(body, action),
            message=message_of(body),
        )
    except UserError as error:
        tell(services, body, respond, f"⚠️ {error.message}")
        return
    if not created:
        from bot.domain.idle_extensions import describe

        tell(services, body, respond, f"ℹ️ Already asked from this message: {describe(record)}")
        return
    services.kick_idle_extension(record["id"])


def offhours_keep(ack: Ack, body: dict[str, Any], action: dict[str, Any], respond: Respond, services: Services):
    """ "Keep it tonight" on an off-hours heads-up: once, by the owner or an admin; the heads-up then
    says what was done, and a later click only repeats it."""
    ack()
    value = action.get("value")
    name, _, point = (value if isinstance(value, str) else "").partition("|")
    offhours = services.lifecycle.offhours
    try:
        if offhours is None or not (point.isascii() and point.isdigit() and len(point) <= 12):
            raise UserError("That is not a heads-up I sent; nothing was changed.")
        words, kept = offhours.keep_tonight(body["user"]["id"], name, float(point))
    except UserError as error:
        tell(services, body, respond, f"⚠️ {error.message}")
        return
    message = message_of(body)
    if kept and message:
        services.slack.update(message[0], message[1], words, [section(words)])
    else:
        tell(services, body, respond, f"ℹ️ {words}")


def register(app: Any) -> None:
    app.action("launch_offer")(launch_offer)
    app.action("launch_elsewhere")(launch_elsewhere)
    app.action("customize_launch")(customize_launch)
    app.action("open_notebook")(open_notebook)
    app.action("value")(form_changed)
    app.action("cancel_launch")(cancel_launch)
    app.action("approve_launch")(approve_launch)
    app.action("deny_launch")(review_launch)
    app.action("review_launch")(review_launch)
    app.action("notebook_stop")(operate("stop"))
    app.action("notebook_start")(operate("start"))
    app.action("notebook_delete")(operate("delete"))
    app.action("notebook_delete_confirm")(operate("delete", replace=True))
    app.action("notebook_delete_cancel")(delete_cancelled)
    app.action("lifecycle_stop")(operate("stop", answers_reminder=True))
    app.action("lifecycle_delete")(operate("delete", answers_reminder=True))
    app.action("lifecycle_snooze")(lifecycle_snooze)
    app.action("lifecycle_extend_idle")(extend_idle_timeout)
    app.action("offhours_keep")(offhours_keep)
