"""Settings from the environment and the admin's TOML config file, with clear errors."""

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

DEFAULT_ZONE = "us-central1-a"


class ConfigError(ValueError):
    """The configuration is unusable; the message says where and why."""


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


@dataclass(frozen=True)
class Settings:
    """Everything the process reads from its environment (see the README for each variable)."""

    slack_bot_token: str | None = None
    slack_signing_secret: str | None = None
    slack_app_token: str | None = None
    project: str | None = None
    zone: str | None = None  # NOTEBOOK_ZONE; else the policy's zone; else DEFAULT_ZONE
    config_path: str | None = None
    scripts_bucket: str | None = None
    store_url: str = "sqlite:~/.local/state/notebook-bot/store.sqlite3"
    host: str = "0.0.0.0"
    port: int = 3000
    worker_interval: float = 3.0  # seconds between reconcile passes inside serve/socket
    poll_seconds: float = 2.0  # between two looks at work in flight (each a share of its zone's one list per pass)
    task_audience: str | None = None  # OIDC audience expected on POST /tasks/reconcile
    task_invoker: str | None = None  # the only service account allowed to call it (Cloud Scheduler's)
    task_token: str | None = None  # or a shared bearer token for it, for deployments outside Cloud Run
    task_open: bool = False  # NOTEBOOK_BOT_TASK_OPEN=1: open to anyone, for local development only
    notebook_service_account: str | None = None  # the service account notebooks run as

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        e = os.environ if env is None else env
        project = e.get("GOOGLE_CLOUD_PROJECT") or None
        store = e.get("NOTEBOOK_BOT_STORE") or ("firestore" if project else cls.store_url)
        port = _number(e, "PORT", 3000, int)
        return cls(
            slack_bot_token=e.get("SLACK_BOT_TOKEN") or None,
            slack_signing_secret=e.get("SLACK_SIGNING_SECRET") or None,
            slack_app_token=e.get("SLACK_APP_TOKEN") or None,
            project=project,
            zone=e.get("NOTEBOOK_ZONE") or None,
            config_path=e.get("NOTEBOOK_BOT_CONFIG") or None,
            scripts_bucket=e.get("NOTEBOOK_SCRIPTS_BUCKET") or None,
            store_url=store,
            host=e.get("HOST") or cls.host,
            port=port,
            worker_interval=_number(e, "NOTEBOOK_BOT_WORKER_INTERVAL", cls.worker_interval, float),
            poll_seconds=_number(e, "NOTEBOOK_BOT_POLL_SECONDS", cls.poll_seconds, float),
            task_audience=e.get("NOTEBOOK_BOT_TASK_AUDIENCE") or None,
            task_invoker=e.get("NOTEBOOK_BOT_TASK_INVOKER") or None,
            task_token=e.get("NOTEBOOK_BOT_TASK_TOKEN") or None,
            task_open=(e.get("NOTEBOOK_BOT_TASK_OPEN") or "").strip().lower() in ("1", "true", "yes"),
            notebook_service_account=e.get("NOTEBOOK_SERVICE_ACCOUNT") or None,
        )

    def require(self, *names: str) -> None:
        missing = [n for n in names if not getattr(self, _ATTR[n])]
        if missing:
            where = "; ".join(f"{n}: {_WHERE[n]}" for n in missing if n in _WHERE)
            raise ConfigError(
                f"missing environment variable(s) {', '.join(missing)}. Set them from api.slack.com/apps → your app "
                f"({where}); `notebook-bot sandbox` needs none"
            )


def _number(env: Any, name: str, default: Any, kind: type) -> Any:
    raw = env.get(name)
    if not raw:
        return default
    try:
        value = kind(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number") from None
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be greater than zero")
    return value


_WHERE = {
    "SLACK_BOT_TOKEN": "OAuth & Permissions → Bot User OAuth Token",
    "SLACK_SIGNING_SECRET": "Basic Information → Signing Secret",
    "SLACK_APP_TOKEN": "Basic Information → App-Level Tokens, with connections:write",
}
_ATTR = {
    "SLACK_BOT_TOKEN": "slack_bot_token",
    "SLACK_SIGNING_SECRET": "slack_signing_secret",
    "SLACK_APP_TOKEN": "slack_app_token",
    "GOOGLE_CLOUD_PROJECT": "project",
}
