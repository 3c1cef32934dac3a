"""`notebook-bot catalog check`: the shipped catalog plus an admin's [catalog] additions, checked,
with each problem reported as `file:line: key.path: message`.

The same check runs whenever the configuration is loaded (bot/run/config.py `load_config`), so a bot
with a broken catalog refuses to start and says where. tomllib gives values, not positions: this
module finds the line of a table or key in the TOML text itself (`key_lines`), and blames the
file that defines the deepest part of the path at fault (an admin's entry overrides the shipped one).

Beyond the catalog's own consistency check (bot/domain/catalog.py), it knows a few facts of Google Cloud
that data alone can't tell: which accelerators attach to N1 machines and which come built into
their machine series, and that such series never come without GPUs.
"""

from __future__ import annotations

import contextlib
import re
import tomllib
import types
from collections.abc import Iterator
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from bot.domain.catalog import (
    Catalog,
    CatalogError,
    Loc,
    Machine,
    Problem,
    load_catalog,
    unchecked_catalog,
    validation_problems,
)
from bot.domain.errors import did_you_mean, one_of

# Accelerators that are attached to N1 machine types, and those that come built into a machine series.
ATTACHED_TO_N1 = {
    "NVIDIA_TESLA_T4",
    "NVIDIA_TESLA_T4_VWS",
    "NVIDIA_TESLA_P4",
    "NVIDIA_TESLA_P4_VWS",
    "NVIDIA_TESLA_V100",
    "NVIDIA_TESLA_P100",
    "NVIDIA_TESLA_P100_VWS",
}
BUILT_INTO = {"NVIDIA_L4": "g2", "NVIDIA_TESLA_A100": "a2", "NVIDIA_A100_80GB": "a2"}
GPU_SERIES = {"a2", "a3", "a4", "g2", "g4"}  # machine series that always carry GPUs
BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)$")


@dataclass(frozen=True)
class Located:
    """One problem, where an admin can find it."""

    file: str
    line: int
    path: str  # the dotted key path as written in that file, e.g. catalog.machines.n1-x.usd_per_hour
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.path + ': ' if self.path else ''}{self.message}"


@dataclass
class Source:
    """A TOML file and where the catalog sits in it (the top level, or the [catalog] table).

    `overrides`: an admin's file, blamed whenever it writes the entry at fault (e.g. its own
    [catalog.gpus.t4] changed what the shipped gpus.t4 needs), even if the shipped file holds a deeper key.
    """

    name: str
    text: str
    prefix: Loc
    overrides: bool = False
    lines: dict[Loc, int] = field(init=False)

    def __post_init__(self) -> None:
        self.lines = key_lines(self.text)


def shipped_source() -> Source:
    file = resources.files("bot.domain").joinpath("catalog.toml")
    return Source(str(file), file.read_text(), ())


# --- what load_config and the CLI call -----------------------------------------------------------
def check_catalog(
    additions: dict[str, Any] | None, config_file: str | Path | None = None, config_text: str | None = None
) -> tuple[Catalog | None, list[Located]]:
    """The shipped catalog merged with `additions` (the config's [catalog] table), checked.

    Returns (catalog, []) when it is sound, else (None, problems), each with its file and line.
    """
    sources = [shipped_source()]
    if config_file is not None and config_text is not None:
        sources.insert(0, Source(str(config_file), config_text, ("catalog",), overrides=True))
    try:
        catalog = load_catalog(additions)
    except CatalogError as exc:
        problems = [
            p._replace(message=_unknown_key(p.loc, Catalog)) if p.message == "unknown key" else p for p in exc.problems
        ]
        rough = unchecked_catalog(additions)  # the data's own contradictions don't hide Google Cloud's facts
        if rough is not None:
            problems += [p for p in facts_of_google_cloud(rough) if p not in problems]
        return None, [locate(p, sources) for p in problems]
    found = [locate(p, sources) for p in facts_of_google_cloud(catalog)]
    return (None if found else catalog), found


def config_problems(exc: ValidationError, model: type[BaseModel], file: str | Path, text: str) -> list[Located]:
    """The config file's own validation errors ([access], [policy], unknown tables), located."""
    source = Source(str(file), text, ())
    problems = []
    for problem in validation_problems(exc):
        if problem.message == "unknown key":
            problem = problem._replace(message=_unknown_key(problem.loc, model))
        problems.append(locate(problem, [source]))
    return problems


