"""Tables of the response-time reports: one row of facts per lead (kept up to date by
``workers.lead_facts``, backfilled by migration 0007_report), and a person's choice about the
weekly summary mail."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import Boolean, Date, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from models.tables import Base, Id, UTCDateTime


class LeadFact(Base):
    """Speed to lead of one lead (see :mod:`models.response_facts`). Denormalised (dealer,
    seller, source, type, local day and week) so a dealer's report reads one table in one pass.
    Probe leads have none."""

    __tablename__ = "lead_facts"
    __table_args__ = (Index("ix_lead_facts_dealer_arrived", "dealer_id", "arrived_at"),)

    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id", ondelete="CASCADE"), primary_key=True)
    dealer_id: Mapped[str] = mapped_column(String(64))
    arrived_at: Mapped[datetime] = mapped_column(UTCDateTime)
    arrived_day: Mapped[date] = mapped_column(Date)  # the dealer's local date
    arrived_week: Mapped[date] = mapped_column(Date)  # its ISO week's Monday
    # Who answered first; while unanswered the lead's editor (NULL: the pool).
    seller_id: Mapped[int | None] = mapped_column(Id, nullable=True)
    source_id: Mapped[int | None] = mapped_column(Id, nullable=True)
    type: Mapped[str] = mapped_column(String(32))
    stage1_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    first_answer_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    first_answer_kind: Mapped[str | None] = mapped_column(String(16), nullable=True)  # reply | completion
    first_answer_by: Mapped[int | None] = mapped_column(Id, nullable=True)
    first_answer_working_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    first_answer_wall_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    answered_within_stage1: Mapped[bool] = mapped_column(Boolean, default=False)
    escalated_stage1: Mapped[bool] = mapped_column(Boolean, default=False)
    escalated_stage2: Mapped[bool] = mapped_column(Boolean, default=False)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completion_reason: Mapped[str | None] = mapped_column(String(64), nullable=True)
    completion_working_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    completion_wall_seconds: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ReportPreference(Base):
    """A person's own choice about the weekly summary (the web pane's settings page); without a
    row the dealer file decides (``weekly_summary`` of the user, default on)."""

    __tablename__ = "report_preferences"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    weekly_summary: Mapped[bool] = mapped_column(Boolean)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
