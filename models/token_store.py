"""The OAuth2 token store: one row per (dealer, mailbox login), tokens sealed with
LMS_SECRET_KEY. Writes are single short transactions; the HTTP calls that produce tokens
happen outside them (a SQLite write lock held across a network call would stall the intake).

Refresh tokens rotate (Microsoft may return a new one with every refresh). A refresh result is
written with a compare-and-swap on ``version``: if another process refreshed meanwhile, the
write does nothing and the caller takes the stored (newer) tokens, so an older refresh token
never overwrites a newer one.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from models.mailbox_tables import OAuthToken
from models.policy import policy_for
from models.secret_box import SecretBox
from models.tables import Dealer

CONNECTED = "connected"
REFUSED = "refused"


def refresh_due(issued_at: datetime, expires_in: float) -> datetime:
    """When to refresh an access token issued at ``issued_at`` for ``expires_in`` seconds:
    five minutes before it expires, or after 80 % of its life if that is shorter (short-lived
    tokens, and clocks that disagree a little)."""
    lead = min(300.0, expires_in * 0.2)
    return issued_at + timedelta(seconds=expires_in - lead)


def normalise_user(user: str) -> str:
    return user.strip().lower()


@dataclass(frozen=True)
class StoredToken:
    dealer_id: str
    user: str
    provider: str
    state: str
    version: int
    refresh_token: str  # plain, only in memory
    access_token: str | None
    access_expires_at: datetime | None
    refresh_due_at: datetime | None
    last_error: str | None


def load_token(session: Session, box: SecretBox, dealer_id: str, user: str) -> StoredToken | None:
    row = session.get(OAuthToken, (dealer_id, normalise_user(user)))
    if row is None:
        return None
    return StoredToken(
        dealer_id=row.dealer_id,
        user=row.user,
        provider=row.provider,
        state=row.state,
        version=row.version,
        refresh_token=box.open(row.refresh_token),
        access_token=box.open(row.access_token) if row.access_token else None,
        access_expires_at=row.access_expires_at,
        refresh_due_at=row.refresh_due_at,
        last_error=row.last_error,
    )


def save_connected(
    session: Session,
    box: SecretBox,
    *,
    dealer_id: str,
    user: str,
    provider: str,
    refresh_token: str,
    access_token: str,
    expires_in: float,
    now: datetime,
) -> int:
    """Store the tokens of a fresh connection (device or authorization-code flow), replacing
    whatever was there (a refused grant included). Returns the new version."""
    key = (dealer_id, normalise_user(user))
    row = session.get(OAuthToken, key, with_for_update=True)
    if row is None:
        row = OAuthToken(dealer_id=dealer_id, user=key[1], version=0)
        session.add(row)
    row.provider = provider
    row.refresh_token = box.seal(refresh_token)
    row.access_token = box.seal(access_token)
    row.access_expires_at = now + timedelta(seconds=expires_in)
    row.refresh_due_at = refresh_due(now, expires_in)
    row.state = CONNECTED
    row.version = (row.version or 0) + 1
    row.last_error = None
    row.last_error_at = None
    row.connected_at = now
    row.refreshed_at = None
    row.updated_at = now
    session.flush()
    return row.version


def save_refreshed(
    session: Session,
    box: SecretBox,
    *,
    token: StoredToken,
    access_token: str,
    expires_in: float,
    new_refresh_token: str | None,
    now: datetime,
) -> bool:
    """Write a refresh result if nobody else wrote since ``token`` was read. The rotated
    refresh token and the new access token land in one UPDATE: never one without the other."""
    values: dict[str, object] = {
        "access_token": box.seal(access_token),
        "access_expires_at": now + timedelta(seconds=expires_in),
        "refresh_due_at": refresh_due(now, expires_in),
        "version": token.version + 1,
        "last_error": None,
        "last_error_at": None,
        "refreshed_at": now,
        "updated_at": now,
    }
    if new_refresh_token and new_refresh_token != token.refresh_token:
        values["refresh_token"] = box.seal(new_refresh_token)
    result = session.execute(
        update(OAuthToken)
        .where(
            OAuthToken.dealer_id == token.dealer_id,
            OAuthToken.user == token.user,
            OAuthToken.version == token.version,
            OAuthToken.state == CONNECTED,
        )
        .values(**values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def mark_refused(session: Session, *, token: StoredToken, error: str, now: datetime) -> bool:
    """The provider refused the refresh token: nothing but a new connection helps. Only if the
    row is still the one that was refused (a re-connection in between wins)."""
    result = session.execute(
        update(OAuthToken)
        .where(
            OAuthToken.dealer_id == token.dealer_id,
            OAuthToken.user == token.user,
            OAuthToken.version == token.version,
        )
        .values(
            state=REFUSED,
            access_token=None,
            version=token.version + 1,
            last_error=error[:2000],
            last_error_at=now,
            updated_at=now,
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def note_error(session: Session, *, dealer_id: str, user: str, error: str, now: datetime) -> None:
    """A passing failure (provider unreachable): shown, changes nothing else."""
    session.execute(
        update(OAuthToken)
        .where(OAuthToken.dealer_id == dealer_id, OAuthToken.user == normalise_user(user))
        .values(last_error=error[:2000], last_error_at=now)
    )


@dataclass(frozen=True)
class OAuthMailbox:
    """A mailbox login with ``auth = "xoauth2"`` in a dealer's configuration."""

    dealer_id: str
    user: str
    host: str
    oauth: dict[str, Any]


def oauth_mailboxes(session: Session, *, user: str, dealer_id: str | None = None) -> list[OAuthMailbox]:
    """Every configured xoauth2 mailbox with this login (of one dealer, if given). Several
    folders of one mailbox share one grant: the first entry's client is the one used."""
    query = select(Dealer).order_by(Dealer.id)
    if dealer_id is not None:
        query = query.where(Dealer.id == dealer_id)
    wanted = normalise_user(user)
    found: dict[str, OAuthMailbox] = {}
    for dealer in session.scalars(query):
        for box in policy_for(dealer).imap:
            if box.auth == "xoauth2" and normalise_user(box.user) == wanted:
                oauth = box.oauth.model_dump(mode="json") if box.oauth else {}
                found.setdefault(dealer.id, OAuthMailbox(dealer.id, wanted, box.host, oauth))
    return list(found.values())
