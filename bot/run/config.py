"""The admin's TOML config file, checked, with clear errors (the environment is bot/run/settings.py)."""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from bot.domain.catalog import Catalog
from bot.domain.catalog_check import check_catalog, config_problems, report, toml_problem
from bot.domain.cost_policy import Costs
from bot.domain.policy import Access, Policy
from bot.domain.reminder_policy import Reminders
from bot.domain.schedules import Schedules
from bot.run.settings import DEFAULT_ZONE, ConfigError, Settings

# Settings and ConfigError live in bot/run/settings.py (light, for start-up); importing them from here still works.
__all__ = ["DEFAULT_ZONE", "Config", "ConfigError", "Settings", "load_config"]


class _ConfigFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    access: Access = Access()
    policy: Policy = Policy()
    reminders: Reminders = Reminders()
    costs: Costs = Costs()
    schedules: Schedules = Schedules()
    catalog: dict[str, Any] = {}


@dataclass(frozen=True)
class Config:
    access: Access
    policy: Policy
    catalog: Catalog
    reminders: Reminders = field(default_factory=Reminders)
    costs: Costs = field(default_factory=Costs)
    schedules: Schedules = field(default_factory=Schedules)
    source: str = "built-in defaults"


def load_config(path: str | os.PathLike[str] | None) -> Config:
    """The config file's settings over the defaults, checked: errors name the file and line (file:line: ...)."""
    if not path:
        return Config(Access(), Policy(), _checked_catalog({}))
    file = Path(path)
    try:
        text = file.read_text()
        data = tomllib.loads(text)
    except FileNotFoundError:
        raise ConfigError(f"{file}: no such config file (NOTEBOOK_BOT_CONFIG)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(report([toml_problem(file, text, exc)])) from None
    try:
        parsed = _ConfigFile.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(report(config_problems(exc, _ConfigFile, file, text))) from None
    catalog = _checked_catalog(parsed.catalog, file, text)
    return Config(
        parsed.access, parsed.policy, catalog, parsed.reminders, parsed.costs, parsed.schedules, source=str(file)
    )


def _checked_catalog(additions: dict[str, Any], file: Path | None = None, text: str | None = None) -> Catalog:
    """The shipped catalog plus the config's [catalog] table; ConfigError lists every problem by file:line."""
    catalog, problems = check_catalog(additions, file, text)
    if catalog is None:
        raise ConfigError(report(problems))
    return catalog
