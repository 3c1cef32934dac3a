"""Running the bot: HTTP under gunicorn (production), Socket Mode, or a plain thread (sandbox, tests)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from bot.run.logs import TraceMiddleware, gunicorn_logger_class
from bot.run.services import Services
from bot.run.slack_start import with_slack
from bot.run.web import WebApp
from bot.run.worker import Worker

log = logging.getLogger(__name__)


def build_web_app(services: Services) -> Callable[..., Any]:
    from bot.run.bolt_http import BoltHandler
    from bot.run.slack_gate import SlackGate
    from bot.run.tasks import task_authorizer
    from handlers import build_app
    from handlers.replies import UNREADABLE, acting_user

    def unreadable(body: dict[str, Any]) -> None:
        user = acting_user(body)
        if user:
            services.slack.dm(user, UNREADABLE)

    handler = BoltHandler(build_app(services))
    gate = SlackGate(services.settings.slack_signing_secret)
    app = WebApp(handler, services.reconcile, task_authorizer(services.settings), gate=gate, on_unreadable=unreadable)
    return TraceMiddleware(app, services.settings.project)


def serve_gunicorn(services: Services) -> None:
    """Production HTTP: gunicorn, one process with threads, the reconcile worker beside it.

    The app is built (and its token checked by Slack) before gunicorn starts, so a bad token ends
    the start with one line (bot/run/slack_start.py) instead of a worker that fails to boot."""
    from gunicorn.app.base import BaseApplication

    app = with_slack(lambda: build_web_app(services))

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
            Worker(services.reconcile, services.settings.worker_interval).start()
            return app

    Application().run()


class _ThreadingServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug(format, *args)


def serve_in_thread(app: Callable[..., Any], port: int = 0) -> tuple[WSGIServer, int]:
    """A threaded WSGI server on 127.0.0.1 (sandbox and tests); returns it and its port."""
    server = make_server("127.0.0.1", port, app, server_class=_ThreadingServer, handler_class=_QuietHandler)
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
