"""The operations view (``lms ops status``, ``/api/ops/status``): counts per state, queue depths,
the oldest pending row, dead letters, IMAP mailboxes, webhook deliveries."""

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
from models.webhook_tables import WEBHOOK_PENDING_STATES, WebhookDelivery


def ops_status(
    session: Session, *, now: datetime, queues: dict[str, int], dealer: str | None = None
) -> dict[str, Any]:
    """Everything, or one dealer's part of it (``dealer``: the web pane's admin page)."""
    in_where = [InboundMessage.dealer_id == dealer] if dealer else []
    out_where = [OutboundMessage.dealer_id == dealer] if dealer else []
    inbound = dict(
        session.execute(
            select(InboundMessage.state, func.count()).where(*in_where).group_by(InboundMessage.state)
        ).all()
    )
    outbound = dict(
        session.execute(
            select(OutboundMessage.state, func.count()).where(*out_where).group_by(OutboundMessage.state)
        ).all()
    )
    oldest = [
        session.scalar(
            select(func.min(InboundMessage.received_at)).where(
                InboundMessage.state.in_(INBOUND_PENDING_STATES), *in_where
            )
        ),
        session.scalar(
            select(func.min(OutboundMessage.created_at)).where(
                OutboundMessage.state.in_(OUTBOUND_PENDING_STATES), *out_where
            )
        ),
    ]
    hook_where = [WebhookDelivery.dealer_id == dealer] if dealer else []
    hooks = dict(
        session.execute(
            select(WebhookDelivery.state, func.count()).where(*hook_where).group_by(WebhookDelivery.state)
        ).all()
    )
    oldest.append(
        session.scalar(
            select(func.min(WebhookDelivery.created_at)).where(
                WebhookDelivery.state.in_(WEBHOOK_PENDING_STATES), *hook_where
            )
        )
    )
    pending = [t for t in oldest if t is not None]
    oldest_seconds = max(0.0, (now - min(pending)).total_seconds()) if pending else 0
    failed_outbound = outbound.get("failed", 0)
    return {
        "inbound": inbound,
        "outbound": outbound,
        "queues": queues,
        "oldest_pending_seconds": round(oldest_seconds),
        "dead": inbound.get("dead", 0) + outbound.get("dead", 0) + hooks.get("dead", 0),
        "webhooks": hooks,
        "failed": failed_outbound,
        "imap": [b for b in imap_view(session) if dealer is None or b["mailbox"].startswith(f"{dealer}:")],
        "oauth": [g for g in oauth_view(session) if dealer is None or g.get("dealer") == dealer],
    }
