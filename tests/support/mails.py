"""Realistic test mails, built with the standard library."""

from __future__ import annotations

import uuid
from email.message import EmailMessage
from email.policy import SMTP

DEMO_MAILBOX = "muster@leads.example.com"


def enquiry(
    *,
    sender: str = "Erika Mustermann <erika@example.org>",
    to: str = DEMO_MAILBOX,
    subject: str = "Anfrage VW Golf 1.5 TSI",
    body: str = "Guten Tag, ist der Golf noch zu haben? Ich hätte gern eine Probefahrt.\nErika Mustermann",
    headers: dict[str, str] | None = None,
    message_id: str | None = None,
) -> bytes:
    message = EmailMessage(policy=SMTP)
    message["From"] = sender
    message["To"] = to
    message["Subject"] = subject
    message["Date"] = "Sat, 28 Nov 2026 09:15:00 +0100"
    message["Message-ID"] = message_id or f"<{uuid.uuid4().hex}@example.org>"
    for name, value in (headers or {}).items():
        message[name] = value
    message.set_content(body)
    return message.as_bytes()
