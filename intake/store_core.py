"""Storing mails, in plain SQL on a DB-API connection: the one way a mail is stored.

Everything that acknowledges a mail (SMTP and LMTP 250, exit 0 of ``lms deliver``, an IMAP
flag) does so only after :func:`store_batch` returned, that is after the commit. Several mails
share one commit when they arrive together (SMTP group commit, an IMAP fetch batch); a failed
commit fails every mail in it, and none is acknowledged.

No SQLAlchemy here on purpose: the MTA pipe starts a process per mail and imports this module
alone, and the SMTP intake's hot path is cheaper without the ORM. The SQL is written for the
two databases we support; the table is :class:`models.tables.InboundMessage`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from models.log_context import log_ids
from models.text import safe_text

log = logging.getLogger(__name__)

Enqueue = Callable[[int], None]


class UnknownRecipient(Exception):
    """No configured mailbox has this address."""


@dataclass(frozen=True)
class Stored:
    id: int
    dealer_id: str
    duplicate: bool


@dataclass(frozen=True)
class Incoming:
    """One mail to store. ``partial``: store it for the known recipients and report the unknown
    ones (LMTP answers per recipient); otherwise an unknown recipient stores nothing."""

    raw: bytes
    envelope_from: str
    recipients: Sequence[str]
    via: str
    partial: bool = False


@dataclass
class Outcome:
    stored: list[Stored] = field(default_factory=list)
    unknown: list[str] = field(default_factory=list)
    # normalised recipient → the row its copy is in
    by_recipient: dict[str, Stored] = field(default_factory=dict)

    def for_recipient(self, address: str) -> Stored | None:
        return self.by_recipient.get(normalise_address(address))


def normalise_address(address: str) -> str:
    return address.strip().strip("<>").strip().lower()


def mailbox_key(address: str) -> str:
    """The configured mailbox an address reaches: ``muster+r-token@x`` reaches ``muster@x``
    (our Reply-To carries a reply token in the sub-address, RFC 5233)."""
    local, at, domain = normalise_address(address).partition("@")
    return f"{local.split('+', 1)[0]}{at}{domain}"


_MESSAGE_ID = re.compile(rb"^message-id[ \t]*:(.*(?:\r?\n[ \t].*)*)", re.IGNORECASE | re.MULTILINE)


def header_message_id(raw: bytes) -> str | None:
    """The first Message-ID of the header section as written (unfolded), for lookups.

    A scan of the header section only: the e-mail parser would split the whole message
    into lines first, which was a sixth of the SMTP intake's time for 20 KB mails."""
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        end = raw.find(b"\n\n")
    match = _MESSAGE_ID.search(raw, 0, len(raw) if end < 0 else end)
    if match is None:
        return None
    value = safe_text(match.group(1).decode("utf-8", "replace"))
    cleaned = " ".join(value.split())
    return cleaned[:998] or None


def is_operational(exc: BaseException) -> bool:
    """Lock timeouts, lost connections, a locked SQLite file: the database's trouble, not the
    mail's. Checked by name so that neither DB-API module must be imported."""
    return any(cls.__name__ == "OperationalError" for cls in type(exc).__mro__)


# -- SQL ---------------------------------------------------------------------------------------

_INSERT = (
    "INSERT INTO inbound_messages (dealer_id, sha256, raw, size, message_id, envelope_from,"
    " envelope_to, via, received_at, state, attempts, next_attempt_at, updated_at)"
    " VALUES (?, ?, ?, ?, ?, ?, {json}, ?, ?, 'received', 0, ?, ?)"
    " ON CONFLICT (dealer_id, sha256) DO NOTHING RETURNING id"
)
_EXISTING = "SELECT id FROM inbound_messages WHERE dealer_id = ? AND sha256 = ?"
_OWNERS = "SELECT address, dealer_id FROM mailboxes WHERE address IN ({marks})"


