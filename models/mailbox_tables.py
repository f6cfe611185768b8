"""Tables of the mailboxes we read and send through: OAuth2 tokens, authorisations in
progress, and mails an IMAP poller had to leave in the mailbox (too large to store)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from models.tables import Base, UTCDateTime


class OAuthToken(Base):
    """The OAuth2 grant of one mailbox login (``user``) of a dealer.

    Tokens are sealed with LMS_SECRET_KEY (models/secret_box.py). ``version`` goes up with
    every write, so a refresh that raced another one (the poller and the relay share a token)
    notices it lost and takes the winner's tokens instead of overwriting a rotated refresh
    token with an older one."""

    __tablename__ = "oauth_tokens"

    dealer_id: Mapped[str] = mapped_column(ForeignKey("dealers.id"), primary_key=True)
    user: Mapped[str] = mapped_column(String(320), primary_key=True)  # the login, lower case
    provider: Mapped[str] = mapped_column(String(16))
    refresh_token: Mapped[str] = mapped_column(Text)  # sealed
    access_token: Mapped[str | None] = mapped_column(Text, nullable=True)  # sealed
    access_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    refresh_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # connected: usable · refused: the provider refused the refresh token (revoked, expired,
    # password changed): a person must connect the mailbox again.
    state: Mapped[str] = mapped_column(String(16))
    version: Mapped[int] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    last_error_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    connected_at: Mapped[datetime] = mapped_column(UTCDateTime)
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class OAuthPending(Base):
    """An authorization-code flow between "start" (the URL shown) and "finish" (the code
    came back), so the web pane can finish it in another request or process."""

    __tablename__ = "oauth_pending"

    state: Mapped[str] = mapped_column(String(64), primary_key=True)
    dealer_id: Mapped[str] = mapped_column(ForeignKey("dealers.id"))
    user: Mapped[str] = mapped_column(String(320))
    code_verifier: Mapped[str] = mapped_column(Text)  # sealed (RFC 7636)
    redirect_uri: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ImapSkipped(Base):
    """A mail the poller left in the mailbox instead of storing it (larger than
    LMS_SMTP_MAX_BYTES). The ledger moves past it, so it is not fetched again and again;
    this row is what makes it visible (``lms ops status``)."""

    __tablename__ = "imap_skipped"

    account: Mapped[str] = mapped_column(String(400), primary_key=True)
    folder: Mapped[str] = mapped_column(String(300), primary_key=True)
    uidvalidity: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    uid: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(Text)
    sender: Mapped[str | None] = mapped_column(Text, nullable=True)
    subject: Mapped[str | None] = mapped_column(Text, nullable=True)
    message_id: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
