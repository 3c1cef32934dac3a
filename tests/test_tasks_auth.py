"""POST /tasks/reconcile: only Cloud Scheduler's OIDC token (right signer, audience and email) gets in.

Tokens are minted here with google-auth's own signer and a locally generated RSA key; the bot
fetches the matching certificate from a loopback server standing in for Google's certificate URL
(the only seam: `certs_url`). Everything else, the HTTP server, the routing and the verification,
is the bot's real code.
"""

from __future__ import annotations

import datetime
import json
import logging
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import NameOID
from google.auth import crypt, jwt

from bot.run.config import Settings
from bot.run.server import serve_in_thread
from bot.run.tasks import task_authorizer
from bot.run.web import WebApp

AUDIENCE = "https://notebook-bot-abc123-uc.a.run.app"
INVOKER = "notebook-bot-scheduler@my-project.iam.gserviceaccount.com"
KEY_ID = "test-key-1"
_http = urllib.request.build_opener(urllib.request.ProxyHandler({}))


@dataclass
class Key:
    private_pem: bytes
    certificate_pem: str


def make_key(common_name: str = "test-signer") -> Key:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(private, hashes.SHA256())
    )
    private_pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return Key(private_pem, certificate.public_bytes(serialization.Encoding.PEM).decode())


GOOGLE_KEY = make_key("google-stand-in")
OTHER_KEY = make_key("attacker")


def mint(key: Key = GOOGLE_KEY, *, key_id: str = KEY_ID, **overrides: Any) -> str:
    """An ID token shaped like the ones Cloud Scheduler sends (claims may be overridden or removed)."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": "https://accounts.google.com",
        "aud": AUDIENCE,
        "azp": "112233445566778899000",
        "sub": "112233445566778899000",
        "email": INVOKER,
        "email_verified": True,
        "iat": now,
        "exp": now + 3600,
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    signer = crypt.RSASigner.from_string(key.private_pem, key_id=key_id)
    return jwt.encode(signer, claims).decode()


class CertServer:
    """Serves {key id: X.509 PEM} like https://www.googleapis.com/oauth2/v1/certs, counting fetches."""

    def __init__(self, certs: dict[str, str]) -> None:
        self.certs = certs
        self.fetches = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                outer.fetches += 1
                body = json.dumps(outer.certs).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", "public, max-age=3600, must-revalidate")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.block_on_close = False  # the verifier keeps its connection alive; don't wait for it
        self.url = f"http://127.0.0.1:{self.server.server_port}/oauth2/v1/certs"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Endpoint:
    url: str
    passes: list[int]
    certs: CertServer

    def post(self, token: str | None = None, scheme: str = "Bearer") -> tuple[int, dict[str, Any]]:
        headers = {"Authorization": f"{scheme} {token}"} if token is not None else {}
        request = urllib.request.Request(f"{self.url}/tasks/reconcile", data=b"", headers=headers, method="POST")
        try:
            with _http.open(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())


def serve(settings: Settings, env: dict[str, str], certs: CertServer) -> Iterator[Endpoint]:
    passes: list[int] = []

    def run_pass() -> dict[str, int]:
        passes.append(1)
        return {"launches": 0}

    def slack(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("404 Not Found", [])
        return [b""]

    app = WebApp(slack, run_pass, task_authorizer(settings, env=env, certs_url=certs.url))
    server, port = serve_in_thread(app)
    try:
        yield Endpoint(f"http://127.0.0.1:{port}", passes, certs)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def certs() -> Iterator[CertServer]:
    server = CertServer({KEY_ID: GOOGLE_KEY.certificate_pem})
    yield server
    server.stop()


@pytest.fixture
def endpoint(certs: CertServer) -> Iterator[Endpoint]:
    yield from serve(Settings(task_audience=AUDIENCE), {"NOTEBOOK_BOT_TASK_INVOKER": INVOKER}, certs)


def test_the_scheduler_s_token_runs_a_pass(endpoint: Endpoint) -> None:
    status, body = endpoint.post(mint())
    assert (status, body) == (200, {"launches": 0})
    assert endpoint.passes == [1]


def test_no_token_is_refused(endpoint: Endpoint) -> None:
    assert endpoint.post() == (401, {"error": "missing bearer token"})
    assert endpoint.post(mint(), scheme="Basic")[0] == 401
    assert endpoint.post("")[0] == 401
    assert endpoint.passes == []


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (lambda: mint(OTHER_KEY), "invalid token: bad signature"),  # same key id, someone else's key
        (lambda: mint(OTHER_KEY, key_id="attacker-key"), "invalid token: signed by an unknown key"),
        (lambda: mint(aud="https://some-other-service.run.app"), "invalid token: wrong audience"),
        (lambda: mint(email="someone@evil.example.com"), "not the scheduler's service account"),
        (lambda: mint(email=None), "not the scheduler's service account"),
        (lambda: mint(email_verified=False), "invalid token: the token's email is not verified"),
        (lambda: mint(iss="https://evil.example.com"), "invalid token: not issued by Google"),
        (lambda: mint(iat=int(time.time()) - 7200, exp=int(time.time()) - 3600), "invalid token: expired"),
        (lambda: "not.a.jwt", "invalid token: malformed token"),
        (lambda: mint().rsplit(".", 1)[0] + ".", "invalid token"),  # signature stripped
    ],
)
def test_tokens_that_are_not_the_scheduler_s_are_refused(endpoint: Endpoint, token: Any, reason: str) -> None:
    status, body = endpoint.post(token())
    assert status == 401
    assert reason in body["error"]
    assert endpoint.passes == []


