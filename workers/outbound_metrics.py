"""The outbox's figures, counted after the commit that made rows final: state per kind, and for
an autoresponse the time from its inbound mail's 250 to the relay's acceptance (one small read,
and only while metrics are on)."""

from __future__ import annotations

from sqlalchemy import select

from models import metrics
from models.db import Database
from models.tables import InboundMessage, Lead

# (kind, state, lead id) of rows a commit made final.
Final = tuple[str, str, int | None]


def count_final(db: Database, finals: list[Final]) -> None:
    if not finals or not metrics.enabled():
        return
    for kind, state, _lead in finals:
        metrics.outbound_final(kind, state)
    answered = [lead for kind, state, lead in finals if kind == "autoresponse" and state == "sent" and lead]
    if not answered:
        return
    with db.read() as session:
        received = session.scalars(
            select(InboundMessage.received_at)
            .join(Lead, Lead.inbound_id == InboundMessage.id)
            .where(Lead.id.in_(answered))
        ).all()
    for received_at in received:
        metrics.autoresponse_relayed(received_at)
