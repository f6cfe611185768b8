"""What a sending server sees of our trimmed aiosmtpd: the protocol details we keep (dot
stuffing, pipelining, 8-bit, long lines, SMTPUTF8, strict paths) and the limits we added."""

from __future__ import annotations

import smtplib
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from intake.smtp import IntakeLimits
from models.tables import InboundMessage
from tests.support.intake import Intake
from tests.support.mails import DEMO_MAILBOX, enquiry


@pytest.fixture
def intake(sqlite_url: str, tmp_path: Path) -> Iterator[Intake]:
    server = Intake(sqlite_url, tmp_path, max_bytes=3_000_000)
    yield server
    server.close()


def stored(intake: Intake) -> list[bytes]:
    with intake.stack.db.session() as session:
        return list(session.scalars(select(InboundMessage.raw).order_by(InboundMessage.id)))


class Raw:
    """A client that writes bytes exactly as given (smtplib would fix them up)."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=20)
        self.file = self.sock.makefile("rb")
        assert self.reply().startswith(b"220")

    def reply(self) -> bytes:
        lines = []
        while True:
            line = self.file.readline()
            if not line:
                raise ConnectionError("closed")
            lines.append(line)
            if line[3:4] != b"-":
                return b"".join(lines)

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def test_dot_stuffing_8bit_and_long_lines_arrive_byte_for_byte(intake: Intake) -> None:
    body = (
        ".a line that starts with a dot\r\n"
        "..two dots\r\n"
        ".\tdot and tab\r\n"
        "Grüße aus Köln, 8bit\r\n" + "x" * 5000 + "\r\n"
        "the end.\r\n"
    ).encode()
    raw = b"From: erika@example.org\r\nSubject: dots\r\n\r\n" + body
    with intake.client() as client:
        assert client.sendmail("erika@example.org", [DEMO_MAILBOX], raw) == {}
    assert stored(intake) == [raw]


def test_a_big_mail_with_dots_across_read_buffers_is_stored_whole(intake: Intake) -> None:
    # Far more than the 1 MiB read buffer, with a dot line every few bytes.
    lines = [f"line {n}.\r\n.{n}\r\n".encode() for n in range(120_000)]
    raw = b"Subject: big\r\n\r\n" + b"".join(lines)
    assert len(raw) > 2_000_000
    with intake.client() as client:
        client.sendmail("erika@example.org", [DEMO_MAILBOX], raw)
    assert stored(intake) == [raw]


def test_pipelined_commands_and_two_mails_in_one_write(intake: Intake) -> None:
    client = Raw(intake.port)
    try:
        client.send(b"EHLO client.example\r\n")
        assert b"250-PIPELINING" in client.reply()  # RFC 2920: clients may send without waiting
        envelope = f"MAIL FROM:<erika@example.org>\r\nRCPT TO:<{DEMO_MAILBOX}>\r\nDATA\r\n".encode()
        first, second = b"Subject: one\r\n\r\nfirst\r\n", b"Subject: two\r\n\r\nsecond\r\n"
        client.send(envelope)
        assert [client.reply()[:3] for _ in range(3)] == [b"250", b"250", b"354"]
        # The end of one mail and the whole next transaction in a single write.
        client.send(first + b".\r\n" + envelope)
        assert [client.reply()[:3] for _ in range(4)] == [b"250", b"250", b"250", b"354"]
        client.send(second + b".\r\nQUIT\r\n")
        assert client.reply()[:3] == b"250"
        assert client.reply()[:3] == b"221"
    finally:
        client.close()
    assert stored(intake) == [first, second]


def test_a_bare_lf_dot_does_not_end_the_message(intake: Intake) -> None:
    # SMTP smuggling: <LF>.<CRLF> inside a mail must not end it and start a second one.
    client = Raw(intake.port)
    try:
        client.send(
            f"HELO c\r\nMAIL FROM:<erika@example.org>\r\nRCPT TO:<{DEMO_MAILBOX}>\r\nDATA\r\n".encode()
        )
        assert [client.reply()[:3] for _ in range(4)] == [b"250", b"250", b"250", b"354"]
        smuggled = b"Subject: a\r\n\r\nhello\n.\r\nMAIL FROM:<evil@example.org>\r\n"
        client.send(smuggled + b".\r\n")
        assert client.reply()[:3] == b"250"
    finally:
        client.close()
    assert stored(intake) == [smuggled]


def test_smtputf8_addresses_are_accepted(intake: Intake) -> None:
    with intake.client() as client:
        client.ehlo()
        assert client.has_extn("smtputf8")
        code, _ = client.mail("jörg@bücher.example", ["SMTPUTF8"])
        assert code == 250
        assert client.rcpt(DEMO_MAILBOX)[0] == 250
        assert client.data(enquiry())[0] == 250


@pytest.mark.parametrize(
    "path",
    [
        "<a..b@example.org>",
        "<.a@example.org>",
        "<(comment)a@example.org>",
        "<a@b@c>",
        "erika@example.org",
        "<a @example.org>",
        "<a@-example.org>",
    ],
)
def test_paths_rfc_5321_refuses_are_refused(intake: Intake, path: str) -> None:
    client = Raw(intake.port)
    try:
        client.send(b"EHLO c\r\n")
        client.reply()
        client.send(f"MAIL FROM:{path}\r\n".encode())
        assert client.reply()[:3] in (b"553", b"501")
    finally:
        client.close()


def test_null_sender_and_source_routes_are_accepted(intake: Intake) -> None:
    client = Raw(intake.port)
    try:
        client.send(f"EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<@relay.example:{DEMO_MAILBOX}>\r\n".encode())
        assert [client.reply()[:3] for _ in range(3)] == [b"250", b"250", b"250"]
    finally:
        client.close()


def test_more_recipients_than_allowed_get_452(sqlite_url: str, tmp_path: Path) -> None:
    server = Intake(sqlite_url, tmp_path, limits=IntakeLimits(max_recipients=3))
    try:
        with server.client() as client:
            client.ehlo()
            client.mail("erika@example.org")
            codes = [client.rcpt(DEMO_MAILBOX)[0] for _ in range(4)]
        assert codes == [250, 250, 250, 452]
    finally:
        server.close()


def test_connections_per_client_address_are_limited(sqlite_url: str, tmp_path: Path) -> None:
    server = Intake(sqlite_url, tmp_path, limits=IntakeLimits(max_connections_per_client=2))
    clients = [server.client(), server.client()]
    try:
        with pytest.raises(smtplib.SMTPConnectError) as refused:
            server.client()
        assert refused.value.smtp_code == 421
        clients.pop().quit()
        # A slot is free again once a connection has ended.
        deadline = time.monotonic() + 10
        while True:
            try:
                server.client().quit()
                break
            except smtplib.SMTPConnectError:
                assert time.monotonic() < deadline, "the freed slot was never given back"
                time.sleep(0.05)
    finally:
        for client in clients:
            client.close()
        server.close()


def test_a_session_kept_alive_with_noop_ends(sqlite_url: str, tmp_path: Path) -> None:
    server = Intake(sqlite_url, tmp_path, limits=IntakeLimits(max_junk_commands=5))
    try:
        with server.client() as client:
            client.ehlo()
            codes = [client.noop()[0] for _ in range(5)]
            assert codes == [250] * 5
            assert client.noop()[0] == 421
            with pytest.raises(smtplib.SMTPServerDisconnected):
                client.noop()
    finally:
        server.close()


def test_a_session_ends_after_its_maximum_length(sqlite_url: str, tmp_path: Path) -> None:
    server = Intake(sqlite_url, tmp_path, limits=IntakeLimits(max_session_seconds=1.0))
    try:
        started = time.monotonic()
        with server.client() as client:
            client.ehlo()
            with pytest.raises(smtplib.SMTPServerDisconnected):
                while time.monotonic() - started < 15:
                    code, _ = client.noop()
                    if code == 421:  # "session too long", then the connection closes
                        client.noop()
                    time.sleep(0.1)
        assert time.monotonic() - started < 5
    finally:
        server.close()


def test_starttls_is_offered_and_mail_arrives_over_it(sqlite_url: str, tmp_path: Path) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
    )
    from intake.smtp import tls_context_from

    server = Intake(sqlite_url, tmp_path, tls_context=tls_context_from(str(cert), str(key)))
    try:
        raw = enquiry()
        with server.client() as client:
            client.ehlo()
            assert client.has_extn("starttls")
            context = ssl.create_default_context(cafile=str(cert))
            context.check_hostname = False
            assert client.starttls(context=context)[0] == 220
            client.ehlo()
            assert not client.has_extn("auth")  # we take mail, we offer no sign-in
            assert client.sendmail("erika@example.org", [DEMO_MAILBOX], raw) == {}
        assert stored(server) == [raw]
    finally:
        server.close()