def test_unsigned_alg_none_token_is_refused(endpoint: Endpoint) -> None:
    import base64

    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    claims = {"iss": "https://accounts.google.com", "aud": AUDIENCE, "email": INVOKER, "email_verified": True}
    claims |= {"iat": int(time.time()), "exp": int(time.time()) + 600}
    token = f"{part({'alg': 'none', 'kid': KEY_ID})}.{part(claims)}."
    assert endpoint.post(token)[0] == 401
    assert endpoint.passes == []


def test_certificates_are_fetched_once_and_reused(endpoint: Endpoint) -> None:
    for _ in range(3):
        assert endpoint.post(mint())[0] == 200
    assert endpoint.post(mint(OTHER_KEY, key_id="unknown"))[0] == 401  # no refetch per forged token
    assert endpoint.post(mint(OTHER_KEY, key_id="unknown"))[0] == 401
    assert endpoint.certs.fetches == 1  # an unknown key id refetches at most every 30 s
    assert endpoint.passes == [1, 1, 1]


def test_a_rotated_key_is_picked_up(certs: CertServer) -> None:
    now = [time.time()]
    settings, env = Settings(task_audience=AUDIENCE), {"NOTEBOOK_BOT_TASK_INVOKER": INVOKER}
    check = task_authorizer(settings, env=env, certs_url=certs.url, clock=lambda: now[0])

    def call(token: str) -> str | None:
        return check({"HTTP_AUTHORIZATION": f"Bearer {token}"})

    new_key = make_key("rotated")
    assert call(mint()) is None
    certs.certs = {"rotated-key": new_key.certificate_pem}  # Google rotates its keys
    assert call(mint(new_key, key_id="rotated-key")) == "invalid token: signed by an unknown key"  # fetched 0 s ago
    now[0] += 31
    assert call(mint(new_key, key_id="rotated-key")) is None  # an unknown key id refetches after 30 s
    assert call(mint()) == "invalid token: signed by an unknown key"  # the retired key no longer verifies
    assert certs.fetches == 2


def test_unreachable_certificates_refuse_rather_than_allow(certs: CertServer) -> None:
    certs.stop()
    for endpoint in serve(Settings(task_audience=AUDIENCE), {"NOTEBOOK_BOT_TASK_INVOKER": INVOKER}, certs):
        status, body = endpoint.post(mint())
        assert status == 401 and body["error"] == "invalid token: could not be verified"
        assert endpoint.passes == []


def test_without_an_expected_invoker_every_call_is_refused(certs: CertServer) -> None:
    for endpoint in serve(Settings(task_audience=AUDIENCE), {}, certs):
        status, body = endpoint.post(mint())
        assert status == 401 and "NOTEBOOK_BOT_TASK_INVOKER" in body["error"]


def test_on_cloud_run_an_unconfigured_endpoint_refuses_everything(certs: CertServer) -> None:
    for endpoint in serve(Settings(), {"K_SERVICE": "notebook-bot"}, certs):
        status, body = endpoint.post(mint())
        assert status == 401 and "NOTEBOOK_BOT_TASK_AUDIENCE" in body["error"]
        assert endpoint.passes == []


def test_locally_without_configuration_the_endpoint_is_closed(certs: CertServer) -> None:
    """It used to be open: anyone could run full passes, 16 at a time, starving Slack's requests."""
    for endpoint in serve(Settings(), {}, certs):
        status, body = endpoint.post()
        assert (
            status == 401 and "NOTEBOOK_BOT_TASK_TOKEN" in body["error"] and "NOTEBOOK_BOT_TASK_OPEN" in body["error"]
        )
        assert endpoint.passes == []


