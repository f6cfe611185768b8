"""Spoofed portals caught: a mail claiming mobile.de is mobile.de only with a DKIM or DMARC
pass that our own receiving side established."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import dkim
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select

from intake.parsing.authenticity import Trust, parse_authentication_results, sender_verdict
from intake.parsing.extract import extract
from intake.parsing.mime import parse_mail
from intake.store import store_message
from lms.cli import main
from models.tables import InboundMessage, LeadActivity
from tests.support.mails import DEMO_MAILBOX, enquiry
from tests.support.stack import Stack

OURS = "mx.leads.example.com"
PORTAL_BODY = (
    "Sie haben eine neue Anfrage.\n\nName: Jonas Weber\nE-Mail: jonas@example.net\nTelefon: 0176 12345678\n"
    "Fahrzeug: VW Golf 1.5 TSI\nNachricht:\nIst eine Probefahrt möglich?\n"
)


def portal_mail(
    *, results: tuple[str, ...] | list[str] = (), reply_to: str = "Jonas Weber <jonas@example.net>"
) -> bytes:
    raw = enquiry(
        sender="mobile.de <noreply@mobile.de>",
        subject="Anfrage zu Ihrem Inserat VW Golf 1.5 TSI",
        headers={"Reply-To": reply_to},
        # One customer per Reply-To, so each test mail is its own lead.
        body=PORTAL_BODY.replace("jonas@example.net", reply_to.split("<")[-1].strip(">")).replace(
            "0176 12345678", f"0176 {abs(hash(reply_to)) % 10**8:08d}"
        ),
    )
    # The receiving server writes its result above everything else (RFC 8601 §5).
    return b"".join(f"Authentication-Results: {r}\r\n".encode() for r in results) + raw


# -- the rule -------------------------------------------------------------------------------


def test_authentication_results_are_read_as_rfc_8601_writes_them() -> None:
    parsed = parse_authentication_results(
        "mx.leads.example.com 1; (a comment (nested)) spf=pass smtp.mailfrom=mobile.de;\r\n"
        ' dkim=pass (2048-bit key) header.d=mobile.de header.s="sel1" header.b=abc;'
        " dmarc=pass header.from=mobile.de"
    )
    assert parsed.authserv_id == "mx.leads.example.com"
    assert [(m, r) for m, r, _ in parsed.results] == [("spf", "pass"), ("dkim", "pass"), ("dmarc", "pass")]
    assert parsed.results[1][2]["header.d"] == "mobile.de" and parsed.results[1][2]["header.s"] == "sel1"


@pytest.mark.parametrize(
    ("results", "state"),
    [
        ([], "unverified"),  # no result from our server at all
        ([f"{OURS}; dkim=pass header.d=mobile.de"], "verified"),
        ([f"{OURS}; dkim=pass header.i=@mail.mobile.de"], "verified"),  # a subdomain of the portal signs
        ([f"{OURS}; dkim=fail header.d=mobile.de; dmarc=pass header.from=mobile.de"], "verified"),
        ([f"{OURS}; dkim=pass header.d=evil.example"], "unverified"),  # signed, but by someone else
        ([f"{OURS}; dkim=fail header.d=mobile.de"], "unverified"),
        (["mx.other.example; dkim=pass header.d=mobile.de"], "unverified"),  # someone else's result
        # Only the topmost: a pass the sender wrote below ours, even in our name, counts for nothing.
        ([f"{OURS}; dkim=none", f"{OURS}; dkim=pass header.d=mobile.de"], "unverified"),
        (["mx.other.example; dkim=none", f"{OURS}; dkim=pass header.d=mobile.de"], "unverified"),
    ],
)
def test_only_the_topmost_result_of_our_own_server_counts(results: list[str], state: str) -> None:
    verdict = sender_verdict(
        parse_mail(portal_mail(results=results)), ("mobile.de",), Trust(authserv_ids=(OURS,))
    )
    assert verdict.state == state


def test_without_any_verification_configured_the_portal_is_taken_by_its_domain() -> None:
    [lead] = extract(parse_mail(portal_mail(results=[f"{OURS}; dkim=pass header.d=mobile.de"]))).enquiries
    assert (lead.source, lead.format) == ("mobile.de", "portal")
    assert lead.sender_check == "not_checked" and "sender not verified" in lead.sender_check_detail


def test_a_spoofed_portal_mail_is_a_plain_mail_enquiry() -> None:
    extraction = extract(parse_mail(portal_mail()), region="DE", trust=Trust(authserv_ids=(OURS,)))
    [lead] = extraction.enquiries
    assert (lead.source, lead.format, lead.sender_check) == ("E-Mail", "mail", "unverified")
    assert lead.customer.email == "jonas@example.net"  # its own Reply-To, as any plain mail
    assert lead.vehicle.price is None and not lead.external_id  # none of the portal's fields


def test_the_same_mail_with_our_pass_is_mobile_de() -> None:
    raw = portal_mail(results=[f"{OURS}; dkim=pass header.d=mobile.de"])
    [lead] = extract(parse_mail(raw), region="DE", trust=Trust(authserv_ids=(OURS,))).enquiries
    assert (lead.source, lead.format, lead.sender_check) == ("mobile.de", "portal", "verified")


# -- in the pipeline, shown to people ---------------------------------------------------------


def _stack(db_url: str, tmp_path: Path, **settings: object) -> Stack:
    return Stack(
        db_url, relay_url=f"maildir://{tmp_path}/outbox", worker_threads=None, smtp=False, **settings
    )


@pytest.fixture
def checked(db_url: str, tmp_path: Path) -> Iterator[Stack]:
    s = _stack(db_url, tmp_path, authserv_id=OURS)
    yield s
    s.close()


def ingest(stack: Stack, raw: bytes, *, via: str = "deliver") -> InboundMessage:
    [stored] = store_message(
        stack.db,
        raw,
        envelope_from="bounce@mobile.de",
        recipients=[DEMO_MAILBOX],
        via=via,
        now=stack.runtime.clock(),
    )
    stack.runtime.ingest(stored.id)
    with stack.db.session() as session:
        row = session.get(InboundMessage, stored.id)
        assert row is not None
        return row


def test_spoofed_verified_and_foreign_results_end_as_people_see_them(checked: Stack) -> None:
    ingest(checked, portal_mail(reply_to="spoofed@example.net"))
    ingest(
        checked, portal_mail(results=[f"{OURS}; dkim=pass header.d=mobile.de"], reply_to="real@example.net")
    )
    ingest(
        checked,
        portal_mail(results=["mx.evil.example; dkim=pass header.d=mobile.de"], reply_to="x@example.net"),
    )
    spoofed, real, foreign = checked.leads()
    assert (spoofed.source.name, spoofed.sender_verification) == ("E-Mail", "unverified")  # type: ignore[union-attr]
    assert (real.source.name, real.sender_verification) == ("mobile.de", "verified")  # type: ignore[union-attr]
    assert (foreign.source.name, foreign.sender_verification) == ("E-Mail", "unverified")  # type: ignore[union-attr]

    cli = CliRunner(env={"LMS_DATABASE_URL": checked.settings.database_url})
    listed = {
        lead["id"]: lead for lead in json.loads(cli.invoke(main, ["leads", "list", "--json"]).stdout)["leads"]
    }
    assert listed[spoofed.id]["sender_verification"] == "unverified"
    assert listed[spoofed.id]["sender_note"] == "unverified sender"
    assert listed[real.id]["sender_verification"] == "verified"
    human = cli.invoke(main, ["leads", "list"]).stdout.splitlines()
    assert [line for line in human if "[unverified sender]" in line and "spoofed@" not in line]
    shown = cli.invoke(main, ["leads", "show", str(spoofed.id)]).stdout
    assert "Sender:   unverified sender" in shown
    assert "no Authentication-Results header from our receiving server" in shown


def test_where_nothing_is_configured_the_lead_says_sender_not_verified(db_url: str, tmp_path: Path) -> None:
    stack = _stack(db_url, tmp_path)
    try:
        ingest(stack, portal_mail())
        [lead] = stack.leads()
        assert (lead.source.name, lead.sender_verification) == ("mobile.de", "not_checked")  # type: ignore[union-attr]
        cli = CliRunner(env={"LMS_DATABASE_URL": stack.settings.database_url})
        assert "Sender:   sender not verified" in cli.invoke(main, ["leads", "show", str(lead.id)]).stdout
        # A mail that claims no portal says nothing about its sender.
        ingest(stack, enquiry(sender="erika@example.org"))
        assert stack.leads()[1].sender_verification is None
    finally:
        stack.close()


# -- our own DKIM check, when we are the receiving server ------------------------------------


def _key() -> tuple[bytes, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


@pytest.fixture(scope="module")
def signing_key() -> tuple[bytes, bytes]:
    return _key()


def signed_portal_mail(private: bytes) -> bytes:
    raw = portal_mail()
    signature = dkim.sign(
        raw,
        b"sel2026",
        b"mobile.de",
        private,
        include_headers=[b"from", b"to", b"subject", b"message-id", b"reply-to"],
    )
    return signature + raw


def test_our_own_dkim_check_trusts_a_real_signature_and_not_a_changed_mail(
    db_url: str, tmp_path: Path, signing_key: tuple[bytes, bytes]
) -> None:
    private, record = signing_key
    asked: list[bytes] = []

    def resolver(name: bytes) -> bytes | None:
        asked.append(name)
        return record if name.rstrip(b".") == b"sel2026._domainkey.mobile.de" else None

    stack = _stack(db_url, tmp_path, dkim_verify=True)
    stack.runtime.dns_txt = resolver
    try:
        signed = signed_portal_mail(private)
        ingest(stack, signed, via="smtp")
        changed = signed.replace(b"Ist eine Probefahrt", b"Ist ein Rabatt")
        changed = changed.replace(b"jonas@example.net", b"other@example.net").replace(b"0176 ", b"0151 ")
        ingest(stack, changed, via="smtp")
        real, forged = stack.leads()
        assert (real.source.name, real.sender_verification) == ("mobile.de", "verified")  # type: ignore[union-attr]
        assert (forged.source.name, forged.sender_verification) == ("E-Mail", "unverified")  # type: ignore[union-attr]
        assert asked and all(name.rstrip(b".") == b"sel2026._domainkey.mobile.de" for name in asked)
        with stack.db.session() as session:
            notes = session.scalars(
                select(LeadActivity.text).where(LeadActivity.kind == "sender_check").order_by(LeadActivity.id)
            ).all()
        assert notes[0] == "DKIM signature of mobile.de verified on receipt"
        assert "DKIM signature of mobile.de invalid" in notes[1]
        # A mail we did not receive ourselves (IMAP) is not ours to check: nothing configured for it.
        third = signed.replace(b"jonas@example.net", b"third@example.net").replace(b"0176 ", b"0170 ")
        ingest(stack, third, via="imap")
        assert stack.leads()[2].sender_verification == "not_checked"
    finally:
        stack.close()
