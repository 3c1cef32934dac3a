"""Structured JSON logs in Cloud Logging's format, with context and with secrets scrubbed.

Every line is one JSON object on stderr, which Cloud Run's logging agent turns into a structured
entry: `severity`, `message`, `time`, `logging.googleapis.com/trace` (from the request's
X-Cloud-Trace-Context header), `logging.googleapis.com/sourceLocation`, and the fields of the
current log context (`launch_id`, `user`, ...).

    with log_context(launch_id=launch.id, user=launch.requester):
        log.info("creating")        # -> {"severity": "INFO", "message": "creating", "launch_id": ..., "user": ...}

The context lives in a contextvar, so it follows the code that entered it and nothing else:
threads started meanwhile don't inherit it unless they run in a copied context
(`ContextPropagatingExecutor` does that for Bolt's listener threads). Slack tokens, bearer
tokens and the signing secret are replaced by "[secret]" in every field of every line.
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from logging.handlers import MemoryHandler
from typing import Any

SECRET = re.compile(
    r"(xox[abposre]-[A-Za-z0-9-]+"  # Slack bot, user, app-configuration and legacy tokens
    r"|xoxe\.xox[a-z]-[A-Za-z0-9-]+"  # rotated tokens and their refresh tokens
    r"|xapp-[A-Za-z0-9-]+"  # app-level tokens (Socket Mode)
    r"|Bearer\s+[A-Za-z0-9._~+/=-]+)",  # any Authorization: Bearer value (OIDC tokens, ya29. access tokens)
    re.IGNORECASE,
)
SECRET_ENV = (
    "SLACK_SIGNING_SECRET",
    "SLACK_BOT_TOKEN",
    "SLACK_APP_TOKEN",
    "SLACK_CLIENT_SECRET",
    "NOTEBOOK_BOT_TASK_TOKEN",
)
CONTEXT_FIELDS = ("launch_id", "user", "instance")  # also honoured when passed with `extra=`
TRACE = "logging.googleapis.com/trace"
SPAN = "logging.googleapis.com/spanId"
SAMPLED = "logging.googleapis.com/trace_sampled"
SOURCE = "logging.googleapis.com/sourceLocation"
_RESERVED = {"severity", "message", "time", "logger", TRACE, SPAN, SAMPLED, SOURCE}

_context: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar(
    "notebook_bot_log_context", default=None
)
_secrets: set[str] = set()


# --- secrets --------------------------------------------------------------------------------------
def register_secret(value: str | None) -> None:
    """Scrub this exact value from every log line from now on (for secrets not read from the env)."""
    if value and len(value) >= 8:
        _secrets.add(value)


def scrub(text: str) -> str:
    """Hide Slack tokens, bearer tokens and the signing secret, whatever logged them."""
    known = set(_secrets)
    known.update(v for v in (os.environ.get(name) for name in SECRET_ENV) if v and len(v) >= 8)
    for value in sorted(known, key=len, reverse=True):
        text = text.replace(value, "[secret]")
    return SECRET.sub("[secret]", text)


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return scrub(value)
    if isinstance(value, dict):
        return {k: _scrubbed(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_scrubbed(v) for v in value]
    if value is None or isinstance(value, bool | int | float):
        return value
    return scrub(str(value))


# --- context ------------------------------------------------------------------------------------
@contextmanager
def log_context(**fields: Any) -> Iterator[dict[str, Any]]:
    """Add fields (launch_id=..., user=...) to every log line written inside the block.

    Nested blocks add to (and may override) the outer fields; None values are left out.
    """
    merged = {**(_context.get() or {}), **{k: v for k, v in fields.items() if v is not None}}
    token = _context.set(merged)
    try:
        yield merged
    finally:
        _context.reset(token)


def current_context() -> dict[str, Any]:
    return dict(_context.get() or {})


class ContextFilter(logging.Filter):
    """Copies the current log context onto each record (fields passed with `extra=` win)."""

    def filter(self, record: logging.LogRecord) -> bool:
        fields = _context.get() or {}
        for key, value in fields.items():
            if not hasattr(record, key):
                setattr(record, key, value)
        record._context_keys = tuple(fields)  # type: ignore[attr-defined]
        return True


class ContextPropagatingExecutor(ThreadPoolExecutor):
    """A thread pool whose tasks run in a copy of the submitter's context (log context, trace).

    Pass it to Bolt (`App(listener_executor=ContextPropagatingExecutor(max_workers=5))`) so that
    listeners that continue after ack() still log with the request's trace and user.
    """

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        context = contextvars.copy_context()
        return super().submit(context.run, fn, *args, **kwargs)


# --- trace ----------------------------------------------------------------------------------------
_CLOUD_TRACE = re.compile(r"^([0-9a-fA-F]{32})(?:/(\d+))?(?:;o=([01]))?")
_TRACEPARENT = re.compile(r"^[0-9a-f]{2}-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")


def trace_fields(environ: dict[str, Any], project: str | None) -> dict[str, Any]:
    """The trace of a WSGI request as log fields, from X-Cloud-Trace-Context (or W3C traceparent).

    Cloud Logging links an entry to its request when `trace` is "projects/PROJECT/traces/TRACE_ID".
    """
    if not project:
        return {}
    header = environ.get("HTTP_X_CLOUD_TRACE_CONTEXT", "")
    match = _CLOUD_TRACE.match(header.strip())
    if match:
        trace_id, span, sampled = match.groups()
        fields: dict[str, Any] = {"trace": f"projects/{project}/traces/{trace_id.lower()}"}
        if span:
            fields["span_id"] = f"{int(span):016x}"  # the header's span id is decimal; Logging wants hex
        if sampled is not None:
            fields["trace_sampled"] = sampled == "1"
        return fields
    match = _TRACEPARENT.match(environ.get("HTTP_TRACEPARENT", "").strip())
    if match:
        trace_id, span, flags = match.groups()
        return {
            "trace": f"projects/{project}/traces/{trace_id}",
            "span_id": span,
            "trace_sampled": bool(int(flags, 16) & 1),
        }
    return {}


class TraceMiddleware:
    """WSGI middleware: every line logged while a request is handled carries its trace.

    server.build_web_app wraps the app: `TraceMiddleware(WebApp(...), settings.project)`.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]], project: str | None) -> None:
        self.app = app
        self.project = project or os.environ.get("GOOGLE_CLOUD_PROJECT")

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        with log_context(**trace_fields(environ, self.project)):
            return self.app(environ, start_response)


