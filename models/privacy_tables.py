"""What data protection needs kept (GDPR): who read or changed which lead (the audit log), and
when personal data was erased or raw mails deleted (the rows stay: counts and reports do)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.tables import Base, Id, UTCDateTime


class AuditEntry(Base):
    """One access to a lead or a contact: read in the pane, changed, exported, erased."""

    __tablename__ = "audit_log"
    __table_args__ = (
        Index("ix_audit_log_lead_at", "lead_id", "at"),
        Index("ix_audit_log_dealer_at", "dealer_id", "at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    dealer_id: Mapped[str] = mapped_column(ForeignKey("dealers.id"))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    # Who, as people read it: a user name, "api:<user>", or "cli" / "retention" for operators.
    actor: Mapped[str] = mapped_column(String(100))
    # read | change | download | export | erase | retention
    action: Mapped[str] = mapped_column(String(32))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id"), nullable=True)
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id"), nullable=True, index=True)
    detail: Mapped[str] = mapped_column(Text, default="")
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
