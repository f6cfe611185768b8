"""Send one outbox row: claim it, hand the stored bytes to the relay, record the outcome.

The bytes were rendered once when the row was written; every attempt sends exactly them.
A claim is a lease: a worker that dies while sending leaves ``sending`` with a lease that
runs out, and the sweeper queues the row again (a mail may then go out twice; SMTP offers
nothing better, and the fixed Message-ID lets receivers drop the copy).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from models.db import Database
from models.tables import OUTBOUND_FINAL_STATES, OutboundMessage
from workers.relay import PermanentDeliveryError, Relay

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


def send_outbound(db: Database, outbound_id: int, relay: Relay, *, now: datetime, policy: SendPolicy) -> str:
    with db.session() as session:
        row = session.get(OutboundMessage, outbound_id, with_for_update=True)
        if row is None:
            return "missing"
        if row.state in OUTBOUND_FINAL_STATES:
            return row.state
        if row.state == "sending" and row.next_attempt_at is not None and row.next_attempt_at > now:
            return "sending"  # another worker holds the lease
        if row.expires_at is not None and now >= row.expires_at:
            row.state, row.next_attempt_at, row.updated_at = "expired", None, now
            row.last_error = (row.last_error or "") + f" (not sent: expired at {row.expires_at.isoformat()})"
            return "expired"
        row.state = "sending"
        row.attempts += 1
        row.next_attempt_at = now + policy.lease
        row.updated_at = now
        raw, envelope_from, recipients, attempts = (
            row.raw,
            row.envelope_from,
            list(row.envelope_to),
            row.attempts,
        )

    error: str | None = None
    permanent = False
    try:
        relay.send(raw, envelope_from, recipients)
    except PermanentDeliveryError as exc:
        error, permanent = str(exc), True
    except Exception as exc:  # transient by default: the relay is down, slow or confused
        error = f"{type(exc).__name__}: {exc}"

    with db.session() as session:
        row = session.get(OutboundMessage, outbound_id, with_for_update=True)
        assert row is not None
        row.updated_at = now
        if error is None:
            row.state, row.sent_at, row.next_attempt_at, row.last_error = "sent", now, None, None
        elif permanent:
            row.state, row.next_attempt_at, row.last_error = "failed", None, error
        elif attempts >= policy.max_attempts:
            row.state, row.next_attempt_at, row.last_error = "dead", None, error
        else:
            row.state, row.next_attempt_at, row.last_error = "queued", now + policy.backoff(attempts), error
        state = row.state
    if error:
        log.warning("outbound %s: %s after attempt %s: %s", outbound_id, state, attempts, error)
    return state
