"""Sign-in for the web pane and its API: passwords, sessions, personal API tokens, invitations
and the throttling of failed sign-ins. The CLI (``lms users``) and the pane call these.

Only hashes are stored: Argon2id (argon2-cffi's RFC 9106 defaults) for passwords, SHA-256 for
the random session, API and invitation tokens (they carry 256 bits; a slow hash adds nothing).
Nothing here logs a password or a token.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from models.policy import policy_for
from models.tables import Dealer, User
from models.web_tables import ApiToken, Invitation, SignInFailure, WebAccount, WebSession
from templates_email import labels
from workers import outbox
from workers.render.context import local_time

MIN_PASSWORD = 10
MAX_PASSWORD = 1024
TOKEN_PREFIX = "lms_"
_hasher = PasswordHasher()
# Verified against when the account does not exist, so that "no such user" takes as long as
# "wrong password" and timing tells nothing.
_DUMMY_HASH = _hasher.hash(secrets.token_hex(16))


class AccountError(Exception):
    """The request cannot be done; the message says why, for the person who asked."""


class SignInRefused(Exception):
    def __init__(self, reason: str, retry_after: timedelta | None = None) -> None:
        super().__init__(reason)
        self.reason = reason  # "invalid" | "throttled"
        self.retry_after = retry_after


@dataclass(frozen=True)
class SessionPolicy:
    idle: timedelta = timedelta(hours=12)
    absolute: timedelta = timedelta(days=7)
    # last_seen_at is written at most this often: a read-only page view costs no write.
    touch_every: timedelta = timedelta(seconds=60)


@dataclass(frozen=True)
class ThrottlePolicy:
    window: timedelta = timedelta(minutes=15)
    per_account: int = 5
    per_address: int = 30


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def find_user(session: Session, dealer_id: str, username: str) -> User:
    user = session.scalar(select(User).where(User.dealer_id == dealer_id, User.username == username))
    if user is None:
        raise AccountError(f"no user {username!r} at dealer {dealer_id!r}")
    return user


def account_of(session: Session, user: User, *, now: datetime) -> WebAccount:
    account = session.get(WebAccount, user.id)
    if account is None:
        account = WebAccount(user_id=user.id, updated_at=now)
        session.add(account)
        session.flush()
    return account


def check_password_rules(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AccountError(f"the password needs at least {MIN_PASSWORD} characters")
    if len(password) > MAX_PASSWORD:
        raise AccountError(f"the password may have at most {MAX_PASSWORD} characters")
    if "\x00" in password:
        raise AccountError("the password contains a NUL character")


def set_password(session: Session, user: User, password: str, *, now: datetime) -> None:
    """Set (or change) the password; every session of the user ends."""
    check_password_rules(password)
    account = account_of(session, user, now=now)
    account.password_hash = _hasher.hash(password)
    account.password_changed_at = now
    account.updated_at = now
    end_sessions(session, user, now=now)


def verify_password(account: WebAccount | None, password: str) -> bool:
    stored = account.password_hash if account is not None else None
    try:
        return _hasher.verify(stored or _DUMMY_HASH, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def _failures(session: Session, key: str, since: datetime) -> tuple[int, datetime | None]:
    row = session.execute(
        select(func.count(), func.min(SignInFailure.at)).where(
            SignInFailure.key == key, SignInFailure.at > since
        )
    ).one()
    return int(row[0]), row[1]


def authenticate(
    session: Session,
    dealer_id: str,
    username: str,
    password: str,
    *,
    address: str,
    now: datetime,
    throttle: ThrottlePolicy = ThrottlePolicy(),
) -> User:
    """The user whose password this is, or :class:`SignInRefused`. Throttled per account and per
    client address: past the limit even the right password is refused until the window passes,
    and the answer does not say whether the account exists."""
    keys = {
        f"account:{dealer_id}/{username}"[:400]: throttle.per_account,
        f"address:{address}"[:400]: throttle.per_address,
    }
    since = now - throttle.window
    for key, limit in keys.items():
        failures, oldest = _failures(session, key, since)
        if failures >= limit and oldest is not None:
            raise SignInRefused("throttled", oldest + throttle.window - now)
    user = session.scalar(select(User).where(User.dealer_id == dealer_id, User.username == username))
    account = session.get(WebAccount, user.id) if user is not None else None
    if verify_password(account, password) and user is not None and user.active:
        session.execute(delete(SignInFailure).where(SignInFailure.key == next(iter(keys))))
        assert account is not None
        if account.password_hash and _hasher.check_needs_rehash(account.password_hash):
            account.password_hash = _hasher.hash(password)
        return user
    for key in keys:
        session.execute(delete(SignInFailure).where(SignInFailure.key == key, SignInFailure.at <= since))
        session.add(SignInFailure(key=key, at=now))
    raise SignInRefused("invalid")


def start_session(
    session: Session,
    user: User,
    *,
    now: datetime,
    policy: SessionPolicy,
    address: str = "",
    user_agent: str = "",
) -> tuple[str, WebSession]:
    """A new session; returns the cookie value (shown once, stored only as its hash)."""
    token = secrets.token_urlsafe(32)
    row = WebSession(
        id=digest(token),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
        expires_at=now + policy.absolute,
        address=address[:64],
        user_agent=user_agent[:300],
    )
    session.add(row)
    return token, row


def session_user(
    session: Session, token: str, *, now: datetime, policy: SessionPolicy
) -> tuple[User, WebSession] | None:
    """The signed-in user of a session cookie, if the session still holds: not signed out, not
    idle too long, not past its absolute end, the user still active (a configuration that
    drops them ends it at once) and the password unchanged since it began."""
    if not token or len(token) > 200:
        return None
    row = session.get(WebSession, digest(token))
    if row is None or row.revoked_at is not None or row.expires_at <= now:
        return None
    if row.last_seen_at + policy.idle <= now:
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    account = session.get(WebAccount, user.id)
    if account is None or account.password_hash is None:
        return None
    if account.password_changed_at is not None and row.created_at < account.password_changed_at:
        return None
    if now - row.last_seen_at >= policy.touch_every:
        row.last_seen_at = now
    return user, row


def end_session(session: Session, token: str, *, now: datetime) -> None:
    session.execute(
        update(WebSession)
        .where(WebSession.id == digest(token), WebSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )


def end_sessions(session: Session, user: User, *, now: datetime) -> int:
    result = session.execute(
        update(WebSession)
        .where(WebSession.user_id == user.id, WebSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def create_token(session: Session, user: User, *, name: str, now: datetime) -> str:
    """A personal API token; shown once, stored as its hash."""
    if not user.active:
        raise AccountError(f"user {user.username!r} is not active")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    session.add(ApiToken(user_id=user.id, token_hash=digest(token), name=name[:100], created_at=now))
    session.flush()
    return token


def token_user(session: Session, token: str, *, now: datetime) -> User | None:
    if not token.startswith(TOKEN_PREFIX) or len(token) > 200:
        return None
    row = session.scalar(select(ApiToken).where(ApiToken.token_hash == digest(token)))
    if row is None or row.revoked_at is not None:
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    if row.last_used_at is None or now - row.last_used_at >= timedelta(minutes=1):
        row.last_used_at = now
    return user


def list_tokens(session: Session, user: User) -> list[ApiToken]:
    return list(session.scalars(select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)))


def revoke_tokens(session: Session, user: User, *, now: datetime, token_id: int | None = None) -> int:
    query = update(ApiToken).where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
    if token_id is not None:
        query = query.where(ApiToken.id == token_id)
    return int(session.execute(query.values(revoked_at=now)).rowcount)  # type: ignore[attr-defined]


def invite(
    session: Session, user: User, *, base_url: str, now: datetime, valid: timedelta, grace: timedelta
) -> int:
    """Queue a one-time link to set a password to the user's address; returns the outbound id."""
    if not user.active:
        raise AccountError(f"user {user.username!r} is not active")
    dealer = session.get(Dealer, user.dealer_id)
    assert dealer is not None
    token = secrets.token_urlsafe(32)
    session.add(
        Invitation(token_hash=digest(token), user_id=user.id, created_at=now, expires_at=now + valid)
    )
    policy = policy_for(dealer)
    expires = now + valid
    spec = outbox.MailSpec(
        kind="invitation",
        purpose=f"invitation:{user.id}:{digest(token)[:32]}",
        to=(user.email,),
        lang=policy.language,
        context={
            "dealer": {"id": policy.id, "name": policy.name, "email": policy.sender_address},
            "invitee": {"name": user.name, "user": user.username},
            "invitation": {
                "link": f"{base_url.rstrip('/')}/invite/{token}",
                "expires": local_time(expires, policy.timezone, policy.language),
            },
            "labels": labels(policy.language),
        },
    )
    outbound_id = outbox.send_mail(session, policy, spec, now=now, grace=grace)
    assert outbound_id is not None  # the purpose is new: the token is
    return outbound_id


