"""Settings from the environment, with clear errors.

Kept apart from the config file (bot/run/config.py, pydantic models and the catalog) so that
starting `serve`, which needs only these, imports nothing heavy before the first acknowledgement.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

DEFAULT_ZONE = "us-central1-a"


class ConfigError(ValueError):
    """The configuration is unusable; the message says where and why."""


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
    replicas: int = 3  # the most bot processes at once (Cloud Run's max instances): each keeps to its share of Slack
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
            replicas=_number(e, "NOTEBOOK_BOT_REPLICAS", cls.replicas, int),
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
