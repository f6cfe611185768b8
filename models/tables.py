"""SQLAlchemy tables. One schema for SQLite and PostgreSQL; Alembic migrations mirror it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

# Stable constraint names, so migrations can refer to them on both databases.
NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# SQLite has no BIGINT autoincrement; PostgreSQL ids should not run out.
Id = BigInteger().with_variant(Integer(), "sqlite")


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC, returns aware UTC datetimes on both databases (SQLite drops the offset)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; pass an aware one")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)


class Dealer(Base):
    __tablename__ = "dealers"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    from_name: Mapped[str] = mapped_column(String(200))
    from_address: Mapped[str] = mapped_column(String(320))
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Berlin")
    language: Mapped[str] = mapped_column(String(8), default="de")
    country: Mapped[str] = mapped_column(String(2), default="DE")
    forward_to: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The dealer's whole configuration as applied (secrets included; never printed as is).
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Mailbox(Base):
    __tablename__ = "mailboxes"

    address: Mapped[str] = mapped_column(String(320), primary_key=True)  # lower-cased
    dealer_id: Mapped[str] = mapped_column(ForeignKey("dealers.id"), index=True)


class User(Base):
    __tablename__ = "users"
    __table_args__ = (UniqueConstraint("dealer_id", "username"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    dealer_id: Mapped[str] = mapped_column(ForeignKey("dealers.id"))
    username: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(16), default="seller")
    supervisor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    weight: Mapped[float] = mapped_column(Float, default=1.0)
    max_open: Mapped[int | None] = mapped_column(Integer, nullable=True)
    # [{"from": "2026-12-01", "to": "2026-12-05"}, …], dates in the dealer's time zone
    absences: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    # Users dropped from the configuration stay (leads refer to them) but take no new leads.
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class Source(Base):
    __tablename__ = "sources"
    __table_args__ = (UniqueConstraint("dealer_id", "name"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    dealer_id: Mapped[str | None] = mapped_column(ForeignKey("dealers.id"), nullable=True)
    name: Mapped[str] = mapped_column(String(100))
    rules: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class CompletionReason(Base):
    __tablename__ = "completion_reasons"
    __table_args__ = (UniqueConstraint("dealer_id", "code"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    # NULL: a system reason every dealer has.
    dealer_id: Mapped[str | None] = mapped_column(ForeignKey("dealers.id"), nullable=True)
    code: Mapped[str] = mapped_column(String(64))
    label: Mapped[str] = mapped_column(String(200))
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    # Who manages a dealer's row: "file" (the dealer file; applying it hides the rows it no
    # longer names) or "web" (the admin page; the file leaves it alone unless it names the code).
    origin: Mapped[str] = mapped_column(String(8), default="file", server_default="file")


class Contact(Base):
    __tablename__ = "contacts"
    __table_args__ = (
        # One contact per address: concurrent first mails of a customer cannot make two.
        Index("uq_contacts_dealer_email", "dealer_id", "email", unique=True),
        Index("ix_contacts_dealer_phone", "dealer_id", "phone"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    dealer_id: Mapped[str] = mapped_column(ForeignKey("dealers.id"))
    name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    email: Mapped[str | None] = mapped_column(String(320), nullable=True)  # normalised
    phone: Mapped[str | None] = mapped_column(String(32), nullable=True)  # E.164 where known
    # first_name, last_name, salutation, street, postal_code, city, phones (all, E.164)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Personal data erased (GDPR Art. 17, or the dealer's retention): the row stays for counts.
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class RotationCounter(Base):
    """Where a rotation stands, per dealer and user list; advanced atomically in the database."""

    __tablename__ = "rotation_counters"

    dealer_id: Mapped[str] = mapped_column(ForeignKey("dealers.id"), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    counter: Mapped[int] = mapped_column(BigInteger, default=0)  # turns handed out so far
    # {"credits": {username: float}}: what each person is owed (see models.routing)
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class InboundMessage(Base):
    __tablename__ = "inbound_messages"
    __table_args__ = (
        # The same bytes delivered twice to the same dealer are stored once.
        UniqueConstraint("dealer_id", "sha256"),
        Index("ix_inbound_state_next", "state", "next_attempt_at"),
        # The retention pass: a dealer's raw mails older than its limit.
        Index("ix_inbound_dealer_received", "dealer_id", "received_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    dealer_id: Mapped[str] = mapped_column(ForeignKey("dealers.id"))
    sha256: Mapped[str] = mapped_column(String(64))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    message_id: Mapped[str | None] = mapped_column(String(998), nullable=True, index=True)
    envelope_from: Mapped[str] = mapped_column(String(320), default="")
    envelope_to: Mapped[list[str]] = mapped_column(JSON, default=list)
    via: Mapped[str] = mapped_column(String(16))  # smtp | deliver | ingest | imap
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # received → (routed: leads written, their mails not yet) → processed | ignored |
    # unrecognised; failed → dead
    state: Mapped[str] = mapped_column(String(16), default="received")
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # When the sweeper should enqueue it again if it is still not final.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The raw bytes were deleted (erasure, retention); the row and its state stay.
    raw_deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Lead(Base):
    __tablename__ = "leads"
    __table_args__ = (
        # One lead per enquiry in a message: running ingest twice cannot duplicate it.
        UniqueConstraint("inbound_id", "ordinal"),
        Index("ix_leads_dealer_status", "dealer_id", "status"),
        Index("ix_leads_dealer_external", "dealer_id", "external_id"),
        Index("ix_leads_dealer_fingerprint", "dealer_id", "fingerprint"),
        Index("ix_leads_contact_status", "contact_id", "status"),
        # The leads list: a dealer's (or a person's) leads by last activity or due date.
        Index("ix_leads_dealer_status_activity", "dealer_id", "status", "last_activity_at"),
        Index("ix_leads_dealer_status_due", "dealer_id", "status", "due_at"),
        Index("ix_leads_editor_status_activity", "editor_id", "status", "last_activity_at"),
        # The silence alarm (models/silence.py) counts a dealer's leads in time windows.
        Index("ix_leads_dealer_created", "dealer_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    dealer_id: Mapped[str] = mapped_column(ForeignKey("dealers.id"))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id"), index=True)
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"))
    ordinal: Mapped[int] = mapped_column(Integer, default=0)
    type: Mapped[str] = mapped_column(String(32), default="general")
    source_id: Mapped[int | None] = mapped_column(ForeignKey("sources.id"), nullable=True)
    editor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    group: Mapped[str] = mapped_column(String(64), default="default")
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | completed
    language: Mapped[str | None] = mapped_column(String(8), nullable=True)
    subject: Mapped[str | None] = mapped_column(Text, nullable=True)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    vehicle: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    trade_ins: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    links: Mapped[list[str]] = mapped_column(JSON, default=list)
    format: Mapped[str] = mapped_column(String(16), default="mail")  # adf | portal | form | mail | call
    # The sender's id of the lead (ADF <id>, call id): a re-sent lead is recognised by it.
    external_id: Mapped[str | None] = mapped_column(String(300), nullable=True)
    # What the enquiry says, hashed: a portal's re-sent mail is recognised by it.
    fingerprint: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # A mail claiming a portal: verified | unverified (a spoof suspect, taken as a plain mail)
    # | not_checked (no verification configured); NULL when the mail claimed no portal.
    sender_verification: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # In our Reply-To ("mailbox+r-TOKEN@domain"): a customer's answer finds its lead by it.
    reply_token: Mapped[str | None] = mapped_column(String(32), nullable=True, unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_activity_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    due_kind: Mapped[str] = mapped_column(String(16), default="stage1")  # stage1 | resubmission
    # A new due date is a new version: its stages fire again, once each.
    due_version: Mapped[int] = mapped_column(Integer, default=1)
    due_set_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # When the scheduler must look at this lead next (NULL: nothing pending). Indexed: a
    # scheduler pass costs what is due, not what is open.
    next_event_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True, index=True)
    # The first reaction of a seller (a reply): it stops the stage-1 clock.
    reacted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    completion_reason_id: Mapped[int | None] = mapped_column(
        ForeignKey("completion_reasons.id"), nullable=True
    )
    # Its personal content erased (GDPR, retention): type, source, editor and times stay.
    anonymised_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)

    contact: Mapped[Contact] = relationship(lazy="joined")
    editor: Mapped[User | None] = relationship(lazy="joined")
    source: Mapped[Source | None] = relationship(lazy="joined")
    completion_reason: Mapped[CompletionReason | None] = relationship(lazy="joined")


class LeadActivity(Base):
    __tablename__ = "lead_activities"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text, default="")
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"), nullable=True)
    inbound_id: Mapped[int | None] = mapped_column(ForeignKey("inbound_messages.id"))
    outbound_id: Mapped[int | None] = mapped_column(ForeignKey("outbound_messages.id"))
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class OutboundMessage(Base):
    __tablename__ = "outbound_messages"
    __table_args__ = (
        Index("ix_outbound_state_next", "state", "next_attempt_at"),
        Index("ix_outbound_dealer_kind_rcpt", "dealer_id", "kind", "recipient", "created_at"),
        Index("ix_outbound_dealer_created", "dealer_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    dealer_id: Mapped[str] = mapped_column(ForeignKey("dealers.id"))
    lead_id: Mapped[int | None] = mapped_column(ForeignKey("leads.id"), nullable=True, index=True)
    # What this mail is for, unique: writing the same mail twice is impossible.
    purpose: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(32))  # autoresponse | forward | notification | …
    message_id: Mapped[str] = mapped_column(String(998), unique=True)
    envelope_from: Mapped[str] = mapped_column(String(320), default="")
    envelope_to: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The person this mail is for (lower-cased), for "one autoresponse per recipient" rules.
    recipient: Mapped[str] = mapped_column(String(320), default="")
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    # queued → sending → sent | failed (permanent) | dead (attempts exhausted)
    state: Mapped[str] = mapped_column(String(16), default="queued")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Queued: not before this. Sending: the lease; past it the send is presumed crashed.
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Not sent after this (an autoresponse hours late is worse than none): state "expired".
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The rendered bytes were deleted (erasure, retention); the row and its state stay.
    raw_deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class EscalationEvent(Base):
    """A stage that fired (or was skipped as stale) for one due version: never twice."""

    __tablename__ = "escalation_events"
    __table_args__ = (UniqueConstraint("lead_id", "stage", "due_version"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    lead_id: Mapped[int] = mapped_column(ForeignKey("leads.id"))
    stage: Mapped[str] = mapped_column(String(16))  # reminder | stage1 | stage2
    due_version: Mapped[int] = mapped_column(Integer)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when it was due
    fired_at: Mapped[datetime] = mapped_column(UTCDateTime)
    outcome: Mapped[str] = mapped_column(String(16))  # sent | skipped


class ImapLedger(Base):
    """The last UID stored per IMAP mailbox, folder and UIDVALIDITY (RFC 3501 §2.3.1.1)."""

    __tablename__ = "imap_ledger"

    account: Mapped[str] = mapped_column(String(400), primary_key=True)  # dealer:user@host:port
    folder: Mapped[str] = mapped_column(String(300), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    last_uid: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ImapStatus(Base):
    __tablename__ = "imap_status"

    account: Mapped[str] = mapped_column(String(400), primary_key=True)
    folder: Mapped[str] = mapped_column(String(300))
    connected: Mapped[bool] = mapped_column(Boolean, default=False)
    last_success_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    taken: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # What is wrong now (None: the last session works): tls | auth | oauth | config | network |
    # server. A health check reads this, not the free text of last_error.
    error_kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


INBOUND_FINAL_STATES = ("processed", "ignored", "unrecognised", "dead", "deleted")
INBOUND_PENDING_STATES = ("received", "failed", "routed")
OUTBOUND_FINAL_STATES = ("sent", "failed", "dead", "expired")
OUTBOUND_PENDING_STATES = ("queued", "sending")


# Tables of other concerns, declared on the same metadata (one line each).
import models.privacy_tables  # noqa: E402  (audit log)
import models.web_tables  # noqa: E402, F401
from models import mailbox_tables as _mailbox_tables  # noqa: E402, F401  (OAuth tokens, skipped mails)
from models import ops_tables as _ops_tables  # noqa: E402, F401  (heartbeats, probe runs)
from models import report_tables as _report_tables  # noqa: E402, F401  (lead facts, report settings)
from models import webhook_tables as _webhook_tables  # noqa: E402, F401  (the webhook outbox)
