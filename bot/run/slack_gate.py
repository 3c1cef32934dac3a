"""The gate in front of Bolt: nothing of a Slack request is read before its signature verifies.

Slack signs `v0:{X-Slack-Request-Timestamp}:{raw body}` with the app's signing secret
(HMAC-SHA256, hex, `v0=` prefix) and the bot refuses timestamps more than 5 minutes away. The
gate checks, in this order, and answers a plain 4xx at the first failure:

  size        Content-Length present (411) and at most MAX_BODY bytes (413); the body complete (400)
  signature   timestamp ASCII digits within 5 minutes either way, signature `v0=` + 64 hex, the
              HMAC equal in constant time, and not a signature already seen (401)
  parsing     a content type Slack sends (415), UTF-8 (400), well-formed percent-encoding and an
              interaction `payload` that is a JSON object, or a JSON object body (400)

Only then does Bolt see the request. A refusal is logged with its reason, never with the body.
Events API retries (X-Slack-Retry-Num) of a delivery this process already took are acked
without reaching a listener a second time.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

MAX_BODY = 1024 * 1024  # bytes; Slack's largest payloads (a full modal's view_submission) are far smaller
WINDOW = 300  # seconds a timestamp may be away from now, either way (Slack's rule)
FORM = "application/x-www-form-urlencoded"
JSON = "application/json"
_TIMESTAMP = re.compile(r"[0-9]{1,12}")
_SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")


@dataclass(frozen=True)
class Refusal:
    status: str  # e.g. "401 Unauthorized"
    reason: str  # what is wrong, in words safe to log and to answer


@dataclass(frozen=True)
class Verified:
    raw: bytes
    body: dict[str, Any]  # the parsed body (the interaction payload for interactions)
    retry_of_seen_event: bool = False


class _Recent:
    """Keys seen lately (signatures, event ids), each kept `ttl` seconds, at most `size` of them."""

    def __init__(self, ttl: float, size: int, clock: Callable[[], float]) -> None:
        self._ttl, self._size, self._clock = ttl, size, clock
        self._seen: OrderedDict[str, float] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, key: str) -> bool:
        """Remember `key`; False when it was already there."""
        now = self._clock()
        with self._lock:
            while self._seen and (next(iter(self._seen.values())) < now - self._ttl or len(self._seen) >= self._size):
                self._seen.popitem(last=False)
            if key in self._seen:
                return False
            self._seen[key] = now
            return True

    def __contains__(self, key: str) -> bool:
        with self._lock:
            return key in self._seen


class SlackGate:
    def __init__(
        self,
        signing_secret: str | None,
        *,
        clock: Callable[[], float] = time.time,
        max_body: int = MAX_BODY,
    ) -> None:
        self._secret = (signing_secret or "").encode()
        self._clock = clock
        self._max_body = max_body
        self._signatures = _Recent(2 * WINDOW, 100_000, clock)  # a replay is refused while its timestamp is valid
        self._events = _Recent(3600, 20_000, clock)  # Slack retries a delivery for up to about 5 minutes

    def check(self, environ: dict[str, Any]) -> Verified | Refusal:
        raw = self._read(environ)
        if isinstance(raw, Refusal):
            return raw
        refusal = self._verify(environ, raw)
        if refusal is not None:
            return refusal
        body = parse_body(environ.get("CONTENT_TYPE", ""), raw)
        if isinstance(body, Refusal):
            return body
        return Verified(raw, body, retry_of_seen_event=self._seen_event(environ, body))

    # --- size -----------------------------------------------------------------------------------
    def _read(self, environ: dict[str, Any]) -> bytes | Refusal:
        length = str(environ.get("CONTENT_LENGTH") or "").strip()
        if not length:
            return Refusal("411 Length Required", "no Content-Length")
        if not length.isascii() or not length.isdigit() or len(length) > 12:
            return Refusal("400 Bad Request", "malformed Content-Length")
        if int(length) > self._max_body:
            return Refusal("413 Content Too Large", f"body over {self._max_body} bytes")
        raw = environ["wsgi.input"].read(int(length)) if int(length) else b""
        if len(raw) != int(length):
            return Refusal("400 Bad Request", "body shorter than its Content-Length")
        return raw

    # --- signature --------------------------------------------------------------------------------
    def _verify(self, environ: dict[str, Any], raw: bytes) -> Refusal | None:
        if not self._secret:
            return Refusal("401 Unauthorized", "no signing secret configured (SLACK_SIGNING_SECRET)")
        timestamp = environ.get("HTTP_X_SLACK_REQUEST_TIMESTAMP")
        signature = environ.get("HTTP_X_SLACK_SIGNATURE")
        if timestamp is None or signature is None:
            return Refusal("401 Unauthorized", "missing X-Slack-Request-Timestamp or X-Slack-Signature")
        if not _TIMESTAMP.fullmatch(timestamp):
            return Refusal("401 Unauthorized", "malformed X-Slack-Request-Timestamp")
        age = self._clock() - int(timestamp)
        if age > WINDOW:
            return Refusal("401 Unauthorized", "stale X-Slack-Request-Timestamp")
        if age < -WINDOW:
            return Refusal("401 Unauthorized", "X-Slack-Request-Timestamp in the future")
        if not _SIGNATURE.fullmatch(signature):
            return Refusal("401 Unauthorized", "malformed X-Slack-Signature")
        base = b"v0:" + timestamp.encode() + b":" + raw
        expected = "v0=" + hmac.new(self._secret, base, hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return Refusal("401 Unauthorized", "invalid X-Slack-Signature")
        if not self._signatures.add(signature):
            return Refusal("401 Unauthorized", "replayed request (this signature was already used)")
        return None

    # --- retries ----------------------------------------------------------------------------------
    def _seen_event(self, environ: dict[str, Any], body: dict[str, Any]) -> bool:
        """Whether this is a retry of an Events API delivery this process already took (and records it)."""
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if not isinstance(event_id, str) or not event_id:
            return False
        first = self._events.add(event_id)
        return not first and environ.get("HTTP_X_SLACK_RETRY_NUM") is not None


def parse_body(content_type: str, raw: bytes) -> dict[str, Any] | Refusal:
    """The body as Slack means it: an interaction's `payload` object, an event's JSON object, or a
    slash command's form fields; a Refusal when it is none of those."""
    media, _, params = content_type.partition(";")
    media = media.strip().lower()
    charset = next((p.split("=", 1)[1].strip().strip('"').lower() for p in params.split(";") if "=" in p), "utf-8")
    if media not in (FORM, JSON):
        return Refusal("415 Unsupported Media Type", "not a content type Slack sends")
    if charset not in ("utf-8", "utf8"):
        return Refusal("415 Unsupported Media Type", "not UTF-8")
    try:
        text = raw.decode("utf-8")
        if media == JSON:
            return _object(json.loads(text))
        if _BAD_PERCENT.search(text):
            return Refusal("400 Bad Request", "malformed percent-encoding")
        fields = dict(parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict"))
        if "payload" in fields:
            return _object(json.loads(fields["payload"]))
        return fields
    except (UnicodeDecodeError, ValueError, RecursionError):  # JSONDecodeError is a ValueError
        return Refusal("400 Bad Request", "body is not well-formed UTF-8 form data or JSON")


def _object(value: Any) -> dict[str, Any] | Refusal:
    if not isinstance(value, dict):
        return Refusal("400 Bad Request", "body is not a JSON object")
    return value
