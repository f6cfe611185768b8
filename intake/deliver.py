"""The MTA pipe transport: one message on stdin, the exit code tells the MTA what happened.

Exit codes are those of sysexits.h, which Postfix and Exim understand: 0 stored, 67
(EX_NOUSER) unknown recipient, the MTA bounces; 75 (EX_TEMPFAIL) anything else, the MTA
keeps the mail and retries.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy.exc import OperationalError

from intake.store import Enqueue, UnknownRecipient, store_message
from models.db import Database

log = logging.getLogger(__name__)

EX_OK = 0
EX_NOUSER = 67
EX_TEMPFAIL = 75


def deliver(
    db: Database,
    raw: bytes,
    *,
    recipient: str,
    sender: str,
    now: datetime,
    enqueue: Enqueue | None,
    grace: timedelta,
) -> int:
    if not raw.strip():
        log.error("empty message on stdin")
        return EX_TEMPFAIL
    try:
        store_message(
            db,
            raw,
            envelope_from=sender,
            recipients=[recipient],
            via="deliver",
            now=now,
            enqueue=enqueue,
            grace=grace,
        )
    except UnknownRecipient:
        return EX_NOUSER
    except OperationalError as exc:
        # Expected during an outage: one line for the MTA's log, the MTA retries.
        log.error("database unavailable, message for %s deferred: %s", recipient, exc.orig)
        return EX_TEMPFAIL
    except Exception:
        log.exception("could not store the message for %s", recipient)
        return EX_TEMPFAIL
    return EX_OK