# --- formatting -----------------------------------------------------------------------------------
class CloudLoggingFormatter(logging.Formatter):
    """One JSON object per record, in the shape Cloud Logging reads from a container's output."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            message += "\n" + self.formatStack(record.stack_info)
        entry: dict[str, Any] = {
            "severity": record.levelname if record.levelname != "WARN" else "WARNING",
            "message": message,
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds"),
            "logger": record.name,
        }
        keys = dict.fromkeys((*CONTEXT_FIELDS, *getattr(record, "_context_keys", ())))
        for key in keys:
            if key in ("trace", "span_id", "trace_sampled") or key in _RESERVED:
                continue
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        trace = getattr(record, "trace", None)
        if trace:
            entry[TRACE] = trace
            if getattr(record, "span_id", None):
                entry[SPAN] = record.span_id  # type: ignore[attr-defined]
            if getattr(record, "trace_sampled", None) is not None:
                entry[SAMPLED] = record.trace_sampled  # type: ignore[attr-defined]
        if record.levelno >= logging.WARNING:
            entry[SOURCE] = {"file": record.pathname, "line": str(record.lineno), "function": record.funcName}
        return json.dumps(_scrubbed(entry), default=str, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is when a record is emitted (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__()

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, value: Any) -> None:
        pass


def json_handler(stream: Any = None) -> logging.Handler:
    handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.setFormatter(CloudLoggingFormatter())
    handler.addFilter(ContextFilter())
    return handler


def configure_logging(level: str | None = None, stream: Any = None) -> None:
    """Route every logger through one JSON handler on stderr (or `stream`)."""
    root = logging.getLogger()
    root.handlers[:] = [json_handler(stream)]
    root.setLevel((level or os.environ.get("LOG_LEVEL") or "INFO").upper())


@contextmanager
def held_logs() -> Iterator[None]:
    """Keep every log record back while the block runs: written when it ends well, dropped when it
    raises, so that a failure the caller reports in plain words is not preceded by JSON lines."""
    root = logging.getLogger()
    handlers, held = root.handlers[:], MemoryHandler(capacity=1_000_000, flushLevel=logging.CRITICAL + 1)
    root.handlers[:] = [held]
    try:
        yield
    except BaseException:
        held.buffer.clear()
        raise
    finally:
        root.handlers[:] = handlers
        for record in held.buffer:
            for handler in handlers:
                if record.levelno >= handler.level:
                    handler.handle(record)


def gunicorn_logger_class() -> type:
    """A gunicorn logger class whose error log writes the same JSON lines as the bot.

    server.serve_gunicorn sets it: `"logger_class": gunicorn_logger_class()`.
    """
    from gunicorn.glogging import Logger

    class JsonGunicornLogger(Logger):
        def setup(self, cfg: Any) -> None:
            super().setup(cfg)
            for log in (self.error_log, self.access_log):
                log.handlers[:] = [json_handler()]

    return JsonGunicornLogger
