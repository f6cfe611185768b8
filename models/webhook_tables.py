"""The webhook outbox: one row per event and subscription, written in the transaction that
caused the event, delivered by the workers (``workers.webhooks``)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.tables import Base, Id, UTCDateTime

WEBHOOK_PENDING_STATES = ("queued", "sending")
# erased: the lead's personal data was erased (GDPR) before the row was delivered; its body is
# gone, so it is neither sent nor replayed.
WEBHOOK_FINAL_STATES = ("delivered", "dead", "erased")


class WebhookDelivery(Base):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        # The head of a subscription's queue: its oldest pending row.
        Index("ix_webhook_deliveries_subscription", "dealer_id", "subscription", "state", "id"),
        Index("ix_webhook_deliveries_state_next", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    # The idempotency key the receiver sees (``webhook-id``): the same on every attempt.
    event_id: Mapped[str] = mapped_column(String(64), unique=True)
    dealer_id: Mapped[str] = mapped_column(String(64))
    subscription: Mapped[str] = mapped_column(String(300))  # the webhook's name (default: its URL)
    event: Mapped[str] = mapped_column(String(32))  # lead.created | lead.assigned | …
    # No foreign key: a webhook row outlives nothing it must protect (a probe lead is removed).
    lead_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    content_type: Mapped[str] = mapped_column(String(100))
    body: Mapped[bytes] = mapped_column(LargeBinary)  # rendered once, at the event
    # queued → sending → delivered | dead (attempts exhausted or the webhook is gone) | erased
    state: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)  # the receiver's HTTP status
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Queued and tried before: not before this (backoff). Sending: the lease.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
