"""A local fake of the Slack Web API that slack_sdk's WebClient (and so Bolt) can talk to.

    sim = SlackSimulator()
    client = WebClient(token=sim.bot_token, base_url=sim.start())

Every call is recorded (`calls()`), posted messages are kept in their current state
(`messages()`), modals and Home tabs too (`views()`, `home()`). Errors and HTTP 429s can be
injected per method. `response_url()` hands out URLs that behave like Slack's: POSTs to them
become messages, ephemeral unless `response_type` is `in_channel`.

Behaviour follows Slack's documentation where it is documented (see /work/shared/notes/slack.md);
the few places where the fake has to guess are marked "(approximation)".
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit

T = TypeVar("T")

BOT_USER_ID = "U0BOT"
BOT_ID = "B0BOT"
APP_ID = "A0SIM"
TEAM_DOMAIN = "sim"
FIRST_TS = 1_700_000_000
TRIGGER_TTL = 3.0  # seconds a trigger_id stays usable
RESPONSE_URL_USES = 5
RESPONSE_URL_TTL = 30 * 60.0
JSON_FORM_FIELDS = frozenset({"blocks", "attachments", "view", "metadata"})
_TYPED_MENTION = re.compile(r"(?<![<\w])@([A-Za-z0-9._-]+)")

DEFAULT_USERS: dict[str, dict[str, Any]] = {
    "U0ALICE": {
        "name": "alice",
        "real_name": "Alice Martin",
        "email": "alice@example.com",
        "tz": "Europe/Paris",
        "tz_offset": 3600,
    },
    "U0BOB": {
        "name": "bob",
        "real_name": "Bob Chen",
        "email": "bob@example.com",
        "tz": "America/New_York",
        "tz_offset": -18000,
    },
    "U0ADMIN": {"name": "admin", "real_name": "Ada Admin", "email": "admin@example.com", "tz": "UTC", "tz_offset": 0},
    "U0APPROVER": {
        "name": "approver",
        "real_name": "Pat Approver",
        "email": "approver@example.com",
        "tz": "Europe/London",
        "tz_offset": 0,
    },
}
DEFAULT_SCOPES = (
    "commands",
    "chat:write",
    "im:write",
    "users:read",
    "users:read.email",
    "usergroups:read",
    "channels:history",
    "groups:history",
    "im:history",
    "files:write",
)
NEEDED_SCOPE = {
    "chat.postMessage": "chat:write",
    "chat.postEphemeral": "chat:write",
    "chat.update": "chat:write",
    "chat.delete": "chat:write",
    "users.info": "users:read",
    "users.lookupByEmail": "users:read.email",
    "conversations.open": "im:write",
    "usergroups.users.list": "usergroups:read",
    "files.getUploadURLExternal": "files:write",
    "files.completeUploadExternal": "files:write",
}
HISTORY_SCOPE = {"C": "channels:history", "G": "groups:history", "D": "im:history"}


@dataclass
class Call:
    method: str
    args: dict[str, Any]
    token: str | None
    error: str | None = None  # the error the simulator answered with; None when the call succeeded


@dataclass
class Message:
    channel: str
    ts: str
    text: str
    blocks: list[dict[str, Any]]
    thread_ts: str | None
    user: str | None  # who sees it, for ephemeral messages
    ephemeral: bool
    updates: int  # how many times it was changed (chat.update or replace_original)
    metadata: dict[str, Any] | None = None  # chat.postMessage's `metadata` (event_type, event_payload)
    files: list[str] | None = None  # ids of the files shared with it (files.completeUploadExternal)


@dataclass
class File:
    """A file uploaded through files.getUploadURLExternal, the upload URL and files.completeUploadExternal."""

    id: str
    filename: str
    length: int  # what getUploadURLExternal was told
    alt_txt: str | None
    data: bytes | None = None  # what was POSTed to the upload URL
    title: str | None = None
    completed: bool = False
    channels: tuple[str, ...] = ()


class Gate:
    """Holds calls of one method until released: lets a test interleave a call with other work."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self._open = threading.Event()

    def release(self) -> None:
        self._open.set()

    def pass_through(self) -> None:
        self.arrived.set()
        if not self._open.wait(30):
            raise TimeoutError("a held Slack call was never released")


