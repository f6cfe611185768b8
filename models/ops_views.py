"""The operations view (``lms ops status``, ``/api/ops/status``): counts per state, queue depths,
the oldest pending row, dead letters, IMAP mailboxes."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.mailbox_views import imap_view, oauth_view
from models.tables import (
    INBOUND_PENDING_STATES,
    OUTBOUND_PENDING_STATES,
    InboundMessage,
    OutboundMessage,
)


def ops_status(session: Session, *, now: datetime, queues: dict[str, int]) -> dict[str, Any]:
    inbound = dict(
        session.execute(select(InboundMessage.state, func.count()).group_by(InboundMessage.state)).all()
    )
    outbound = dict(
        session.execute(select(OutboundMessage.state, func.count()).group_by(OutboundMessage.state)).all()
    )
    oldest = [
        session.scalar(
            select(func.min(InboundMessage.received_at)).where(
                InboundMessage.state.in_(INBOUND_PENDING_STATES)
            )
        ),
        session.scalar(
            select(func.min(OutboundMessage.created_at)).where(
                OutboundMessage.state.in_(OUTBOUND_PENDING_STATES)
            )
        ),
    ]
    pending = [t for t in oldest if t is not None]
    oldest_seconds = max(0.0, (now - min(pending)).total_seconds()) if pending else 0
    failed_outbound = outbound.get("failed", 0)
    return {
        "inbound": inbound,
        "outbound": outbound,
        "queues": queues,
        "oldest_pending_seconds": round(oldest_seconds),
        "dead": inbound.get("dead", 0) + outbound.get("dead", 0),
        "failed": failed_outbound,
        "imap": imap_view(session),
        "oauth": oauth_view(session),
    }
