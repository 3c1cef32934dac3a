"""Helpers for hostile-input tests: raw HTTP requests with exactly the headers a test gives, and
an "elsewhere" server that records every request, standing in for any host that is not Slack's."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import http.client
import json
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlencode, urlsplit


@dataclass
class Reply:
    status: int
    body: str
    headers: dict[str, str]


def raw_post(url: str, body: bytes, headers: dict[str, str], *, content_length: bool = True) -> Reply:
    """POST `body` with only `headers` (plus Host, and Content-Length unless told not to)."""
    parts = urlsplit(url)
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=15)
    try:
        connection.putrequest("POST", parts.path, skip_accept_encoding=True)
        for name, value in headers.items():
            connection.putheader(name, value.encode("utf-8"))  # as bytes: a test may send any
        if content_length:
            connection.putheader("Content-Length", str(len(body)))
        # the server may answer (413, say) before reading a large body: its answer is still there
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            connection.endheaders(body if content_length else None)
        response = connection.getresponse()
        return Reply(
            response.status,
            response.read().decode("utf-8", "replace"),
            {k.lower(): v for k, v in response.getheaders()},
        )
    finally:
        connection.close()


def sign(secret: str, body: bytes, timestamp: int | str | None = None) -> dict[str, str]:
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": f"v0={digest}"}


def form(fields: dict[str, str]) -> bytes:
    return urlencode(fields).encode()


def interaction(payload: Any) -> bytes:
    return form({"payload": json.dumps(payload)})


class Elsewhere:
    """A loopback HTTP server that answers 200 to anything and remembers what it got."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                outer.requests.append((self.command, self.path, self.rfile.read(length)))
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            do_GET = do_POST = do_PUT = _record

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
