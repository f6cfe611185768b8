"""Send outbox rows: claim them, hand the stored bytes to the relay, record the outcome.

The bytes were rendered once when the row was written; every attempt sends exactly them.
The mails of one lead travel together: one transaction claims them all (a claim is a lease:
a worker that dies while sending leaves ``sending`` rows whose lease runs out, and the
sweeper queues them again), one relay session sends them, and their results are committed
together where the relay is idempotent (Maildir: a mail handed over twice is stored once).
Through SMTP each result is committed right after its 250, to keep the window in which a
crash would send a mail twice as short as SMTP allows (see :mod:`workers.relay`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import defer

from models.db import Database
from models.log_context import log_ids
from models.tables import OUTBOUND_FINAL_STATES, OutboundMessage
from workers.outbound_metrics import answered_received_at, count_final
from workers.relay import DeliveryError, Outgoing, PermanentDeliveryError, Relay

log = logging.getLogger(__name__)


def backoff(
    attempts: int, *, first: timedelta = timedelta(seconds=30), cap: timedelta = timedelta(hours=1)
) -> timedelta:
    """How long to wait after the ``attempts``-th failure: doubling from ``first``, at most ``cap``."""
    return min(first * (2 ** max(attempts - 1, 0)), cap)


@dataclass(frozen=True)
class SendPolicy:
    max_attempts: int = 8
    lease: timedelta = timedelta(minutes=5)
    first_backoff: timedelta = timedelta(seconds=30)
    max_backoff: timedelta = timedelta(hours=1)

    def backoff(self, attempts: int) -> timedelta:
        return backoff(attempts, first=self.first_backoff, cap=self.max_backoff)


@dataclass(frozen=True)
class Claimed:
    id: int
    attempts: int
    kind: str
    mail: Outgoing


@dataclass(frozen=True)
class Outcome:
    id: int
    attempts: int
    error: str | None = None
    permanent: bool = False


def claim(
    db: Database, ids: list[int], *, now: datetime, policy: SendPolicy
) -> tuple[list[Claimed], dict[int, str]]:
    """Lease the rows that may be sent now; the others' states as they are (or "expired")."""
    claimed: list[Claimed] = []
    states: dict[int, str] = {}
    expired: list[tuple[str, str, int | None]] = []
    with db.session() as session:
        rows = session.scalars(
            select(OutboundMessage)
            .where(OutboundMessage.id.in_(ids))
            .order_by(OutboundMessage.id)
            .with_for_update()
        )
        for row in rows:
            if row.state in OUTBOUND_FINAL_STATES:
                states[row.id] = row.state
            elif row.state == "sending" and row.next_attempt_at is not None and row.next_attempt_at > now:
                states[row.id] = "sending"  # another worker holds the lease
            elif row.expires_at is not None and now >= row.expires_at:
                row.state, row.next_attempt_at, row.updated_at = "expired", None, now
                row.last_error = (
                    row.last_error or ""
                ) + f" (not sent: expired at {row.expires_at.isoformat()})"
                states[row.id] = "expired"
                expired.append((row.kind, "expired", row.lead_id))
            else:
                row.state, row.attempts = "sending", row.attempts + 1
                row.next_attempt_at, row.updated_at = now + policy.lease, now
                mail = Outgoing(row.message_id, row.raw, row.envelope_from, list(row.envelope_to))
                claimed.append(Claimed(row.id, row.attempts, row.kind, mail))
    count_final(expired)
    # The customer's answer first: it is the one a person waits for.
    claimed.sort(key=lambda c: (c.kind != "autoresponse", c.id))
    for missing in set(ids) - {c.id for c in claimed} - set(states):
        states[missing] = "missing"
    return claimed, states


def record(db: Database, outcomes: list[Outcome], *, now: datetime, policy: SendPolicy) -> dict[int, str]:
    states: dict[int, str] = {}
    finals: list[tuple[str, str, int | None]] = []
    ids: dict[int, dict[str, object]] = {}  # for the log lines (issue 14)
    with db.session() as session:
        rows = {
            row.id: row
            for row in session.scalars(
                select(OutboundMessage)
                .where(OutboundMessage.id.in_([o.id for o in outcomes]))
                .options(defer(OutboundMessage.raw))  # read by claim() already; only states change
                .with_for_update()
            )
        }
        for outcome in outcomes:
            row = rows[outcome.id]
            row.updated_at = now
            if outcome.error is None:
                row.state, row.sent_at, row.next_attempt_at, row.last_error = "sent", now, None, None
            elif outcome.permanent:
                row.state, row.next_attempt_at, row.last_error = "failed", None, outcome.error
            elif outcome.attempts >= policy.max_attempts:
                row.state, row.next_attempt_at, row.last_error = "dead", None, outcome.error
            else:
                row.state = "queued"
                row.next_attempt_at = now + policy.backoff(outcome.attempts)
                row.last_error = outcome.error
            states[row.id] = row.state
            if row.state != "queued":
                finals.append((row.kind, row.state, row.lead_id))
            ids[row.id] = log_ids(outbound_id=row.id, lead_id=row.lead_id, dealer=row.dealer_id)
        answered = answered_received_at(session, finals)
    count_final(finals, answered)
    for outcome in outcomes:
        if outcome.error:
            log.warning(
                "outbound %s: %s after attempt %s: %s",
                outcome.id,
                states[outcome.id],
                outcome.attempts,
                outcome.error,
                extra=ids[outcome.id],
            )
        else:
            log.info("outbound %s: sent", outcome.id, extra=ids[outcome.id])
    return states


def send_outbound(
    db: Database, ids: list[int], relay: Relay, *, now: datetime, policy: SendPolicy
) -> dict[int, str]:
    """Send these rows (typically one lead's mails); their states afterwards."""
    claimed, states = claim(db, ids, now=now, policy=policy)
    if not claimed:
        return states
    pending: list[Outcome] = []
    with relay.session() as session:
        for item in claimed:
            try:
                session.send(item.mail)
                outcome = Outcome(item.id, item.attempts)
            except PermanentDeliveryError as exc:
                outcome = Outcome(item.id, item.attempts, str(exc), permanent=True)
            except DeliveryError as exc:
                outcome = Outcome(item.id, item.attempts, str(exc))
            except Exception as exc:  # transient by default: the relay is down, slow or confused
                outcome = Outcome(item.id, item.attempts, f"{type(exc).__name__}: {exc}")
            if relay.idempotent:
                pending.append(outcome)
            else:
                states.update(record(db, [outcome], now=now, policy=policy))
    if pending:
        states.update(record(db, pending, now=now, policy=policy))
    return states