class Dialect:
    """The few differences between sqlite3 and psycopg for these statements."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.postgres = name == "postgresql"
        mark = "%s" if self.postgres else "?"
        json_value = f"CAST({mark} AS json)" if self.postgres else mark
        self.insert = _INSERT.replace("?", mark).format(json=json_value)
        self.existing = _EXISTING.replace("?", mark)
        self.mark = mark

    def owners(self, count: int) -> str:
        return _OWNERS.format(marks=", ".join([self.mark] * count))

    def timestamp(self, value: datetime) -> Any:
        if self.postgres:
            return value
        # The format SQLAlchemy's SQLite DateTime writes and compares as text.
        return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")

    def begin(self, connection: Any, lock_wait: float | None = None) -> None:
        if self.postgres:
            return
        # BEGIN IMMEDIATE: take the write lock now, not at the first write (models/db.py).
        if lock_wait is None:
            connection.execute("BEGIN IMMEDIATE")
            return
        # On a connection without a busy timeout: SQLite's own busy handler sleeps ever longer
        # (up to 100 ms at a time), so ten pipes or the workers of `lms run` writing at once
        # would wait mostly for nothing. Try again after a millisecond or so instead.
        deadline = time.monotonic() + lock_wait
        delay = 0.0005
        while True:
            try:
                connection.execute("BEGIN IMMEDIATE")
                return
            except Exception as exc:
                if "locked" not in str(exc) and "busy" not in str(exc):
                    raise
                if time.monotonic() >= deadline:
                    raise
            time.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 1.5, 0.002)


def fast_lock_retries(connection: Any, dialect: Dialect) -> None:
    """Make ``connection`` (kept by one writer) fail at once on a held SQLite lock, so that
    :meth:`Dialect.begin` can retry quickly; nothing for PostgreSQL."""
    if not dialect.postgres:
        connection.execute("PRAGMA busy_timeout=0")


def lookup_dealer(connection: Any, dialect: Dialect, address: str) -> str | None:
    cursor = connection.cursor()
    try:
        cursor.execute(dialect.owners(1), (mailbox_key(address),))
        row = cursor.fetchone()
    finally:
        cursor.close()
        connection.rollback()  # ends PostgreSQL's implicit transaction; nothing for SQLite
    return str(row[1]) if row else None


def _store_in_transaction(
    connection: Any, dialect: Dialect, items: Sequence[Incoming], *, now: datetime, grace: timedelta
) -> list[Outcome | UnknownRecipient]:
    cursor = connection.cursor()
    try:
        keys = {mailbox_key(r) for item in items for r in item.recipients}
        owners: dict[str, str] = {}
        if keys:
            cursor.execute(dialect.owners(len(keys)), tuple(sorted(keys)))
            owners = {str(a): str(d) for a, d in cursor.fetchall()}
        received = dialect.timestamp(now)
        due = dialect.timestamp(now + grace)
        results: list[Outcome | UnknownRecipient] = []
        for item in items:
            recipients = [normalise_address(r) for r in item.recipients]
            unknown = [r for r in recipients if mailbox_key(r) not in owners]
            if not recipients or (unknown and not item.partial):
                results.append(UnknownRecipient(unknown[0] if unknown else "no recipient"))
                continue
            outcome = Outcome(unknown=unknown)
            per_dealer: dict[str, list[str]] = {}
            for address in recipients:
                if address not in unknown:
                    per_dealer.setdefault(owners[mailbox_key(address)], []).append(address)
            digest = hashlib.sha256(item.raw).hexdigest()
            message_id = header_message_id(item.raw) if per_dealer else None
            for dealer_id, addresses in per_dealer.items():
                cursor.execute(
                    dialect.insert,
                    (
                        dealer_id,
                        digest,
                        item.raw,
                        len(item.raw),
                        message_id,
                        safe_text(normalise_address(item.envelope_from)),
                        json.dumps(addresses),
                        item.via,
                        received,
                        due,
                        received,
                    ),
                )
                row = cursor.fetchone()
                if row is None:
                    cursor.execute(dialect.existing, (dealer_id, digest))
                    existing = cursor.fetchone()
                    assert existing is not None
                    stored = Stored(int(existing[0]), dealer_id, duplicate=True)
                else:
                    stored = Stored(int(row[0]), dealer_id, duplicate=False)
                outcome.stored.append(stored)
                for address in addresses:
                    outcome.by_recipient[address] = stored
            results.append(outcome)
        return results
    finally:
        cursor.close()


def store_batch(
    connection: Any,
    dialect: Dialect,
    items: Sequence[Incoming],
    *,
    now: datetime,
    grace: timedelta,
    lock_wait: float | None = None,
) -> list[Outcome | UnknownRecipient]:
    """Store ``items`` in one transaction and commit; one result per item.

    A database failure (lock, lost connection) raises: nothing of the batch is acknowledged.
    A failure that may belong to one mail (a value the database refuses) makes the batch fall
    back to one transaction per mail, so one bad mail cannot hold the others back.
    """
    try:
        results = _commit(connection, dialect, items, now=now, grace=grace, lock_wait=lock_wait)
    except Exception as exc:
        if len(items) == 1 or is_operational(exc):
            raise
        log.warning("a batch of %d mails failed (%s); storing them one by one", len(items), exc)
    else:
        _log_stored(items, results)
        return results
    results = []
    for item in items:
        try:
            results.extend(_commit(connection, dialect, [item], now=now, grace=grace, lock_wait=lock_wait))
        except Exception as exc:
            if is_operational(exc):
                raise
            log.exception("storing one mail failed")
            results.append(exc)  # type: ignore[arg-type]
    _log_stored(items, results)
    return results


def _log_stored(items: Sequence[Incoming], results: Sequence[object]) -> None:
    """One line per stored row, with its ids (issue 14): the first line of a mail's story."""
    if not log.isEnabledFor(logging.INFO):
        return
    for item, result in zip(items, results, strict=True):
        if isinstance(result, Outcome):
            for stored in result.stored:
                what = "duplicate of inbound" if stored.duplicate else "stored inbound"
                log.info(
                    "%s %s via %s (%d bytes)",
                    what,
                    stored.id,
                    item.via,
                    len(item.raw),
                    extra=log_ids(inbound_id=stored.id, dealer=stored.dealer_id),
                )


def _commit(
    connection: Any,
    dialect: Dialect,
    items: Sequence[Incoming],
    *,
    now: datetime,
    grace: timedelta,
    lock_wait: float | None,
) -> list[Outcome | UnknownRecipient]:
    try:
        dialect.begin(connection, lock_wait)
        results = _store_in_transaction(connection, dialect, items, now=now, grace=grace)
        connection.commit() if dialect.postgres else connection.execute("COMMIT")
        return results
    except BaseException:
        try:
            connection.rollback()
        except Exception:  # the connection is gone; the caller throws it away
            log.debug("rollback failed", exc_info=True)
        raise


def announce(enqueue: Callable[[Any], object], row_ids: Any) -> None:
    """Tell the workers about committed rows; a broker that fails here loses nothing."""
    try:
        enqueue(row_ids)
    except Exception:
        # Stored is what counts; the sweeper picks the rows up.
        log.warning("could not enqueue %s; the sweeper will", row_ids, exc_info=True)


def announce_new(enqueue: Enqueue | None, results: Sequence[object]) -> None:
    if enqueue is None:
        return
    for result in results:
        if isinstance(result, Outcome):
            for stored in result.stored:
                if not stored.duplicate:
                    announce(enqueue, stored.id)
