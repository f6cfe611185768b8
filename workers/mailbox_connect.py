"""Connecting a mailbox to its OAuth2 provider: the service behind ``lms imap connect`` and
the web pane's admin page "Connect mailbox".

Two flows, both ending in :func:`models.token_store.save_connected`:

- Device code (RFC 8628), for a server without a browser: :func:`start_device` gives a URL
  and a code to show; :func:`poll_device` (one poll, for a web page that polls) or
  :func:`wait_device` (loops until done, for the CLI) ends with the tokens stored.
- Authorization code with PKCE (RFC 7636): :func:`start_authorization` gives the URL to send
  the person to, and remembers state and verifier in the database (``oauth_pending``), so
  :func:`finish_authorization` can run in another request or process when the provider
  redirects back with ``code`` and ``state``. A state is used once and expires in 15 minutes.

:func:`oauth_mailboxes_state` lists what the page offers: every xoauth2 mailbox of the
configuration with its grant's state. Every function takes the database, ``now`` or a clock,
and LMS_SECRET_KEY where it needs it; none prints.
"""

from __future__ import annotations

import secrets
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import delete, select

from intake.oauth import (
    DeviceAuthorization,
    DevicePending,
    OAuthClient,
    OAuthError,
    TokenGrant,
    authorization_url,
    client_from_config,
    exchange_code,
    pkce_pair,
    poll_device_token,
    request_device_code,
)
from models.clock import Clock
from models.db import Database
from models.mailbox_tables import OAuthPending, OAuthToken
from models.policy import policy_for
from models.secret_box import SecretBox, SecretKeyError
from models.tables import Dealer
from models.token_store import OAuthMailbox, normalise_user, oauth_mailboxes, save_connected

PENDING_LIFETIME = timedelta(minutes=15)


class ConnectError(Exception):
    """One sentence for the person connecting the mailbox."""


@dataclass(frozen=True)
class Connected:
    dealer_id: str
    user: str
    provider: str
    access_expires_at: datetime


@dataclass(frozen=True)
class DeviceStart:
    dealer_id: str
    user: str
    verification_uri: str
    user_code: str
    verification_uri_complete: str | None
    message: str | None  # the provider's own instruction (Microsoft sends one)
    interval: float
    expires_at: datetime
    device_code: str  # secret: keep it server-side (a web page keeps it in the session)


@dataclass(frozen=True)
class AuthorizationStart:
    url: str
    state: str
    expires_at: datetime


@dataclass(frozen=True)
class MailboxGrant:
    dealer_id: str
    user: str
    provider: str
    state: str  # not_connected | connected | refused (connect again)
    last_error: str | None


def oauth_mailboxes_state(db: Database, dealer_id: str | None = None) -> list[MailboxGrant]:
    """Every configured ``auth = "xoauth2"`` mailbox and the state of its grant."""
    with db.session() as session:
        query = select(Dealer).order_by(Dealer.id)
        if dealer_id is not None:
            query = query.where(Dealer.id == dealer_id)
        dealers = list(session.scalars(query))
        grants = {(t.dealer_id, t.user): t for t in session.scalars(select(OAuthToken))}
    found: dict[tuple[str, str], MailboxGrant] = {}
    for dealer in dealers:
        for box in policy_for(dealer).imap:
            if box.auth != "xoauth2":
                continue
            key = (dealer.id, normalise_user(box.user))
            grant = grants.get(key)
            found.setdefault(
                key,
                MailboxGrant(
                    dealer_id=dealer.id,
                    user=key[1],
                    provider=box.oauth.provider if box.oauth else "",
                    state=grant.state if grant else "not_connected",
                    last_error=grant.last_error if grant else None,
                ),
            )
    return list(found.values())


def _box(secret_key: str | None) -> SecretBox:
    try:
        return SecretBox(secret_key)
    except SecretKeyError as exc:
        raise ConnectError(str(exc)) from None


