"""The launch modal and the approver's review modal: Block Kit views and reading them back.

A form's values are turned into the same command text that `/notebook new` takes, so a form
and a typed command follow one path through parsing, checking and launching.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from bot.blocks import Blocks, context, section
from bot.catalog import Catalog
from bot.errors import UserError
from bot.spec import NotebookSpec, format_duration

LAUNCH_CALLBACK = "launch_modal"
REVIEW_CALLBACK = "review_modal"
AUTO = "auto"
NO_GPU = "none"

# which form block shows an error about which part of a spec
FIELD_BLOCKS = {
    "environment": "environment",
    "gpu": "gpu",
    "machine": "machine",
    "disk": "disk",
    "boot-disk": "boot_disk",
    "disk-type": "disk",
    "name": "name",
    "idle": "idle",
    "bucket": "bucket",
    "zone": "environment",
    "reason": "reason",
}


@dataclass(frozen=True)
class LaunchForm:
    environment: str
    gpu: str = NO_GPU
    gpu_count: int = 1
    machine: str = AUTO
    disk: str = ""
    boot_disk: str = ""
    idle: str = ""
    name: str = ""
    bucket: str = ""

    def command(self) -> str:
        parts = [self.environment]
        if self.gpu != NO_GPU:
            parts.append(f"gpu={self.gpu}x{self.gpu_count}")
        if self.machine != AUTO:
            parts.append(f"machine={self.machine}")
        for key, value in (
            ("disk", self.disk),
            ("boot-disk", self.boot_disk),
            ("idle", self.idle),
            ("name", self.name),
        ):
            if value.strip():
                parts.append(f"{key}={value.strip()}")
        parts.extend(f"bucket={b}" for b in self.bucket.replace(",", " ").split())
        return " ".join(parts)

    @classmethod
    def from_state(cls, values: dict[str, dict[str, Any]], defaults: LaunchForm) -> LaunchForm:
        """Read a view's state.values (untouched fields are null) over the defaults."""

        def read(block: str, fallback: str) -> str:
            element = (values.get(block) or {}).get("value") or {}
            if element.get("type") == "static_select":
                option = element.get("selected_option")
                return option["value"] if option else fallback
            value = element.get("value")
            return fallback if value is None else value

        count = read("gpu_count", str(defaults.gpu_count))
        return cls(
            environment=read("environment", defaults.environment),
            gpu=read("gpu", defaults.gpu),
            gpu_count=int(count) if count.isdigit() else 1,
            machine=read("machine", defaults.machine),
            disk=read("disk", defaults.disk),
            boot_disk=read("boot_disk", defaults.boot_disk),
            idle=read("idle", defaults.idle),
            name=read("name", defaults.name),
            bucket=read("bucket", defaults.bucket),
        )

    @classmethod
    def from_spec(cls, spec: NotebookSpec) -> LaunchForm:
        return cls(
            environment=spec.environment,
            gpu=spec.gpu or NO_GPU,
            gpu_count=spec.gpu_count or 1,
            machine=spec.machine,
            disk=str(spec.disk_gb),
            boot_disk=str(spec.boot_disk_gb),
            idle=format_duration(spec.idle_seconds),
            name=spec.name or "",
            bucket=" ".join(spec.buckets),
        )


def errors_for(error: UserError) -> dict[str, str]:
    """view_submission errors: the message on the block of the field at fault."""
    return {FIELD_BLOCKS.get(error.field or "", "environment"): error.message[:2000]}


# --- elements ----------------------------------------------------------------------------------------
def _option(value: str, label: str) -> dict[str, Any]:
    return {"text": {"type": "plain_text", "text": label[:75]}, "value": value}


def _select(block_id: str, label: str, options: list[tuple[str, str]], selected: str, *, live: bool = False):
    chosen = next((o for o in options if o[0] == selected), options[0])
    return {
        "type": "input",
        "block_id": block_id,
        "dispatch_action": live,  # a change is sent at once, so prices and choices can follow it
        "label": {"type": "plain_text", "text": label},
        "element": {
            "type": "static_select",
            "action_id": "value",
            "options": [_option(v, t) for v, t in options],
            "initial_option": _option(*chosen),
        },
    }


def _text(block_id: str, label: str, value: str, *, hint: str = "", optional: bool = False, multiline=False):
    element: dict[str, Any] = {"type": "plain_text_input", "action_id": "value", "multiline": multiline}
    if value:
        element["initial_value"] = value
    block: dict[str, Any] = {
        "type": "input",
        "block_id": block_id,
        "optional": optional,
        "label": {"type": "plain_text", "text": label},
        "element": element,
    }
    if hint:
        block["hint"] = {"type": "plain_text", "text": hint}
    return block


