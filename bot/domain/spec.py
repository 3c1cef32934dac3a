"""The `/notebook new` grammar, and the checked notebook spec it resolves to.

`parse_request` turns what a person typed into a NotebookRequest (syntax only);
`resolve` checks it against the catalog and the policy's bounds and fills in defaults,
giving a NotebookSpec that is complete enough to create an instance from.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from datetime import date
from typing import TYPE_CHECKING, Any

from bot.domain import buckets as bucket_names
from bot.domain.errors import UserError, did_you_mean, one_of, quoted, unknown
from bot.domain.verbs import USAGE, as_typed

if TYPE_CHECKING:  # the catalog (pydantic) loads with the config, not with the grammar
    from bot.domain.catalog import Catalog
    from bot.domain.schedules import Schedules

INSTANCE_NAME = re.compile(r"[a-z](?:[-a-z0-9]{0,61}[a-z0-9])?")  # Workbench's rule; always fullmatch
NAME_START = re.compile(r"[a-z][-a-z0-9]{0,62}")  # the start of an instance name (lookups by prefix)
ZONE = re.compile(r"[a-z]{1,20}-[a-z]{1,20}[0-9]{1,3}-[a-z]")
DURATION = re.compile(r"(?:([0-9]+)d)?(?:([0-9]+)h)?(?:([0-9]+)m)?(?:([0-9]+)s)?")
# `schedule=`: the policy's stop, none, or a stop time, each optionally running through weekends
SCHEDULE = re.compile(r"(default|off|([01]?[0-9]|2[0-3]):([0-5][0-9]))(\+weekends)?")  # always fullmatch
SCHEDULE_WORDS = ("default", "off", "+weekends")

# Bounds checked before any conversion: a person's digits never reach int() unbounded (Python refuses
# ints of more than 4,300 digits, and nothing here needs more than a few).
MAX_WORDS = 30  # words after `/notebook new` (a full form makes about a dozen)
MAX_VALUE = {"bucket": 1100}  # characters of one value: a bucket/dir mount may be long, nothing else is
MAX_VALUE_DEFAULT = 100
MAX_DIGITS = {"gpu": 3, "disk": 6, "boot-disk": 6, "idle": 6}
NAME_RULE = (
    "use 1–63 lowercase letters, digits and hyphens, starting with a letter and not ending with a hyphen "
    "(e.g. `churn-model`)"
)


KEYS = ("gpu", "machine", "disk", "boot-disk", "disk-type", "name", "zone", "idle", "bucket", "schedule")
KEY_ALIASES = {"data-disk": "disk", "disk-size": "disk", "gpus": "gpu", "machine-type": "machine"}
REPEATABLE = {"bucket"}


@dataclass(frozen=True)
class NotebookRequest:
    """What a person asked for, syntax-checked; names are not yet checked against the catalog."""

    environment: str | None = None
    gpu: str | None = None
    gpu_count: int = 1
    machine: str | None = None
    disk_gb: int | None = None
    boot_disk_gb: int | None = None
    disk_type: str | None = None
    name: str | None = None
    zone: str | None = None
    idle_seconds: int | None = None
    buckets: tuple[str, ...] = ()
    schedule: str | None = None  # as schedule_text() writes it

    def command(self) -> str:
        """The canonical command text that asks for exactly this request."""
        parts = [self.environment] if self.environment else []
        if self.gpu:
            parts.append(f"gpu={self.gpu}" + (f"x{self.gpu_count}" if self.gpu_count != 1 else ""))
        for key, value in (
            ("machine", self.machine),
            ("disk", self.disk_gb),
            ("boot-disk", self.boot_disk_gb),
            ("disk-type", self.disk_type),
            ("name", self.name),
            ("zone", self.zone),
            ("idle", format_duration(self.idle_seconds) if self.idle_seconds else None),
        ):
            if value is not None:
                parts.append(f"{key}={value}")
        parts.extend(f"bucket={b}" for b in self.buckets)
        if self.schedule:
            parts.append(f"schedule={self.schedule}")
        return " ".join(parts)


@dataclass(frozen=True)
class NotebookSpec:
    """A complete, checked notebook: everything needed to create the instance and price it."""

    environment: str
    machine: str
    gpu: str | None
    gpu_count: int
    disk_gb: int
    boot_disk_gb: int
    disk_type: str
    zone: str
    idle_seconds: int
    usd_per_hour: float
    name: str | None = None
    buckets: tuple[str, ...] = ()
    notices: tuple[str, ...] = ()
    schedule: str | None = None  # its own off-hours (`schedule=`, as schedule_text() writes it); None: the policy's

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["buckets"] = list(self.buckets)
        data["notices"] = list(self.notices)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> NotebookSpec:
        fields = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in fields}
        values["buckets"] = tuple(values.get("buckets", ()))
        values["notices"] = tuple(values.get("notices", ()))
        return cls(**values)

    def request(self) -> NotebookRequest:
        """The request that resolves to this spec again (used to re-check and to offer edits)."""
        return NotebookRequest(
            environment=self.environment,
            gpu=self.gpu,
            gpu_count=self.gpu_count,
            machine=self.machine,
            disk_gb=self.disk_gb,
            boot_disk_gb=self.boot_disk_gb,
            disk_type=self.disk_type,
            name=self.name,
            zone=self.zone,
            idle_seconds=self.idle_seconds,
            buckets=self.buckets,
            schedule=self.schedule,
        )

    @property
    def schedule_words(self) -> str:
        """Its own off-hours in a few words ('' when it follows the policy)."""
        if not self.schedule:
            return ""
        stop, weekends = self.schedule.removesuffix("+weekends"), self.schedule.endswith("+weekends")
        words = {"off": "no evening stop", "default": ""}.get(stop, f"evening stop {stop}")
        return ", ".join(w for w in (words, "runs through weekends" if weekends else "") if w)

    def gpu_label(self, catalog: Catalog) -> str:
        if self.gpu is None:
            return "no GPU"
        name = catalog.gpus[self.gpu].name
        return f"{self.gpu_count}× {name}" if self.gpu_count != 1 else name

    def summary(self, catalog: Catalog) -> str:
        schedule = f" · {self.schedule_words}" if self.schedule else ""
        return (
            f"{self.environment} · {self.machine} · {self.gpu_label(catalog)} · "
            f"{self.disk_gb} GB {self.disk_type} disk · {self.zone} · idle stop after "
            f"{format_duration(self.idle_seconds)}{schedule} · ≈${self.usd_per_hour:.2f}/h"
        )


@dataclass(frozen=True)
class SpecBounds:
    """The policy's say in a spec: default zone, allowed zones, and idle-timeout bounds."""

    zone: str = "us-central1-a"
    allowed_zones: tuple[str, ...] = ()
    idle_default: int = 3 * 3600
    idle_min: int = 10 * 60
    idle_max: int = 24 * 3600
    schedules: Schedules | None = None  # the [schedules] policy `schedule=` is checked against (None: its defaults)


