"""Which mail a log line is about (issue 14): the inbound, outbound, lead and webhook ids and the
dealer, carried by every line written while one is handled, so one lead's whole story can be
grepped from JSON logs (``LMS_LOG_FORMAT=json``).

Where a mail is handled (ingest per inbound, a send per outbound, a stage per lead, a webhook
per delivery) the code says so once: ``with mail_log_context(inbound_id=…, dealer=…):``; every
line logged inside, by any module, carries those ids. A line about another mail passes
``extra=log_ids(...)``, which wins over the context. Only the standard library: the MTA pipe
imports this at every mail.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from contextvars import ContextVar
from typing import Any, TypeVar

T = TypeVar("T")

# The names the log lines carry (JSON fields), in the order a text line shows them.
FIELDS = ("dealer", "inbound_id", "outbound_id", "lead_id", "webhook_id")
_SHORT = {
    "dealer": "dealer",
    "inbound_id": "in",
    "outbound_id": "out",
    "lead_id": "lead",
    "webhook_id": "hook",
}

_current: ContextVar[dict[str, Any] | None] = ContextVar("lms_mail_ids", default=None)


def log_ids(
    *,
    dealer: str | None = None,
    inbound_id: int | None = None,
    outbound_id: int | None = None,
    lead_id: int | None = None,
    webhook_id: int | None = None,
) -> dict[str, Any]:
    """The ids given, for ``extra=`` of one log call (``None`` left out)."""
    given = {
        "dealer": dealer,
        "inbound_id": inbound_id,
        "outbound_id": outbound_id,
        "lead_id": lead_id,
        "webhook_id": webhook_id,
    }
    return {key: value for key, value in given.items() if value is not None}


@contextmanager
def mail_log_context(
    *,
    dealer: str | None = None,
    inbound_id: int | None = None,
    outbound_id: int | None = None,
    lead_id: int | None = None,
    webhook_id: int | None = None,
) -> Iterator[None]:
    """Every line logged inside (this thread or task) carries these ids, besides outer ones."""
    ids = log_ids(
        dealer=dealer, inbound_id=inbound_id, outbound_id=outbound_id, lead_id=lead_id, webhook_id=webhook_id
    )
    token = _current.set({**(_current.get() or {}), **ids})
    try:
        yield
    finally:
        _current.reset(token)


def bind_thread(*, dealer: str | None = None) -> None:
    """Ids for the rest of a thread of its own (an IMAP poller is one dealer's): a new thread
    starts with an empty context, so nothing is left to reset."""
    _current.set({**(_current.get() or {}), **log_ids(dealer=dealer)})


def current_ids() -> dict[str, Any]:
    return dict(_current.get() or {})


class MailContextFilter(logging.Filter):
    """Puts the context's ids on each record (where ``extra=`` did not set them already), in the
    thread that logs: a handler further on (a queue, another thread) still sees them."""

    def filter(self, record: logging.LogRecord) -> bool:
        for key, value in (_current.get() or {}).items():
            if getattr(record, key, None) is None:
                setattr(record, key, value)
        return True


def ids_of(record: logging.LogRecord) -> dict[str, Any]:
    """The ids a record carries, in :data:`FIELDS` order."""
    return {key: value for key in FIELDS if (value := getattr(record, key, None)) is not None}


def brief(ids: dict[str, Any]) -> str:
    """``[dealer=muster in=12 lead=3]`` for a text line; empty without ids."""
    if not ids:
        return ""
    return " [" + " ".join(f"{_SHORT[key]}={value}" for key, value in ids.items()) + "]"


def each_logged(items: Iterable[T], ids: Callable[[T], dict[str, Any]]) -> Iterator[T]:
    """The items one by one, each with its ids in the log context while the loop's body runs
    (``for item in each_logged(batch, ids_of_item):``): a batch loop says which mail it is on
    without another level of indentation. Generators share their caller's context."""
    for item in items:
        token = _current.set({**(_current.get() or {}), **ids(item)})
        try:
            yield item
        finally:
            with suppress(ValueError):  # closed from another context (a loop left by an exception)
                _current.reset(token)
