"""The MTA pipe transport: one message on stdin, the exit code tells the MTA what happened.

Exit codes are those of sysexits.h, which Postfix and Exim understand: 0 stored; 67
(EX_NOUSER) unknown recipient and 65 (EX_DATAERR) message too big, the MTA bounces; 75
(EX_TEMPFAIL) anything else, the MTA keeps the mail and retries.

A mail server starts this once per message, so it imports only what storing needs: the plain
SQL store (:mod:`intake.store_core`) on a DB-API connection, no SQLAlchemy, no pydantic.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, BinaryIO

from intake.store_core import (
    Dialect,
    Enqueue,
    Incoming,
    UnknownRecipient,
    announce_new,
    fast_lock_retries,
    is_operational,
    store_batch,
)

log = logging.getLogger(__name__)

EX_OK = 0
EX_DATAERR = 65
EX_NOUSER = 67
EX_TEMPFAIL = 75


@dataclass(frozen=True)
class PipeResult:
    code: int
    message: str = ""


class DeadlineExceeded(Exception):
    pass


def read_limited(stream: BinaryIO, max_bytes: int) -> bytes | None:
    """At most ``max_bytes`` from ``stream``; ``None`` when there is more."""
    raw = stream.read(max_bytes + 1)
    return None if len(raw) > max_bytes else raw


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Give up after ``seconds``: a frozen database answers nothing, and the MTA would wait.
    A commit cut short may still land: the MTA's retry then finds the same bytes stored."""

    def _expired(_signum: int, _frame: object) -> None:
        raise DeadlineExceeded(f"no answer from the database within {seconds:.0f}s")

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def deliver(
    connect: Callable[[], Any],
    dialect_name: str,
    raw: bytes | None,
    *,
    recipient: str,
    sender: str,
    now: datetime | None = None,
    grace: timedelta,
    max_bytes: int,
    enqueue: Enqueue | None = None,
    timeout_seconds: float = 60.0,
    lock_wait: float = 15.0,
) -> PipeResult:
    """Store one mail for ``recipient``; the exit code and a sentence for the MTA's log."""
    if raw is None:
        return PipeResult(EX_DATAERR, f"message too big (limit {max_bytes} bytes, LMS_SMTP_MAX_BYTES)")
    if not raw.strip():
        return PipeResult(EX_TEMPFAIL, "empty message on stdin")
    item = Incoming(raw=raw, envelope_from=sender, recipients=[recipient], via="deliver")
    connection = None
    try:
        with deadline(timeout_seconds):
            connection = connect()
            dialect = Dialect(dialect_name)
            fast_lock_retries(connection, dialect)
            [result] = store_batch(
                connection, dialect, [item], now=now or datetime.now(UTC), grace=grace, lock_wait=lock_wait
            )
    except DeadlineExceeded as exc:
        return PipeResult(EX_TEMPFAIL, f"temporary failure: {exc}")
    except Exception as exc:
        if is_operational(exc):
            # Expected during an outage: one line for the MTA's log, the MTA retries.
            return PipeResult(EX_TEMPFAIL, f"temporary failure: database unavailable ({_first_line(exc)})")
        log.exception("could not store the message for %s", recipient)
        return PipeResult(EX_TEMPFAIL, "temporary failure")
    finally:
        if connection is not None:
            try:
                connection.close()
            except Exception:
                log.debug("closing the connection failed", exc_info=True)
    if isinstance(result, UnknownRecipient):
        return PipeResult(EX_NOUSER, f"unknown recipient {recipient}")
    if isinstance(result, Exception):
        return PipeResult(EX_TEMPFAIL, "temporary failure")
    announce_new(enqueue, [result])
    return PipeResult(EX_OK)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__
