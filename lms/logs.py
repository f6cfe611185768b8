"""Logging in the format ``LMS_LOG_FORMAT`` asks for: ``text`` or ``json`` (one object a line).

Lines about a mail carry its ids (``dealer``, ``inbound_id``, ``outbound_id``, ``lead_id``,
``webhook_id``; see :mod:`models.log_context`): JSON fields, or a short ``[dealer=… in=…]`` at
the end of a text line, so ``grep '"lead_id": 42'`` finds a lead's whole story."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO

from models.log_context import MailContextFilter, brief, ids_of


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            **ids_of(record),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def formatMessage(self, record: logging.LogRecord) -> str:
        return super().formatMessage(record) + brief(ids_of(record))


def make_handler(fmt: str, stream: IO[str] | None = None) -> logging.Handler:
    """A handler in ``fmt`` (text | json) that stamps the mail ids of the logging thread."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    handler.addFilter(MailContextFilter())
    return handler


def setup_logging(fmt: str, level: int = logging.INFO) -> None:
    root = logging.getLogger()
    root.handlers[:] = [make_handler(fmt)]
    root.setLevel(level)
    # Dramatiq logs every worker thread start at INFO; keep the daemon's log readable.
    logging.getLogger("dramatiq").setLevel(logging.WARNING)
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    logging.getLogger("mailparser").setLevel(logging.ERROR)
