"""The one way a mail enters the system: stored durably first, announced to the workers second.

Whatever acknowledges a mail (SMTP 250, exit 0 of the MTA pipe, an IMAP flag) does so only
after :func:`store_message` returned, that is after the commit. Announcing the new row to the
broker may fail without harm: the sweeper finds every row still in ``received``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.parser import BytesHeaderParser
from email.policy import compat32
from typing import Any

from sqlalchemy import select

from models.db import Database, dialect_insert
from models.tables import InboundMessage, Mailbox

log = logging.getLogger(__name__)

Enqueue = Callable[[Any], None]


class UnknownRecipient(Exception):
    """No configured mailbox has this address."""


@dataclass(frozen=True)
class Stored:
    id: int
    dealer_id: str
    duplicate: bool


def normalise_address(address: str) -> str:
    return address.strip().strip("<>").strip().lower()


def mailbox_key(address: str) -> str:
    """The configured mailbox an address reaches: ``muster+r-token@x`` reaches ``muster@x``
    (our Reply-To carries a reply token in the sub-address, RFC 5233)."""
    local, at, domain = normalise_address(address).partition("@")
    return f"{local.split('+', 1)[0]}{at}{domain}"


def dealer_for_address(db: Database, address: str) -> str | None:
    with db.read() as session:  # a lookup per RCPT: never the write lock
        return session.scalar(select(Mailbox.dealer_id).where(Mailbox.address == mailbox_key(address)))


def header_message_id(raw: bytes) -> str | None:
    """The Message-ID as written, for lookups; a broken header section gives ``None``."""
    try:
        headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
        value = headers.get("Message-ID")
    except Exception:  # a mail we cannot even split into headers is still stored
        return None
    if value is None:
        return None
    cleaned = " ".join(str(value).split())
    return cleaned[:998] or None


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
    recipients = [normalise_address(r) for r in recipients]
    keys = {r: mailbox_key(r) for r in recipients}
    if not recipients:
        raise UnknownRecipient("no recipient")
    digest = hashlib.sha256(raw).hexdigest()
    message_id = header_message_id(raw)
    results: list[Stored] = []
    with db.session() as session:
        owners = dict(
            session.execute(
                select(Mailbox.address, Mailbox.dealer_id).where(Mailbox.address.in_(set(keys.values())))
            ).all()
        )
        unknown = [r for r in recipients if keys[r] not in owners]
        if unknown:
            raise UnknownRecipient(unknown[0])
        per_dealer: dict[str, list[str]] = {}
        for address in recipients:
            per_dealer.setdefault(owners[keys[address]], []).append(address)
        for dealer_id, addresses in per_dealer.items():
            statement = (
                dialect_insert(session, InboundMessage)
                .values(
                    dealer_id=dealer_id,
                    sha256=digest,
                    raw=raw,
                    size=len(raw),
                    message_id=message_id,
                    envelope_from=normalise_address(envelope_from),
                    envelope_to=addresses,
                    via=via,
                    received_at=now,
                    state="received",
                    attempts=0,
                    next_attempt_at=now + grace,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=["dealer_id", "sha256"])
                .returning(InboundMessage.id)
            )
            new_id = session.scalar(statement)
            if new_id is None:
                existing = session.scalar(
                    select(InboundMessage.id).where(
                        InboundMessage.dealer_id == dealer_id, InboundMessage.sha256 == digest
                    )
                )
                assert existing is not None
                results.append(Stored(existing, dealer_id, duplicate=True))
            else:
                results.append(Stored(new_id, dealer_id, duplicate=False))
    if enqueue is not None:
        for stored in results:
            if not stored.duplicate:
                announce(enqueue, stored.id)
    return results


def announce(enqueue: Enqueue, row_ids: Any) -> None:
    """Tell the workers about committed rows; a broker that fails here loses nothing."""
    try:
        enqueue(row_ids)
    except Exception:
        # Stored is what counts; the sweeper picks the row up.
        log.warning("could not enqueue %s; the sweeper will", row_ids, exc_info=True)
