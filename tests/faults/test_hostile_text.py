"""Text no database would take: every such mail is stored, becomes its lead, and is answered.

PostgreSQL refuses NUL in text; both drivers refuse lone surrogates (what undecodable 8-bit
header bytes become). Before one place made text safe, such a mail failed its insert on every
attempt and ended ``dead``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from models.tables import Contact, InboundMessage, Lead, LeadActivity
from tests.support.mails import DEMO_MAILBOX
from tests.support.services import wait_until
from tests.support.sink import SmtpSink
from tests.support.stack import Stack

HEAD = "To: " + DEMO_MAILBOX + "\r\nDate: Sat, 28 Nov 2026 09:15:00 +0100\r\nMIME-Version: 1.0\r\n"
MAILS = {
    "quoted-printable =00 in the body": (
        b"From: Erika Mustermann <erika@example.org>\r\nSubject: Probefahrt\r\n"
        b"Message-ID: <qp-nul@example.org>\r\n"
        + HEAD.encode()
        + b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"Ich h=C3=A4tte gern eine Probefahrt=00 mit dem Golf.=00=00\r\nErika\r\n"
    ),
    "NUL in an encoded-word display name": (
        b"From: =?utf-8?q?Jonas=00_Weber?= <jonas@example.net>\r\nSubject: Angebot\r\n"
        b"Message-ID: <name-nul@example.net>\r\n"
        + HEAD.encode()
        + b"Content-Type: text/plain; charset=utf-8\r\n\r\nBitte ein Angebot fuer den Tiguan.\r\n"
    ),
    "raw 8-bit bytes in no declared charset in From, Subject and Message-ID": (
        b"From: Kl\xe4us \xff\xfe M\xfcller <klaus@example.com>\r\nSubject: Anfrage \xff\xfe\x80 Passat\r\n"
        b"Message-ID: <8bit-\xff\xfe@example.com>\r\n"
        + HEAD.encode()
        + b"Content-Type: text/plain\r\n\r\nGuten Tag, ist der Passat noch da? \xff\xfe\r\n"
    ),
    "NUL bytes raw in headers and body": (
        b"From: Nina\x00 Nul <nina@example.org>\r\nSubject: Frage\x00 zum Polo\r\n"
        b"Message-ID: <raw-nul\x00@example.org>\r\n"
        + HEAD.encode()
        + b"Content-Type: text/plain; charset=utf-8\r\n\r\nIst der Polo\x00 noch zu haben?\r\n"
    ),
}


@pytest.fixture
def stack(db_url: str, sink: SmtpSink) -> Iterator[Stack]:
    s = Stack(db_url, relay_url=sink.url)
    yield s
    s.close()


@pytest.mark.parametrize("case", list(MAILS))
def test_hostile_text_is_stored_made_a_lead_and_answered(stack: Stack, sink: SmtpSink, case: str) -> None:
    raw = MAILS[case]
    sender = raw.split(b"<", 1)[1].split(b">", 1)[0].decode()
    stack.send(raw, sender=sender)
    wait_until(lambda: sink.to(sender), timeout=30, what=f"the answer to {case}")
    with stack.db.read() as session:
        [row] = session.scalars(select(InboundMessage)).all()
        assert row.raw == raw  # the bytes as they came, whatever the text made of them
        assert row.state == "processed", (row.state, row.error)
        [lead] = session.scalars(select(Lead)).unique().all()
        contact = session.get(Contact, lead.contact_id)
        assert contact is not None and contact.email == sender
        texts = [lead.message or "", lead.subject or "", contact.name or ""]
        texts += list(session.scalars(select(LeadActivity.text).where(LeadActivity.lead_id == lead.id)))
    assert all("\x00" not in text for text in texts)
    assert all(not any("\ud800" <= ch <= "\udfff" for ch in text) for text in texts)
