"""Find rows stuck in a non-final state and enqueue them again.

The broker may lose a message (the in-memory broker at a crash, a crash between commit and
enqueue, Redis losing data); the row in the database does not. Every row that is not final
carries ``next_attempt_at``; when that has passed, the sweeper enqueues the row once more and
pushes the time on by ``grace``, so a long queue is not flooded with repeats.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from models.db import Database
from models.tables import (
    INBOUND_PENDING_STATES,
    OUTBOUND_PENDING_STATES,
    InboundMessage,
    OutboundMessage,
)
from workers import webhooks

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SweepResult:
    inbound: int
    outbound: int
    webhooks: int = 0


def sweep(
    db: Database,
    *,
    now: datetime,
    grace: timedelta,
    enqueue_ingest: Callable[[int], None],
    enqueue_send: Callable[[list[int]], None],
    enqueue_webhook: Callable[[int], None] | None = None,
    batch: int = 1000,
) -> SweepResult:
    with db.session() as session:
        inbound_rows = session.scalars(
            select(InboundMessage)
            .where(InboundMessage.state.in_(INBOUND_PENDING_STATES), InboundMessage.next_attempt_at <= now)
            .order_by(InboundMessage.next_attempt_at)
            .limit(batch)
            .with_for_update(skip_locked=True)
        ).all()
        inbound_ids = [row.id for row in inbound_rows]
        for in_row in inbound_rows:
            in_row.next_attempt_at = now + grace
        outbound_rows = session.scalars(
            select(OutboundMessage)
            .where(OutboundMessage.state.in_(OUTBOUND_PENDING_STATES), OutboundMessage.next_attempt_at <= now)
            .order_by(OutboundMessage.next_attempt_at)
            .limit(batch)
            .with_for_update(skip_locked=True)
        ).all()
        # The mails of one lead travel together, as when ingest first sent them.
        by_lead: dict[object, list[int]] = {}
        for row in outbound_rows:
            by_lead.setdefault(row.lead_id if row.lead_id is not None else ("row", row.id), []).append(row.id)
        outbound_ids = [row.id for row in outbound_rows]
        for row in outbound_rows:
            if row.state == "sending":  # its lease ran out: the sender is presumed dead
                row.state = "queued"
            row.next_attempt_at = now + grace
        # Webhooks: the head of each subscription whose time has come (workers.webhooks).
        webhook_heads = webhooks.due_heads(session, now=now) if enqueue_webhook is not None else []
    for head in webhook_heads:
        enqueue_webhook(head)  # type: ignore[misc]
    for inbound_id in inbound_ids:
        enqueue_ingest(inbound_id)
    for group in by_lead.values():
        enqueue_send(group)
    if inbound_ids or outbound_ids:
        log.info("sweeper re-enqueued %d inbound and %d outbound rows", len(inbound_ids), len(outbound_ids))
    return SweepResult(len(inbound_ids), len(outbound_ids), len(webhook_heads))
