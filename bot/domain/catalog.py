"""What can be launched: environments, GPUs, machine types and disks, with prices and retirements.

The data lives in catalog.toml beside this module; admins extend or override entries from the
[catalog] table of their config file. Everything here is pure data and lookups.
"""

from __future__ import annotations

import copy
import re
import tomllib
from collections.abc import Iterator
from datetime import date
from importlib import resources
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    model_validator,
)

from bot.domain.errors import unknown

HOURS_PER_MONTH = 730
CATALOG_KEY = re.compile(r"^[a-z][a-z0-9-]*$")
ZONE_NAME = r"^[a-z]{1,20}-[a-z]{1,20}[0-9]{1,3}-[a-z]$"  # as bot/domain/spec.py's ZONE
Loc = tuple[str | int, ...]  # a path of keys in the catalog, e.g. ("gpus", "t4", "counts")


class Problem(NamedTuple):
    """What is wrong and where: `loc`, or one of the `related` paths whose value caused it."""

    loc: Loc
    message: str
    related: tuple[Loc, ...] = ()


AcceleratorName = Literal[
    "NVIDIA_TESLA_P100",
    "NVIDIA_TESLA_V100",
    "NVIDIA_TESLA_P4",
    "NVIDIA_TESLA_T4",
    "NVIDIA_TESLA_T4_VWS",
    "NVIDIA_TESLA_P100_VWS",
    "NVIDIA_TESLA_P4_VWS",
    "NVIDIA_TESLA_A100",
    "NVIDIA_A100_80GB",
    "NVIDIA_L4",
]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VmImage(_Strict):
    project: str
    family: str | None = None
    name: str | None = None


class ContainerImage(_Strict):
    repository: str
    tag: str = "latest"


class Environment(_Strict):
    description: str
    vm_image: VmImage | None = None
    container: ContainerImage | None = None
    aliases: list[str] = []

    @model_validator(mode="after")
    def _one_image(self) -> Environment:
        if (self.vm_image is None) == (self.container is None):
            raise ValueError("give exactly one of vm_image or container")
        return self


class Gpu(_Strict):
    name: str
    accelerator: AcceleratorName
    counts: list[int]
    attach_to: str | None = None  # machine series for attached GPUs; None when built into machine types
    usd_per_hour: float | None = None  # per GPU, attached GPUs only
    max_vcpus: dict[int, int] = {}
    retires: date | None = None
    replacement: str | None = None
    aliases: list[str] = []
    zones: list[Annotated[str, StringConstraints(pattern=ZONE_NAME)]] = []  # where Google offers it; [] = not listed

    def retired(self, today: date) -> bool:
        return self.retires is not None and today >= self.retires


class MachineGpu(_Strict):
    type: str
    count: int


class Machine(_Strict):
    vcpus: int = Field(gt=0)
    memory_gb: float = Field(gt=0)
    usd_per_hour: float = Field(ge=0)
    gpu: MachineGpu | None = None  # GPUs built into the machine type (G2, A2)

    @staticmethod
    def series_of(name: str) -> str:
        return name.split("-", 1)[0]


class DiskType(_Strict):
    api_name: Literal["PD_STANDARD", "PD_SSD", "PD_BALANCED", "PD_EXTREME"]
    usd_per_gb_month: float = Field(ge=0)


class DiskLimit(_Strict):
    default: int
    min: int
    max: int


class Defaults(_Strict):
    environment: str
    machine: str
    gpu_machine: str
    disk_type: str


class Limits(_Strict):
    data_disk_gb: DiskLimit
    boot_disk_gb: DiskLimit


