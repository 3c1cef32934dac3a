"""Bolt's WSGI adapter, reading form bodies correctly.

Bolt parses any url-encoded body that merely *contains* the word "payload" as an interaction, and finds
no `payload` field in it: `/notebook new name=payload-model` reached Bolt as an empty request, matched
no listener, and the person got no answer at all. This handler gives Bolt the body as the gate
(bot/run/slack_gate.py) reads it whenever the two disagree; everything else is Bolt's own adapter.
"""

from __future__ import annotations

from slack_bolt.adapter.wsgi import SlackRequestHandler
from slack_bolt.adapter.wsgi.http_request import WsgiHttpRequest
from slack_bolt.context import BoltContext
from slack_bolt.request import BoltRequest
from slack_bolt.request.internals import build_context
from slack_bolt.response import BoltResponse

from bot.run.slack_gate import Refusal, parse_body


class BoltHandler(SlackRequestHandler):
    def dispatch(self, request: WsgiHttpRequest) -> BoltResponse:
        bolt_request = BoltRequest(body=request.get_body(), query=request.query_string, headers=request.get_headers())
        parsed = parse_body(bolt_request.content_type or "", bolt_request.raw_body.encode())
        if not isinstance(parsed, Refusal) and parsed != bolt_request.body:
            bolt_request.body = parsed
            bolt_request.context = build_context(BoltContext(), parsed)
        return self.app.dispatch(bolt_request)
