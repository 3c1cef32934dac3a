"""Running the bot: HTTP under gunicorn (production), Socket Mode, or a plain thread (sandbox, tests)."""

from __future__ import annotations

import logging
import os
import sys
import threading
import traceback
from collections.abc import Callable
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from bot.run.logs import TraceMiddleware, gunicorn_logger_class
from bot.run.settings import ConfigError
from bot.run.slack_start import with_slack
from bot.run.web import WebApp
from bot.run.worker import Worker

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from slack_sdk.web import SlackResponse

    from bot.run.services import Services

log = logging.getLogger(__name__)


def build_web_app(services: Services, *, verified: SlackResponse | None = None) -> Callable[..., Any]:
    """The WSGI app `serve` runs; `verified`: Slack's answer to auth.test, if already asked (build_app)."""
    from bot.run.bolt_http import BoltHandler
    from bot.run.slack_gate import SlackGate
    from bot.run.tasks import task_authorizer
    from handlers import build_app
    from handlers.replies import UNREADABLE, acting_user

    def unreadable(body: dict[str, Any]) -> None:
        user = acting_user(body)
        if user:
            services.slack.dm(user, UNREADABLE)

    handler = BoltHandler(build_app(services, verified=verified))
    gate = SlackGate(services.settings.slack_signing_secret)
    app = WebApp(
        handler,
        services.reconcile,
        task_authorizer(services.settings),
        gate=gate,
        on_unreadable=unreadable,
        acknowledging=services.kicks.acknowledging,
    )
    return TraceMiddleware(app, services.settings.project)


def serve_gunicorn(services: Services) -> None:
    """Production HTTP: gunicorn, one process with threads, the reconcile worker beside it.

    The start does only what the first acknowledgement needs, in this order: Slack is asked about
    the token while gunicorn loads (a bad one ends the start with one line, bot/run/slack_start.py,
    before any worker); the worker is forked and builds the app (Bolt and the listeners; the
    domain, the config and the Google clients load on first use); and the master checks the config
    file meanwhile, beside the worker rather than before it. A broken config stops the server and
    ends the start with its problems, as it does for the other verbs."""
    from concurrent.futures import ThreadPoolExecutor

    from bot.adapters.notify import web_client

    with ThreadPoolExecutor(1, thread_name_prefix="notebook-bot-start") as start:  # done before the fork
        token = start.submit(with_slack, lambda: web_client(services.settings.slack_bot_token).auth_test())
        from gunicorn.app.base import BaseApplication
    verified = token.result()  # raises the ConfigError that says what to fix; the worker's Bolt reuses it

    class Application(BaseApplication):
        def load_config(self) -> None:
            for key, value in {
                "bind": f"{services.settings.host}:{services.settings.port}",
                "workers": 1,
                "threads": 8,
                "worker_class": "gthread",
                "timeout": 0,  # Cloud Run ends idle requests itself
                "accesslog": None,
                "logger_class": gunicorn_logger_class(),
            }.items():
                self.cfg.set(key, value)

        def load(self) -> Callable[..., Any]:
            app = build_web_app(services, verified=verified)
            Worker(services.reconcile, services.settings.worker_interval, before_pass=services.kicks.give_way).start()
            return app

        def run(self) -> None:  # BaseApplication.run, with the checking arbiter
            arbiter = _checking_arbiter(self, services.check_config)
            try:
                arbiter.run()
            except RuntimeError as exc:  # as gunicorn's own run() reports it
                print(f"\nError: {exc}\n", file=sys.stderr)
                sys.exit(1)
            except SystemExit:
                if arbiter.refusal is not None:
                    raise arbiter.refusal from None
                raise

    Application().run()


def _checking_arbiter(app: Any, check: Callable[[], None]) -> Any:
    """gunicorn's master, running `check` once right after forking the first worker, in a child of
    its own (`in_a_child`)."""
    from gunicorn.arbiter import Arbiter
    from gunicorn.errors import HaltServer

    class CheckingArbiter(Arbiter):
        refusal: ConfigError | None = None
        _pending: Callable[[], None] | None = check

        def manage_workers(self) -> None:
            super().manage_workers()  # in a worker this never returns
            pending, self._pending = self._pending, None
            if pending is None:
                return
            self.refusal = in_a_child(pending)
            if self.refusal is not None:
                raise HaltServer(None, 2)

    return CheckingArbiter(app)


def in_a_child(check: Callable[[], None]) -> ConfigError | None:
    """Run `check` in a forked child and return the ConfigError it raised, if any: what the check
    loads (pydantic, the catalog) leaves with the child, and the master stays as small as it was.

    The child runs at a lower priority: it starts beside the first worker, which may be answering
    the first request of a cold start meanwhile, and a CPU shared with the check would delay it."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: say what is wrong through the pipe, and leave without cleaning up the master's state
        os.close(read)
        status = 0
        try:
            with suppress(OSError):
                os.nice(10)
            with os.fdopen(write, "wb") as pipe:
                try:
                    check()
                except ConfigError as exc:
                    pipe.write(str(exc).encode())
                    status = 2
        except BaseException:
            traceback.print_exc()
            status = 1
        os._exit(status)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        said = pipe.read().decode()
    _, status = os.waitpid(pid, 0)
    if said:
        return ConfigError(said)
    if status:
        return ConfigError("the config could not be checked (the error is above)")
    return None


def serve_in_thread(app: Callable[..., Any], port: int = 0) -> tuple[WSGIServer, int]:
    """A threaded WSGI server on 127.0.0.1 (sandbox and tests); returns it and its port."""
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    class ThreadingServer(ThreadingMixIn, WSGIServer):
        daemon_threads = True

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            log.debug(format, *args)

    server = make_server("127.0.0.1", port, app, server_class=ThreadingServer, handler_class=QuietHandler)
    threading.Thread(target=server.serve_forever, name="notebook-bot-http", daemon=True).start()
    return server, server.server_port


def run_socket_mode(services: Services) -> None:
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from handlers import build_app

    services.settings.require("SLACK_BOT_TOKEN", "SLACK_APP_TOKEN")
    handler = SocketModeHandler(with_slack(lambda: build_app(services)), services.settings.slack_app_token)
    with_slack(handler.connect, "SLACK_APP_TOKEN")
    Worker(services.reconcile, services.settings.worker_interval).start()
    handler.start()