def _mailbox(db: Database, dealer_id: str, user: str) -> OAuthMailbox:
    with db.session() as session:
        found = oauth_mailboxes(session, user=user, dealer_id=dealer_id)
    if not found:
        raise ConnectError(
            f"dealer {dealer_id!r} has no [[dealers.imap]] mailbox with user = {user!r} and "
            'auth = "xoauth2" (apply a configuration that has one first)'
        )
    return found[0]


def _client(mailbox: OAuthMailbox, environ: Mapping[str, str] | None) -> OAuthClient:
    try:
        return client_from_config(mailbox.oauth, environ)
    except OAuthError as exc:
        raise ConnectError(str(exc)) from None


def _store(
    db: Database, box: SecretBox, mailbox: OAuthMailbox, client: OAuthClient, grant: TokenGrant, now: datetime
) -> Connected:
    if not grant.refresh_token:
        hint = (
            " (Microsoft: add the offline_access scope)"
            if client.provider == "microsoft"
            else " (Google: access_type=offline and prompt=consent are sent; revoke the app's "
            "access in the Google account and connect again)"
            if client.provider == "google"
            else ""
        )
        raise ConnectError(f"the provider issued no refresh token{hint}; nothing was stored")
    with db.session() as session:
        save_connected(
            session,
            box,
            dealer_id=mailbox.dealer_id,
            user=mailbox.user,
            provider=client.provider,
            refresh_token=grant.refresh_token,
            access_token=grant.access_token,
            expires_in=grant.expires_in,
            now=now,
        )
    return Connected(
        mailbox.dealer_id, mailbox.user, client.provider, now + timedelta(seconds=grant.expires_in)
    )


# -- device code ---------------------------------------------------------------------------
def start_device(
    db: Database,
    dealer_id: str,
    user: str,
    *,
    secret_key: str | None,
    now: datetime,
    environ: Mapping[str, str] | None = None,
) -> DeviceStart:
    _box(secret_key)  # refuse before a person types a code that could not be stored
    mailbox = _mailbox(db, dealer_id, user)
    client = _client(mailbox, environ)
    try:
        device: DeviceAuthorization = request_device_code(client)
    except OAuthError as exc:
        if client.provider == "google" and exc.error == "invalid_scope":
            raise ConnectError(
                "Google does not allow the Gmail scope in the device flow; connect with --auth-code "
                "(an OAuth client of type 'Desktop app') or the admin page 'Connect mailbox'"
            ) from None
        raise ConnectError(f"the provider refused the device authorization: {exc}") from None
    return DeviceStart(
        dealer_id=mailbox.dealer_id,
        user=mailbox.user,
        verification_uri=device.verification_uri,
        user_code=device.user_code,
        verification_uri_complete=device.verification_uri_complete,
        message=device.message,
        interval=device.interval,
        expires_at=now + timedelta(seconds=device.expires_in),
        device_code=device.device_code,
    )


@dataclass(frozen=True)
class StillWaiting:
    interval: float  # seconds until the next poll (RFC 8628 §3.5: slow_down adds 5)


def poll_device(
    db: Database,
    start: DeviceStart,
    *,
    secret_key: str | None,
    now: datetime,
    interval: float | None = None,
    environ: Mapping[str, str] | None = None,
) -> Connected | StillWaiting:
    """One poll of the token endpoint: the tokens stored, or how long to wait."""
    box = _box(secret_key)
    if now >= start.expires_at:
        raise ConnectError("the code expired before it was entered; start again")
    mailbox = _mailbox(db, start.dealer_id, start.user)
    client = _client(mailbox, environ)
    current = start.interval if interval is None else interval
    try:
        result = poll_device_token(client, start.device_code)
    except OAuthError as exc:
        if exc.transient:
            return StillWaiting(current)
        raise ConnectError(f"the sign-in was not completed: {exc}") from None
    if isinstance(result, DevicePending):
        return StillWaiting(current + 5 if result.slow_down else current)
    return _store(db, box, mailbox, client, result, now)


