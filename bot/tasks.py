"""Who may call POST /tasks/reconcile: in production, only Cloud Scheduler with an OIDC token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.config import Settings


def task_authorizer(settings: Settings) -> Callable[[dict[str, Any]], str | None]:
    """Returns a check that gives a refusal reason, or None to allow.

    With NOTEBOOK_BOT_TASK_AUDIENCE set, the request must carry a Google-signed OIDC token for
    that audience. Without it (local runs), the endpoint is open on the bot's own port.
    """
    audience = settings.task_audience
    if not audience:
        return lambda environ: None

    def check(environ: dict[str, Any]) -> str | None:
        header = environ.get("HTTP_AUTHORIZATION", "")
        if not header.startswith("Bearer "):
            return "missing bearer token"
        from google.auth.transport import requests as google_requests
        from google.oauth2 import id_token

        try:
            id_token.verify_oauth2_token(header.removeprefix("Bearer "), google_requests.Request(), audience)
        except Exception as exc:  # any failure to verify is a refusal
            return f"invalid token: {type(exc).__name__}"
        return None

    return check