# --- names ---------------------------------------------------------------------------------------
def instance_name(raw: str, *, partial: bool = False) -> str:
    """`raw` as an instance name (lowercase), or a UserError: the one check a name passes before it
    becomes a store key or part of an API path. `partial` accepts the start of a name too
    (`/notebook stop churn` finds `churn-model`)."""
    value = raw.strip().lower()
    if not (NAME_START if partial else INSTANCE_NAME).fullmatch(value):
        shown = f"`{quoted(raw.strip())}`" if raw.strip() else "An empty name"
        raise UserError(f"{shown} can't be a notebook name: {NAME_RULE}.", field="name")
    return value


def zone_name(raw: str) -> str:
    """`raw` as a zone name like `us-central1-a`, or a UserError (it becomes part of API paths)."""
    value = raw.strip().lower()
    if not ZONE.fullmatch(value):
        raise UserError(f"`{quoted(raw)}` is not a zone name like `us-central1-a`.", field="zone")
    return value


# --- parsing ------------------------------------------------------------------------------------
def parse_request(text: str) -> NotebookRequest:
    """Parse the words after `/notebook new`. Raises UserError naming the bad part."""
    tokens = as_typed(text).split()
    mounts = sum(1 for t in tokens if t.lower().startswith("bucket="))
    if mounts > MAX_WORDS:  # buckets have their own, smaller bound (bot/domain/buckets.py); this is the field's
        raise UserError(f"That is {mounts:,} buckets; a notebook mounts only a few.", field="bucket")
    if len(tokens) - mounts > MAX_WORDS:
        raise UserError(f"That is {len(tokens):,} words; a launch takes at most {MAX_WORDS}. Usage: {USAGE}")
    values: dict[str, Any] = {}
    buckets: list[str] = []
    for token in tokens:
        if "=" not in token:
            if len(token) > MAX_VALUE_DEFAULT:
                raise UserError(
                    f"`{quoted(token)}` is {len(token):,} characters long; no environment name is.",
                    field="environment",
                )
            if "environment" in values:
                raise UserError(
                    f"I read `{quoted(values['environment'])}` as the environment, so I don't know what "
                    f"`{quoted(token)}` is. Options are written key=value, e.g. `gpu=l4`. Usage: {USAGE}",
                    field="environment",
                )
            values["environment"] = token.lower()
            continue
        raw_key, _, raw_value = token.partition("=")
        key = raw_key.lower().replace("_", "-")
        key = KEY_ALIASES.get(key, key)
        if key not in KEYS:
            raise UserError(
                f"I don't know the option `{quoted(raw_key)}`.{did_you_mean(key, KEYS)} Options: {one_of(KEYS)}.",
                field=key,
                choices=list(KEYS),
            )
        if not raw_value:
            raise UserError(f"`{raw_key}=` needs a value, e.g. {EXAMPLES[key]}.", field=key)
        if len(raw_value) > MAX_VALUE.get(key, MAX_VALUE_DEFAULT):
            raise UserError(
                f"`{key}={quoted(raw_value)}` is {len(raw_value):,} characters long, far more than any {key} "
                f"takes; e.g. {EXAMPLES[key]}.",
                field=key,
            )
        if key in REPEATABLE:
            buckets.append(raw_value)
            continue
        if key in values or (key == "gpu" and "gpu_count" in values):
            raise UserError(f"`{key}` is given twice; give it once.", field=key)
        values.update(_parse_value(key, raw_value))
    return NotebookRequest(buckets=bucket_names.normalize(buckets), **values)  # GCS naming rules