class Catalog(_Strict):
    defaults: Defaults
    limits: Limits
    environments: dict[str, Environment]
    gpus: dict[str, Gpu]
    machines: dict[str, Machine]
    disk_types: dict[str, DiskType]

    @model_validator(mode="after")
    def _consistent(self, info: ValidationInfo) -> Catalog:
        if (info.context or {}).get(UNCHECKED):
            return self
        problems = list(self._problems())
        if problems:
            raise CatalogProblems(problems)
        return self

    def _problems(self) -> Iterator[Problem]:
        """Each problem with the path of keys at fault, so the check can name the file and line."""
        d = self.defaults
        for what, key, table in (
            ("environment", d.environment, self.environments),
            ("machine", d.machine, self.machines),
            ("gpu_machine", d.gpu_machine, self.machines),
            ("disk_type", d.disk_type, self.disk_types),
        ):
            if key not in table:
                yield Problem(("defaults", what), f"names `{key}`, which is not in the catalog")
        for kind, table in (("environments", self.environments), ("gpus", self.gpus), ("machines", self.machines)):
            for key in table:
                if not CATALOG_KEY.match(key):  # people type these, and environments name instances
                    yield Problem(
                        (kind, key), "names are lowercase letters, digits and hyphens, starting with a letter"
                    )
        for key, gpu in self.gpus.items():
            if gpu.replacement is not None and gpu.replacement not in self.gpus:
                yield Problem(("gpus", key, "replacement"), f"names unknown GPU `{gpu.replacement}`")
            if gpu.attach_to is not None:
                if gpu.usd_per_hour is None:
                    yield Problem(
                        ("gpus", key, "usd_per_hour"),
                        f"missing price: a GPU attached to {gpu.attach_to} machines needs usd_per_hour (per GPU)",
                        (("gpus", key, "attach_to"),),
                    )
                for count in gpu.counts:
                    if count not in gpu.max_vcpus:
                        yield Problem(
                            ("gpus", key, "max_vcpus"),
                            f"max_vcpus has no entry for {count} GPU(s), which counts lists",
                            (("gpus", key, "counts"),),
                        )
                if not any(Machine.series_of(m) == gpu.attach_to for m in self.machines):
                    yield Problem(
                        ("gpus", key, "attach_to"), f"names series `{gpu.attach_to}`, and no machine type is of it"
                    )
            else:
                for count in gpu.counts:
                    if not self.machines_with(key, count):
                        yield Problem(
                            ("gpus", key, "counts"), f"lists {count} GPU(s), but no machine type carries {count}×{key}"
                        )
        for key, machine in self.machines.items():
            if machine.gpu is not None:
                carried = self.gpus.get(machine.gpu.type)
                if carried is None:
                    yield Problem(("machines", key, "gpu", "type"), f"names unknown GPU `{machine.gpu.type}`")
                elif carried.attach_to is not None:
                    yield Problem(
                        ("machines", key, "gpu", "type"),
                        f"`{machine.gpu.type}` attaches to {carried.attach_to} machines, so `{key}` can't carry it "
                        "built in",
                        (("gpus", machine.gpu.type, "attach_to"),),
                    )
        for kind, table in (("environments", self.environments), ("gpus", self.gpus)):
            owner: dict[str, str] = {}
            for key, entry in table.items():
                for alias in (key, *entry.aliases):
                    if owner.setdefault(alias, key) != key:
                        yield Problem(
                            (kind, key) if alias == key else (kind, key, "aliases"),
                            f"the name `{alias}` is used by both `{owner[alias]}` and `{key}`",
                            ((kind, owner[alias], "aliases"),),
                        )

    # --- lookups --------------------------------------------------------------------------------
    def environment(self, name: str) -> str:
        return _lookup(name, self.environments, "environment", "/notebook envs")

    def gpu(self, name: str) -> str:
        return _lookup(name, self.gpus, "GPU", "/notebook envs")

    def machine(self, name: str) -> str:
        key = name.lower()
        if key not in self.machines:
            raise unknown("machine type", name, self.machines, field="machine")
        return key

    def machines_with(self, gpu: str, count: int) -> list[str]:
        """Machine types that carry `count` of the built-in GPU `gpu`, cheapest first."""
        found = [k for k, m in self.machines.items() if m.gpu is not None and (m.gpu.type, m.gpu.count) == (gpu, count)]
        return sorted(found, key=lambda k: self.machines[k].usd_per_hour)

    def machines_for(self, gpu: str | None, count: int) -> list[str]:
        """Machine types that can run with this GPU choice (all GPU-less types when gpu is None)."""
        if gpu is None:
            return [k for k, m in self.machines.items() if m.gpu is None]
        g = self.gpus[gpu]
        if g.attach_to is None:
            return self.machines_with(gpu, count)
        cap = g.max_vcpus.get(count, 0)
        return [
            k
            for k, m in self.machines.items()
            if m.gpu is None and Machine.series_of(k) == g.attach_to and m.vcpus <= cap
        ]

    def usd_per_hour(self, machine: str, gpu: str | None, count: int) -> float:
        price = self.machines[machine].usd_per_hour
        if gpu is not None and self.gpus[gpu].attach_to is not None:
            price += (self.gpus[gpu].usd_per_hour or 0.0) * count
        return price

    def disk_usd_per_month(self, disk_type: str, gigabytes: int) -> float:
        return self.disk_types[disk_type].usd_per_gb_month * gigabytes


