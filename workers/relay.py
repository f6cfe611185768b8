"""Where outgoing mail goes, chosen by ``LMS_RELAY_URL``.

``smtp://host:port``, ``smtp+starttls://user:pass@host:587``, ``smtps://user:pass@host:465``,
``smtp+xoauth2://user@host:587`` (OAuth2, :mod:`workers.relay_xoauth2`) or ``maildir://PATH``;
``?ca_file=PATH`` trusts a private CA. smtplib has no default timeout, so every connection
gets one, and STARTTLS is asked for explicitly (smtplib never upgrades on its own).

What "at least once" means here: a mail is marked sent only after the relay took it. The
Maildir relay is idempotent: one file per Message-ID, so a mail handed over again after a
crash is not written twice. SMTP offers no such thing: between the server's 250 after DATA
and our commit of "sent" lies a window (milliseconds; we commit right after each 250, and
an error after the 250, e.g. on QUIT, no longer counts as a failure) in which a crash makes
us send the same bytes again once the lease runs out. The copy has the same Message-ID, so
receiving systems that deduplicate drop it.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import smtplib
import socket
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from models import metrics
from models.db import Database
from models.tls import client_tls_context


class DeliveryError(Exception):
    pass


class TransientDeliveryError(DeliveryError):
    """Try again later: the relay is down, busy, or answered 4xx."""


class PermanentDeliveryError(DeliveryError):
    """The relay refused the mail for good (5xx): retrying sends nothing but noise."""


@dataclass(frozen=True)
class Outgoing:
    message_id: str
    raw: bytes
    envelope_from: str
    recipients: list[str]


class Relay(Protocol):
    # Handing the same mail over twice delivers it once (so results may be committed together).
    idempotent: bool

    def session(self) -> contextlib.AbstractContextManager[RelaySession]: ...


class RelaySession(Protocol):
    def send(self, mail: Outgoing) -> None: ...


@dataclass
class MaildirRelay:
    path: Path
    idempotent: bool = True

    @contextlib.contextmanager
    def session(self) -> Iterator[MaildirRelay]:
        yield self

    def _ensure(self) -> None:
        for sub in ("tmp", "new", "cur"):
            # makedirs: the relay's folder may be missing entirely (a fresh checkout's var/).
            os.makedirs(self.path / sub, exist_ok=True)

    def send(self, mail: Outgoing) -> None:
        """Write into tmp/, fsync, rename into new/ (a reader never sees half a mail). The file
        name comes from the Message-ID: a mail already there (new/ or, read, cur/) is not
        written again."""
        name = hashlib.sha256(mail.message_id.encode()).hexdigest()[:32] + ".lms"
        try:
            self._ensure()
            if (self.path / "new" / name).exists() or any((self.path / "cur").glob(name + ":*")):
                return
            tmp = self.path / "tmp" / f"{name}.{os.getpid()}.{time.monotonic_ns()}"
            with open(tmp, "wb") as handle:
                handle.write(mail.raw)
                handle.flush()
                os.fsync(handle.fileno())
            os.rename(tmp, self.path / "new" / name)
        except OSError as exc:
            raise TransientDeliveryError(f"cannot write to maildir {self.path}: {exc}") from exc


def _classify(exc: Exception) -> DeliveryError:
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        codes = [code for code, _ in exc.recipients.values()]
        text = "; ".join(f"{r}: {c} {m!r}" for r, (c, m) in exc.recipients.items())
        return (
            PermanentDeliveryError(text)
            if all(code >= 500 for code in codes)
            else TransientDeliveryError(text)
        )
    if isinstance(exc, smtplib.SMTPResponseException):
        reply = exc.smtp_error
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        message = f"{exc.smtp_code} {text}"
        if 500 <= exc.smtp_code < 600:
            return PermanentDeliveryError(message)
        return TransientDeliveryError(message)
    return TransientDeliveryError(f"{type(exc).__name__}: {exc}")


def reply_codes(exc: Exception) -> list[int | str]:
    """The relay's reply codes in a failure ("connection": it never answered)."""
    if isinstance(exc, smtplib.SMTPRecipientsRefused):
        return [code for code, _ in exc.recipients.values()]
    if isinstance(exc, smtplib.SMTPResponseException):
        return [exc.smtp_code]
    return ["connection"]