def wait_device(
    db: Database,
    start: DeviceStart,
    *,
    secret_key: str | None,
    clock: Clock,
    sleep: Callable[[float], None] = time.sleep,
    environ: Mapping[str, str] | None = None,
) -> Connected:
    interval = start.interval
    while True:
        result = poll_device(
            db, start, secret_key=secret_key, now=clock(), interval=interval, environ=environ
        )
        if isinstance(result, Connected):
            return result
        interval = result.interval
        sleep(interval)


# -- authorization code with PKCE ----------------------------------------------------------
def start_authorization(
    db: Database,
    dealer_id: str,
    user: str,
    *,
    secret_key: str | None,
    now: datetime,
    redirect_uri: str | None = None,
    environ: Mapping[str, str] | None = None,
) -> AuthorizationStart:
    """The URL to send the person to. ``redirect_uri``: where the provider sends the browser
    back (the web pane passes its callback route; default: the mailbox's ``oauth.redirect_uri``),
    registered with the provider exactly so."""
    box = _box(secret_key)
    mailbox = _mailbox(db, dealer_id, user)
    client = _client(mailbox, environ)
    redirect = redirect_uri or client.redirect_uri
    verifier, challenge = pkce_pair()
    state = secrets.token_urlsafe(32)
    try:
        url = authorization_url(
            client, state=state, code_challenge=challenge, redirect_uri=redirect, login_hint=mailbox.user
        )
    except OAuthError as exc:
        raise ConnectError(str(exc)) from None
    expires_at = now + PENDING_LIFETIME
    with db.session() as session:
        session.execute(delete(OAuthPending).where(OAuthPending.expires_at < now))
        session.add(
            OAuthPending(
                state=state,
                dealer_id=mailbox.dealer_id,
                user=mailbox.user,
                code_verifier=box.seal(verifier),
                redirect_uri=redirect,
                created_at=now,
                expires_at=expires_at,
            )
        )
    return AuthorizationStart(url=url, state=state, expires_at=expires_at)


def parse_redirect(pasted: str) -> tuple[str, str | None]:
    """``(code, state)`` from what a person pasted: the whole address the browser was sent to
    (a loopback redirect that no server answers still shows it) or the bare code."""
    text = pasted.strip()
    if "?" not in text and "=" not in text:
        if not text:
            raise ConnectError("nothing was pasted")
        return text, None
    query = urllib.parse.parse_qs(urllib.parse.urlsplit(text).query or text.split("?", 1)[-1])
    if "error" in query:
        detail = (query.get("error_description") or [""])[0]
        raise ConnectError(f"the provider refused: {query['error'][0]} {detail}".strip())
    if "code" not in query:
        raise ConnectError("the pasted address has no code= parameter")
    states = query.get("state")
    return query["code"][0], states[0] if states else None


def finish_authorization(
    db: Database,
    *,
    state: str,
    code: str,
    secret_key: str | None,
    now: datetime,
    environ: Mapping[str, str] | None = None,
) -> Connected:
    """Exchange the code the provider sent back for tokens and store them. ``state`` must be
    one :func:`start_authorization` issued, not used and not expired (CSRF, RFC 6749 §10.12)."""
    box = _box(secret_key)
    with db.session() as session:
        pending = session.get(OAuthPending, state, with_for_update=True)
        if pending is not None:
            session.delete(pending)  # used once, whatever happens next
    if pending is None:
        raise ConnectError("unknown or already used state; start the connection again")
    if now >= pending.expires_at:
        raise ConnectError("the sign-in took too long (15 minutes); start the connection again")
    mailbox = _mailbox(db, pending.dealer_id, pending.user)
    client = _client(mailbox, environ)
    try:
        verifier = box.open(pending.code_verifier)
        grant = exchange_code(client, code=code, code_verifier=verifier, redirect_uri=pending.redirect_uri)
    except (OAuthError, SecretKeyError) as exc:
        raise ConnectError(f"the provider refused the code: {exc}") from None
    return _store(db, box, mailbox, client, grant, now)