def invitation_user(session: Session, token: str, *, now: datetime) -> tuple[User, Invitation] | None:
    if not token or len(token) > 200:
        return None
    row = session.get(Invitation, digest(token))
    if row is None or row.used_at is not None or row.expires_at <= now:
        return None
    user = session.get(User, row.user_id)
    if user is None or not user.active:
        return None
    return user, row


def accept_invitation(session: Session, token: str, password: str, *, now: datetime) -> User:
    found = invitation_user(session, token, now=now)
    if found is None:
        raise AccountError("this invitation link is no longer valid")
    user, row = found
    set_password(session, user, password, now=now)
    row.used_at = now
    # One link, one password: any other open invitation of the user is spent as well.
    session.execute(
        update(Invitation)
        .where(Invitation.user_id == user.id, Invitation.used_at.is_(None))
        .values(used_at=now)
    )
    return user


def set_language(session: Session, user: User, language: str | None, *, now: datetime) -> None:
    if language not in (None, "de", "en"):
        raise AccountError("language must be de or en")
    account = account_of(session, user, now=now)
    account.language = language
    account.updated_at = now


def language_of(session: Session, user: User) -> str:
    account = session.get(WebAccount, user.id)
    if account is not None and account.language:
        return account.language
    dealer = session.get(Dealer, user.dealer_id)
    return dealer.language if dealer is not None else "en"


def prune(session: Session, *, now: datetime, keep: timedelta = timedelta(days=7)) -> int:
    """Forget sign-in rows that can open nothing any more: sessions ended or expired, used or
    expired invitations, failed sign-ins long past the throttle window (kept a week for the
    record). Run by the scheduler's hourly pass."""
    before = now - keep
    gone = 0
    for statement in (
        delete(WebSession).where(or_(WebSession.expires_at < before, WebSession.revoked_at < before)),
        delete(Invitation).where(or_(Invitation.expires_at < before, Invitation.used_at < before)),
        delete(SignInFailure).where(SignInFailure.at < before),
    ):
        gone += int(session.execute(statement).rowcount)  # type: ignore[attr-defined]
    return gone
