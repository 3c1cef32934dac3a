"""Who may call POST /tasks/reconcile: in production, only Cloud Scheduler with an OIDC token.

Cloud Scheduler signs an OIDC ID token as its service account (`--oidc-service-account-email`)
for the audience it is given (`--oidc-token-audience`). The bot checks, for every call:
  - the token's signature against Google's published certificates, and its expiry;
  - the issuer (accounts.google.com) and the audience (NOTEBOOK_BOT_TASK_AUDIENCE);
  - the token's `email` is the scheduler's service account (NOTEBOOK_BOT_TASK_INVOKER) and is
    verified. The audience alone proves nothing: any Google account can mint an ID token for
    any audience, so without an expected invoker every call is refused.

Outside Cloud Run, a shared bearer token does instead: NOTEBOOK_BOT_TASK_TOKEN (at least 32
characters, compared in constant time); with both set, either one lets a call in.

With neither, the endpoint refuses every call. NOTEBOOK_BOT_TASK_OPEN=1 opens it to anyone, for
local development only: the process says so in a warning at start-up, and on Cloud Run
(K_SERVICE is set) the switch is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from bot.run.logs import register_secret
from bot.run.settings import Settings

log = logging.getLogger(__name__)

GOOGLE_CERTS_URL = "https://www.googleapis.com/oauth2/v1/certs"
GOOGLE_ISSUERS = ("accounts.google.com", "https://accounts.google.com")
CLOCK_SKEW_SECONDS = 30
DEFAULT_CERTS_TTL = 300.0
_MAX_AGE = re.compile(r"max-age=(\d+)")

Authorizer = Callable[[dict[str, Any]], str | None]


class CertificateCache:
    """Google's token-signing certificates, fetched on first use and kept for their max-age.

    A token signed by a key id the cache doesn't know triggers one refetch (keys rotate), at
    most every `min_refetch` seconds, so a flood of forged tokens can't turn into a flood of
    fetches.
    """

    def __init__(
        self,
        url: str = GOOGLE_CERTS_URL,
        *,
        request: Any = None,
        clock: Callable[[], float] = time.time,
        min_refetch: float = 30.0,
    ) -> None:
        self.url = url
        self._request = request
        self._clock = clock
        self._min_refetch = min_refetch
        self._certs: dict[str, str] = {}
        self._expires = 0.0
        self._fetched = float("-inf")
        self._lock = threading.Lock()

    def get(self, key_id: str | None) -> dict[str, str]:
        with self._lock:
            now = self._clock()
            stale = now >= self._expires
            unknown = key_id is not None and key_id not in self._certs
            if stale or (unknown and now - self._fetched >= self._min_refetch):
                self._fetch(now)
            return dict(self._certs)

    def _fetch(self, now: float) -> None:
        import json

        request = self._request
        if request is None:
            from google.auth.transport.requests import Request

            request = self._request = Request()
        self._fetched = now
        response = request(self.url, method="GET", timeout=10)
        if response.status != 200:
            raise ValueError(f"could not fetch Google's certificates (HTTP {response.status})")
        self._certs = json.loads(response.data.decode("utf-8"))
        ttl = DEFAULT_CERTS_TTL
        cache_control = _header(response.headers, "cache-control")
        match = _MAX_AGE.search(cache_control or "")
        if match:
            ttl = min(float(match.group(1)), 24 * 3600.0)
        self._expires = now + ttl


def verify_invoker_token(token: str, *, audience: str, invoker: str, certs: CertificateCache) -> dict[str, Any]:
    """The token's claims if it is a Google-signed ID token for `audience` issued to `invoker`.

    Raises ValueError saying what is wrong otherwise.
    """
    from google.auth import exceptions, jwt

    try:
        header = jwt.decode_header(token)
    except Exception:
        raise ValueError("malformed token") from None
    key_id = header.get("kid")
    available = certs.get(key_id)
    if key_id not in available:
        raise ValueError("signed by an unknown key")
    try:
        claims = jwt.decode(
            token, certs={key_id: available[key_id]}, audience=audience, clock_skew_in_seconds=CLOCK_SKEW_SECONDS
        )
    except (ValueError, exceptions.GoogleAuthError) as exc:
        raise ValueError(_reason(str(exc))) from None
    if claims.get("iss") not in GOOGLE_ISSUERS:
        raise ValueError("not issued by Google")
    email = str(claims.get("email") or "")
    if email.lower() != invoker.lower():
        raise ValueError(f"issued to {email or 'no email'}, not the scheduler's service account")
    if claims.get("email_verified") is not True:
        raise ValueError("the token's email is not verified")
    return dict(claims)


def task_authorizer(
    settings: Settings,
    *,
    env: Mapping[str, str] | None = None,
    certs_url: str = GOOGLE_CERTS_URL,
    request: Any = None,
    clock: Callable[[], float] = time.time,
) -> Authorizer:
    """A check for POST /tasks/reconcile that gives a refusal reason, or None to allow.

    `certs_url` and `request` are where and how Google's certificates are fetched (tests serve
    their own certificates on loopback and sign tokens with their own key).
    """
    e = os.environ if env is None else env
    on_cloud_run = bool(e.get("K_SERVICE"))
    checks: list[Authorizer] = []
    if settings.task_token:
        if len(settings.task_token) < MIN_TOKEN_LENGTH:
            log.error("NOTEBOOK_BOT_TASK_TOKEN is shorter than %d characters: it is not used", MIN_TOKEN_LENGTH)
        else:
            register_secret(settings.task_token)
            checks.append(_token_check(settings.task_token))
    if settings.task_audience:
        invoker = settings.task_invoker or e.get("NOTEBOOK_BOT_TASK_INVOKER") or None
        if not invoker:
            log.error("NOTEBOOK_BOT_TASK_INVOKER is not set: POST /tasks/reconcile refuses OIDC tokens")
            checks.append(lambda environ: "task endpoint not configured (NOTEBOOK_BOT_TASK_INVOKER)")
        else:
            certs = CertificateCache(certs_url, request=request, clock=clock)
            checks.append(_oidc_check(settings.task_audience, invoker, certs))
    if checks:
        return _any_of(checks)
    if settings.task_open and not on_cloud_run:
        log.warning(
            "NOTEBOOK_BOT_TASK_OPEN is set: POST /tasks/reconcile runs a pass for anyone who calls it. "
            "For local development only; set NOTEBOOK_BOT_TASK_AUDIENCE or NOTEBOOK_BOT_TASK_TOKEN elsewhere."
        )
        return lambda environ: None
    if settings.task_open:
        log.error("NOTEBOOK_BOT_TASK_OPEN is ignored on Cloud Run: POST /tasks/reconcile refuses every call")
    else:
        log.warning("POST /tasks/reconcile is not configured and refuses every call (%s)", NOT_CONFIGURED)
    return lambda environ: f"task endpoint not configured ({NOT_CONFIGURED})"


MIN_TOKEN_LENGTH = 32
NOT_CONFIGURED = (
    "set NOTEBOOK_BOT_TASK_AUDIENCE and NOTEBOOK_BOT_TASK_INVOKER for Cloud Scheduler, NOTEBOOK_BOT_TASK_TOKEN "
    "for a shared bearer token, or NOTEBOOK_BOT_TASK_OPEN=1 for local development"
)


def _bearer(environ: dict[str, Any]) -> str | None:
    scheme, _, token = str(environ.get("HTTP_AUTHORIZATION", "")).partition(" ")
    return token.strip() if scheme.lower() == "bearer" and token.strip() else None


def _any_of(checks: list[Authorizer]) -> Authorizer:
    """Allowed when one check allows; else the last check's reason (OIDC's, the more telling)."""

    def check(environ: dict[str, Any]) -> str | None:
        reason = None
        for one in checks:
            reason = one(environ)
            if reason is None:
                return None
        return reason

    return check


def _token_check(expected: str) -> Authorizer:
    want = hashlib.sha256(expected.encode()).digest()

    def check(environ: dict[str, Any]) -> str | None:
        token = _bearer(environ)
        if token is None:
            return "missing bearer token"
        given = hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()
        return None if hmac.compare_digest(given, want) else "invalid token"

    return check


def _oidc_check(audience: str, invoker: str, certs: CertificateCache) -> Authorizer:
    def check(environ: dict[str, Any]) -> str | None:
        token = _bearer(environ)
        if token is None:
            return "missing bearer token"
        try:
            verify_invoker_token(token, audience=audience, invoker=invoker, certs=certs)
        except ValueError as exc:
            return f"invalid token: {exc}"
        except Exception as exc:  # certificates unreachable, ...: refuse, never allow
            log.warning("could not verify a task token: %s", type(exc).__name__)
            return "invalid token: could not be verified"
        return None

    return check


def _reason(message: str) -> str:
    lowered = message.lower()
    if "audience" in lowered:
        return "wrong audience"
    if "expired" in lowered or "too early" in lowered:
        return "expired or not yet valid"
    if "signature" in lowered:
        return "bad signature"
    return "could not be verified"


def _header(headers: Any, name: str) -> str | None:
    if not headers:
        return None
    for key, value in dict(headers).items():
        if key.lower() == name:
            return value
    return None
