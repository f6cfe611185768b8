"""Where outgoing mail goes, chosen by ``LMS_RELAY_URL``.

``smtp://host:port``, ``smtp+starttls://user:pass@host:587``, ``smtps://user:pass@host:465``,
``smtp+xoauth2://user@host:587`` (OAuth2, workers/relay_xoauth2.py) or ``maildir://PATH``;
``?ca_file=PATH`` trusts a private CA. smtplib has no default timeout, so every connection gets one, and
STARTTLS is asked for explicitly (smtplib never upgrades on its own).
"""

from __future__ import annotations

import mailbox
import smtplib
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from models.db import Database


class DeliveryError(Exception):
    pass


class TransientDeliveryError(DeliveryError):
    """Try again later: the relay is down, busy, or answered 4xx."""


class PermanentDeliveryError(DeliveryError):
    """The relay refused the mail for good (5xx): retrying sends nothing but noise."""


class Relay(Protocol):
    def send(self, raw: bytes, envelope_from: str, recipients: list[str]) -> None: ...


@dataclass
class MaildirRelay:
    path: Path

    def send(self, raw: bytes, envelope_from: str, recipients: list[str]) -> None:
        try:
            # Maildir writes into tmp/ and renames into new/: a reader never sees half a mail.
            mailbox.Maildir(str(self.path), create=True).add(raw)
        except OSError as exc:
            raise TransientDeliveryError(f"cannot write to maildir {self.path}: {exc}") from exc


@dataclass
class SmtpRelay:
    host: str
    port: int
    mode: str  # plain | starttls | tls
    username: str | None = None
    password: str | None = None
    timeout: float = 30.0
    ca_file: str | None = None  # ?ca_file=PATH: a private CA instead of the system store

    def _tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)

    def _connect(self) -> smtplib.SMTP:
        if self.mode == "tls":
            return smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self._tls_context())
        client = smtplib.SMTP(self.host, self.port, timeout=self.timeout)
        if self.mode == "starttls":
            client.ehlo()
            client.starttls(context=self._tls_context())
            client.ehlo()
        return client

    def _authenticate(self, client: smtplib.SMTP) -> None:
        if self.username:
            client.login(self.username, self.password or "")

    def send(self, raw: bytes, envelope_from: str, recipients: list[str]) -> None:
        try:
            with self._connect() as client:
                self._authenticate(client)
                refused = client.sendmail(envelope_from, recipients, raw)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            text = "; ".join(f"{r}: {c} {m!r}" for r, (c, m) in exc.recipients.items())
            if all(code >= 500 for code in codes):
                raise PermanentDeliveryError(text) from exc
            raise TransientDeliveryError(text) from exc
        except smtplib.SMTPResponseException as exc:
            reply = exc.smtp_error
            text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
            message = f"{exc.smtp_code} {text}"
            if 500 <= exc.smtp_code < 600:
                raise PermanentDeliveryError(message) from exc
            raise TransientDeliveryError(message) from exc
        except (OSError, smtplib.SMTPException) as exc:
            raise TransientDeliveryError(f"{type(exc).__name__}: {exc}") from exc
        if refused:
            # Some recipients refused, the others took it: resending would double the mail.
            raise PermanentDeliveryError(f"refused by the relay: {refused}")


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
