"""Access tokens for one mailbox login, from the token store, refreshed before they expire.

Shared by the IMAP poller and the SMTP relay (``smtp+xoauth2://``): both hold an
:class:`AccessTokens` and ask it for a token before they authenticate. One refresh at a time
per login in this process (a lock); across processes the store's version check decides who
won and the loser takes the winner's tokens.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from intake.oauth import GrantRefused, OAuthClient, OAuthError, TokenGrant, client_from_config, refresh
from models.clock import Clock, system_clock
from models.db import Database
from models.secret_box import SecretBox, SecretKeyError
from models.token_store import (
    CONNECTED,
    StoredToken,
    load_token,
    mark_refused,
    normalise_user,
    note_error,
    refresh_due,
    save_refreshed,
)

log = logging.getLogger(__name__)

_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


def _lock_for(key: tuple[str, str]) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(key, threading.Lock())


class NotConnected(OAuthError):
    """No usable grant in the store: a person must connect the mailbox (again)."""

    def __init__(self, message: str) -> None:
        super().__init__(message, error="not_connected", transient=False)


def reconnect_hint(dealer_id: str, user: str) -> str:
    return f"connect it again: lms imap connect {dealer_id} {user} (or the admin page 'Connect mailbox')"


class AccessTokens:
    def __init__(
        self,
        db: Database,
        *,
        dealer_id: str,
        user: str,
        oauth: Mapping[str, Any],
        secret_key: str | None,
        clock: Clock = system_clock,
        environ: Mapping[str, str] | None = None,
        refresher: Callable[[OAuthClient, str], TokenGrant] = refresh,
    ) -> None:
        self.db = db
        self.dealer_id = dealer_id
        self.user = normalise_user(user)
        self.oauth = dict(oauth)
        self.secret_key = secret_key
        self.clock = clock
        self.environ = environ
        self.refresher = refresher
        self.refresh_due_at: datetime | None = None  # of the token last handed out
        self.refreshes = 0

    def _box(self) -> SecretBox:
        try:
            return SecretBox(self.secret_key)
        except SecretKeyError as exc:
            raise OAuthError(str(exc), error="configuration", transient=False) from None

    def _load(self, box: SecretBox) -> StoredToken:
        try:
            with self.db.session() as session:
                token = load_token(session, box, self.dealer_id, self.user)
        except SecretKeyError as exc:
            raise OAuthError(str(exc), error="configuration", transient=False) from None
        if token is None:
            raise NotConnected(
                f"mailbox {self.user} of {self.dealer_id} has no OAuth2 grant yet: "
                + reconnect_hint(self.dealer_id, self.user).replace("again: ", "")
            )
        if token.state != CONNECTED:
            raise NotConnected(
                f"the provider refused the stored refresh token of {self.user} "
                f"({token.last_error or 'invalid_grant'}); {reconnect_hint(self.dealer_id, self.user)}"
            )
        return token

    def get(self, *, failed: str | None = None) -> str:
        """A valid access token. ``failed``: the token the server just refused; then a
        refresh is forced (once per call), unless another holder already replaced it."""
        box = self._box()
        with _lock_for((self.dealer_id, self.user)):
            token = self._load(box)
            now = self.clock()
            fresh = (
                token.access_token is not None
                and token.refresh_due_at is not None
                and now < token.refresh_due_at
            )
            if fresh and (failed is None or token.access_token != failed):
                self.refresh_due_at = token.refresh_due_at
                assert token.access_token is not None
                return token.access_token
            return self._refresh(box, token)

    def _refresh(self, box: SecretBox, token: StoredToken) -> str:
        try:
            client = client_from_config(self.oauth, self.environ)
            grant = self.refresher(client, token.refresh_token)
        except GrantRefused as exc:
            with self.db.session() as session:
                refused = mark_refused(session, token=token, error=str(exc), now=self.clock())
            if not refused:
                # Another process refreshed (rotating the token we sent) or the mailbox was
                # connected again meanwhile: the stored tokens are newer than our refusal.
                current = self._load(box)
                if current.access_token is not None:
                    self.refresh_due_at = current.refresh_due_at
                    return current.access_token
            raise NotConnected(
                f"the provider refused the refresh token of {self.user} ({exc}); "
                + reconnect_hint(self.dealer_id, self.user)
            ) from None
        except OAuthError as exc:
            with self.db.session() as session:
                note_error(
                    session, dealer_id=self.dealer_id, user=self.user, error=str(exc), now=self.clock()
                )
            raise
        now = self.clock()
        with self.db.session() as session:
            won = save_refreshed(
                session,
                box,
                token=token,
                access_token=grant.access_token,
                expires_in=grant.expires_in,
                new_refresh_token=grant.refresh_token,
                now=now,
            )
        self.refreshes += 1
        if won:
            log.info(
                "OAuth2 access token of %s (%s) refreshed%s",
                self.user,
                self.dealer_id,
                ", refresh token rotated" if grant.refresh_token else "",
            )
            self.refresh_due_at = refresh_due(now, grant.expires_in)
            return grant.access_token
        # Another process refreshed first: its tokens are the current ones.
        log.info("OAuth2 token of %s was refreshed elsewhere meanwhile; taking that one", self.user)
        current = self._load(box)
        if current.access_token is None:
            raise OAuthError("the token was replaced meanwhile without an access token; retrying later")
        self.refresh_due_at = current.refresh_due_at
        return current.access_token