class SlackApiFailure(Exception):
    """Raised inside a method handler: becomes {"ok": false, "error": ...} (plus `extra`)."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra


@dataclass
class _Trigger:
    user: str
    issued_at: float
    view_id: str | None  # set when the interaction came from inside a modal
    used: bool = False


@dataclass
class _ResponseUrl:
    channel: str
    user: str
    issued_at: float
    original_ts: str | None  # the message a click came from, or the last message this URL posted
    original_ephemeral: bool
    uses: int = 0


# what Slack fills in on a view the app left them out of
VIEW_DEFAULTS: dict[str, Any] = {
    "callback_id": "",
    "private_metadata": "",
    "external_id": "",
    "clear_on_close": False,
    "notify_on_close": False,
}


class SlackSimulator:
    """The Slack Web API on 127.0.0.1, in memory. Start it, point a WebClient at `base_url`."""

    def __init__(
        self,
        *,
        users: dict[str, dict[str, Any]] | None = None,
        bot_token: str = "xoxb-sim",
        team_id: str = "T0SIM",
        usergroups: dict[str, list[str]] | None = None,
        scopes: tuple[str, ...] | list[str] = DEFAULT_SCOPES,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """`users` are added to (and override) the default U0ALICE, U0BOB, U0ADMIN, U0APPROVER.

        `scopes` are the bot token's scopes: a method whose scope is missing answers missing_scope,
        and without users:read.email users.info leaves the email out, as Slack does.
        `clock` only times trigger_id (3 s) and response_url (30 min) expiry.
        """
        self.users: dict[str, dict[str, Any]] = {**copy.deepcopy(DEFAULT_USERS), **copy.deepcopy(users or {})}
        self.bot_token = bot_token
        self.team_id = team_id
        self.usergroups: dict[str, list[str]] = dict(usergroups or {})
        self.scopes = tuple(scopes)
        self.clock = clock
        self.base_url = ""
        self._root = ""
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._calls: list[Call] = []
        self._messages: dict[tuple[str, str], Message] = {}
        self._views: dict[str, dict[str, Any]] = {}  # every modal and Home view ever shown, by id
        self._open_views: list[str] = []  # modals the user currently has open, oldest first
        self._homes: dict[str, str] = {}  # user -> Home view id
        self._triggers: dict[str, _Trigger] = {}
        self._response_urls: dict[str, _ResponseUrl] = {}
        self._failures: dict[str, list[tuple[str, int]]] = {}  # method -> [(error, 0)] or [("", retry_after)]
        self._lost_replies: dict[str, int] = {}  # method -> how many more calls take effect but get no reply
        self._gates: dict[str, Gate] = {}
        self._ids = itertools.count(1)
        self._files: dict[str, File] = {}
        self._ts = itertools.count(1)
        self._methods: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "users.info": self._users_info,
            "users.lookupByEmail": self._users_lookup_by_email,
            "conversations.open": self._conversations_open,
            "views.open": self._views_open,
            "views.push": self._views_push,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "usergroups.users.list": self._usergroups_users_list,
            "conversations.history": self._conversations_history,
            "conversations.replies": self._conversations_replies,
            "files.getUploadURLExternal": self._files_get_upload_url_external,
            "files.completeUploadExternal": self._files_complete_upload_external,
        }

    # --- lifecycle ------------------------------------------------------------------------------
    def start(self) -> str:
        """Serve on a free loopback port in a daemon thread; returns the base URL ".../api/"."""
        server = _Server(("127.0.0.1", 0), _Handler)
        server.sim = self
        self._server = server
        self._root = f"http://127.0.0.1:{server.server_port}"
        self.base_url = f"{self._root}/api/"
        threading.Thread(target=server.serve_forever, args=(0.05,), name="slack-sim", daemon=True).start()
        return self.base_url

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> SlackSimulator:
        if self._server is None:
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- inspection -----------------------------------------------------------------------------
    def calls(self, method: str | None = None) -> list[Call]:
        with self._lock:
            return [copy.deepcopy(c) for c in self._calls if method is None or c.method == method]

    def call_count(self) -> int:
        """How many Web API calls (and response_url posts) the app has made so far."""
        with self._lock:
            return len(self._calls)

    def messages(self, channel: str | None = None) -> list[Message]:
        """Every message that exists now (in posting order, as last updated), ephemeral ones included."""
        with self._lock:
            return [_copy(m) for m in self._messages.values() if channel is None or m.channel == channel]

    def message(self, channel: str, ts: str) -> Message:
        with self._lock:
            try:
                return _copy(self._messages[(channel, ts)])
            except KeyError:
                raise KeyError(f"no message {ts} in {channel}; have {list(self._messages)}") from None

    def files(self) -> list[File]:
        """Every file an upload was started for, in order, completed or not."""
        with self._lock:
            return [replace(f) for f in self._files.values()]

    def views(self) -> dict[str, dict[str, Any]]:
        """The modals open now, view_id -> current view (after updates and submitted values)."""
        with self._lock:
            return {vid: copy.deepcopy(self._views[vid]) for vid in self._open_views}

    def view(self, view_id: str) -> dict[str, Any]:
        """Any view ever opened or published, open or closed."""
        with self._lock:
            return copy.deepcopy(self._views[view_id])

    def home(self, user: str) -> dict[str, Any] | None:
        with self._lock:
            view_id = self._homes.get(user)
            return copy.deepcopy(self._views[view_id]) if view_id else None

    def user(self, user_id: str) -> dict[str, Any]:
        """The configured profile of a user, or a made-up one for an id the simulator doesn't know."""
        return dict(self.users.get(user_id) or {"name": user_id.lower(), "real_name": user_id})

    def escape(self, text: str) -> str:
        """What typed text becomes with a slash command's "escape channels, users and links" on
        (manifest: should_escape): `@bob` of a known user is sent as `<@U0BOB|bob>`, as Slack's
        client does once the name is picked from its list."""

        def mention(match: re.Match[str]) -> str:
            name = match.group(1)
            found = next((uid for uid, u in self.users.items() if u.get("name", "").lower() == name.lower()), None)
            return f"<@{found}|{self.users[found]['name']}>" if found else match.group(0)

        return _TYPED_MENTION.sub(mention, text)

    def wait_for(self, predicate: Callable[[], T], timeout: float = 10.0) -> T:
        """Poll until predicate() is truthy and return it; AssertionError with recent calls on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            result = predicate()
            if result:
                return result
            if time.monotonic() > deadline:
                recent = "\n".join(f"  {c.method} {c.error or 'ok'} {_short(c.args)}" for c in self.calls()[-15:])
                raise AssertionError(f"condition not met within {timeout}s; last Slack calls:\n{recent or '  none'}")
            time.sleep(0.02)

    # --- error injection ------------------------------------------------------------------------
    def fail_next(self, method: str, error: str, *, times: int = 1) -> None:
        """The next `times` calls of `method` answer {"ok": false, "error": error}."""
        with self._lock:
            self._failures.setdefault(method, []).extend([(error, 0)] * times)

    def recover(self, method: str) -> None:
        """`method` answers normally again: the failures and rate limits still queued for it are dropped."""
        with self._lock:
            self._failures.pop(method, None)

    def rate_limit_next(self, method: str, retry_after: int = 1, *, times: int = 1) -> None:
        """The next `times` calls of `method` answer HTTP 429 with `Retry-After: retry_after`."""
        with self._lock:
            self._failures.setdefault(method, []).extend([("", retry_after)] * times)

    # --- what Slack hands to the app with each request (used by SlackDriver) ----------------------
    def lose_next_reply(self, method: str, *, times: int = 1) -> None:
        """The next `times` calls of `method` take effect, but the connection drops before the reply
        (what a timeout or a reset looks like to the caller)."""
        with self._lock:
            self._lost_replies[method] = self._lost_replies.get(method, 0) + times

    def take_lost_reply(self, method: str) -> bool:
        with self._lock:
            if self._lost_replies.get(method, 0) <= 0:
                return False
            self._lost_replies[method] -= 1
            return True

    def hold(self, method: str) -> Gate:
        """Calls of `method` wait (before taking effect) until the returned gate is released."""
        gate = self._gates[method] = Gate()
        return gate

    def response_url(
        self,
        *,
        channel: str = "C0GENERAL",
        user: str = "U0ALICE",
        original_ts: str | None = None,
        original_ephemeral: bool = False,
    ) -> str:
        """A fresh "http://127.0.0.1:PORT/response/<id>". POSTs to it become messages in `channel`,
        seen by `user` only unless response_type is in_channel. `original_ts` is the message a click
        came from (what replace_original / delete_original act on). Five uses, 30 minutes."""
        with self._lock:
            key = uuid.uuid4().hex
            self._response_urls[key] = _ResponseUrl(channel, user, self.clock(), original_ts, original_ephemeral)
            return f"{self._root}/response/{key}"

    def trigger_id(self, user: str, *, view_id: str | None = None, trigger_id: str | None = None) -> str:
        """Issue a trigger_id (or register a given one): usable once, within 3 s, by views.open/push."""
        with self._lock:
            trigger_id = trigger_id or f"{next(self._ids)}.{int(self.clock())}.{uuid.uuid4().hex}"
            self._triggers.setdefault(trigger_id, _Trigger(user, self.clock(), view_id))
            return trigger_id

    def set_view_state(self, view_id: str, values: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """Record what the user entered in a modal (state.values shape); returns the view."""
        with self._lock:
            view = self._views[view_id]
            for block_id, actions in values.items():
                view["state"]["values"].setdefault(block_id, {}).update(copy.deepcopy(actions))
            return copy.deepcopy(view)

    def apply_view_response(self, view_id: str, user: str, body: dict[str, Any]) -> None:
        """What Slack does with the app's answer to a view_submission: update, push, clear, keep
        the modal for `errors`, or close it (empty answer)."""
        with self._lock:
            action = body.get("response_action")
            if action == "errors":
                return
            if action == "update":
                self._replace_view(self._views[view_id], body["view"])
            elif action == "push":
                current = self._views[view_id]
                self._new_view(body["view"], user, root=current["root_view_id"], previous=view_id)
            elif action == "clear":
                root = self._views[view_id]["root_view_id"]
                self._open_views = [v for v in self._open_views if self._views[v]["root_view_id"] != root]
            else:
                self.close_view(view_id)

    def close_view(self, view_id: str) -> None:
        with self._lock:
            if view_id in self._open_views:
                self._open_views.remove(view_id)

    # --- HTTP entry points ----------------------------------------------------------------------
    def handle_api(self, method: str, headers: dict[str, str], args: dict[str, Any]) -> tuple[int, dict, dict]:
        """One Web API call: (HTTP status, extra headers, JSON body)."""
        auth, form_token = headers.get("authorization", ""), args.pop("token", None)
        token = auth[7:].strip() if auth.lower().startswith("bearer ") else form_token
        gate = self._gates.pop(method, None)
        if gate is not None:
            gate.pass_through()
        with self._lock:
            call = Call(method=method, args=args, token=token)
            self._calls.append(call)
            status, extra_headers, body = self._dispatch(method, token, args)
            call.error = None if body.get("ok") else body.get("error")
        return status, {"X-OAuth-Scopes": ",".join(self.scopes), **extra_headers}, body

    def _dispatch(self, method: str, token: str | None, args: dict[str, Any]) -> tuple[int, dict, dict]:
        handler = self._methods.get(method)
        if handler is None:
            return 200, {}, {"ok": False, "error": "unknown_method", "req_method": method}
        if not token:
            return 200, {}, {"ok": False, "error": "not_authed"}
        if token != self.bot_token:
            return 200, {}, {"ok": False, "error": "invalid_auth"}
        queue = self._failures.get(method)
        if queue:
            error, retry_after = queue.pop(0)
            if not error:
                return 429, {"Retry-After": str(retry_after)}, {"ok": False, "error": "ratelimited"}
            return 200, {}, {"ok": False, "error": error}
        needed = NEEDED_SCOPE.get(method)
        if needed and needed not in self.scopes:
            return 200, {}, {"ok": False, "error": "missing_scope", "needed": needed, "provided": ",".join(self.scopes)}
        try:
            return 200, {}, {"ok": True, **handler(args)}
        except SlackApiFailure as failure:
            return 200, {}, {"ok": False, "error": failure.error, **failure.extra}

    def handle_response_url(self, key: str, body: dict[str, Any]) -> tuple[int, str]:
        """A POST to a response_url (approximation: the error texts for used or expired URLs)."""
        with self._lock:
            self._calls.append(Call(method="response_url", args=copy.deepcopy(body), token=None))
            url = self._response_urls.get(key)
            if url is None:
                return 404, "no_such_url"
            if url.uses >= RESPONSE_URL_USES:
                return 404, "used_url"
            if self.clock() - url.issued_at > RESPONSE_URL_TTL:
                return 404, "expired_url"
            url.uses += 1
            original = self._messages.get((url.channel, url.original_ts)) if url.original_ts else None
            if body.get("delete_original"):
                if original is not None:
                    del self._messages[(original.channel, original.ts)]
                return 200, "ok"
            try:
                checked = _blocks(body.get("blocks") or [])
            except SlackApiFailure as failure:
                return 400, failure.error  # what Slack answers a response_url post over a Block Kit limit
            text, blocks = body.get("text") or "", _with_ids(checked)
            if body.get("replace_original") and url.original_ts:
                if original is not None:
                    original.text, original.blocks, original.updates = text, blocks, original.updates + 1
                else:  # e.g. a slash command's acknowledgement, which Slack shows but the fake never saw
                    self._store(
                        url.channel,
                        text,
                        blocks,
                        body.get("thread_ts"),
                        ts=url.original_ts,
                        user=url.user if url.original_ephemeral else None,
                        ephemeral=url.original_ephemeral,
                    )
                return 200, "ok"
            ephemeral = body.get("response_type", "ephemeral") != "in_channel"
            posted = self._store(
                url.channel,
                text,
                blocks,
                body.get("thread_ts"),
                user=url.user if ephemeral else None,
                ephemeral=ephemeral,
            )
            if url.original_ts is None:  # a slash command's URL: later replace_original acts on this reply
                url.original_ts, url.original_ephemeral = posted.ts, ephemeral
            return 200, "ok"

    def handle_upload(self, file_id: str, data: bytes) -> tuple[int, str]:
        """A POST of a file's bytes to the URL files.getUploadURLExternal gave (approximation: the
        status and text for an unknown URL)."""
        with self._lock:
            self._calls.append(Call(method="upload", args={"file_id": file_id, "bytes": len(data)}, token=None))
            found = self._files.get(file_id)
            if found is None or found.completed:
                return 404, "not found"
            found.data = data
            return 200, f"OK - {len(data)}"

    # --- Web API methods ------------------------------------------------------------------------
    def _auth_test(self, args: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": f"https://{TEAM_DOMAIN}.slack.com/",
            "team": "Simulated Workspace",
            "user": "notebook-bot",
            "team_id": self.team_id,
            "user_id": BOT_USER_ID,
            "bot_id": BOT_ID,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, args: dict[str, Any]) -> dict[str, Any]:
        channel = _dm_channel(_require(args, "channel"))
        text, blocks = _message_content(args)
        message = self._store(channel, text, blocks, args.get("thread_ts") or None, user=None, ephemeral=False)
        message.metadata = args.get("metadata") or None
        return {"channel": channel, "ts": message.ts, "message": self.as_api_message(message)}

    def _check_history_scope(self, channel: str) -> None:
        needed = HISTORY_SCOPE.get(channel[:1], "channels:history")
        if needed not in self.scopes:
            raise SlackApiFailure("missing_scope", needed=needed, provided=",".join(self.scopes))

    def _conversations_history(self, args: dict[str, Any]) -> dict[str, Any]:
        """Newest first, top-level messages only (replies live in conversations.replies)."""
        channel = _dm_channel(_require(args, "channel"))
        self._check_history_scope(channel)
        found = [
            m
            for m in self._messages.values()
            if m.channel == channel and not m.ephemeral and (m.thread_ts is None or m.thread_ts == m.ts)
        ]
        return self._page(found, args)

    def _conversations_replies(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = _dm_channel(_require(args, "channel")), _require(args, "ts")
        self._check_history_scope(channel)
        if (channel, ts) not in self._messages:
            raise SlackApiFailure("thread_not_found")
        found = [
            m for m in self._messages.values() if m.channel == channel and not m.ephemeral and ts in (m.ts, m.thread_ts)
        ]
        return self._page(found, args)

    def _page(self, found: list[Message], args: dict[str, Any]) -> dict[str, Any]:
        found.sort(key=lambda m: float(m.ts), reverse=True)
        limit = int(args.get("limit") or 100)
        with_metadata = str(args.get("include_all_metadata", "")).lower() in ("1", "true")
        messages = []
        for message in found[:limit]:
            api = self.as_api_message(message)
            if with_metadata and message.metadata:
                api["metadata"] = copy.deepcopy(message.metadata)
            messages.append(api)
        return {"messages": messages, "has_more": len(found) > limit}

    def _chat_post_ephemeral(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, user = _require(args, "channel"), _require(args, "user")
        if user not in self.users:
            raise SlackApiFailure("user_not_found")
        text, blocks = _message_content(args)
        message = self._store(
            _dm_channel(channel), text, blocks, args.get("thread_ts") or None, user=user, ephemeral=True
        )
        return {"message_ts": message.ts}

    def _chat_update(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = _dm_channel(_require(args, "channel")), _require(args, "ts")
        message = self._messages.get((channel, ts))
        if message is None or message.ephemeral:  # ephemeral messages can't be updated with chat.update
            raise SlackApiFailure("message_not_found")
        if "text" not in args and "blocks" not in args:
            raise SlackApiFailure("no_text")
        if "text" in args:
            message.text = args["text"] or ""
        if "blocks" in args:  # absent: the previous blocks stay; [] removes them
            message.blocks = _with_ids(_blocks(args["blocks"]))
        message.updates += 1
        return {"channel": channel, "ts": ts, "text": message.text, "message": self.as_api_message(message)}

    def _chat_delete(self, args: dict[str, Any]) -> dict[str, Any]:
        channel, ts = _dm_channel(_require(args, "channel")), _require(args, "ts")
        if self._messages.pop((channel, ts), None) is None:
            raise SlackApiFailure("message_not_found")
        return {"channel": channel, "ts": ts}

    def _users_info(self, args: dict[str, Any]) -> dict[str, Any]:
        user_id = _require(args, "user")
        if user_id not in self.users:
            raise SlackApiFailure("user_not_found")
        return {"user": self._api_user(user_id)}

    def _users_lookup_by_email(self, args: dict[str, Any]) -> dict[str, Any]:
        email = _require(args, "email").lower()
        for user_id, user in self.users.items():
            if (user.get("email") or "").lower() == email:
                return {"user": self._api_user(user_id)}
        raise SlackApiFailure("users_not_found")

    def _conversations_open(self, args: dict[str, Any]) -> dict[str, Any]:
        if args.get("channel"):
            return {"channel": {"id": args["channel"]}, "no_op": True, "already_open": True}
        users = [u.strip() for u in _require(args, "users").split(",") if u.strip()]
        unknown = [u for u in users if u not in self.users]
        if unknown:
            raise SlackApiFailure("user_not_found")
        if len(users) == 1:
            return {"channel": {"id": "D" + users[0]}}
        return {"channel": {"id": "G" + uuid.uuid5(uuid.NAMESPACE_OID, ",".join(sorted(users))).hex[:10].upper()}}

    def _usergroups_users_list(self, args: dict[str, Any]) -> dict[str, Any]:
        group = _require(args, "usergroup")
        if group not in self.usergroups:
            raise SlackApiFailure("no_such_subteam")
        return {"users": list(self.usergroups[group])}

    def _files_get_upload_url_external(self, args: dict[str, Any]) -> dict[str, Any]:
        filename = _require(args, "filename")
        try:
            length = int(_require(args, "length"))
        except ValueError:
            raise SlackApiFailure("invalid_arguments") from None
        if length <= 0:
            raise SlackApiFailure("invalid_length")  # (approximation: the error for an empty file)
        file_id = f"F{next(self._ids):08d}"
        self._files[file_id] = File(file_id, filename, length, args.get("alt_txt") or None)
        return {"upload_url": f"{self._root}/upload/{file_id}", "file_id": file_id}

    def _files_complete_upload_external(self, args: dict[str, Any]) -> dict[str, Any]:
        """Shares the uploaded files with `channel_id` (or `channels`) in one message, `initial_comment`
        its text; without a channel they stay private to the app, as Slack does."""
        files = _require(args, "files")
        entries = json.loads(files) if isinstance(files, str) else files
        if (
            not isinstance(entries, list)
            or not entries
            or not all(isinstance(e, dict) and e.get("id") for e in entries)
        ):
            raise SlackApiFailure("invalid_arguments")
        found = [self._files.get(e["id"]) for e in entries]
        if any(f is None or f.completed or f.data is None for f in found):
            raise SlackApiFailure("file_not_found")  # (approximation: never uploaded, or completed already)
        channels = [c for c in [args.get("channel_id"), *str(args.get("channels") or "").split(",")] if c]
        for f, entry in zip(found, entries, strict=True):
            assert f is not None
            f.completed, f.title, f.channels = True, entry.get("title") or f.filename, tuple(channels)
        for channel in channels:
            message = self._store(
                _dm_channel(channel),
                args.get("initial_comment") or "",
                [],
                args.get("thread_ts") or None,
                user=None,
                ephemeral=False,
            )
            message.files = [f.id for f in found if f is not None]
        return {
            "files": [
                {"id": f.id, "name": f.filename, "title": f.title, "size": len(f.data or b"")} for f in found if f
            ]
        }

    def _views_open(self, args: dict[str, Any]) -> dict[str, Any]:
        trigger = self._use_trigger(args)
        view = _check_view(args, "modal")
        return {"view": copy.deepcopy(self._new_view(view, trigger.user))}

    def _views_push(self, args: dict[str, Any]) -> dict[str, Any]:
        trigger = self._use_trigger(args)
        view = _check_view(args, "modal")
        if trigger.view_id not in self._open_views:
            raise SlackApiFailure(
                "invalid_arguments", response_metadata={"messages": ["[ERROR] views.push needs a trigger from a modal"]}
            )
        parent = self._views[trigger.view_id]
        if sum(1 for v in self._open_views if self._views[v]["root_view_id"] == parent["root_view_id"]) >= 3:
            raise SlackApiFailure("push_limit_reached")
        return {
            "view": copy.deepcopy(
                self._new_view(view, trigger.user, root=parent["root_view_id"], previous=parent["id"])
            )
        }

    def _views_update(self, args: dict[str, Any]) -> dict[str, Any]:
        view = _check_view(args, None)
        current = self._find_view(args.get("view_id"), args.get("external_id"))
        if args.get("hash") and args["hash"] != current["hash"]:
            raise SlackApiFailure("hash_conflict")
        return {"view": copy.deepcopy(self._replace_view(current, view))}

    def _views_publish(self, args: dict[str, Any]) -> dict[str, Any]:
        user = _require(args, "user_id")
        view = _check_view(args, "home")
        if user not in self.users:
            raise SlackApiFailure("user_not_found")
        existing = self._views.get(self._homes.get(user, ""))
        if existing is not None:
            if args.get("hash") and args["hash"] != existing["hash"]:
                raise SlackApiFailure("hash_conflict")
            return {"view": copy.deepcopy(self._replace_view(existing, view))}
        home = self._new_view(view, user, open_modal=False)
        self._homes[user] = home["id"]
        return {"view": copy.deepcopy(home)}

    # --- helpers --------------------------------------------------------------------------------
    def _next_ts(self) -> str:
        micros = next(self._ts) * 100
        return f"{FIRST_TS + micros // 1_000_000}.{micros % 1_000_000:06d}"

    def _store(
        self,
        channel: str,
        text: str,
        blocks: list[dict[str, Any]],
        thread_ts: str | None,
        *,
        user: str | None,
        ephemeral: bool,
        ts: str | None = None,
    ) -> Message:
        message = Message(
            channel=channel,
            ts=ts or self._next_ts(),
            text=text,
            blocks=_with_ids(blocks),
            thread_ts=thread_ts,
            user=user,
            ephemeral=ephemeral,
            updates=0,
        )
        self._messages[(channel, message.ts)] = message
        return message

    def as_api_message(self, message: Message) -> dict[str, Any]:
        """A message as the Web API and interaction payloads show it."""
        api: dict[str, Any] = {
            "type": "message",
            "user": BOT_USER_ID,
            "bot_id": BOT_ID,
            "app_id": APP_ID,
            "team": self.team_id,
            "ts": message.ts,
            "text": message.text,
            "blocks": copy.deepcopy(message.blocks),
        }
        if message.thread_ts:
            api["thread_ts"] = message.thread_ts
        return api

    def _api_user(self, user_id: str) -> dict[str, Any]:
        user = self.users[user_id]
        profile: dict[str, Any] = {
            "real_name": user.get("real_name", ""),
            "display_name": user.get("name", ""),
            "real_name_normalized": user.get("real_name", ""),
        }
        if user.get("email") and "users:read.email" in self.scopes:
            profile["email"] = user["email"]
        return {
            "id": user_id,
            "team_id": self.team_id,
            "name": user.get("name", user_id.lower()),
            "deleted": False,
            "real_name": user.get("real_name", ""),
            "tz": user.get("tz", "UTC"),
            "tz_label": user.get("tz", "UTC"),
            "tz_offset": user.get("tz_offset", 0),
            "is_bot": user.get("is_bot", False),
            "is_admin": user.get("is_admin", False),
            "profile": profile,
        }

    def _use_trigger(self, args: dict[str, Any]) -> _Trigger:
        trigger = self._triggers.get(_require(args, "trigger_id"))
        if trigger is None:
            raise SlackApiFailure("invalid_trigger_id")
        if trigger.used:
            raise SlackApiFailure("exchanged_trigger_id")
        if self.clock() - trigger.issued_at > TRIGGER_TTL:
            raise SlackApiFailure("expired_trigger_id")
        trigger.used = True
        return trigger

    def _new_view(
        self,
        view: dict[str, Any],
        user: str,
        *,
        root: str | None = None,
        previous: str | None = None,
        open_modal: bool = True,
    ) -> dict[str, Any]:
        view_id = f"V{next(self._ids):08d}"
        stored = {
            "id": view_id,
            "team_id": self.team_id,
            "type": view.get("type"),
            **VIEW_DEFAULTS,
            **copy.deepcopy(view),
            "blocks": _with_ids(view.get("blocks") or []),
            "state": {"values": {}},
            "hash": self._new_hash(),
            "root_view_id": root or view_id,
            "previous_view_id": previous,
            "app_id": APP_ID,
            "bot_id": BOT_ID,
            "app_installed_team_id": self.team_id,
            "user": user,
        }
        self._views[view_id] = stored
        if open_modal:
            self._open_views.append(view_id)
        return stored

    def _replace_view(self, current: dict[str, Any], view: dict[str, Any]) -> dict[str, Any]:
        kept = {
            k: current[k]
            for k in (
                "id",
                "team_id",
                "state",
                "root_view_id",
                "previous_view_id",
                "app_id",
                "bot_id",
                "app_installed_team_id",
                "user",
            )
        }
        current.clear()
        current.update(
            {
                **VIEW_DEFAULTS,
                **copy.deepcopy(view),
                **kept,
                "blocks": _with_ids(view.get("blocks") or []),
                "hash": self._new_hash(),
            }
        )
        return current

    def _find_view(self, view_id: str | None, external_id: str | None) -> dict[str, Any]:
        if not view_id and not external_id:
            raise SlackApiFailure(
                "invalid_arguments", response_metadata={"messages": ["[ERROR] view_id or external_id is required"]}
            )
        for view in self._views.values():
            if (view_id and view["id"] == view_id) or (external_id and view.get("external_id") == external_id):
                return view
        raise SlackApiFailure("not_found")

    def _new_hash(self) -> str:
        return f"{int(self.clock())}.{uuid.uuid4().hex[:8]}"


# --- HTTP ---------------------------------------------------------------------------------------
class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 128  # socketserver's 5 drops a burst of connections (a sweep's DMs) for a second
    sim: SlackSimulator


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_POST(self) -> None:
        self._serve()

    def do_GET(self) -> None:
        self._serve()

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def _serve(self) -> None:
        url = urlsplit(self.path)
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        headers = {k.lower(): v for k, v in self.headers.items()}
        sim = self.server.sim
        if url.path.startswith("/api/"):
            args = _parse_args(url.query, raw, headers.get("content-type", ""))
            method = url.path[len("/api/") :]
            status, extra, body = sim.handle_api(method, headers, args)
            if sim.take_lost_reply(method):
                self.close_connection = True  # it happened, but the caller never hears so
                return
            self._reply(status, json.dumps(body), "application/json; charset=utf-8", extra)
        elif url.path.startswith("/upload/") and self.command == "POST":
            status, text = sim.handle_upload(url.path[len("/upload/") :], raw)
            self._reply(status, text, "text/plain")
        elif url.path.startswith("/response/") and self.command == "POST":
            try:
                body = json.loads(raw or b"{}")
            except ValueError:
                self._reply(400, "invalid_payload", "text/plain")
                return
            status, text = sim.handle_response_url(url.path[len("/response/") :], body)
            self._reply(status, text, "text/plain")
        else:
            self._reply(404, "not found", "text/plain")

    def _reply(self, status: int, body: str, content_type: str, headers: dict[str, str] | None = None) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


def _parse_args(query: str, raw: bytes, content_type: str) -> dict[str, Any]:
    """Arguments from the query string and a form or JSON body, JSON fields of forms decoded."""
    args: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    if "json" in content_type:
        try:
            decoded = json.loads(raw or b"{}")
        except ValueError:
            decoded = {}
        args.update(decoded if isinstance(decoded, dict) else {})
        return args
    args.update(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True))
    for name in JSON_FORM_FIELDS & args.keys():
        if isinstance(args[name], str) and args[name].startswith(("[", "{")):
            with contextlib.suppress(ValueError):
                args[name] = json.loads(args[name])
    return args


# --- pure helpers -------------------------------------------------------------------------------
def _require(args: dict[str, Any], name: str) -> Any:
    value = args.get(name)
    if value in (None, ""):
        raise SlackApiFailure("invalid_arguments", response_metadata={"messages": [f"[ERROR] missing '{name}'"]})
    return value


def _dm_channel(channel: str) -> str:
    """Posting to a user id posts in the bot's DM with that user."""
    return "D" + channel if channel[:1] in ("U", "W") else channel


