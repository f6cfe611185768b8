"""Tables of operations monitoring (issue 14): the scheduler's heartbeat and the end-to-end
probe's runs. The health verdict reads them; so does the metrics collector."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.tables import Base, Id, UTCDateTime


class Heartbeat(Base):
    """The last pass of a periodic component (``scheduler``): when it ran, how long it took,
    and how often it means to run, so a stalled one is seen by anybody who reads this row."""

    __tablename__ = "ops_heartbeats"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime] = mapped_column(UTCDateTime)
    duration_seconds: Mapped[float] = mapped_column(Float)
    # How late this pass started against its plan (the scheduler's lag).
    lag_seconds: Mapped[float] = mapped_column(Float, default=0.0)
    interval_seconds: Mapped[float] = mapped_column(Float)
    host: Mapped[str] = mapped_column(String(255), default="")


class ProbeRun(Base):
    """One end-to-end probe: a marked test enquiry sent through the dealer's intake path and
    timed until it became a (probe) lead. ``token`` marks the mail; only a waiting run's token
    makes a mail a probe, so nobody outside can mark mail to skip its autoresponse."""

    __tablename__ = "probe_runs"
    __table_args__ = (
        Index("ix_probe_runs_dealer_started", "dealer_id", "started_at"),
        # The latest finished run per dealer (every scrape of /metrics, every health verdict).
        Index("ix_probe_runs_dealer_state_id", "dealer_id", "state", "id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    dealer_id: Mapped[str] = mapped_column(String(64))
    token: Mapped[str] = mapped_column(String(64), unique=True)
    via: Mapped[str] = mapped_column(String(16))  # smtp | imap
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # waiting → ok | failed | timeout
    state: Mapped[str] = mapped_column(String(16), default="waiting")
    seconds: Mapped[float | None] = mapped_column(Float, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
