"""Block Kit for lists of notebooks, the catalog, and the App Home (pure functions)."""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from slack_sdk.models.views import View

from bot.domain.catalog import Catalog, natural_key
from bot.domain.errors import clip
from bot.domain.records import Notebook, NotebookState
from bot.ui.blocks import (
    VIEW_BLOCKS,
    Blocks,
    actions,
    button,
    confirmation,
    context,
    elapsed,
    header,
    packed,
    section,
)

if TYPE_CHECKING:
    from bot.adapters.workbench import InstanceInfo
    from bot.domain.launches import Launch

FALLBACK_TEXT = 3000  # the notification text of a long list: its blocks show all of it

STATE_WORDS = {
    NotebookState.PENDING_APPROVAL: "⏸ waiting for approval",
    NotebookState.QUEUED: "🕐 queued",
    NotebookState.CREATING: "⏳ creating",
    NotebookState.ACTIVE: "🟢 running",
    NotebookState.STOPPED: "⏹ stopped",
    NotebookState.STARTING: "▶️ starting",
    NotebookState.STOPPING: "⏹ stopping",
    NotebookState.PROVISIONING: "🕐 provisioning",
    NotebookState.GONE: "⚠️ deleted outside the bot",
}


STATE_OF_LAUNCH = {
    "REQUESTED": "🕐 being recorded",
    "PENDING_APPROVAL": "⏸ waiting for approval",
    "APPROVED": "🕐 queued",
    "CREATING": "⏳ creating",
}


def hours(seconds: float) -> str:
    if seconds < 3600:
        return elapsed(seconds)
    return f"{seconds / 3600:.1f} h"


def notebook_line(nb: Notebook, catalog: Catalog, now: float, *, owner: bool = False) -> str:
    state = STATE_WORDS.get(nb.state, nb.state.lower())
    link = f" · <{nb.url}|Open JupyterLab>" if nb.url and nb.state == "ACTIVE" else ""
    who = f" · <@{nb.owner}>" if owner else ""
    gpu = nb.spec.gpu_label(catalog) if nb.spec.environment != "unknown" else nb.spec.machine
    schedule = f" · {nb.spec.schedule_words}" if nb.spec.schedule_words else ""  # its own off-hours
    return (
        f"*{nb.id}*{who} · {state} · {nb.spec.environment} · {gpu}{schedule} · up {hours(nb.uptime(now))} · "
        f"≈${nb.cost_so_far(now):.2f} so far{link}"
    )


def notebook_list(
    notebooks: list[Notebook], catalog: Catalog, now: float, *, everyone: bool, unmanaged: list[InstanceInfo]
) -> tuple[str, Blocks]:
    """Every notebook, in as many sections as it takes (≤ 50 blocks in all: past that, a count)."""
    title = "All notebooks" if everyone else "Your notebooks"
    if not notebooks:
        text = "No notebooks yet. `/notebook new` launches one." if not everyone else "No managed notebooks."
        blocks: Blocks = [section(f"*{title}*\n{text}")]
    else:
        lines = [f"• {notebook_line(n, catalog, now, owner=everyone)}" for n in notebooks]
        text = f"*{title}* ({len(notebooks)})\n" + "\n".join(lines)
        blocks = packed(lines, title=f"*{title}* ({len(notebooks)})", max_blocks=30)
    if everyone and unmanaged:
        lines = [f"• `{i.instance_id}` ({i.zone}, {i.state.lower()})" for i in unmanaged]
        text += "\n*Not managed by the bot*\n" + "\n".join(lines)
        title = "*Not managed by the bot* — `/notebook adopt NAME @user` hands one to someone"
        blocks += packed(lines, title=title, max_blocks=15)
    blocks.append(context("Stop, start or delete: `/notebook stop NAME` · `start NAME` · `delete NAME`"))
    return clip(text, FALLBACK_TEXT), blocks