EXAMPLES = {
    "gpu": "`gpu=l4` or `gpu=t4x2`",
    "machine": "`machine=n1-standard-8`",
    "disk": "`disk=200`",
    "boot-disk": "`boot-disk=200`",
    "disk-type": "`disk-type=ssd`",
    "name": "`name=churn-model`",
    "zone": "`zone=us-central1-b`",
    "idle": "`idle=2h` or `idle=90m`",
    "bucket": "`bucket=my-bucket` or `bucket=my-bucket/data`",
    "schedule": "`schedule=21:30`, `schedule=off` or `schedule=default+weekends`",
}


def parse_option(key: str, raw: str) -> dict[str, Any]:
    """One `key=value` option's value as NotebookRequest fields (a form field is one option)."""
    if key in REPEATABLE:
        return {"buckets": bucket_names.normalize([raw])}
    return _parse_value(key, raw)


def _number(key: str, raw: str, digits: str) -> int:
    """ASCII digits as an int, refused with a clear message when there are more than a value needs."""
    if len(digits) > MAX_DIGITS[key]:
        raise UserError(
            f"`{key}={quoted(raw)}` has {len(digits):,} digits, far more than any {key} takes; e.g. {EXAMPLES[key]}.",
            field=key,
        )
    return int(digits)


def _parse_value(key: str, raw: str) -> dict[str, Any]:
    value = raw.lower()
    if key == "gpu":
        if value in ("none", "0", "no"):
            return {"gpu": None, "gpu_count": 0}
        match = re.fullmatch(r"(.+?)[x*:]([0-9]+)", value) or re.fullmatch(r"([0-9]+)[x*](.+)", value)
        if match is None:
            return {"gpu": value}
        kind, count = match.groups() if not match.group(1).isdigit() else match.groups()[::-1]
        number = _number("gpu", raw, count)
        if number < 1:
            raise UserError("A GPU count is at least 1; leave `gpu` out for no GPU.", field="gpu")
        return {"gpu": kind, "gpu_count": number}
    if key in ("disk", "boot-disk"):
        match = re.fullmatch(r"([0-9]+)(gb|g|gib|tb|t|tib)?", value)
        if match is None:
            raise UserError(f"`{key}={quoted(raw)}` is not a size in GB, e.g. {EXAMPLES[key]}.", field=key)
        size = _number(key, raw, match.group(1)) * (1000 if (match.group(2) or "g").startswith("t") else 1)
        return {"disk_gb" if key == "disk" else "boot_disk_gb": size}
    if key == "idle":
        return {"idle_seconds": parse_duration(raw)}
    if key == "name":
        return {"name": instance_name(raw)}
    if key == "zone":
        return {"zone": zone_name(raw)}
    if key == "schedule":
        return {"schedule": schedule_text(raw)}
    return {key.replace("-", "_"): value}


