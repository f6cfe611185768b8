"""The SMTP intake as a sending mail server sees it: real smtplib over loopback."""

from __future__ import annotations

import smtplib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from models.tables import InboundMessage
from tests.support.mails import DEMO_MAILBOX, enquiry
from tests.support.proxy import TcpProxy
from tests.support.stack import Stack


@pytest.fixture
def stack(db_url: str, tmp_path: Path) -> Iterator[Stack]:
    # No workers: these tests look at what is stored, not at what happens next.
    s = Stack(db_url, relay_url=f"maildir://{tmp_path}/outbox", worker_threads=None, smtp_max_bytes=200_000)
    yield s
    s.close()


def test_known_mailbox_is_accepted_and_stored_with_its_envelope(stack: Stack) -> None:
    raw = enquiry()
    assert stack.send(raw, sender="Erika@Example.org") == {}
    [row] = stack.inbound()
    assert row.raw == raw
    assert row.dealer_id == "muster"
    assert row.envelope_from == "erika@example.org"
    assert row.envelope_to == [DEMO_MAILBOX]
    assert row.state == "received"
    assert row.via == "smtp"


def test_unknown_recipient_is_refused_with_550_and_nothing_is_stored(stack: Stack) -> None:
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        stack.send(enquiry(), to="someone@elsewhere.example")
    code, text = refused.value.recipients["someone@elsewhere.example"]
    assert code == 550 and text.startswith(b"5.1.1")
    assert stack.count(InboundMessage) == 0


def test_a_message_over_the_size_limit_gets_552(stack: Stack) -> None:
    big = enquiry(body="x" * 300_000)
    with (
        pytest.raises(smtplib.SMTPDataError) as refused,
        smtplib.SMTP("127.0.0.1", stack.smtp_port, timeout=10) as client,
    ):
        # Do not announce SIZE: the limit must hold at DATA too.
        client.ehlo()
        client.esmtp_features.pop("size", None)
        client.sendmail("erika@example.org", [DEMO_MAILBOX], big)
    assert refused.value.smtp_code == 552
    assert refused.value.smtp_error.startswith(b"5.3.4")
    assert stack.count(InboundMessage) == 0


def test_the_same_message_delivered_twice_is_stored_once(stack: Stack) -> None:
    raw = enquiry()
    stack.send(raw)
    stack.send(raw)
    assert stack.count(InboundMessage) == 1


def test_lines_longer_than_rfc_5321_allows_are_accepted(stack: Stack) -> None:
    # Web form mailers write whole HTML documents on one line, in 8bit, unencoded.
    long_header = b"X-Form-Data: " + b"a" * 3000 + b"\r\n"
    long_body = b"<p>" + b"Sehr lange Zeile " * 200 + b"</p>\r\n"
    raw = (
        long_header
        + b"From: web@autohaus-muster.example\r\nSubject: Formular\r\nContent-Type: text/html\r\n\r\n"
        + long_body
    )
    assert len(long_header) > 1000 and len(long_body) > 1000
    assert stack.send(raw) == {}
    [row] = stack.inbound()
    assert row.raw == raw  # stored whole, unchanged


def test_locked_sqlite_database_gives_451_and_the_retry_succeeds(sqlite_url: str, tmp_path: Path) -> None:
    stack = Stack(
        sqlite_url, relay_url=f"maildir://{tmp_path}/o", worker_threads=None, sqlite_busy_timeout_ms=500
    )
    try:
        raw = enquiry()
        with smtplib.SMTP("127.0.0.1", stack.smtp_port, timeout=30) as client:
            client.ehlo()
            client.mail("erika@example.org")
            assert client.rcpt(DEMO_MAILBOX)[0] == 250
            # Another process takes the write lock and keeps it past our busy timeout.
            blocker = sqlite3.connect(sqlite_url.removeprefix("sqlite:///"), isolation_level=None)
            blocker.execute("BEGIN EXCLUSIVE")
            try:
                code, text = client.data(raw)
            finally:
                blocker.execute("ROLLBACK")
                blocker.close()
        assert code == 451 and text.startswith(b"4.3.0")
        assert stack.count(InboundMessage) == 0
        assert stack.send(raw) == {}
        assert stack.count(InboundMessage) == 1
    finally:
        stack.close()


def test_postgres_unreachable_at_data_time_gives_451_and_the_retry_succeeds(
    pg_url: str, tmp_path: Path
) -> None:
    proxy = TcpProxy("127.0.0.1", 5432)
    via_proxy = pg_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    stack = Stack(via_proxy, relay_url=f"maildir://{tmp_path}/o", worker_threads=None)
    try:
        raw = enquiry()
        with smtplib.SMTP("127.0.0.1", stack.smtp_port, timeout=30) as client:
            client.ehlo()
            client.mail("erika@example.org")
            assert client.rcpt(DEMO_MAILBOX)[0] == 250
            proxy.cut()  # the database goes away between RCPT and DATA
            code, text = client.data(raw)
            assert code == 451 and text.startswith(b"4.3.0")
        proxy.restore()
        assert stack.send(raw) == {}
        assert stack.count(InboundMessage) == 1
    finally:
        stack.close()
        proxy.close()
