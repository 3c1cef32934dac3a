"""The HTTP surface: Slack's single endpoint, a health check, and the scheduler's task endpoint.

POST /slack/events     slash commands, interactivity and events (Bolt, signature-checked)
GET  /healthz          200 "ok"
POST /tasks/reconcile  one reconcile + reminder pass (Cloud Scheduler)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

log = logging.getLogger(__name__)

Environ = dict[str, Any]
StartResponse = Callable[..., Any]


class WebApp:
    """A WSGI application routing to Bolt's handler, the health check and the task endpoint."""

    def __init__(
        self,
        slack_handler: Callable[[Environ, StartResponse], Iterable[bytes]],
        run_pass: Callable[[], dict[str, int]],
        authorize_task: Callable[[Environ], str | None] = lambda environ: None,
    ) -> None:
        self._slack_handler = slack_handler
        self._run_pass = run_pass
        self._authorize_task = authorize_task

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/healthz":
            return _reply(start_response, "200 OK", "ok")
        if path == "/slack/events" and method == "POST":
            return self._slack_handler(environ, start_response)
        if path == "/tasks/reconcile" and method == "POST":
            refusal = self._authorize_task(environ)
            if refusal:
                log.warning("refused /tasks/reconcile: %s", refusal)
                return _reply(start_response, "401 Unauthorized", json.dumps({"error": refusal}), "application/json")
            counts = self._run_pass()
            return _reply(start_response, "200 OK", json.dumps(counts), "application/json")
        return _reply(start_response, "404 Not Found", "not found")


def _reply(start_response: StartResponse, status: str, body: str, content_type: str = "text/plain") -> list[bytes]:
    data = body.encode()
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(data)))])
    return [data]
