"""JSON logs in Cloud Logging's format: context on every line, the request's trace, no secrets."""

from __future__ import annotations

import io
import json
import logging
import threading
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from bot.run.logs import ContextPropagatingExecutor, TraceMiddleware, configure_logging, log_context, register_secret

BOT_TOKEN = "xoxb-1234567890-0987654321-AbCdEfGhIjKlMnOpQrStUvWx"
APP_TOKEN = "xapp-1-A0SIM-1234567890-0123456789abcdef0123456789abcdef"
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BEARER = "eyJhbGciOiJSUzI1NiIsImtpZCI6IjEifQ.eyJhdWQiOiJodHRwczovL2JvdCJ9.c2lnbmF0dXJl"
SECRETS = (BOT_TOKEN, APP_TOKEN, SIGNING_SECRET, BEARER)


@pytest.fixture
def output(monkeypatch: pytest.MonkeyPatch) -> Iterator[io.StringIO]:
    """The root logger writes JSON lines into a buffer for the test, then gets its handlers back."""
    monkeypatch.setenv("SLACK_SIGNING_SECRET", SIGNING_SECRET)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    stream = io.StringIO()
    configure_logging("DEBUG", stream=stream)
    try:
        yield stream
    finally:
        root.handlers[:], level = saved
        root.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_each_line_is_a_cloud_logging_entry(output: io.StringIO) -> None:
    log = logging.getLogger("bot.test")
    log.info("hello %s", "world")
    log.warning("careful")
    info, warning = lines(output)
    assert info["severity"] == "INFO" and info["message"] == "hello world" and info["logger"] == "bot.test"
    assert info["time"].endswith("+00:00")
    assert "logging.googleapis.com/sourceLocation" not in info
    assert warning["severity"] == "WARNING"
    assert warning["logging.googleapis.com/sourceLocation"]["function"] == "test_each_line_is_a_cloud_logging_entry"


def test_exceptions_are_in_the_message_so_error_reporting_sees_the_stack(output: io.StringIO) -> None:
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        logging.getLogger("bot.test").exception("step failed")
    (entry,) = lines(output)
    assert entry["severity"] == "ERROR"
    assert entry["message"].startswith("step failed\nTraceback")
    assert "RuntimeError: boom" in entry["message"]


def test_no_token_or_secret_is_ever_written(output: io.StringIO) -> None:
    log = logging.getLogger("bot.test")
    log.info("token %s app %s secret %s header Authorization: Bearer %s", *SECRETS)
    log.info("a dict %s", {"headers": {"Authorization": f"Bearer {BEARER}"}, "token": BOT_TOKEN})
    log.warning("rotated xoxe.xoxp-1-ABCDEF123456 and refresh xoxe-1-ABCDEF123456 and user xoxp-1-2-3-abc")
    log.info("extra fields too", extra={"user": BOT_TOKEN, "launch_id": f"Bearer {BEARER}"})
    with log_context(user=APP_TOKEN):
        log.info("and the context")
    try:
        raise ValueError(f"refused {SIGNING_SECRET} with Bearer {BEARER}")
    except ValueError:
        log.exception("and tracebacks with %s", APP_TOKEN)
    text = output.getvalue()
    for secret in (*SECRETS, "xoxe.xoxp-1-ABCDEF123456", "xoxe-1-ABCDEF123456", "xoxp-1-2-3-abc"):
        assert secret not in text
    assert "ABCDEF123456" not in text and SIGNING_SECRET[:16] not in text
    assert text.count("[secret]") >= 12
    assert len(lines(output)) == 6


def test_a_secret_not_in_the_environment_can_be_registered(output: io.StringIO) -> None:
    register_secret("not-an-env-secret-0123456789")
    logging.getLogger("bot.test").info("value not-an-env-secret-0123456789 here")
    assert lines(output)[0]["message"] == "value [secret] here"


def test_log_context_puts_launch_and_user_on_every_line_inside_it(output: io.StringIO) -> None:
    log = logging.getLogger("bot.domain.launches")
    log.info("before")
    with log_context(launch_id="L1", user="U0ALICE"):
        log.info("creating")
        with log_context(instance="tf-2-8-abc"):
            log.info("polling")
        log.info("explicit extra wins", extra={"launch_id": "L2"})
    log.info("after")
    before, creating, polling, explicit, after = lines(output)
    assert "launch_id" not in before and "user" not in before
    assert (creating["launch_id"], creating["user"]) == ("L1", "U0ALICE")
    assert (polling["launch_id"], polling["user"], polling["instance"]) == ("L1", "U0ALICE", "tf-2-8-abc")
    assert explicit["launch_id"] == "L2" and explicit["user"] == "U0ALICE"
    assert "launch_id" not in after and "instance" not in after


def test_context_follows_work_into_a_propagating_executor_but_not_into_plain_threads(output: io.StringIO) -> None:
    log = logging.getLogger("bot.test")
    with ContextPropagatingExecutor(max_workers=1) as pool, log_context(user="U0BOB"):
        pool.submit(log.info, "in the pool").result()
        thread = threading.Thread(target=log.info, args=("in a plain thread",))
        thread.start()
        thread.join()
    pooled, plain = lines(output)
    assert pooled["user"] == "U0BOB"
    assert "user" not in plain


def test_a_request_s_lines_carry_its_trace(output: io.StringIO) -> None:
    from bot.run.server import serve_in_thread

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        logging.getLogger("bot.run.web").info("handling %s", environ["PATH_INFO"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    server, port = serve_in_thread(TraceMiddleware(app, "my-project"))
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/traced",
            headers={"X-Cloud-Trace-Context": "105445aa7843bc8bf206b12000100000/20;o=1"},
        )
        assert opener.open(request, timeout=5).read() == b"ok"
        assert opener.open(f"http://127.0.0.1:{port}/untraced", timeout=5).read() == b"ok"
    finally:
        server.shutdown()
        server.server_close()
    traced, untraced = [entry for entry in lines(output) if entry["logger"] == "bot.run.web"]
    assert traced["message"] == "handling /traced"
    assert traced["logging.googleapis.com/trace"] == "projects/my-project/traces/105445aa7843bc8bf206b12000100000"
    assert traced["logging.googleapis.com/spanId"] == "0000000000000014"
    assert traced["logging.googleapis.com/trace_sampled"] is True
    assert "logging.googleapis.com/trace" not in untraced


def test_w3c_traceparent_is_understood_too() -> None:
    from bot.run.logs import trace_fields

    environ = {"HTTP_TRACEPARENT": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
    assert trace_fields(environ, "p") == {
        "trace": "projects/p/traces/4bf92f3577b34da6a3ce929d0e0e4736",
        "span_id": "00f067aa0ba902b7",
        "trace_sampled": True,
    }
    assert trace_fields({"HTTP_X_CLOUD_TRACE_CONTEXT": "not a trace"}, "p") == {}
    assert trace_fields(environ, None) == {}


def test_gunicorn_s_own_lines_are_json_too(capsys: pytest.CaptureFixture) -> None:
    from gunicorn.config import Config

    from bot.run.logs import gunicorn_logger_class

    logger = gunicorn_logger_class()(Config())
    logger.error_log.info("Listening at: http://0.0.0.0:8080 (1)")
    entry = json.loads(capsys.readouterr().err)
    assert (entry["severity"], entry["message"]) == ("INFO", "Listening at: http://0.0.0.0:8080 (1)")
