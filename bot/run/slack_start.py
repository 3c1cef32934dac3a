"""Starting against Slack: a token Slack rejects, or a Slack that can't be reached, ends the start
with one plain line saying what to fix (a ConfigError), not a traceback inside a gunicorn worker.

Building the Bolt app asks Slack whose token it is (auth.test); Socket Mode then opens its
connection with the app-level token. Both happen before anything is served, in the process the
person started, and the log lines written meanwhile (slack_sdk's retries) are kept back until the
start succeeds, so a failure is reported once.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TypeVar

from bot.adapters.notify import DEFAULT_API_URL
from bot.run.logs import held_logs
from bot.run.settings import ConfigError

T = TypeVar("T")

FIXES = {
    "SLACK_BOT_TOKEN": "copy the Bot User OAuth Token (xoxb-…) from api.slack.com/apps → your app → "
    "OAuth & Permissions",
    "SLACK_APP_TOKEN": "create an app-level token with connections:write at api.slack.com/apps → your app → "
    "Basic Information → App-Level Tokens",
}


def with_slack(start: Callable[[], T], token: str = "SLACK_BOT_TOKEN") -> T:
    """Run `start` (which calls Slack with `token`); ConfigError if Slack refuses it or can't be reached."""
    from slack_bolt.error import BoltError
    from slack_sdk.errors import SlackApiError

    url = os.environ.get("SLACK_API_URL", DEFAULT_API_URL)
    try:
        with held_logs():
            return start()
    except (BoltError, SlackApiError) as exc:
        cause = exc if isinstance(exc, SlackApiError) else exc.__context__
        error = cause.response.get("error") if isinstance(cause, SlackApiError) else str(exc)
        raise ConfigError(f"Slack refused {token} ({error}): {FIXES[token]}") from None
    except OSError as exc:  # urllib's URLError, timeouts, refused connections
        reason = getattr(exc, "reason", None) or exc
        raise ConfigError(
            f"could not reach Slack at {url} ({reason}): check the network and any proxy (HTTPS_PROXY), "
            "or SLACK_API_URL"
        ) from None
