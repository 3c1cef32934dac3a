"""The Slack Web API calls the domain needs, on slack_sdk (never slack_bolt).

Rate limits: the workers' writes are paced by Slack's tiers (bot/adapters/budget.py), and an
HTTP 429 is honoured on every client: its Retry-After holds the pacing of that method, and the
call is retried after it only when that is short (RateLimitHandler); a longer one raises, so the
step that made it is due again later instead of a worker sleeping. Connection errors are retried
too; the base URL follows SLACK_API_URL so tests and the sandbox talk to a local fake.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_handlers import ConnectionErrorRetryHandler, RateLimitErrorRetryHandler
from slack_sdk.http_retry.request import HttpRequest
from slack_sdk.http_retry.response import HttpResponse
from slack_sdk.http_retry.state import RetryState
from slack_sdk.web import SlackResponse

from bot.adapters.budget import Pacing

DEFAULT_API_URL = "https://slack.com/api/"
UNREACHABLE_CHANNEL = {"not_in_channel", "channel_not_found", "is_archived"}


RESPONSE_URL_ORIGIN = ("https", "hooks.slack.com", 443)  # where Slack's response_url always points


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), parts.port or default


def is_slack_url(url: Any) -> bool:
    """Whether `url` is Slack's to post a reply to: https://hooks.slack.com/..., or on the host of
    the configured SLACK_API_URL (the local fake in tests and the sandbox). Anything else, even in a
    verified request, is never posted to."""
    if not isinstance(url, str) or not url:
        return False
    try:
        origin = _origin(url)
    except ValueError:  # e.g. a port that isn't a number
        return False
    allowed = {RESPONSE_URL_ORIGIN}
    if os.environ.get("SLACK_API_URL"):
        allowed.add(_origin(os.environ["SLACK_API_URL"]))
    return origin in allowed


MARKER_EVENT = "notebook_bot_post"


class RateLimitHandler(RateLimitErrorRetryHandler):
    """slack_sdk's 429 handler, which sleeps Retry-After and retries, for a client whose calls are
    paced: it tells the pacing first, and retries only a short Retry-After (`max_wait`); a longer
    one raises SlackApiError (429) to the caller, whose step is then due again later."""

    def __init__(self, pacing: Pacing, *, max_wait: float = 1.0, max_retry_count: int = 1) -> None:
        super().__init__(max_retry_count=max_retry_count)
        self.pacing = pacing
        self.max_wait = max_wait

    def _can_retry(
        self,
        *,
        state: RetryState,
        request: HttpRequest,
        response: HttpResponse | None = None,
        error: Exception | None = None,
    ) -> bool:
        if response is None or response.status_code != 429:
            return False
        wait = retry_after(response.headers)
        self.pacing.rate_limited(request.url.rstrip("/").rsplit("/", 1)[-1], wait)
        return wait <= self.max_wait


def retry_after(headers: dict[str, Any]) -> float:
    """Seconds in a 429's Retry-After (slack_sdk gives header values as lists); 1 when absent or odd."""
    for name, value in headers.items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, list | tuple) and value else value
            try:
                return max(0.0, float(raw))
            except (TypeError, ValueError):
                break
    return 1.0


def web_client(
    token: str | None,
    *,
    retry_connection_errors: bool = True,
    pacing: Pacing | None = None,
    verified: SlackResponse | None = None,
) -> WebClient:
    """A WebClient on SLACK_API_URL that honours 429 Retry-After: sleeping it out and retrying
    (slack_sdk's handler, for the request path), or, with `pacing`, holding that pacing for it.

    Posting must not retry connection errors: a post whose reply was lost may have been made, and
    a blind retry posts it twice (bot/domain/outbox.py recovers such posts instead).

    `verified`: Slack's answer to auth.test for this token, given moments ago (VerifiedClient)."""
    handlers: list = [RateLimitErrorRetryHandler(max_retry_count=3) if pacing is None else RateLimitHandler(pacing)]
    if retry_connection_errors:
        handlers.insert(0, ConnectionErrorRetryHandler(max_retry_count=2))
    base_url = os.environ.get("SLACK_API_URL", DEFAULT_API_URL)
    if verified is not None:
        return VerifiedClient(verified, token=token, base_url=base_url, retry_handlers=handlers)
    return WebClient(token=token, base_url=base_url, retry_handlers=handlers)


