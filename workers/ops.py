"""Operator actions on the pipeline's rows: replay what failed or died."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import update
from sqlalchemy.orm import Session

from models.tables import InboundMessage, OutboundMessage
from workers import webhooks

RETRYABLE = ("failed", "dead")


@dataclass(frozen=True)
class Retried:
    inbound: int
    outbound: int
    webhooks: int = 0


def retry(
    session: Session,
    *,
    now: datetime,
    inbound_id: int | None = None,
    outbound_id: int | None = None,
    all_failed: bool = False,
    webhook_id: int | None = None,
) -> Retried:
    """Put dead or failed rows back in the pipeline, due now (the sweeper picks them up at once)."""
    n_in = n_out = 0
    if inbound_id or all_failed:
        query = update(InboundMessage).where(InboundMessage.state.in_(RETRYABLE))
        if inbound_id:
            query = query.where(InboundMessage.id == inbound_id)
        n_in = session.execute(
            query.values(state="received", attempts=0, next_attempt_at=now, updated_at=now)
        ).rowcount  # type: ignore[attr-defined]
    if outbound_id or all_failed:
        query = update(OutboundMessage).where(OutboundMessage.state.in_(RETRYABLE))
        if outbound_id:
            query = query.where(OutboundMessage.id == outbound_id)
        n_out = session.execute(
            query.values(state="queued", attempts=0, next_attempt_at=now, updated_at=now)
        ).rowcount  # type: ignore[attr-defined]
    n_hooks = webhooks.retry(session, now=now, delivery_id=webhook_id, all_failed=all_failed)
    return Retried(n_in, n_out, n_hooks)