class SmtpSession:
    """One connection for several mails (RSET between them is smtplib's own business)."""

    def __init__(self, relay: SmtpRelay) -> None:
        self.relay = relay
        self.client: smtplib.SMTP | None = None

    def _connect(self) -> smtplib.SMTP:
        relay = self.relay
        relay.prepare()
        if relay.mode == "tls":
            client: smtplib.SMTP = smtplib.SMTP_SSL(
                relay.host, relay.port, timeout=relay.timeout, context=relay.tls_context()
            )
        else:
            client = smtplib.SMTP(relay.host, relay.port, timeout=relay.timeout)
            if relay.mode == "starttls":
                client.ehlo()
                client.starttls(context=relay.tls_context())
                client.ehlo()
        relay.authenticate(client)
        return client

    def send(self, mail: Outgoing) -> None:
        try:
            if self.client is None:
                self.client = self._connect()
            refused = self.client.sendmail(mail.envelope_from, mail.recipients, mail.raw)
        except (OSError, smtplib.SMTPException) as exc:
            self.close()  # the connection is in an unknown state: the next mail gets a new one
            for code in reply_codes(exc):
                metrics.relay_reply(code)
            raise _classify(exc) from exc
        for code in [code for code, _ in refused.values()] or [250]:
            metrics.relay_reply(code)
        if refused:
            # Some recipients refused, the others took it: resending would double the mail.
            raise PermanentDeliveryError(f"refused by the relay: {refused}")

    def close(self) -> None:
        client, self.client = self.client, None
        if client is not None:
            # After the 250s, nothing that goes wrong here is a failure of the mails sent.
            with contextlib.suppress(OSError, smtplib.SMTPException, socket.error):
                client.quit()
            with contextlib.suppress(OSError):
                client.close()


@dataclass
class SmtpRelay:
    host: str
    port: int
    mode: str  # plain | starttls | tls
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0
    ca_file: str | None = None  # ?ca_file=PATH: a private CA instead of the system store
    idempotent: bool = False

    def tls_context(self) -> ssl.SSLContext:
        return client_tls_context(self.ca_file)

    def prepare(self) -> None:
        """Checks before connecting (an OAuth2 relay makes sure it has a grant)."""

    def authenticate(self, client: smtplib.SMTP) -> None:
        if self.username:
            client.login(self.username, self.password or "")

    @contextlib.contextmanager
    def session(self) -> Iterator[SmtpSession]:
        session = SmtpSession(self)
        try:
            yield session
        finally:
            session.close()


def relay_from_url(
    url: str,
    *,
    timeout: float = 30.0,
    base_dir: Path | None = None,
    db: Database | None = None,
    secret_key: str | None = None,
) -> Relay:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "maildir":
        raw_path = unquote(parts.netloc + parts.path)
        path = Path(raw_path)
        if not path.is_absolute():
            path = (base_dir or Path.cwd()) / path
        return MaildirRelay(path)
    if scheme in ("smtp+xoauth2", "smtps+xoauth2"):
        from workers.relay_xoauth2 import xoauth2_relay_from_url

        return xoauth2_relay_from_url(url, timeout=timeout, db=db, secret_key=secret_key)
    modes = {"smtp": ("plain", 25), "smtp+starttls": ("starttls", 587), "smtps": ("tls", 465)}
    if scheme not in modes:
        raise ValueError(
            f"LMS_RELAY_URL: unknown scheme {scheme!r} "
            "(smtp, smtp+starttls, smtps, smtp+xoauth2, smtps+xoauth2, maildir)"
        )
    if not parts.hostname:
        raise ValueError("LMS_RELAY_URL: no host")
    mode, default_port = modes[scheme]
    return SmtpRelay(
        host=parts.hostname,
        port=parts.port or default_port,
        mode=mode,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        timeout=timeout,
        ca_file=query_value(parts.query, "ca_file"),
    )


def query_value(query: str, name: str) -> str | None:
    values = parse_qs(query).get(name)
    return values[0] if values else None