class VerifiedClient(WebClient):
    """A WebClient whose token Slack has confirmed: auth.test for that token answers with the
    confirmation instead of asking again. `serve` asks before it forks its worker, and Bolt asks
    again when the worker builds its app: a second round trip to Slack on a cold start's way to its
    first acknowledgement, with the same answer (whose bot and workspace the token is). A worker
    gunicorn starts again later reuses it too; a token revoked meanwhile fails its first real call."""

    def __init__(self, verified: SlackResponse, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.verified = verified

    def auth_test(self, **kwargs: Any) -> SlackResponse:
        if set(kwargs) <= {"token"} and kwargs.get("token", self.token) == self.token:
            return self.verified
        return super().auth_test(**kwargs)


@dataclass(frozen=True)
class SlackUser:
    id: str
    name: str
    email: str | None
    tz: str | None


@dataclass(frozen=True)
class Posted:
    channel: str
    ts: str
    fallback: bool = False  # posted to the user's DM because the channel was out of reach


class Slack:
    def __init__(self, client: WebClient, post_client: WebClient | None = None, pacing: Pacing | None = None) -> None:
        self.client = client
        self.post_client = post_client or client  # without connection-error retries (see web_client)
        self.pacing = pacing or Pacing(time.time)  # the process's one pacing of writes (Services shares it)
        self._dm_channels: dict[str, str] = {}  # user -> DM channel; conversations.open once per user
        self._dm_lock = threading.Lock()  # ... even from several threads (a sweep's workers)

    def post(
        self,
        channel: str,
        text: str,
        blocks: list[dict] | None = None,
        thread_ts: str | None = None,
        *,
        marker: str | None = None,
    ) -> Posted:
        """chat.postMessage; `marker` goes into the message's metadata so `find_post` can find it."""
        metadata = {"event_type": MARKER_EVENT, "event_payload": {"marker": marker}} if marker else None
        response = self.post_client.chat_postMessage(
            channel=channel, text=text, blocks=blocks, thread_ts=thread_ts, metadata=metadata
        )
        return Posted(channel=response["channel"], ts=response["ts"])

    def find_post(self, channel: str, marker: str, thread_ts: str | None = None) -> Posted | None:
        """The bot's recent message carrying `marker`, if Slack has it (a post whose reply was lost)."""
        if thread_ts:
            response = self.client.conversations_replies(
                channel=channel, ts=thread_ts, limit=200, include_all_metadata=True
            )
        else:
            response = self.client.conversations_history(channel=channel, limit=200, include_all_metadata=True)
        for message in response.get("messages") or []:
            payload = (message.get("metadata") or {}).get("event_payload") or {}
            if payload.get("marker") == marker:
                return Posted(channel=channel, ts=message["ts"])
        return None

    def dm_channel(self, user: str) -> str:
        channel = self._dm_channels.get(user)
        if channel is None:
            with self._dm_lock:
                channel = self._dm_channels.get(user)
                if channel is None:
                    channel = self._dm_channels[user] = self.client.conversations_open(users=user)["channel"]["id"]
        return channel

    def post_or_dm(self, channel: str, user: str, text: str, blocks: list[dict] | None = None) -> Posted:
        """Post in the channel; if the bot can't (private channel it isn't in), DM the user instead."""
        try:
            return self.post(channel, text, blocks)
        except SlackApiError as exc:
            if exc.response.get("error") not in UNREACHABLE_CHANNEL:
                raise
        posted = self.dm(user, text, blocks)
        return Posted(posted.channel, posted.ts, fallback=True)

    def upload(self, channel: str, content: bytes, *, filename: str, title: str, comment: str, alt_text: str) -> str:
        """files_upload_v2 into `channel` (files:write): the file's id. Like a post, never retried on
        a dropped connection (it may have been shared)."""
        response = self.post_client.files_upload_v2(
            channel=channel, content=content, filename=filename, title=title, initial_comment=comment, alt_txt=alt_text
        )
        return str(response["file"]["id"])

    def update(
        self, channel: str, ts: str, text: str, blocks: list[dict] | None = None, *, urgent: bool | None = None
    ) -> bool:
        """chat.update. Paced when `urgent` is given: False (nothing sent) when the pacing has no
        token of that priority now. Without it the update goes out and is counted in the pacing."""
        if urgent is None:
            self.pacing.updates.spend()
        elif not self.pacing.update(urgent=urgent):
            return False
        self.client.chat_update(channel=channel, ts=ts, text=text, blocks=blocks)
        return True

    def dm(self, user: str, text: str, blocks: list[dict] | None = None, *, marker: str | None = None) -> Posted:
        return self.post(self.dm_channel(user), text, blocks, marker=marker)

    def ephemeral(self, channel: str, user: str, text: str, blocks: list[dict] | None = None) -> None:
        try:
            self.client.chat_postEphemeral(channel=channel, user=user, text=text, blocks=blocks)
        except SlackApiError as exc:
            if exc.response.get("error") not in UNREACHABLE_CHANNEL | {"user_not_in_channel"}:
                raise
            self.dm(user, text, blocks)

    def user(self, user_id: str) -> SlackUser:
        info = self.client.users_info(user=user_id)["user"]
        profile = info.get("profile", {})
        return SlackUser(
            id=user_id,
            name=info.get("name") or profile.get("display_name") or user_id,
            email=profile.get("email"),
            tz=info.get("tz"),
        )