def _blocks(value: Any) -> list[dict[str, Any]]:
    if isinstance(value, str):
        try:
            value = json.loads(value or "[]")
        except ValueError:
            raise SlackApiFailure("invalid_blocks_format") from None
    if not isinstance(value, list) or not all(isinstance(b, dict) and b.get("type") for b in value):
        raise SlackApiFailure("invalid_blocks")
    _check_limits(value)
    return value


def _check_limits(blocks: list[dict[str, Any]]) -> None:
    """Slack refuses blocks over a Block Kit limit; slack_sdk's models know those limits."""
    from slack_sdk.errors import SlackObjectFormationError
    from slack_sdk.models.blocks import Block

    for i, block in enumerate(blocks):
        try:
            model = Block.parse(block)
            if model is None:
                raise SlackObjectFormationError(f"unknown block type {block.get('type')!r}")
            model.to_dict()
        except (SlackObjectFormationError, TypeError, KeyError, AttributeError) as exc:
            raise SlackApiFailure(
                "invalid_blocks", response_metadata={"messages": [f"[ERROR] {exc} [json-pointer:/blocks/{i}]"]}
            ) from None


def _message_content(args: dict[str, Any]) -> tuple[str, list[dict[str, Any]]]:
    text = args.get("text") or ""
    blocks = _blocks(args["blocks"]) if args.get("blocks") else []
    if not text and not blocks:
        raise SlackApiFailure("no_text")
    if len(text) > 40_000:
        raise SlackApiFailure("msg_too_long")
    if len(blocks) > 50:
        raise SlackApiFailure("invalid_blocks", response_metadata={"messages": ["[ERROR] no more than 50 items"]})
    return text, blocks


