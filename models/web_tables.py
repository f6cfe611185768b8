"""Tables of the web pane: sign-in (passwords, sessions, API tokens, invitations, throttling)
and a person's preferences. Secrets are stored only as hashes: a leaked table signs nobody in."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from models.tables import Base, Id, UTCDateTime


class WebAccount(Base):
    """The web side of a configured user (the user itself comes from the dealer file)."""

    __tablename__ = "web_accounts"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    # Argon2id in PHC string format; NULL: no password yet (an invitation may set one).
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    # Sessions that began before this are over (a password change signs out everywhere).
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    language: Mapped[str | None] = mapped_column(String(8), nullable=True)  # NULL: the dealer's
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WebSession(Base):
    """A signed-in browser. The cookie holds a random token; this row holds its SHA-256."""

    __tablename__ = "web_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # sha256 hex of the cookie token
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    # Per-session CSRF token: every state-changing request must echo it.
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)  # absolute end, whatever the activity
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    address: Mapped[str] = mapped_column(String(64), default="")
    user_agent: Mapped[str] = mapped_column(String(300), default="")


class ApiToken(Base):
    """A personal token for the JSON API (``Authorization: Bearer``), stored as its SHA-256."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Invitation(Base):
    """A one-time link to set a password, mailed to the user; it expires."""

    __tablename__ = "web_invitations"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class SignInFailure(Base):
    """One failed sign-in, counted per account and per client address to throttle guessing."""

    __tablename__ = "web_sign_in_failures"
    __table_args__ = (Index("ix_web_sign_in_failures_key_at", "key", "at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(400))  # "account:DEALER/USER" or "address:IP"
    at: Mapped[datetime] = mapped_column(UTCDateTime)
