"""The configuration reference (config.example.toml), generated from the settings models.

`notebook-bot config reference` prints it; tests/test_config_reference.py fails when the committed
file differs, so the reference says what the code reads: every table, key, default and description
comes from the pydantic models ([access] Access, [policy] Policy, [reminders] Reminders, [costs] Costs,
[schedules] Schedules).
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator
from datetime import time
from typing import Any, get_args

from pydantic import BaseModel
from pydantic.fields import FieldInfo

from bot.domain.cost_policy import Costs
from bot.domain.policy import DURATION, Access, Policy
from bot.domain.reminder_policy import Reminders
from bot.domain.schedules import Schedules

WIDTH = 100
TABLES: tuple[tuple[str, type[BaseModel]], ...] = (
    ("access", Access),
    ("policy", Policy),
    ("reminders", Reminders),
    ("costs", Costs),
    ("schedules", Schedules),
)

HEADER = """\
# notebook-bot configuration: point NOTEBOOK_BOT_CONFIG at a copy of this file.
# Generated from the settings models by `notebook-bot config reference` (a test keeps it current).
# Every key is optional. A commented-out key shows its default; a key written out shows an example
# (its default, if it has one, is in the comment above). Unknown keys are refused at start-up with
# the file, the key and the reason, so typos don't pass silently.
# Durations are a number of seconds (3600) or a string: "30s", "90m", "2h", "1d", or "1h30m".
"""

CATALOG = """\
# [catalog] extends or overrides the shipped catalog (bot/domain/catalog.toml), key by key, in the same
# shape; `notebook-bot catalog check` checks the result. For example, to offer a bigger N1 machine and
# a team environment in a custom container:
#
# [catalog.machines.n1-highmem-16]
# vcpus = 16
# memory_gb = 104
# usd_per_hour = 0.95
#
# [catalog.environments.team-rapids]
# description = "RAPIDS 24.04 with our team's packages"
# container = { repository = "us-central1-docker.pkg.dev/{project}/notebook-environments/team-rapids", tag = "latest" }
# aliases = ["rapids"]
#
# [catalog.defaults]
# environment = "base-2603"
#
# The zones Google offers a GPU in (optional; a stockout's offer then names only these):
# [catalog.gpus.l4]
# zones = ["us-central1-a", "us-central1-b", "us-central1-c"]
"""


def reference() -> str:
    """The text of config.example.toml."""
    parts = [HEADER]
    for name, model in TABLES:
        parts.append("\n".join(_table(name, model)) + "\n")
    parts.append(CATALOG)
    return "\n".join(parts)


def _table(name: str, model: type[BaseModel]) -> Iterator[str]:
    yield f"[{name}]"
    yield from _comment(" ".join((model.__doc__ or "").split()))
    for key, field in model.model_fields.items():
        yield ""
        duration = _is_duration(field)
        default = None if field.default is None else _toml(field.default, duration)
        if not field.examples:  # the key, commented out, shows its default
            yield from _comment(str(field.description))
            yield f"# {key} = {default}"
            continue
        yield from _comment(f"{field.description}" + (f" (default: {default})" if default is not None else ""))
        opt_in = (field.json_schema_extra or {}).get("opt_in")  # type: ignore[union-attr]
        yield f"{'# ' if opt_in else ''}{key} = {_toml(field.examples[0], duration)}"


def _comment(text: str) -> Iterator[str]:
    for line in textwrap.wrap(text, WIDTH - 2, break_on_hyphens=False):
        yield f"# {line}"


def _is_duration(field: FieldInfo) -> bool:
    """Seconds that the config also reads as words ("24h"): shown as words."""

    def marked(annotation: Any) -> bool:
        return any(arg is DURATION or marked(arg) for arg in get_args(annotation))

    return DURATION in field.metadata or marked(field.annotation)


def _toml(value: Any, duration: bool = False) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, time):
        return json.dumps(f"{value:%H:%M}")
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v, duration) for v in value) + "]"
    if duration and isinstance(value, int):
        return json.dumps(_duration_words(value))
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    return repr(value)


def _duration_words(seconds: int) -> str:
    """3600 -> "1h", 14 days -> "14d" (whole days from two days up; "24h" reads better than "1d")."""
    from bot.domain.spec import format_duration

    if seconds >= 2 * 86400 and seconds % 86400 == 0:
        return f"{seconds // 86400}d"
    return format_duration(seconds)
