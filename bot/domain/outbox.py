"""Slack posts made at most once per record, and recovered (never repeated) when Slack's reply is lost.

Each post has a name on its record (`effects.<name>` in the launch or operation document). Before
posting, the intent is written; the post carries a marker in its metadata; the reply's channel
and ts are written after. A definite refusal from Slack (`ok: false`) clears the intent, since
nothing was posted. Anything else (a connection dropped after Slack posted, a timeout) leaves
the intent: the next attempt looks for the marked message and adopts it instead of posting again.
If Slack won't let the bot look (no history scope), the post counts as made: at most once wins.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from slack_sdk.errors import SlackApiError

from bot.adapters.notify import UNREACHABLE_CHANNEL, Posted, Slack
from bot.adapters.store import Doc, Store

log = logging.getLogger(__name__)

PENDING, DONE, UNKNOWN = "pending", "done", "unknown"


def effect(doc: Doc | None, name: str) -> dict[str, Any]:
    return ((doc or {}).get("effects") or {}).get(name) or {}


def done(doc: Doc | None, name: str) -> bool:
    """Whether the named post is made (or may have been, and is not to be repeated)."""
    return effect(doc, name).get("state") in (DONE, UNKNOWN)


def posted(doc: Doc | None, name: str) -> Posted | None:
    found = effect(doc, name)
    return Posted(found["channel"], found["ts"]) if found.get("state") == DONE else None


def with_effect(doc: Doc, name: str, value: dict[str, Any] | None) -> Doc:
    """`doc` with its named post set to `value` (None: forgotten), e.g. a post made for several records."""
    effects = dict(doc.get("effects") or {})
    if value is None:
        effects.pop(name, None)
    else:
        effects[name] = value
    return {**doc, "effects": effects}


def definite(exc: Exception) -> bool:
    """True when Slack answered and refused: then nothing was posted."""
    if not isinstance(exc, SlackApiError):
        return False
    status = getattr(exc.response, "status_code", 200)
    return status < 500 and exc.response.get("ok") is False


def rate_limited(exc: Exception) -> bool:
    """Slack said 429, try later: nothing was posted, and it is no refusal to give up on."""
    return isinstance(exc, SlackApiError) and getattr(exc.response, "status_code", 200) == 429


@dataclass(frozen=True)
class Post:
    """One named post of a record, as it was asked for."""

    collection: str
    key: str
    name: str
    channel: str
    text: str
    blocks: list[dict] | None
    thread_ts: str | None
    dm_instead: str | None  # a user to DM when the bot can't post in `channel`

    @property
    def marker(self) -> str:
        """What the message carries in its metadata, to be found again if Slack's reply is lost."""
        return f"{self.collection}/{self.key}/{self.name}"


class Outbox:
    def __init__(self, store: Store, slack: Slack, clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.slack = slack
        self.clock = clock

    def post(
        self,
        collection: str,
        key: str,
        name: str,
        channel: str,
        text: str,
        blocks: list[dict] | None = None,
        *,
        thread_ts: str | None = None,
        dm_instead: str | None = None,
    ) -> Posted | None:
        """Post once; returns where it is (None if it may exist but can't be found).

        `dm_instead`: a user to DM when the bot can't post in `channel` (a private channel it isn't in).
        Raises what Slack raised when the post should be tried again later."""
        post = Post(collection, key, name, channel, text, blocks, thread_ts, dm_instead)
        doc = self.store.get(collection, key)
        current = effect(doc, name)
        if current.get("state") == DONE:
            return Posted(current["channel"], current["ts"])
        if current.get("state") == UNKNOWN:
            return None
        if current.get("state") == PENDING:
            recovered = self._recover(post, current)
            if recovered is not None or done(self.store.get(collection, key), name):
                return recovered
        return self._post(post)

    def adopt(self, collection: str, key: str, name: str, thread_ts: str | None = None) -> Posted | None:
        """Where the named post is, without ever posting it: a post whose reply was lost is looked for
        and recorded if Slack has it. None when it was never made (or can't be found)."""
        current = effect(self.store.get(collection, key), name)
        if current.get("state") == DONE:
            return Posted(current["channel"], current["ts"])
        if current.get("state") != PENDING:
            return None
        return self._recover(Post(collection, key, name, current["channel"], "", None, thread_ts, None), current)

    def _post(self, post: Post) -> Posted:
        self._write(post, {"state": PENDING, "channel": post.channel, "at": self.clock()})
        try:
            result = self.slack.post(post.channel, post.text, post.blocks, post.thread_ts, marker=post.marker)
        except SlackApiError as exc:
            if not definite(exc):
                raise
            self._write(post, None)
            if post.dm_instead and exc.response.get("error") in UNREACHABLE_CHANNEL:
                dm = self.slack.dm_channel(post.dm_instead)
                return self._post(replace(post, channel=dm, thread_ts=None, dm_instead=None))
            raise
        self._write(post, {"state": DONE, "channel": result.channel, "ts": result.ts})
        return result

    def _recover(self, post: Post, intent: dict[str, Any]) -> Posted | None:
        try:
            found = self.slack.find_post(intent["channel"], post.marker, post.thread_ts)
        except SlackApiError as exc:
            if not definite(exc):
                raise
            log.warning("can't look for a post whose reply was lost (%s); not posting it again", exc)
            self._write(post, {**intent, "state": UNKNOWN})
            return None
        if found is None:
            return None  # it never arrived: post it
        log.info("recovered a post whose reply was lost", extra={"marker": post.marker})
        self._write(post, {"state": DONE, "channel": found.channel, "ts": found.ts})
        return found

    def _write(self, post: Post, value: dict[str, Any] | None) -> None:
        self.store.update(post.collection, post.key, lambda doc: with_effect(doc, post.name, value) if doc else None)