def _check_view(args: dict[str, Any], expected_type: str | None) -> dict[str, Any]:
    """The documented limits of a view payload; invalid_arguments like Slack when one is broken."""
    view = _require(args, "view")
    if isinstance(view, str):
        view = json.loads(view)
    problems = []
    if expected_type and view.get("type") != expected_type:
        problems.append(f"view type must be {expected_type}")
    if view.get("type") == "modal":
        title = (view.get("title") or {}).get("text", "")
        if not title or len(title) > 24:
            problems.append("title must be 1-24 characters [json-pointer:/view/title/text]")
        if any(b.get("type") == "input" for b in view.get("blocks") or []) and not view.get("submit"):
            problems.append("a view with input blocks needs submit [json-pointer:/view/submit]")
    if len(view.get("private_metadata") or "") > 3000:
        problems.append("must be less than 3001 characters [json-pointer:/view/private_metadata]")
    if len(view.get("callback_id") or "") > 255:
        problems.append("must be less than 256 characters [json-pointer:/view/callback_id]")
    if len(view.get("blocks") or []) > 100:
        problems.append("no more than 100 items allowed [json-pointer:/view/blocks]")
    try:
        _check_limits(list(view.get("blocks") or []))
    except SlackApiFailure as failure:
        problems += [m.removeprefix("[ERROR] ") for m in failure.extra.get("response_metadata", {}).get("messages", [])]
    if problems:
        raise SlackApiFailure("invalid_arguments", response_metadata={"messages": [f"[ERROR] {p}" for p in problems]})
    return view


def _with_ids(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Copy of blocks with the block_id (and action_id) Slack assigns when the app gave none."""
    filled = copy.deepcopy(blocks)
    for block in filled:
        block.setdefault("block_id", uuid.uuid4().hex[:5])
        elements = list(block.get("elements") or []) if block.get("type") == "actions" else []
        elements += [block[k] for k in ("accessory", "element") if isinstance(block.get(k), dict)]
        for element in elements:
            if element.get("type") not in (None, "mrkdwn", "plain_text", "image"):
                element.setdefault("action_id", uuid.uuid4().hex[:5])
    return filled


def _copy(message: Message) -> Message:
    return replace(message, blocks=copy.deepcopy(message.blocks), files=list(message.files or []) or None)


def _short(args: dict[str, Any]) -> str:
    text = json.dumps(args, default=str)
    return text if len(text) <= 160 else text[:157] + "..."