def natural_key(name: str) -> tuple[tuple[int, int | str], ...]:
    """Sort key that reads numbers as numbers: g2-standard-4 before g2-standard-16."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.split(r"(\d+)", name) if part)


def _lookup(name: str, table: dict[str, Any], what: str, where: str) -> str:
    wanted = name.lower()
    for key, entry in table.items():
        if wanted == key or wanted in entry.aliases:
            return key
    aliases = [a for e in table.values() for a in e.aliases]
    raise unknown(what, name, table, field=what.lower(), also=aliases, where=where)


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep-merge tables: an admin's entry extends or overrides the shipped one key by key."""
    merged = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


class CatalogProblems(ValueError):
    """Raised by Catalog's consistency check with each problem's path (pydantic keeps it in ctx.error)."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{_dotted(p.loc)}: {p.message}" for p in problems))


class CatalogError(ValueError):
    """The catalog data (shipped or an admin's additions) is inconsistent."""

    def __init__(self, message: str, problems: list[Problem] | None = None) -> None:
        super().__init__(message)
        self.problems = problems or []  # paths relative to the catalog's top level


def shipped_data() -> dict[str, Any]:
    return tomllib.loads(resources.files("bot.domain").joinpath("catalog.toml").read_text())


UNCHECKED = "unchecked"  # validation context: build the catalog without its consistency check


def unchecked_catalog(additions: dict[str, Any] | None = None) -> Catalog | None:
    """The catalog with well-formed entries that may contradict each other, or None if an entry is
    malformed: enough to look for further kinds of problems once the consistency check failed."""
    try:
        return Catalog.model_validate(_merge(shipped_data(), additions or {}), context={UNCHECKED: True})
    except ValidationError:
        return None


def load_catalog(additions: dict[str, Any] | None = None) -> Catalog:
    data = _merge(shipped_data(), additions or {})
    try:
        return Catalog.model_validate(data)
    except ValidationError as exc:
        raise CatalogError(format_validation_error(exc, prefix="catalog"), validation_problems(exc)) from None


def validation_problems(exc: ValidationError) -> list[Problem]:
    """Each error as (path of keys, message), with the consistency check's problems spread out."""
    problems: list[Problem] = []
    for err in exc.errors():
        error = (err.get("ctx") or {}).get("error")
        loc = tuple(err["loc"])
        if isinstance(error, CatalogProblems):
            problems.extend(
                Problem((*loc, *p.loc), p.message, tuple((*loc, *r) for r in p.related)) for p in error.problems
            )
        elif err["type"] == "extra_forbidden":
            problems.append(Problem(loc, "unknown key"))
        elif err["type"] == "missing":
            problems.append(Problem(loc, "missing price (in USD)" if "usd" in str(loc[-1]) else "missing"))
        else:
            problems.append(Problem(loc, err["msg"].removeprefix("Value error, ")))
    return problems


def format_validation_error(exc: ValidationError, prefix: str = "") -> str:
    return "\n".join(f"{_dotted((prefix, *p.loc))}: {p.message}" for p in validation_problems(exc))


def _dotted(loc: Loc) -> str:
    return ".".join(str(p) for p in loc if p != "")
