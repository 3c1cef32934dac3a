"""The HTTP surface: Slack's single endpoint, a health check, and the scheduler's task endpoint.

POST /slack/events     slash commands, interactivity and events: verified by the gate
                       (bot/run/slack_gate.py) before Bolt reads any of it
GET  /healthz          200 "ok"
POST /tasks/reconcile  one reconcile + reminder pass (Cloud Scheduler), authorized by bot/run/tasks.py;
                       one at a time: a call while a pass runs is answered at once
"""

from __future__ import annotations

import io
import json
import logging
import threading
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from bot.run.slack_gate import Refusal, SlackGate

log = logging.getLogger(__name__)

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
BUSY = "a pass is running; this call started none"


class WebApp:
    """A WSGI application routing to Bolt's handler, the health check and the task endpoint."""

    def __init__(
        self,
        slack_handler: Callable[[Environ, StartResponse], Iterable[bytes]],
        run_pass: Callable[[], dict[str, int]],
        authorize_task: Callable[[Environ], str | None],
        *,
        gate: SlackGate | None = None,
        on_unreadable: Callable[[dict[str, Any]], None] = lambda body: None,
        acknowledging: Callable[[], AbstractContextManager[object]] = nullcontext,
    ) -> None:
        self._slack_handler = slack_handler
        self._run_pass = run_pass
        self._authorize_task = authorize_task
        self._gate = gate or SlackGate(None)  # without a signing secret every Slack request is refused
        self._pass = threading.Lock()  # one pass at a time from this endpoint
        self._on_unreadable = on_unreadable
        self._acknowledging = acknowledging  # held until Bolt has acknowledged (Kicks.acknowledging)

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        method = environ.get("REQUEST_METHOD", "GET")
        if path == "/healthz":
            return _reply(start_response, "200 OK", "ok")
        if path == "/slack/events" and method == "POST":
            return self._slack(environ, start_response)
        if path == "/tasks/reconcile" and method == "POST":
            return self._task(environ, start_response)
        return _reply(start_response, "404 Not Found", "not found")

    def _slack(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        checked = self._gate.check(environ)
        if isinstance(checked, Refusal):
            log.warning("refused a request to /slack/events: %s", checked.reason)
            return _reply(start_response, checked.status, checked.reason)
        if checked.retry_of_seen_event:
            log.info("acknowledged a retry of event %s, already taken", str(checked.body.get("event_id"))[:40])
            return _reply(start_response, "200 OK", "", headers=[("X-Slack-No-Retry", "1")])
        environ["wsgi.input"] = io.BytesIO(checked.raw)  # the gate read the stream; Bolt reads this copy
        environ["CONTENT_LENGTH"] = str(len(checked.raw))
        try:
            with self._acknowledging():
                return self._slack_handler(environ, start_response)
        except Exception as exc:
            # A verified payload in a shape Bolt itself can't read (actions=[] fails building a listener's
            # arguments, in the error hook too): acknowledge it, so Slack shows no error, and say so.
            log.error("Bolt could not handle a verified request (%s); acknowledged", type(exc).__name__, exc_info=exc)
            threading.Thread(target=self._tell_unreadable, args=(checked.body,), daemon=True).start()
            return _reply(start_response, "200 OK", "")

    def _tell_unreadable(self, body: dict[str, Any]) -> None:
        try:
            self._on_unreadable(body)
        except Exception:
            log.exception("could not tell the person their request was unreadable")

    def _task(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        refusal = self._authorize_task(environ)
        if refusal:
            log.warning("refused /tasks/reconcile: %s", refusal)
            return _reply(start_response, "401 Unauthorized", json.dumps({"error": refusal}), "application/json")
        if not self._pass.acquire(blocking=False):
            return _reply(start_response, "202 Accepted", json.dumps({"status": BUSY}), "application/json")
        try:
            counts = self._run_pass()
        finally:
            self._pass.release()
        return _reply(start_response, "200 OK", json.dumps(counts), "application/json")


def _reply(
    start_response: StartResponse,
    status: str,
    body: str,
    content_type: str = "text/plain",
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    data = body.encode()
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(data))), *(headers or [])])
    return [data]
