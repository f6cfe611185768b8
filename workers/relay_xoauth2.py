"""Sending through Microsoft 365 or Gmail with OAuth2: ``smtp+xoauth2://USER@HOST:PORT``.

USER is the mailbox login whose grant is in the token store (connected with ``lms imap
connect``, the same grant the IMAP poller uses: one connection gives a token for IMAP and
SMTP). The login may stand as is (``smtp+xoauth2://leads@autohaus.example@smtp.office365.com``)
or with ``%40``. When two dealers hold a grant for the same login, ``?dealer=ID`` says which.
``smtp+xoauth2`` speaks STARTTLS (port 587 by default), ``smtps+xoauth2`` implicit TLS (465).

An authentication failure refreshes the token once and tries again in the same session; if
the provider still says no, or the grant was revoked, the mail stays queued (a transient
failure) with the reason, so nothing is lost while someone connects the mailbox again.
"""

from __future__ import annotations

import smtplib
import threading
from dataclasses import dataclass, field
from urllib.parse import unquote, urlsplit

from intake.oauth import OAuthError, xoauth2_string
from intake.oauth_tokens import AccessTokens
from models.db import Database
from models.token_store import normalise_user, oauth_mailboxes
from workers.relay import SmtpRelay, TransientDeliveryError, query_value


@dataclass
class XOAuth2SmtpRelay(SmtpRelay):
    db: Database | None = None
    secret_key: str | None = None
    dealer_id: str | None = None
    _tokens: dict[str, AccessTokens] = field(default_factory=dict, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def tokens(self) -> AccessTokens:
        assert self.db is not None and self.username
        with self.db.session() as session:
            found = oauth_mailboxes(session, user=self.username, dealer_id=self.dealer_id)
        if not found:
            raise TransientDeliveryError(
                f"LMS_RELAY_URL names {self.username}, but no dealer has a [[dealers.imap]] mailbox "
                'with that user and auth = "xoauth2"'
            )
        if len(found) > 1:
            raise TransientDeliveryError(
                f"{self.username} is an OAuth2 mailbox of several dealers "
                f"({', '.join(m.dealer_id for m in found)}): add ?dealer=ID to LMS_RELAY_URL"
            )
        mailbox = found[0]
        with self._lock:
            tokens = self._tokens.get(mailbox.dealer_id)
            if tokens is None or tokens.oauth != mailbox.oauth:
                tokens = AccessTokens(
                    self.db,
                    dealer_id=mailbox.dealer_id,
                    user=mailbox.user,
                    oauth=mailbox.oauth,
                    secret_key=self.secret_key,
                )
                self._tokens[mailbox.dealer_id] = tokens
            return tokens

    def prepare(self) -> None:
        self.tokens()  # no grant, no connection: say so before talking to the server

    def authenticate(self, client: smtplib.SMTP) -> None:
        assert self.username
        user = self.username
        tokens = self.tokens()
        client.ehlo_or_helo_if_needed()
        try:
            token = tokens.get()
            try:
                self._xoauth2(client, user, token)
            except smtplib.SMTPAuthenticationError:
                self._xoauth2(client, user, tokens.get(failed=token))
        except OAuthError as exc:
            raise TransientDeliveryError(f"OAuth2 for {user}: {exc}") from None
        except smtplib.SMTPAuthenticationError as exc:
            text = exc.smtp_error.decode("utf-8", "replace") if isinstance(exc.smtp_error, bytes) else ""
            raise TransientDeliveryError(
                f"the relay refused the XOAUTH2 login of {user} with a fresh token: "
                f"{exc.smtp_code} {text}".strip()
            ) from None

    @staticmethod
    def _xoauth2(client: smtplib.SMTP, user: str, token: str) -> None:
        # On failure the server sends a 334 with a JSON error; the answer to it is empty
        # (Google's XOAUTH2 protocol), and then comes the 535.
        initial = xoauth2_string(user, token)
        client.auth("XOAUTH2", lambda challenge=None: initial if challenge is None else "")


def xoauth2_relay_from_url(
    url: str, *, timeout: float, db: Database | None, secret_key: str | None
) -> XOAuth2SmtpRelay:
    parts = urlsplit(url)
    if db is None:
        raise ValueError("LMS_RELAY_URL: smtp+xoauth2 needs the database (its token store)")
    if not parts.hostname or not parts.username:
        raise ValueError("LMS_RELAY_URL: smtp+xoauth2 needs USER@HOST (the connected mailbox login)")
    if parts.password:
        raise ValueError("LMS_RELAY_URL: smtp+xoauth2 takes no password (the token comes from the store)")
    tls = parts.scheme.lower() == "smtps+xoauth2"
    return XOAuth2SmtpRelay(
        host=parts.hostname,
        port=parts.port or (465 if tls else 587),
        mode="tls" if tls else "starttls",
        username=normalise_user(unquote(parts.username)),
        timeout=timeout,
        ca_file=query_value(parts.query, "ca_file"),
        db=db,
        secret_key=secret_key,
        dealer_id=query_value(parts.query, "dealer"),
    )