def choice_blocks(catalog: Catalog, form: LaunchForm, today_retired: set[str], *, environments: bool = True):
    gpus = [(NO_GPU, "No GPU")] + [
        (k, f"{g.name}" + (f" (+${g.usd_per_hour:.2f}/h each)" if g.usd_per_hour else ""))
        for k, g in catalog.gpus.items()
        if k not in today_retired
    ]
    gpu = form.gpu if form.gpu in dict(gpus) else NO_GPU
    counts = catalog.gpus[gpu].counts if gpu != NO_GPU else [1]
    count = form.gpu_count if form.gpu_count in counts else counts[0]
    machines = catalog.machines_for(None if gpu == NO_GPU else gpu, count if gpu != NO_GPU else 0)
    machine_options = [(AUTO, "Pick for me")] + [
        (
            m,
            f"{m} · {catalog.machines[m].vcpus} vCPU · {catalog.machines[m].memory_gb:g} GB · "
            f"${catalog.machines[m].usd_per_hour:.2f}/h",
        )
        for m in machines
    ]
    blocks: Blocks = []
    if environments:
        envs = [(k, f"{k} — {e.description}") for k, e in catalog.environments.items()]
        blocks.append(_select("environment", "Environment", envs, form.environment))
    blocks += [
        _select("gpu", "GPU", gpus, gpu, live=True),
        _select("gpu_count", "Number of GPUs", [(str(c), str(c)) for c in counts], str(count), live=True),
        _select("machine", "Machine type", machine_options, form.machine, live=True),
    ]
    return blocks


def price_line(spec: NotebookSpec | None, problem: str | None) -> dict[str, Any]:
    if spec is None:
        return {**context(f"⚠️ {problem}"), "block_id": "price"}
    text = f"Estimated *≈${spec.usd_per_hour:.2f}/h* (≈${spec.usd_per_hour * 24:.2f}/day while running)"
    return {**context(text), "block_id": "price"}


def launch_view(
    catalog: Catalog, form: LaunchForm, spec: NotebookSpec | None, problem: str | None, channel: str, retired: set[str]
) -> dict[str, Any]:
    blocks = [
        *choice_blocks(catalog, form, retired),
        _text("disk", "Data disk (GB)", form.disk),
        _text("boot_disk", "Boot disk (GB)", form.boot_disk),
        _text("idle", "Stop when idle for", form.idle, hint="e.g. 90m or 3h"),
        _text("name", "Name", form.name, optional=True, hint="lowercase letters, digits and hyphens"),
        _text(
            "bucket", "GCS buckets to mount", form.bucket, optional=True, hint="bucket or bucket/dir, several allowed"
        ),
        price_line(spec, problem),
    ]
    return {
        "type": "modal",
        "callback_id": LAUNCH_CALLBACK,
        "title": {"type": "plain_text", "text": "New notebook"},
        "submit": {"type": "plain_text", "text": "Launch"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": json.dumps({"channel": channel}),
        "blocks": blocks,
    }


def review_view(
    catalog: Catalog,
    launch_id: str,
    summary: str,
    form: LaunchForm,
    spec: NotebookSpec | None,
    problem: str | None,
    retired: set[str],
    deny: bool = False,
) -> dict[str, Any]:
    decision = _select(
        "decision", "Decision", [("approve", "Approve"), ("deny", "Deny")], "deny" if deny else "approve"
    )
    blocks = [
        section(f"*Requested:* {summary}"),
        decision,
        *choice_blocks(catalog, form, retired, environments=False),
        price_line(spec, problem),
        _text("reason", "Reason (required to deny)", "", optional=True, multiline=True),
    ]
    return {
        "type": "modal",
        "callback_id": REVIEW_CALLBACK,
        "title": {"type": "plain_text", "text": "Review launch"},
        "submit": {"type": "plain_text", "text": "Decide"},
        "close": {"type": "plain_text", "text": "Cancel"},
        "private_metadata": json.dumps({"launch": launch_id, "form": form.__dict__}),
        "blocks": blocks,
    }


def retired_gpus(catalog: Catalog, today: Any) -> set[str]:
    return {k for k, g in catalog.gpus.items() if g.retired(today)}


def evaluate(check: Any, text: str) -> tuple[NotebookSpec | None, str | None]:
    """(spec, None) when `text` is a valid launch, else (None, what is wrong): for live prices."""
    try:
        return check(text), None
    except UserError as error:
        return None, error.message


def default_form(launcher: Any) -> LaunchForm:
    catalog: Catalog = launcher.catalog
    return LaunchForm(
        environment=catalog.defaults.environment,
        disk=str(catalog.limits.data_disk_gb.default),
        boot_disk=str(catalog.limits.boot_disk_gb.default),
        idle=format_duration(launcher.bounds.idle_default),
    )


def form_for_text(launcher: Any, text: str) -> LaunchForm:
    """Prefill the modal from a typed command when it parses; the defaults otherwise."""
    try:
        return LaunchForm.from_spec(launcher.check(text))
    except UserError:
        return default_form(launcher)


def launch_modal(launcher: Any, form: LaunchForm, channel: str) -> dict[str, Any]:
    spec, problem = evaluate(launcher.check, form.command())
    retired = retired_gpus(launcher.catalog, launcher.today())
    return launch_view(launcher.catalog, form, spec, problem, channel, retired)


def review_modal(launcher: Any, launch: Any, form: LaunchForm | None = None, *, deny: bool = False) -> dict[str, Any]:
    requested = launch.notebook_spec
    form = form or LaunchForm.from_spec(requested)
    lowered = LaunchForm(
        **{
            **LaunchForm.from_spec(requested).__dict__,
            "gpu": form.gpu,
            "gpu_count": form.gpu_count,
            "machine": form.machine,
        }
    )
    spec, problem = evaluate(launcher.check, lowered.command())
    summary = f"<@{launch.requester}>: {requested.summary(launcher.catalog)}"
    retired = retired_gpus(launcher.catalog, launcher.today())
    return review_view(launcher.catalog, launch.id, summary, form, spec, problem, retired, deny=deny)
