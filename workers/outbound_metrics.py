"""The outbox's figures, counted after the commit that made rows final: state per kind, and for
an autoresponse the time from its inbound mail's 250 to the relay's acceptance (read inside the
transaction that records the send, so it costs no transaction of its own; only while metrics
are on)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import metrics
from models.tables import InboundMessage, Lead

# (kind, state, lead id) of rows a commit made final.
Final = tuple[str, str, int | None]


def answered_received_at(session: Session, finals: list[Final]) -> list[datetime]:
    """When the inbound mails of the autoresponses among ``finals`` that were sent got their 250."""
    if not metrics.enabled():
        return []
    answered = [lead for kind, state, lead in finals if kind == "autoresponse" and state == "sent" and lead]
    if not answered:
        return []
    return list(
        session.scalars(
            select(InboundMessage.received_at)
            .join(Lead, Lead.inbound_id == InboundMessage.id)
            .where(Lead.id.in_(answered))
        )
    )


def count_final(finals: list[Final], answered: Iterable[datetime] = ()) -> None:
    if not finals or not metrics.enabled():
        return
    for kind, state, _lead in finals:
        metrics.outbound_final(kind, state)
    for received_at in answered:
        metrics.autoresponse_relayed(received_at)
