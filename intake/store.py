"""The one way a mail enters the system: stored durably first, announced to the workers second.

Whatever acknowledges a mail (SMTP 250, exit 0 of the MTA pipe, an IMAP flag) does so only
after :func:`store_message` (or :func:`store_many`) returned, that is after the commit.
Announcing the new row to the broker may fail without harm: the sweeper finds every row still
in ``received``. The SQL itself is in :mod:`intake.store_core`, shared with the MTA pipe.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from intake.store_core import (
    Dialect,
    Enqueue,
    Incoming,
    Outcome,
    Stored,
    UnknownRecipient,
    announce,
    announce_new,
    header_message_id,
    lookup_dealer,
    mailbox_key,
    normalise_address,
    store_batch,
)
from models.db import Database

__all__ = [
    "Enqueue",
    "Incoming",
    "Outcome",
    "Stored",
    "UnknownRecipient",
    "announce",
    "dealer_for_address",
    "header_message_id",
    "mailbox_key",
    "normalise_address",
    "store_many",
    "store_message",
]


def dealer_for_address(db: Database, address: str) -> str | None:
    with db.dbapi() as connection:
        return lookup_dealer(connection, Dialect(db.dialect), address)


def store_many(
    db: Database,
    items: Sequence[Incoming],
    *,
    now: datetime,
    grace: timedelta = timedelta(seconds=60),
    enqueue: Enqueue | None = None,
) -> list[Outcome | UnknownRecipient]:
    """Store several mails with one commit (one result per mail), then announce the new rows."""
    if not items:
        return []
    with db.writing(), db.dbapi() as connection:
        results = store_batch(connection, Dialect(db.dialect), items, now=now, grace=grace)
    announce_new(enqueue, results)
    return results


def store_message(
    db: Database,
    raw: bytes,
    *,
    envelope_from: str,
    recipients: Iterable[str],
    via: str,
    now: datetime,
    enqueue: Enqueue | None = None,
    grace: timedelta = timedelta(seconds=60),
) -> list[Stored]:
    """Store ``raw`` once per dealer among ``recipients``; raise :class:`UnknownRecipient` if
    any recipient is no configured mailbox (then nothing is stored)."""
    item = Incoming(raw=raw, envelope_from=envelope_from, recipients=list(recipients), via=via)
    [result] = store_many(db, [item], now=now, grace=grace, enqueue=enqueue)
    if isinstance(result, Exception):
        raise result
    return result.stored
