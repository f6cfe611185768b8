"""Realistic test mails, built with the standard library."""

from __future__ import annotations

import uuid
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

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


ADF_SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "adf"


def adf_sample(name: str) -> str:
    matches = sorted(ADF_SAMPLES.glob(f"{name}*"))
    assert matches, f"no ADF sample {name} in {ADF_SAMPLES}"
    return matches[0].read_text()


def with_attachment(
    body: str,
    payload: bytes,
    *,
    filename: str,
    maintype: str,
    subtype: str,
    sender: str = "leads@provider.example",
) -> bytes:
    message = EmailMessage(policy=SMTP)
    message["From"] = f"Lead Provider <{sender}>"
    message["To"] = DEMO_MAILBOX
    message["Subject"] = "New lead"
    message["Message-ID"] = f"<{uuid.uuid4().hex}@provider.example>"
    message.set_content(body)
    message.add_attachment(payload, maintype=maintype, subtype=subtype, filename=filename)
    return message.as_bytes()


def html_mail(
    html: str, *, sender: str = "Lead Provider <leads@provider.example>", subject: str = "New lead"
) -> bytes:
    message = EmailMessage(policy=SMTP)
    message["From"] = sender
    message["To"] = DEMO_MAILBOX
    message["Subject"] = subject
    message["Message-ID"] = f"<{uuid.uuid4().hex}@provider.example>"
    message.set_content(html, subtype="html")
    return message.as_bytes()