def catalog_listing(catalog: Catalog, today: date) -> tuple[str, Blocks]:
    envs = "\n".join(f"• `{k}`{also(e.aliases)} — {e.description}" for k, e in catalog.environments.items())
    gpu_lines = []
    for key, gpu in catalog.gpus.items():
        if gpu.retired(today):
            note = f" — *retired {gpu.retires:%Y-%m-%d}*, use `{gpu.replacement}`"
        elif gpu.retires:
            note = f" — retires {gpu.retires:%Y-%m-%d}"
        else:
            note = ""
        if gpu.attach_to:
            where = f"on {gpu.attach_to} machines, +${gpu.usd_per_hour:.2f}/h each"
        else:
            machines = sorted({m for c in gpu.counts for m in catalog.machines_with(key, c)}, key=natural_key)
            where = f"built into {', '.join(machines[:3])}{'…' if len(machines) > 3 else ''}"
        counts = "/".join(map(str, gpu.counts))
        gpu_lines.append(f"• `{key}`{also(gpu.aliases)} {gpu.name} ×{counts} ({where}){note}")
    machine_lines = [
        f"• `{k}` {m.vcpus} vCPU {m.memory_gb:g} GB ${m.usd_per_hour:.2f}/h"
        for k, m in sorted(catalog.machines.items(), key=lambda item: natural_key(item[0]))
    ]
    text = f"*Environments*\n{envs}\n*GPUs*\n" + "\n".join(gpu_lines)
    return text, [
        *packed(envs.split("\n"), title="*Environments*", max_blocks=15),
        *packed(gpu_lines, title="*GPUs*", max_blocks=15),
        *packed(machine_lines, title="*Machine types*", max_blocks=15),
        context(
            "Prices are approximate on-demand list prices (us-central1), for the whole machine per hour. "
            "Names in parentheses work as well as the name they follow."
        ),
    ]


def also(aliases: list[str]) -> str:
    """' (also `a`, `b`)': the other names that pick the same entry."""
    return f" (also {', '.join(f'`{a}`' for a in aliases)})" if aliases else ""


def delete_confirmation(nb: Notebook) -> tuple[str, Blocks]:
    text = (
        f"⚠️ Delete `{nb.id}`? Its boot and data disks are deleted with it, and everything saved on the "
        "notebook (including /home/jupyter) is gone for good. Files in mounted GCS buckets stay."
    )
    return text, [
        section(text),
        actions(
            button(f"Delete {nb.id}", "notebook_delete_confirm", nb.id, style="danger"),
            button("Cancel", "notebook_delete_cancel", nb.id),
        ),
    ]


def confirm_dialog(nb_id: str) -> dict[str, Any]:
    return confirmation(
        "Delete notebook?",
        f"`{nb_id}` and its disks will be deleted, with everything on them.",
        "Delete",
        "Keep it",
        style="danger",
    )


def notebook_buttons(nb: Notebook) -> list[dict[str, Any]]:
    buttons = []
    if nb.state == "ACTIVE":
        if nb.url:
            buttons.append(button("Open", "open_notebook", nb.id, url=nb.url, style="primary"))
        buttons.append(button("Stop", "notebook_stop", nb.id))
    if nb.state == "STOPPED":
        buttons.append(button("Start", "notebook_start", nb.id))
    if not nb.launching:  # a launch under way is cancelled from "Your launch requests"
        buttons.append(button("Delete", "notebook_delete", nb.id, style="danger", confirm=confirm_dialog(nb.id)))
    return buttons


def home_view(
    user: str,
    notebooks: list[Notebook],
    pending: list[Launch],
    to_decide: list[Launch],
    catalog: Catalog,
    now: float,
) -> dict[str, Any]:
    blocks: Blocks = [
        header("Your notebooks"),
        actions(button("New notebook", "customize_launch", "", style="primary")),
    ]
    notebooks = [nb for nb in notebooks if not nb.launching]
    if not notebooks and not pending:
        blocks.append(section("You have no notebooks. Press *New notebook* or type `/notebook new` anywhere."))
    for nb in notebooks:
        blocks.append(section(notebook_line(nb, catalog, now)))
        buttons = notebook_buttons(nb)
        if buttons:
            blocks.append(actions(*buttons, block_id=f"nb:{nb.id}"))
    if pending:
        blocks.append(header("Your launch requests"))
        for launch in pending:
            state = STATE_OF_LAUNCH.get(launch.state, launch.state.lower())
            blocks.append(
                section(
                    f"`{launch.instance_id}` · {state}"
                    + (f" · needs approval: {launch.approval_reason}" if launch.approval_reason else "")
                )
            )
            if not launch.cancel:
                blocks.append(actions(button("Cancel", "cancel_launch", launch.id), block_id=f"launch:{launch.id}"))
    if to_decide:
        blocks.append(header("Waiting for your decision"))
        for launch in to_decide:
            spec_line = f"<@{launch.requester}> · `{launch.instance_id}` · {launch.approval_reason}"
            blocks.append(section(spec_line))
            blocks.append(
                actions(
                    button("Approve", "approve_launch", launch.id, style="primary"),
                    button("Deny", "deny_launch", launch.id, style="danger"),
                    button("Review", "review_launch", launch.id),
                    block_id=f"approval:{launch.id}",
                )
            )
    if len(blocks) > VIEW_BLOCKS:  # a Home view takes at most 100 blocks: say what is left out
        blocks = [*blocks[: VIEW_BLOCKS - 1], context("…and more: `/notebook list` shows every notebook of yours.")]
    return View(type="home", blocks=blocks).to_dict()
