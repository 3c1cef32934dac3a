"""The launch modal and the approver's review modal: Block Kit views and reading them back.

A form's values are turned into the same command text that `/notebook new` takes, so a form
and a typed command follow one path through parsing, checking and launching.

The GPU count and machine type selects carry the GPU choice in their block_id
(`machine:l4:1`). Slack keeps what a person entered in an input across views.update only
while its block_id stays the same, so when the GPU changes, the machine select is replaced
(and shows a choice that fits) instead of keeping a machine that no longer can run it.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from slack_sdk.models.blocks import InputBlock, Option, PlainTextInputElement, StaticSelectElement
from slack_sdk.models.blocks.basic_components import DispatchActionConfig
from slack_sdk.models.views import View

from bot.domain.errors import UserError, clip
from bot.domain.spec import EXAMPLES, NotebookRequest, NotebookSpec, format_duration, parse_option, parse_request
from bot.ui.blocks import LAUNCH_CALLBACK, REVIEW_CALLBACK, Blocks, context, fields_section, section, shorten

if TYPE_CHECKING:
    from bot.domain.catalog import Catalog

AUTO = "auto"
NO_GPU = "none"

# which form field shows an error about which part of a spec
FIELD_BLOCKS = {
    "environment": "environment",
    "gpu": "gpu",
    "gpu_count": "gpu_count",
    "machine": "machine",
    "disk": "disk",
    "boot-disk": "boot_disk",
    "disk-type": "disk_type",
    "name": "name",
    "idle": "idle",
    "bucket": "bucket",
    "schedule": "schedule",
    "zone": "environment",
    "reason": "reason",
    "decision": "decision",
}
FORM_FIELDS = (
    "environment",
    "gpu",
    "gpu_count",
    "machine",
    "disk",
    "boot_disk",
    "disk_type",
    "idle",
    "name",
    "bucket",
    "schedule",
)


@dataclass(frozen=True)
class LaunchForm:
    environment: str
    gpu: str = NO_GPU
    gpu_count: int = 1
    machine: str = AUTO
    disk: str = ""
    boot_disk: str = ""
    disk_type: str = ""
    idle: str = ""
    name: str = ""
    bucket: str = ""
    schedule: str = ""  # `schedule=`'s value; empty: the team's off-hours
    zone: str = ""  # not shown: kept from a typed command that gave one

    def request(self) -> NotebookRequest:
        """What the form asks for, field by field; a bad field raises UserError naming that field."""
        values: dict[str, Any] = {"environment": self.environment.lower()}
        if self.gpu != NO_GPU:
            values.update(parse_option("gpu", f"{self.gpu}x{self.gpu_count}"))
        if self.machine != AUTO:
            values["machine"] = self.machine
        for key, value in (
            ("disk", self.disk),
            ("boot-disk", self.boot_disk),
            ("disk-type", self.disk_type),
            ("idle", self.idle),
            ("name", self.name),
            ("zone", self.zone),
            ("schedule", self.schedule),
        ):
            value = value.strip()
            if value and ("=" in value or any(c.isspace() for c in value)):  # any space str.split() splits on
                # pasted into the command as it is, "100 gpu=a100" would ask for more than the form shows
                raise UserError(f"Write one value here, without spaces or `=` (e.g. {EXAMPLES[key]}).", field=key)
            if value:
                values.update(parse_option(key, value))
        buckets: list[str] = []
        for bucket in self.bucket.replace(",", " ").split():
            buckets.extend(parse_option("bucket", bucket)["buckets"])
        return NotebookRequest(buckets=tuple(buckets), **values)

    @classmethod
    def from_view(cls, view: dict[str, Any], defaults: LaunchForm) -> LaunchForm:
        """The form as the person sees it: each field's entered value, else its initial value.

        Only the blocks of the view as it is now count (state.values may still hold entries of
        blocks an update replaced); fields the view doesn't show keep the defaults."""
        values: dict[str, Any] = {}
        for field_name, value in view_values(view).items():
            if field_name in FORM_FIELDS:
                values[field_name] = value if value is not None else ""
        count = str(values.pop("gpu_count", defaults.gpu_count) or "")
        values["gpu_count"] = int(count) if _small_number(count) else defaults.gpu_count
        for select in ("environment", "gpu", "machine", "disk_type"):
            if not values.get(select):
                values.pop(select, None)
        return dataclasses.replace(defaults, **values)

    @classmethod
    def from_spec(cls, spec: NotebookSpec) -> LaunchForm:
        return cls(
            environment=spec.environment,
            gpu=spec.gpu or NO_GPU,
            gpu_count=spec.gpu_count or 1,
            machine=spec.machine,
            disk=str(spec.disk_gb),
            boot_disk=str(spec.boot_disk_gb),
            disk_type=spec.disk_type,
            idle=format_duration(spec.idle_seconds),
            name=spec.name or "",
            bucket=" ".join(spec.buckets),
            schedule=spec.schedule or "",
            zone=spec.zone,
        )

    def to_meta(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_meta(cls, data: Any, fallback: LaunchForm) -> LaunchForm:
        """The form kept in a view's private_metadata; a field missing or of the wrong shape there
        (or no usable metadata at all) keeps `fallback`'s value."""
        if not isinstance(data, dict) or not data:
            return fallback
        values = {}
        for f in dataclasses.fields(cls):
            value, default = data.get(f.name), getattr(fallback, f.name)
            if isinstance(default, int):
                ok = type(value) is int and 0 <= value <= 1000
            else:
                ok = isinstance(value, str) and len(value) <= MAX_INPUT
            values[f.name] = value if ok else default
        return cls(**values)


def _small_number(text: str) -> bool:
    """ASCII digits, few enough for a count ('²'.isdigit() is True, and int() refuses 5,000 digits)."""
    return text.isascii() and text.isdigit() and len(text) <= 4


# --- reading views --------------------------------------------------------------------------------
# Slack sends views in one shape; a payload in any other (state as a list, an option without a value,
# numbers where strings belong) reads as "nothing entered" rather than failing the request.
def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def field_of(block_id: str) -> str:
    """`machine:l4:1` -> `machine`."""
    return block_id.split(":", 1)[0]


def _element_value(element: dict[str, Any], state: dict[str, Any] | None) -> str | None:
    """What an input holds: the state Slack sent for it, else its initial value."""
    if state is not None:
        if "selected_option" in state:
            return _str(_dict(state.get("selected_option")).get("value"))
        if "value" in state:
            return _str(state.get("value"))
    if "initial_option" in element:
        return _str(_dict(element.get("initial_option")).get("value"))
    return _str(element.get("initial_value"))


def view_values(view: Any) -> dict[str, str | None]:
    """{field: current value} for every input block of the view."""
    view = _dict(view)
    state = _dict(_dict(view.get("state")).get("values"))
    found: dict[str, str | None] = {}
    for block in _list(view.get("blocks")):
        block = _dict(block)
        element, block_id = block.get("element"), _str(block.get("block_id"))
        if block.get("type") != "input" or not isinstance(element, dict) or not block_id:
            continue
        entered = _dict(state.get(block_id)).get(_str(element.get("action_id")) or "value")
        found[field_of(block_id)] = _element_value(element, entered if isinstance(entered, dict) else None)
    return found


def view_meta(view: Any) -> dict[str, Any]:
    raw = _dict(view).get("private_metadata")
    try:
        meta = json.loads(raw) if isinstance(raw, str) and raw else {}
    except (ValueError, RecursionError):
        return {}
    return meta if isinstance(meta, dict) else {}


def errors_for(error: UserError, view: dict[str, Any] | None = None) -> dict[str, str]:
    """view_submission errors: the message on the block of the field at fault.

    Slack only shows errors on input blocks the view has; a problem that belongs to no field
    (a quota, a decision already taken) goes on the view's first input."""
    wanted = FIELD_BLOCKS.get(error.field or "", "environment")
    blocks = [_dict(b) for b in _list(_dict(view).get("blocks"))]
    inputs = [b["block_id"] for b in blocks if b.get("type") == "input" and _str(b.get("block_id"))]
    if view is None:
        return {wanted: clip(error.message, ERROR_TEXT)}
    block = next((b for b in inputs if field_of(b) == wanted), inputs[0] if inputs else wanted)
    return {block: clip(error.message, ERROR_TEXT)}


# --- elements (slack_sdk's models: they check Slack's limits when rendered) -------------------------
OPTION_TEXT = 75
MAX_INPUT = 3000  # what a plain_text_input holds
OPTIONS = 100  # a static select offers at most 100
ERROR_TEXT = 2000  # a view_submission error message per field
METADATA = 3000  # a view's private_metadata


def _option(value: str, label: str) -> Option:
    return Option(value=value, label=shorten(label, OPTION_TEXT))  # between words, never mid-word


def _select(
    block_id: str, label: str, options: list[tuple[str, str]], selected: str, *, live: bool = False
) -> dict[str, Any]:
    options = options[:OPTIONS]
    chosen = next((o for o in options if o[0] == selected), options[0])
    return InputBlock(
        block_id=block_id,
        dispatch_action=live,  # a change is sent at once, so prices and choices can follow it
        label=label,
        element=StaticSelectElement(
            action_id="value",
            options=[_option(v, t) for v, t in options],
            initial_option=_option(*chosen),
        ),
    ).to_dict()


def _text(
    block_id: str,
    label: str,
    value: str,
    *,
    hint: str = "",
    optional: bool = False,
    multiline: bool = False,
    live: bool = False,
) -> dict[str, Any]:
    element = PlainTextInputElement(
        action_id="value",
        multiline=multiline,
        initial_value=value[:MAX_INPUT] or None,  # data the person typed: cut to what the input holds
        # Enter sends the value at once, so the price can follow it
        dispatch_action_config=DispatchActionConfig(trigger_actions_on=["on_enter_pressed"]) if live else None,
    )
    return InputBlock(
        block_id=block_id,
        optional=optional,
        dispatch_action=live,
        label=label,
        element=element,
        hint=hint or None,
    ).to_dict()


def fit(catalog: Catalog, form: LaunchForm, retired: set[str]) -> LaunchForm:
    """The form with every select on a choice it offers: a GPU count the GPU comes in, a machine
    type that can run the GPU ("pick for me" otherwise), a known environment and disk type."""
    gpu = form.gpu if form.gpu in catalog.gpus and form.gpu not in retired else NO_GPU
    counts = catalog.gpus[gpu].counts if gpu != NO_GPU else [1]
    count = form.gpu_count if form.gpu_count in counts else counts[0]
    machines = catalog.machines_for(None if gpu == NO_GPU else gpu, count if gpu != NO_GPU else 0)
    return dataclasses.replace(
        form,
        environment=form.environment if form.environment in catalog.environments else catalog.defaults.environment,
        gpu=gpu,
        gpu_count=count,
        machine=form.machine if form.machine in machines else AUTO,
        disk_type=form.disk_type if form.disk_type in catalog.disk_types else catalog.defaults.disk_type,
    )


def choice_blocks(catalog: Catalog, form: LaunchForm, retired: set[str], *, environments: bool = True) -> Blocks:
    form = fit(catalog, form, retired)
    gpus = [(NO_GPU, "No GPU")] + [
        (
            k,
            g.name
            + (f" (+${g.usd_per_hour:.2f}/h each)" if g.usd_per_hour else "")
            + (f", retires {g.retires:%Y-%m}" if g.retires else ""),
        )
        for k, g in catalog.gpus.items()
        if k not in retired
    ]
    counts = catalog.gpus[form.gpu].counts if form.gpu != NO_GPU else [1]
    gpu_key = None if form.gpu == NO_GPU else form.gpu
    machines = catalog.machines_for(gpu_key, form.gpu_count if gpu_key else 0)
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
        blocks.append(_select("environment", "Environment", envs, form.environment, live=True))
    blocks.append(_select("gpu", "GPU", gpus, form.gpu, live=True))
    if form.gpu != NO_GPU:
        blocks.append(
            _select(
                f"gpu_count:{form.gpu}",
                "Number of GPUs",
                [(str(c), str(c)) for c in counts],
                str(form.gpu_count),
                live=True,
            )
        )
    blocks.append(
        _select(f"machine:{form.gpu}:{form.gpu_count}", "Machine type", machine_options, form.machine, live=True)
    )
    return blocks


def price_line(spec: NotebookSpec | None, problem: str | None, note: str | None = None) -> dict[str, Any]:
    if spec is None:
        return context(f"⚠️ {problem}", block_id="price")
    text = f"Estimated *≈${spec.usd_per_hour:.2f}/h* (≈${spec.usd_per_hour * 24:.2f}/day while running)"
    if note:
        text += f"\n{note}"
    return context(text, block_id="price")


def _metadata(metadata: dict[str, Any]) -> str:
    """private_metadata holds at most 3,000 characters: a form's long typed values are left out of it
    (the view's own inputs still carry them)."""
    text = json.dumps(metadata)
    form = metadata.get("form")
    if len(text) > METADATA and isinstance(form, dict):
        short = {k: v for k, v in form.items() if not isinstance(v, str) or len(v) <= 100}
        text = json.dumps({**metadata, "form": short})
    return text if len(text) <= METADATA else json.dumps({k: v for k, v in metadata.items() if k != "form"})


def _modal(callback_id: str, title: str, submit: str, metadata: dict[str, Any], blocks: Blocks) -> dict[str, Any]:
    """A modal that tells the app when it is closed (view_closed), with its state in private_metadata."""
    return View(
        type="modal",
        callback_id=callback_id,
        title=title,
        submit=submit,
        close="Cancel",
        notify_on_close=True,
        private_metadata=_metadata(metadata),
        blocks=blocks,
    ).to_dict()


def launch_view(
    catalog: Catalog,
    form: LaunchForm,
    spec: NotebookSpec | None,
    problem: str | None,
    channel: str,
    retired: set[str],
    note: str | None = None,
) -> dict[str, Any]:
    form = fit(catalog, form, retired)
    disk_types = [(k, f"{k} (${d.usd_per_gb_month:.2f}/GB-month)") for k, d in catalog.disk_types.items()]
    blocks = [
        *choice_blocks(catalog, form, retired),
        _text("disk", "Data disk (GB)", form.disk, live=True),
        _text("boot_disk", "Boot disk (GB)", form.boot_disk, live=True),
        _select("disk_type", "Disk type", disk_types, form.disk_type, live=True),
        _text("idle", "Stop when idle for", form.idle, hint="e.g. 90m or 3h", live=True),
        _text("name", "Name", form.name, optional=True, hint="lowercase letters, digits and hyphens"),
        _text(
            "bucket", "GCS buckets to mount", form.bucket, optional=True, hint="bucket or bucket/dir, several allowed"
        ),
        _text(
            "schedule",
            "Evening stop (your time)",
            form.schedule,
            optional=True,
            hint="empty: the team's off-hours; or 21:30, off, default+weekends",
        ),
        price_line(spec, problem, note),
    ]
    return _modal(LAUNCH_CALLBACK, "New notebook", "Launch", {"channel": channel, "form": form.to_meta()}, blocks)


def spec_fields(spec: NotebookSpec, catalog: Catalog, instance_id: str) -> dict[str, Any]:
    """The whole spec, as a section's fields (at most 10)."""
    fields = [
        f"*Environment*\n{spec.environment}",
        f"*Machine*\n{spec.machine} ({catalog.machines[spec.machine].vcpus} vCPU, "
        f"{catalog.machines[spec.machine].memory_gb:g} GB)"
        if spec.machine in catalog.machines
        else f"*Machine*\n{spec.machine}",
        f"*GPU*\n{spec.gpu_label(catalog)}",
        f"*Disks*\n{spec.disk_gb} GB data + {spec.boot_disk_gb} GB boot, {spec.disk_type}",
        f"*Zone*\n{spec.zone}",
        f"*Stops when idle for*\n{format_duration(spec.idle_seconds)}",
        f"*Name*\n`{instance_id}`",
        f"*GCS buckets*\n{', '.join(spec.buckets) or 'none'}",
        f"*Estimated cost*\n≈${spec.usd_per_hour:.2f}/h, ≈${spec.usd_per_hour * 24:.2f}/day",
    ]
    return fields_section(fields)


def review_view(
    catalog: Catalog,
    launch: Any,
    form: LaunchForm,
    spec: NotebookSpec | None,
    problem: str | None,
    retired: set[str],
    deny: bool = False,
    note: str | None = None,
) -> dict[str, Any]:
    requested = launch.notebook_spec
    decision = _select(
        "decision", "Decision", [("approve", "Approve"), ("deny", "Deny")], "deny" if deny else "approve"
    )
    blocks = [
        section(f"<@{launch.requester}> asks for `{launch.instance_id}`:"),
        spec_fields(requested, catalog, launch.instance_id),
        context(f"Needs approval because {launch.approval_reason}."),
        decision,
        context("To approve less, choose a smaller GPU, fewer GPUs or a smaller machine:"),
        *choice_blocks(catalog, form, retired, environments=False),
        price_line(spec, problem, note),
        _text("reason", "Reason", "", optional=True, multiline=True, hint="Needed to deny; the requester sees it."),
    ]
    return _modal(REVIEW_CALLBACK, "Review launch", "Decide", {"launch": launch.id}, blocks)


def retired_gpus(catalog: Catalog, today: Any) -> set[str]:
    return {k for k, g in catalog.gpus.items() if g.retired(today)}


def evaluate(check: Any, form: LaunchForm) -> tuple[NotebookSpec | None, str | None]:
    """(spec, None) when the form is a valid launch, else (None, what is wrong): for live prices."""
    try:
        return check(form.request()), None
    except UserError as error:
        return None, error.message


def default_form(launcher: Any) -> LaunchForm:
    catalog: Catalog = launcher.catalog
    return LaunchForm(
        environment=catalog.defaults.environment,
        disk=str(catalog.limits.data_disk_gb.default),
        boot_disk=str(catalog.limits.boot_disk_gb.default),
        disk_type=catalog.defaults.disk_type,
        idle=format_duration(launcher.bounds.idle_default),
    )


def form_for_text(launcher: Any, text: str) -> LaunchForm:
    """Prefill the modal from a typed command: all of it when it is valid, else the parts that
    are (a bad GPU name leaves the GPU unset, the rest stays as typed)."""
    try:
        return LaunchForm.from_spec(launcher.check(text))
    except UserError:
        pass
    form = default_form(launcher)
    try:
        request = parse_request(text)
    except UserError:
        return form
    catalog: Catalog = launcher.catalog

    def known(lookup: Any, name: str | None) -> str | None:
        if not name:
            return None
        try:
            return lookup(name)
        except UserError:
            return None

    changes: dict[str, Any] = {}
    if environment := known(catalog.environment, request.environment):
        changes["environment"] = environment
    if gpu := known(catalog.gpu, request.gpu):
        changes.update(gpu=gpu, gpu_count=request.gpu_count)
    if machine := known(catalog.machine, request.machine):
        changes["machine"] = machine
    for key, value in (
        ("disk", request.disk_gb),
        ("boot_disk", request.boot_disk_gb),
        ("disk_type", request.disk_type),
        ("name", request.name),
        ("zone", request.zone),
        ("schedule", request.schedule),
    ):
        if value is not None:
            changes[key] = str(value)
    if request.idle_seconds is not None:
        changes["idle"] = format_duration(request.idle_seconds)
    if request.buckets:
        changes["bucket"] = " ".join(request.buckets)
    return fit(catalog, dataclasses.replace(form, **changes), retired_gpus(catalog, launcher.today()))


def launch_modal(launcher: Any, form: LaunchForm, channel: str) -> dict[str, Any]:
    retired = retired_gpus(launcher.catalog, launcher.today())
    form = fit(launcher.catalog, form, retired)
    spec, problem = evaluate(launcher.check, form)
    note = None
    if spec is not None:
        reason = launcher.rules.approval_reason(spec)
        notes = [f"ℹ️ {n}" for n in spec.notices]
        if reason:
            notes.append(f"⏸ An approver will be asked first: {reason}.")
        note = "\n".join(notes) or None
    return launch_view(launcher.catalog, form, spec, problem, channel, retired, note)


def lowered_form(launch: Any, form: LaunchForm) -> LaunchForm:
    """The request with only what an approver may change (GPU, GPU count, machine) taken from `form`."""
    return dataclasses.replace(
        LaunchForm.from_spec(launch.notebook_spec), gpu=form.gpu, gpu_count=form.gpu_count, machine=form.machine
    )


def review_modal(launcher: Any, launch: Any, form: LaunchForm | None = None, *, deny: bool = False) -> dict[str, Any]:
    from bot.domain.approvals import same_spec  # the domain loads on first use, not with the listeners

    requested = launch.notebook_spec
    retired = retired_gpus(launcher.catalog, launcher.today())
    form = fit(launcher.catalog, form or LaunchForm.from_spec(requested), retired)
    spec, problem = evaluate(launcher.check, lowered_form(launch, form))
    note = None
    if spec is not None:
        if spec.usd_per_hour > requested.usd_per_hour + 1e-9 or spec.gpu_count > requested.gpu_count:
            spec, problem = (
                None,
                (
                    f"{spec.gpu_label(launcher.catalog)} on {spec.machine} (≈${spec.usd_per_hour:.2f}/h) is more than "
                    "was asked for; an approver may only lower a request."
                ),
            )
        elif same_spec(spec, requested):
            note = "As requested."
        else:
            note = (
                f"Lowered from {requested.gpu_label(launcher.catalog)} on {requested.machine} "
                f"(≈${requested.usd_per_hour:.2f}/h) to {spec.gpu_label(launcher.catalog)} on {spec.machine}."
            )
    return review_view(launcher.catalog, launch, form, spec, problem, retired, deny=deny, note=note)