def schedule_text(raw: str) -> str:
    """`schedule=`'s value written one way (`default`, `off`, `HH:MM`, each maybe `+weekends`), or a
    UserError; whether the policy allows it is for resolve()."""
    value = raw.strip().lower()
    match = SCHEDULE.fullmatch(value)
    if match is None:
        stop, plus, rest = value.partition("+")
        near = did_you_mean(plus + rest, SCHEDULE_WORDS[2:]) if plus and SCHEDULE.fullmatch(stop) else ""
        near = near or did_you_mean(stop, SCHEDULE_WORDS[:2])
        raise UserError(
            f"`schedule={quoted(raw)}` is not a schedule.{near} Write `default` (the team's evening stop), `off`, "
            f"or a stop time in your timezone like `21:30`, each optionally with `+weekends`.",
            field="schedule",
        )
    stop = match[1] if match[2] is None else f"{int(match[2]):02d}:{match[3]}"
    return stop + (match[4] or "")


def parse_duration(raw: str) -> int:
    """'30s', '90m', '2h', '1d', '1h30m' (or bare minutes, as in `idle=90`) -> seconds."""
    value = raw.lower().strip()
    if re.fullmatch(r"[0-9]+", value):
        return _number("idle", raw, value) * 60
    match = DURATION.fullmatch(value)
    if not value or match is None:
        raise UserError(f"`{quoted(raw)}` is not a duration; write it like `2h`, `90m` or `1h30m`.", field="idle")
    days, hours, minutes, seconds = (_number("idle", raw, g or "0") for g in match.groups())
    return ((days * 24 + hours) * 60 + minutes) * 60 + seconds


