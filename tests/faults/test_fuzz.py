"""Fuzzing with Hypothesis: whatever bytes arrive, recognition never raises, and every mail the
SMTP intake stores ends in a final state with a reason.

Random bytes, random headers (with encoded words, raw 8-bit, NUL and control characters),
and random MIME trees (nested multiparts, message/rfc822, every transfer encoding, charsets
real and invented). Example counts are kept modest so the whole suite stays fast; set
``HYPOTHESIS_PROFILE=deep`` to search longer.
"""

from __future__ import annotations

import base64
import os
import quopri
import smtplib
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from intake.parsing.report import parse_report
from models.tables import INBOUND_FINAL_STATES, InboundMessage
from tests.support.mails import DEMO_MAILBOX
from tests.support.services import wait_until
from tests.support.stack import Stack

settings.register_profile("default", max_examples=60, deadline=None)
settings.register_profile("deep", max_examples=2000, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

KINDS = {"lead", "reply", "auto_reply", "bounce", "bulk", "unrecognised"}
HEADER_NAMES = st.sampled_from(
    [
        "From",
        "To",
        "Cc",
        "Reply-To",
        "Subject",
        "Message-ID",
        "In-Reply-To",
        "References",
        "Date",
        "Return-Path",
        "Auto-Submitted",
        "Precedence",
        "List-Id",
        "Content-Type",
        "Content-Transfer-Encoding",
        "Content-Disposition",
        "Authentication-Results",
        "X-LMS-Origin",
        "Received",
        "X-Custom",
    ]
)
TEXT = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=80)
RAW_VALUE = st.one_of(
    st.binary(max_size=80).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b" ")),
    TEXT.map(lambda t: t.encode("utf-8", "surrogateescape").replace(b"\r", b"").replace(b"\n", b" ")),
    st.tuples(
        st.sampled_from(["utf-8", "iso-8859-1", "x-unknown", "gb2312", "bogus"]), st.sampled_from("QB"), TEXT
    ).map(lambda t: f"=?{t[0]}?{t[1]}?{t[2].encode('utf-8').hex()}?=".encode()),
    st.sampled_from(
        [b"<>", b"Erika <erika@example.org>", b"a@b@c@d", b"<<<@@@>>>", b"=?utf-8?q?A=2C_B?= <x@y.z>"]
    ),
)
HEADERS = st.lists(st.tuples(HEADER_NAMES, RAW_VALUE), max_size=12)
CHARSETS = st.sampled_from(["utf-8", "iso-8859-1", "windows-1252", "iso-2022-jp", "x-unknown", "utf-16", ""])


def encoded(body: bytes, encoding: str) -> bytes:
    if encoding == "base64":
        return base64.encodebytes(body)
    if encoding == "quoted-printable":
        return quopri.encodestring(body)
    return body


@st.composite
def mime_part(draw: st.DrawFn, depth: int = 0) -> bytes:
    headers = b"".join(name.encode() + b": " + value + b"\r\n" for name, value in draw(HEADERS))
    if depth < 3 and draw(st.booleans()):
        boundary = draw(st.sampled_from(["b1", "==x==", "sep", ""]))
        subtype = draw(st.sampled_from(["mixed", "alternative", "related", "report", "signed"]))
        children = draw(st.lists(mime_part(depth + 1), max_size=3))
        body = b"".join(b"--" + boundary.encode() + b"\r\n" + child + b"\r\n" for child in children)
        body += b"--" + boundary.encode() + b"--\r\n"
        ctype = f'Content-Type: multipart/{subtype}; boundary="{boundary}"\r\n'.encode()
        return headers + ctype + b"\r\n" + body
    if depth < 3 and draw(st.integers(0, 9)) == 0:
        inner = draw(mime_part(depth + 1))
        return headers + b"Content-Type: message/rfc822\r\n\r\n" + inner
    ctype = draw(
        st.sampled_from(
            [
                "text/plain",
                "text/html",
                "text/xml",
                "application/json",
                "application/pdf",
                "application/ms-tnef",
                "message/delivery-status",
            ]
        )
    )
    charset = draw(CHARSETS)
    cte = draw(st.sampled_from(["7bit", "8bit", "base64", "quoted-printable", "x-uuencode"]))
    body = draw(st.one_of(st.binary(max_size=400), TEXT.map(lambda t: t.encode())))
    head = f"Content-Type: {ctype}" + (f"; charset={charset}" if charset else "") + "\r\n"
    head += f"Content-Transfer-Encoding: {cte}\r\n"
    return headers + head.encode() + b"\r\n" + encoded(body, cte)


@given(st.binary(max_size=3000))
def test_random_bytes_are_read_without_an_exception(raw: bytes) -> None:
    report = parse_report("fuzz", raw)
    assert report["kind"] in KINDS


@given(mime_part())
def test_random_mime_trees_are_read_without_an_exception(raw: bytes) -> None:
    report = parse_report("fuzz", raw, region="DE")
    assert report["kind"] in KINDS
    assert isinstance(report["text"], str)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    path = tmp_path_factory.mktemp("fuzz")
    s = Stack(f"sqlite:///{path}/lms.db", relay_url=f"maildir://{path}/outbox")
    yield s
    s.close()


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(mime_part(), st.binary(min_size=1, max_size=2000)))
def test_whatever_the_intake_stores_ends_in_a_final_state_with_a_reason(stack: Stack, raw: bytes) -> None:
    marker = f"X-Fuzz-Id: {uuid.uuid4().hex}".encode()  # to find the row; the rest is random
    raw = marker + b"\r\n" + raw
    try:
        with smtplib.SMTP("127.0.0.1", stack.smtp_port, timeout=10) as client:
            client.sendmail("fuzz@example.org", [DEMO_MAILBOX], raw)
    except smtplib.SMTPDataError as refused:
        assert refused.smtp_code in (552, 554), refused  # refused outright, nothing stored: fine
        return
    with stack.db.read() as session:
        [row_id] = [r.id for r in session.scalars(select(InboundMessage)) if r.raw.startswith(marker)]

    def final() -> InboundMessage | None:
        with stack.db.read() as session:
            row = session.get(InboundMessage, row_id)
            return row if row is not None and row.state in INBOUND_FINAL_STATES else None

    row = wait_until(final, timeout=30, what="the fuzzed mail in a final state")
    assert row.state in ("processed", "ignored", "unrecognised"), (row.state, row.error)  # type: ignore[union-attr]
    if row.state != "processed":  # type: ignore[union-attr]
        assert row.reason  # type: ignore[union-attr]