def test_the_local_development_switch_opens_it_and_says_so(certs: CertServer, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="bot.run.tasks"):
        for endpoint in serve(Settings(task_open=True), {}, certs):
            assert "NOTEBOOK_BOT_TASK_OPEN is set" in caplog.text and "local development only" in caplog.text
            assert endpoint.post()[0] == 200
            assert endpoint.passes == [1]


def test_the_switch_is_refused_on_cloud_run(certs: CertServer) -> None:
    for endpoint in serve(Settings(task_open=True), {"K_SERVICE": "notebook-bot"}, certs):
        assert endpoint.post()[0] == 401
        assert endpoint.passes == []


TOKEN = "0123456789abcdef" * 4


def test_a_shared_bearer_token_lets_the_caller_in(certs: CertServer) -> None:
    for endpoint in serve(Settings(task_token=TOKEN), {}, certs):
        assert endpoint.post(TOKEN) == (200, {"launches": 0})
        assert endpoint.post() == (401, {"error": "missing bearer token"})
        for wrong in (TOKEN[:-1], TOKEN + "0", TOKEN.upper(), "x" * 64, "é" * 64, mint()):
            assert endpoint.post(wrong) == (401, {"error": "invalid token"}), wrong
        assert endpoint.post(TOKEN, scheme="Basic")[0] == 401
        assert endpoint.passes == [1]


def test_a_short_token_is_not_used(certs: CertServer, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.ERROR, logger="bot.run.tasks"):
        for endpoint in serve(Settings(task_token="too-short"), {}, certs):
            assert endpoint.post("too-short")[0] == 401
    assert "shorter than 32 characters" in caplog.text and "too-short" not in caplog.text


def test_with_both_configured_either_lets_the_caller_in(certs: CertServer) -> None:
    settings = Settings(task_audience=AUDIENCE, task_token=TOKEN)
    for endpoint in serve(settings, {"NOTEBOOK_BOT_TASK_INVOKER": INVOKER}, certs):
        assert endpoint.post(TOKEN)[0] == 200
        assert endpoint.post(mint())[0] == 200
        status, body = endpoint.post(mint(OTHER_KEY))
        assert status == 401 and body["error"] == "invalid token: bad signature"
        assert endpoint.passes == [1, 1]


def test_one_pass_at_a_time_and_a_concurrent_call_is_answered_at_once() -> None:
    running, release = threading.Event(), threading.Event()
    passes: list[int] = []

    def slow_pass() -> dict[str, int]:
        passes.append(1)
        running.set()
        release.wait(30)
        return {"launches": 1}

    def slack(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("404 Not Found", [])
        return [b""]

    server, port = serve_in_thread(WebApp(slack, slow_pass, lambda environ: None))
    endpoint = Endpoint(f"http://127.0.0.1:{port}", passes, None)  # type: ignore[arg-type]
    try:
        first: list[tuple[int, dict[str, Any]]] = []
        caller = threading.Thread(target=lambda: first.append(endpoint.post()))
        caller.start()
        assert running.wait(10)
        for _ in range(5):  # answered while the first pass still runs: none of them waits for it
            assert endpoint.post() == (202, {"status": "a pass is running; this call started none"})
        release.set()
        caller.join(10)
        assert first == [(200, {"launches": 1})]
        assert endpoint.post() == (200, {"launches": 1})  # the next call after it runs its own
        assert passes == [1, 1]
    finally:
        release.set()
        server.shutdown()
        server.server_close()


def test_the_served_app_wires_the_check_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """build_web_app (what `serve` runs) refuses a tokenless call when the audience is configured."""
    from bot.adapters.store import SqliteStore
    from bot.run.server import build_web_app
    from bot.run.services import Services
    from bot.sim.slack_api import SlackSimulator

    monkeypatch.setenv("NOTEBOOK_BOT_TASK_INVOKER", INVOKER)
    with SlackSimulator() as slack:
        monkeypatch.setenv("SLACK_API_URL", slack.base_url)
        settings = Settings(
            slack_bot_token=slack.bot_token, slack_signing_secret="s" * 32, project="p", task_audience=AUDIENCE
        )
        services = Services(settings, store=SqliteStore())
        server, port = serve_in_thread(build_web_app(services))
        try:
            request = urllib.request.Request(f"http://127.0.0.1:{port}/tasks/reconcile", data=b"", method="POST")
            with pytest.raises(urllib.error.HTTPError) as refused:
                _http.open(request, timeout=10)
            assert refused.value.code == 401
        finally:
            server.shutdown()
            server.server_close()
