"""LMTP (RFC 2033) for mail servers: after DATA one reply per recipient, durable before 250."""

from __future__ import annotations

import shutil
import smtplib
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, select

from models.tables import InboundMessage, Mailbox
from tests.support.intake import Intake
from tests.support.mails import DEMO_MAILBOX, enquiry
from tests.support.processes import ROOT
from tests.support.services import free_port

SECOND = "verkauf@leads.example.com"


@pytest.fixture
def two_mailboxes(tmp_path: Path) -> Path:
    """The demo dealer with a second mailbox."""
    shutil.copytree(ROOT / "examples", tmp_path / "examples")
    config = tmp_path / "examples" / "lms.toml"
    text = config.read_text()
    config.write_text(
        text.replace(f'mailboxes = ["{DEMO_MAILBOX}"]', f'mailboxes = ["{DEMO_MAILBOX}", "{SECOND}"]')
    )
    return config


@pytest.fixture(params=["unix", "tcp"])
def lmtp(
    request: pytest.FixtureRequest, db_url: str, tmp_path: Path, two_mailboxes: Path
) -> Iterator[Intake]:
    listen = str(tmp_path / "lmtp.sock") if request.param == "unix" else f"127.0.0.1:{free_port()}"
    server = Intake(
        db_url,
        tmp_path,
        lmtp_listen=listen,
        settings={
            "config": two_mailboxes,
            "sqlite_busy_timeout_ms": 1000,
            "database_statement_timeout_seconds": 1.0,
        },
    )
    yield server
    server.close()


def connect(server: Intake) -> smtplib.LMTP:
    listen = server.lmtp_listen or ""
    if listen.startswith("/"):
        return smtplib.LMTP(listen, timeout=30)
    host, _, port = listen.rpartition(":")
    return smtplib.LMTP(host, int(port), timeout=30)


def replies_after_data(client: smtplib.LMTP, raw: bytes, count: int) -> list[tuple[int, bytes]]:
    # smtplib reads only the first reply to DATA; LMTP sends one per accepted recipient.
    first = client.data(raw)
    return [first] + [client.getreply() for _ in range(count - 1)]


def test_one_reply_per_recipient_and_unknown_ones_refused_at_rcpt(lmtp: Intake) -> None:
    raw = enquiry()
    with connect(lmtp) as client:
        assert client.ehlo("mx.example")[0] == 250  # smtplib.LMTP sends LHLO
        assert client.mail("erika@example.org")[0] == 250
        assert client.rcpt(DEMO_MAILBOX)[0] == 250
        code, text = client.rcpt("nobody@leads.example.com")
        assert code == 550 and text.startswith(b"5.1.1")
        assert client.rcpt(SECOND)[0] == 250
        replies = replies_after_data(client, raw, 2)
    assert [code for code, _ in replies] == [250, 250]
    assert DEMO_MAILBOX.encode() in replies[0][1] and SECOND.encode() in replies[1][1]
    with lmtp.stack.db.session() as session:
        [row] = session.scalars(select(InboundMessage))
        assert row.raw == raw and row.via == "lmtp"
        assert sorted(row.envelope_to) == sorted([DEMO_MAILBOX, SECOND])


def test_helo_and_ehlo_are_not_lmtp(lmtp: Intake) -> None:
    with connect(lmtp) as client:
        assert client.docmd("EHLO", "mx.example")[0] == 500
        assert client.docmd("HELO", "mx.example")[0] == 500


def test_a_mailbox_gone_before_data_gets_550_and_the_others_are_stored(lmtp: Intake) -> None:
    with connect(lmtp) as client:
        client.ehlo("mx.example")
        client.mail("erika@example.org")
        assert client.rcpt(DEMO_MAILBOX)[0] == 250
        assert client.rcpt(SECOND)[0] == 250
        with lmtp.stack.db.session() as session:  # the configuration changes meanwhile
            session.execute(delete(Mailbox).where(Mailbox.address == SECOND))
        replies = replies_after_data(client, enquiry(), 2)
    assert [code for code, _ in replies] == [250, 550]
    assert lmtp.stack.count(InboundMessage) == 1


def test_a_database_failure_gives_451_for_every_recipient(lmtp: Intake, db_url: str) -> None:
    from tests.test_group_commit import hold_write_lock

    raw = enquiry()
    with connect(lmtp) as client:
        client.ehlo("mx.example")
        client.mail("erika@example.org")
        client.rcpt(DEMO_MAILBOX)
        client.rcpt(SECOND)
        release = hold_write_lock(db_url)
        try:
            replies = replies_after_data(client, raw, 2)
        finally:
            release()
    assert [(code, text[:5]) for code, text in replies] == [(451, b"4.3.0")] * 2
    assert lmtp.stack.count(InboundMessage) == 0


def test_a_real_postfix_hands_mail_over_by_lmtp(sqlite_url: str, tmp_path: Path, two_mailboxes: Path) -> None:
    """Postfix (Debian's package, a private instance on loopback) relays the dealer domain to
    our LMTP intake with the transport_maps line of the README."""

    from tests.support.postfix import PrivatePostfix
    from tests.support.services import wait_until

    port = free_port()
    server = Intake(sqlite_url, tmp_path, lmtp_listen=f"127.0.0.1:{port}", settings={"config": two_mailboxes})
    postfix = PrivatePostfix(domain="leads.example.com", lmtp=f"inet:127.0.0.1:{port}")
    try:
        raw = enquiry(to=f"{DEMO_MAILBOX}, {SECOND}")
        with smtplib.SMTP("127.0.0.1", postfix.port, timeout=30) as client:
            # Postfix accepts for the whole relay domain; our LMTP decides per recipient.
            client.sendmail("erika@example.org", [DEMO_MAILBOX, SECOND, "nobody@leads.example.com"], raw)

        def delivered() -> str | None:
            log = postfix.log()
            done = log.count("status=sent") >= 2 and "status=bounced" in log
            return log if done else None

        log = str(wait_until(delivered, timeout=60, what="Postfix to deliver by LMTP"))
        with server.stack.db.session() as session:
            [row] = session.scalars(select(InboundMessage))
        # Postfix adds its Received: line in front; the rest are the bytes the customer sent.
        assert row.raw.endswith(raw) and row.raw.startswith(b"Received: ") and row.via == "lmtp"
        assert sorted(row.envelope_to) == sorted([DEMO_MAILBOX, SECOND])
        assert "<nobody@leads.example.com>" in log and "5.1.1" in log
    finally:
        postfix.stop()
        server.close()