def format_duration(seconds: int) -> str:
    """Seconds -> '2h', '90m' -> '1h30m', '30s'; the inverse of parse_duration."""
    hours, minutes = divmod(seconds // 60, 60)
    text = (
        (f"{hours}h" if hours else "")
        + (f"{minutes}m" if minutes else "")
        + (f"{seconds % 60}s" if seconds % 60 else "")
    )
    return text or "0m"


# --- resolution ---------------------------------------------------------------------------------
def resolve(request: NotebookRequest, catalog: Catalog, bounds: SpecBounds, today: date) -> NotebookSpec:
    """Check a request against the catalog and bounds, choose defaults, and price it."""
    from bot.domain.catalog import HOURS_PER_MONTH

    environment = catalog.environment(request.environment or catalog.defaults.environment)
    notices: list[str] = []
    if request.environment and request.environment != environment:  # an alias: say what it stands for
        about = catalog.environments[environment].description
        notices.append(f"`{request.environment}` is the `{environment}` image, which ships {about}.")
    gpu, count = _resolve_gpu(request, catalog, today, notices)
    machine, gpu, count = _resolve_machine(request, catalog, gpu, count)
    limits = catalog.limits
    disk_gb = _in_range("disk", request.disk_gb, limits.data_disk_gb)
    boot_disk_gb = _in_range("boot-disk", request.boot_disk_gb, limits.boot_disk_gb)
    disk_type = request.disk_type or catalog.defaults.disk_type
    if disk_type not in catalog.disk_types:
        raise unknown("disk type", disk_type, catalog.disk_types, field="disk-type")
    zone = request.zone or bounds.zone
    if bounds.allowed_zones and zone not in bounds.allowed_zones:
        raise UserError(
            f"Notebooks can't be launched in `{zone}` here. Allowed zones: {one_of(bounds.allowed_zones)}.",
            field="zone",
            choices=list(bounds.allowed_zones),
        )
    idle = request.idle_seconds if request.idle_seconds is not None else bounds.idle_default
    if not bounds.idle_min <= idle <= bounds.idle_max:
        raise UserError(
            f"`idle={format_duration(idle)}` is outside what the policy allows: between "
            f"{format_duration(bounds.idle_min)} and {format_duration(bounds.idle_max)}.",
            field="idle",
        )
    schedule = _resolve_schedule(request.schedule, bounds, gpu=gpu is not None)
    disk_hourly = catalog.disk_usd_per_month(disk_type, disk_gb + boot_disk_gb) / HOURS_PER_MONTH
    return NotebookSpec(
        environment=environment,
        machine=machine,
        gpu=gpu,
        gpu_count=count,
        disk_gb=disk_gb,
        boot_disk_gb=boot_disk_gb,
        disk_type=disk_type,
        zone=zone,
        idle_seconds=idle,
        usd_per_hour=round(catalog.usd_per_hour(machine, gpu, count) + disk_hourly, 3),
        name=request.name,
        buckets=bucket_names.normalize(request.buckets),
        notices=tuple(notices),
        schedule=schedule,
    )


def _resolve_schedule(text: str | None, bounds: SpecBounds, *, gpu: bool) -> str | None:
    """A notebook's own schedule, checked against the policy's bounds (None: the policy's own)."""
    if text is None or text == "default":
        return None
    from bot.domain.schedules import Schedules, parse_schedule  # schedules -> policy -> this module

    parse_schedule(text, bounds.schedules or Schedules(), gpu=gpu)
    return text


def _resolve_gpu(request: NotebookRequest, catalog: Catalog, today: date, notices: list[str]) -> tuple[str | None, int]:
    if request.gpu is None:
        return None, 0
    key = catalog.gpu(request.gpu)
    gpu = catalog.gpus[key]
    if gpu.retired(today) and gpu.replacement:
        new = catalog.gpus[gpu.replacement]
        count = request.gpu_count if request.gpu_count in new.counts else 1
        offer = dataclasses.replace(request, gpu=gpu.replacement, gpu_count=count, machine=None)
        raise UserError(
            f"{gpu.name} was retired by Google Cloud on {gpu.retires:%Y-%m-%d} and can't be launched "
            f"any more. The nearest choice here is {new.name}: `/notebook new {offer.command()}`.",
            field="gpu",
            offer=offer.command(),
            offer_label=f"Launch with {gpu.replacement.upper()} instead",
        )
    if gpu.retired(today):
        raise UserError(f"{gpu.name} was retired on {gpu.retires:%Y-%m-%d}.", field="gpu")
    if request.gpu_count not in gpu.counts:
        raise UserError(
            f"{gpu.name} comes in counts of {', '.join(map(str, gpu.counts))}, not {request.gpu_count}.",
            field="gpu",
        )
    if gpu.retires is not None:
        notices.append(
            f"{gpu.name} will be retired by Google Cloud on {gpu.retires:%Y-%m-%d}"
            + (f"; consider `gpu={gpu.replacement}`." if gpu.replacement else ".")
        )
    return key, request.gpu_count


def _resolve_machine(
    request: NotebookRequest, catalog: Catalog, gpu: str | None, count: int
) -> tuple[str, str | None, int]:
    if request.machine is None:
        if gpu is None:
            return catalog.defaults.machine, None, 0
        fitting = catalog.machines_for(gpu, count)
        if catalog.gpus[gpu].attach_to is None:
            return fitting[0], gpu, count  # the cheapest machine type that carries it
        default = catalog.defaults.gpu_machine
        if default not in fitting:
            default = max(fitting, key=lambda k: catalog.machines[k].vcpus)
        return default, gpu, count
    machine = catalog.machine(request.machine)
    built_in = catalog.machines[machine].gpu
    if gpu is None:
        if built_in is not None:  # e.g. machine=g2-standard-8 brings its L4 along
            return machine, built_in.type, built_in.count
        return machine, None, 0
    fitting = catalog.machines_for(gpu, count)
    if machine in fitting:
        return machine, gpu, count
    spec = catalog.gpus[gpu]
    label = f"{count}× {spec.name}" if count != 1 else spec.name
    from bot.domain.catalog import Machine

    series = Machine.series_of(machine)
    if spec.attach_to is None:
        reason = f"{spec.name} comes built into its own machine types"
    elif series != spec.attach_to or built_in is not None:
        reason = f"{series} machines take no {spec.name}; it attaches to {spec.attach_to} machines"
    else:
        cap = spec.max_vcpus[count]
        reason = f"{label} allows at most {cap} vCPUs and {machine} has {catalog.machines[machine].vcpus}"
    raise UserError(
        f"`machine={machine}` can't run {label}: {reason}. Machine types that can: {one_of(fitting)}.",
        field="machine",
        choices=fitting,
    )


def _in_range(key: str, value: int | None, limit: Any) -> int:
    if value is None:
        return limit.default
    if not limit.min <= value <= limit.max:
        raise UserError(
            f"`{key}={value}` is out of range: it takes {limit.min} to {limit.max} GB.",
            field=key,
        )
    return value