def toml_problem(file: str | Path, text: str, exc: tomllib.TOMLDecodeError) -> Located:
    """tomllib's syntax error, as file:line."""
    message = str(exc)
    match = TOML_POSITION.search(message)
    if match:
        line = int(match.group(1))
        message = f"{message[: match.start()]} (column {match.group(2)})"
    else:
        line = max(1, text.count("\n") + (0 if text.endswith("\n") else 1))
    return Located(str(file), line, "", f"not valid TOML: {message}")


def report(problems: list[Located]) -> str:
    """The text of a ConfigError: one `file:line: path: message` line per problem."""
    count = "1 problem" if len(problems) == 1 else f"{len(problems)} problems"
    ordered = sorted(problems, key=lambda p: (p.file, p.line))
    return "\n".join([f"the configuration has {count}:", *map(str, ordered)])


def run_check(config_file: str | Path | None) -> int:
    """`notebook-bot catalog check`: prints a summary, or raises ConfigError listing the problems."""
    from bot.run.config import load_config  # config imports this module

    config = load_config(config_file)
    print(summary(config.catalog, config_file))
    return 0


def summary(catalog: Catalog, config_file: str | Path | None) -> str:
    counts = (
        f"{len(catalog.environments)} environments, {len(catalog.gpus)} GPUs, "
        f"{len(catalog.machines)} machine types, {len(catalog.disk_types)} disk types"
    )
    where = f"{shipped_source().name}" + (f" + [catalog] of {config_file}" if config_file else "")
    return f"catalog OK: {counts} ({where})"


# --- facts of Google Cloud ----------------------------------------------------------------------
def facts_of_google_cloud(catalog: Catalog) -> Iterator[Problem]:
    """GPU and machine pairs that can't exist, whatever the data says."""
    for key, gpu in catalog.gpus.items():
        acc = gpu.accelerator
        if acc in BUILT_INTO and gpu.attach_to is not None:
            yield Problem(
                ("gpus", key, "attach_to"),
                f"{acc} comes built into {BUILT_INTO[acc]} machine types and can't be attached to "
                f"{gpu.attach_to} machines; remove attach_to and name it in those machine types' `gpu`",
            )
        elif acc in ATTACHED_TO_N1 and gpu.attach_to is None:
            yield Problem(
                ("gpus", key, "attach_to"),
                f'missing: {acc} is attached to N1 machines; give attach_to = "n1", usd_per_hour and max_vcpus',
            )
        elif acc in ATTACHED_TO_N1 and gpu.attach_to != "n1":
            yield Problem(("gpus", key, "attach_to"), f"{acc} attaches only to n1 machines, not {gpu.attach_to}")
        if gpu.attach_to is not None:
            for count in gpu.counts:
                if count in gpu.max_vcpus and not catalog.machines_for(key, count):
                    yield Problem(
                        ("gpus", key, "max_vcpus"),
                        f"no {gpu.attach_to} machine type has at most {gpu.max_vcpus[count]} vCPUs, so {count}× {key} "
                        "can't be launched",
                        (("gpus", key, "counts"),),
                    )
    for key, machine in catalog.machines.items():
        series = Machine.series_of(key)
        if machine.gpu is None:
            if series in GPU_SERIES:
                yield Problem(
                    ("machines", key), f"{series} machine types always carry GPUs: give gpu = {{ type, count }}"
                )
            continue
        carried = catalog.gpus.get(machine.gpu.type)
        if carried is None or carried.attach_to is not None:
            continue  # the catalog's own check reports these
        home = BUILT_INTO.get(carried.accelerator)
        if home is not None and series != home:
            yield Problem(
                ("machines", key, "gpu", "type"),
                f"`{machine.gpu.type}` ({carried.accelerator}) comes only in {home} machine types, not in `{key}`",
                (("gpus", machine.gpu.type, "accelerator"),),
            )
        if machine.gpu.count not in carried.counts:
            yield Problem(
                ("machines", key, "gpu", "count"),
                f"{machine.gpu.count}× {machine.gpu.type} is not one of gpus.{machine.gpu.type}.counts "
                f"({', '.join(map(str, carried.counts))})",
                (("gpus", machine.gpu.type, "counts"),),
            )
    defaults = catalog.defaults
    if defaults.machine in catalog.machines and catalog.machines[defaults.machine].gpu is not None:
        yield Problem(
            ("defaults", "machine"),
            f"`{defaults.machine}` carries GPUs, but it is the machine for launches without one",
        )
    attach_series = {g.attach_to for g in catalog.gpus.values() if g.attach_to is not None}
    gpu_machine = catalog.machines.get(defaults.gpu_machine)
    if gpu_machine is not None and (
        gpu_machine.gpu is not None or Machine.series_of(defaults.gpu_machine) not in attach_series
    ):
        yield Problem(
            ("defaults", "gpu_machine"),
            f"`{defaults.gpu_machine}` can't take an attached GPU; name a machine type of "
            f"{one_of(sorted(attach_series)) or 'a series GPUs attach to'}",
        )


