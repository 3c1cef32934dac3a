"""Structured JSON logs in Cloud Logging's format, with secrets scrubbed."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from typing import Any

SECRET = re.compile(r"(xox[abposr]-[A-Za-z0-9-]+|xapp-[A-Za-z0-9-]+|Bearer\s+[A-Za-z0-9._-]+)")
CONTEXT_FIELDS = ("launch_id", "user", "instance")


def scrub(text: str) -> str:
    """Hide Slack tokens and bearer tokens, whatever logged them."""
    for value in filter(None, (os.environ.get("SLACK_SIGNING_SECRET"),)):
        text = text.replace(value, "[secret]")
    return SECRET.sub("[secret]", text)


class CloudLoggingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "severity": record.levelname,
            "message": scrub(record.getMessage()),
            "logger": record.name,
        }
        if record.exc_info:
            entry["message"] += "\n" + scrub(self.formatException(record.exc_info))
        for key in CONTEXT_FIELDS:
            if hasattr(record, key):
                entry[key] = getattr(record, key)
        trace = getattr(record, "trace", None)
        if trace:
            entry["logging.googleapis.com/trace"] = trace
        return json.dumps(entry)


def configure_logging(level: str | None = None) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(CloudLoggingFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level or os.environ.get("LOG_LEVEL", "INFO"))