# --- locating -----------------------------------------------------------------------------------
def locate(problem: Problem, sources: list[Source]) -> Located:
    """Blame the source that writes the deepest part of the problem's path (or of a related path
    whose value caused it); an overriding source that writes the entry (table.entry) wins over a
    deeper key in the shipped file, and the first source and the problem's own path win ties."""
    best: tuple[tuple[bool, int], Source, int, Loc] | None = None
    for source in sources:
        for loc in (problem.loc, *problem.related):
            full = (*source.prefix, *loc)
            for depth in range(len(full), len(source.prefix), -1):
                line = source.lines.get(full[:depth])
                if line is not None:
                    relative = depth - len(source.prefix)
                    score = (source.overrides and relative >= min(2, len(loc)), relative)
                    if best is None or score > best[0]:
                        best = (score, source, line, loc)
                    break
    if best is None:  # nothing of it is written anywhere: the [catalog] table, or the top of the file
        source = sources[0]
        best = ((False, 0), source, source.lines.get(source.prefix, 1), problem.loc)
    _, source, line, loc = best
    return Located(source.name, line, dotted((*source.prefix, *loc)), problem.message)


def dotted(loc: Loc) -> str:
    """A key path as TOML writes it: catalog.machines."odd.key".usd_per_hour, counts[0]."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            key = part if BARE_KEY.match(part) else '"' + part.replace("\\", "\\\\").replace('"', '\\"') + '"'
            text += ("." if text else "") + key
    return text


def _unknown_key(loc: Loc, model: type[BaseModel]) -> str:
    known = _fields_at(model, loc[:-1])
    if not known:
        return "unknown key"
    return f"unknown key `{loc[-1]}`.{did_you_mean(str(loc[-1]), known)} Keys here: {one_of(known)}."


def _fields_at(model: Any, path: Loc) -> list[str]:
    """The field names of the model found at `path` under `model` (dict keys and list items skipped)."""
    kind = model
    for part in path:
        kind = _optional(kind)
        if isinstance(kind, type) and issubclass(kind, BaseModel):
            info = kind.model_fields.get(str(part))
            if info is None:
                return []
            kind = info.annotation
        elif get_origin(kind) in (dict, list):
            kind = get_args(kind)[-1]
        else:
            return []
    kind = _optional(kind)
    return list(kind.model_fields) if isinstance(kind, type) and issubclass(kind, BaseModel) else []


def _optional(kind: Any) -> Any:
    args = [a for a in get_args(kind) if a is not type(None)]
    if get_origin(kind) in (Union, types.UnionType) and len(args) == 1:
        return args[0]
    return kind


# --- key positions in TOML text -------------------------------------------------------------------
def key_lines(text: str) -> dict[Loc, int]:
    """{path of keys: line where it is first defined} for every table, key and array item in `text`.

    Text that tomllib accepted is assumed; on anything else it returns what it found so far.
    """
    scanner = _Scanner(text)
    with contextlib.suppress(IndexError, ValueError):
        scanner.document()
    return scanner.lines


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.line = 1
        self.lines: dict[Loc, int] = {}
        self.table_arrays: dict[Loc, int] = {}

    # characters
    def at(self, offset: int = 0) -> str:
        index = self.pos + offset
        return self.text[index] if index < len(self.text) else ""

    def starts(self, token: str) -> bool:
        return self.text.startswith(token, self.pos)

    def advance(self, count: int = 1) -> None:
        self.line += self.text.count("\n", self.pos, self.pos + count)
        self.pos += count

    def spaces(self, newlines: bool = False) -> None:
        while self.pos < len(self.text):
            ch = self.at()
            if ch in " \t" or (newlines and ch in "\r\n"):
                self.advance()
            elif ch == "#" and newlines:
                end = self.text.find("\n", self.pos)
                self.advance((end if end != -1 else len(self.text)) - self.pos)
            else:
                return

    def record(self, path: Loc) -> None:
        for depth in range(1, len(path) + 1):
            self.lines.setdefault(path[:depth], self.line)

    # structure
    def document(self) -> None:
        table: Loc = ()
        while True:
            self.spaces(newlines=True)
            if self.pos >= len(self.text):
                return
            if self.starts("[["):
                self.advance(2)
                name = self.key()
                index = self.table_arrays.get(name, -1) + 1
                self.table_arrays[name] = index
                table = (*name, index)
                self.record(table)
                self.expect("]]")
            elif self.starts("["):
                self.advance()
                table = self.key()
                self.record(table)
                self.expect("]")
            else:
                self.pair(table)

    def pair(self, table: Loc) -> None:
        path = (*table, *self.key())
        self.record(path)
        self.expect("=")
        self.spaces()
        self.value(path)

    def expect(self, token: str) -> None:
        self.spaces()
        if not self.starts(token):
            raise ValueError(f"expected {token!r} at line {self.line}")
        self.advance(len(token))

    def key(self) -> Loc:
        parts: list[str] = []
        while True:
            self.spaces()
            ch = self.at()
            if ch in "\"'":
                parts.append(self.quoted_key())
            else:
                end = self.pos
                while end < len(self.text) and (self.text[end].isalnum() or self.text[end] in "_-"):
                    end += 1
                if end == self.pos:
                    raise ValueError(f"expected a key at line {self.line}")
                parts.append(self.text[self.pos : end])
                self.advance(end - self.pos)
            self.spaces()
            if self.at() != ".":
                return tuple(parts)
            self.advance()

    def quoted_key(self) -> str:
        start = self.pos
        self.string()
        raw = self.text[start : self.pos]
        return tomllib.loads(f"k = {raw}")["k"]

    def string(self) -> None:
        """Skip one string of any of TOML's four kinds."""
        for fence, escapes in (('"""', True), ("'''", False)):
            if self.starts(fence):
                index = self.pos + 3
                while True:
                    if escapes and self.text[index] == "\\":
                        index += 2
                    elif self.text.startswith(fence, index):
                        end = index + 3
                        while end < len(self.text) and self.text[end] == fence[0] and end - index < 5:
                            end += 1  # up to two quotes may end the content
                        self.advance(end - self.pos)
                        return
                    else:
                        index += 1
        quote = self.at()
        index = self.pos + 1
        while self.text[index] != quote:
            index += 2 if quote == '"' and self.text[index] == "\\" else 1
        self.advance(index + 1 - self.pos)

    def value(self, path: Loc) -> None:
        ch = self.at()
        if ch in "\"'":
            self.string()
        elif ch == "{":
            self.advance()
            while True:
                self.spaces(newlines=True)
                if self.at() == "}":
                    self.advance()
                    return
                self.pair(path)
                self.spaces(newlines=True)
                if self.at() == ",":
                    self.advance()
        elif ch == "[":
            self.advance()
            index = 0
            while True:
                self.spaces(newlines=True)
                if self.at() == "]":
                    self.advance()
                    return
                self.record((*path, index))
                self.value((*path, index))
                index += 1
                self.spaces(newlines=True)
                if self.at() == ",":
                    self.advance()
        else:  # a number, boolean or date: up to the next separator
            end = self.pos
            while end < len(self.text) and self.text[end] not in ",]}\r\n#":
                end += 1
            if end == self.pos:
                raise ValueError(f"expected a value at line {self.line}")
            self.advance(end - self.pos)
