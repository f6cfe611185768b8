"""Reading what real clients write: lenient decoding, contacts from free text, addresses that
can never be answered, our own mail coming back without our headers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path

import pytest
from sqlalchemy import select

from intake.parsing.extract import extract
from intake.parsing.mime import parse_mail
from intake.store import store_message
from models.tables import Contact, InboundMessage, LeadActivity
from tests.support.mails import DEMO_MAILBOX, enquiry, with_attachment
from tests.support.robots import forward_with_attachment
from tests.support.stack import Stack
from tests.support.tnef import winmail_dat

# -- lenient decoding -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"=?UTF-8?Q? Termin=C3=A4nderung?=", "Terminänderung"),  # a space inside the encoded text
        (b"=?us-ascii?Q?Angebot / 42?=", "Angebot / 42"),
        (b"=?utf-8?q?Probe?==?utf-8?q?fahrt?=", "Probefahrt"),  # no separator between words
        (b"AW:=?utf-8?q?Gr=C3=BC=C3=9Fe?=", "AW:Grüße"),  # none before the word either
        (b"=?UTF-8?B?8J+Y?= =?UTF-8?B?gA==?=", "\U0001f600"),  # a character split across words
        (b"=?utf-8?b?SGFsbG8?=", "Hallo"),  # base64 without its padding
        (b"=?utf-8*de?q?Gr=C3=BC=C3=9Fe?=", "Grüße"),  # RFC 2231 language in the word
    ],
)
def test_encoded_words_as_clients_really_write_them(header: bytes, expected: str) -> None:
    parsed = parse_mail(b"From: erika@example.org\r\nSubject: " + header + b"\r\n\r\nHallo\r\n")
    assert parsed.subject == expected


@pytest.mark.parametrize(
    ("disposition", "charset", "expected"),
    [
        (b"attachment; filename*=''M%FCller.pdf", b"iso-8859-1", "Müller.pdf"),  # RFC 2231 without charset
        (b"attachment; filename*=%FCber.pdf", b"iso-8859-1", "über.pdf"),
        (b"attachment; filename*=utf-8''M%C3%BCller.pdf", b"us-ascii", "Müller.pdf"),
        (b'attachment; filename="M\xfcller.pdf"', b"iso-8859-1", "Müller.pdf"),  # raw Latin-1
        (b'attachment; filename="M\xc3\xbcller.pdf"', b"iso-8859-1", "Müller.pdf"),  # raw UTF-8 first
        (b'attachment; filename="Gr\xfc\xdfe.pdf"', b"", "Grüße.pdf"),  # no charset anywhere: Latin-1
        (b'attachment; filename="=?utf-8?Q?M=C3=BCller.pdf?="', b"us-ascii", "Müller.pdf"),
    ],
)
def test_attachment_names_in_every_charset_mess(disposition: bytes, charset: bytes, expected: str) -> None:
    label = b"; charset=" + charset if charset else b""
    raw = (
        b"From: a@example.org\r\nSubject: x\r\nContent-Type: multipart/mixed; boundary=x\r\n\r\n--x\r\n"
        b"Content-Type: text/plain\r\n\r\nanbei\r\n--x\r\nContent-Type: application/pdf" + label + b"\r\n"
        b"Content-Disposition: " + disposition + b"\r\n\r\n%PDF\r\n--x--\r\n"
    )
    assert [a.filename for a in parse_mail(raw).attachments] == [expected]


def test_winmail_dat_is_unpacked_into_its_body_and_attachments() -> None:
    tnef = winmail_dat(
        "Guten Tag,\r\nanbei der Fahrzeugschein.\r\nGruß Jörg Maier",
        [("Fahrzeugschein.pdf", b"%PDF-1.4 data"), ("Foto Müller.jpg", b"\xff\xd8\xff\xe0")],
    )
    raw = with_attachment(
        "",
        tnef,
        filename="winmail.dat",
        maintype="application",
        subtype="ms-tnef",
        sender="joerg@example.org",
    )
    parsed = parse_mail(raw)
    assert parsed.body_text == "Guten Tag,\nanbei der Fahrzeugschein.\nGruß Jörg Maier"
    assert [(a.filename, a.content_type, a.payload) for a in parsed.attachments] == [
        ("Fahrzeugschein.pdf", "application/pdf", b"%PDF-1.4 data"),
        ("Foto Müller.jpg", "image/jpeg", b"\xff\xd8\xff\xe0"),
    ]


def test_a_damaged_winmail_dat_stays_an_attachment() -> None:
    raw = with_attachment(
        "Text", b"not tnef at all", filename="winmail.dat", maintype="application", subtype="ms-tnef"
    )
    assert [a.filename for a in parse_mail(raw).attachments] == ["winmail.dat"]


def test_a_thousand_nested_multiparts_keep_the_headers() -> None:
    depth = 1000
    raw = b"From: Erika <erika@example.org>\r\nSubject: Tief verschachtelt\r\nMIME-Version: 1.0\r\n"
    for level in range(depth):
        raw += b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (level, level)
    raw += b"Content-Type: text/plain\r\n\r\nIst der Golf noch da?\r\n"
    raw += b"".join(b"--b%d--\r\n" % level for level in reversed(range(depth)))
    parsed = parse_mail(raw)
    assert (parsed.from_email, parsed.subject) == ("erika@example.org", "Tief verschachtelt")
    assert "Ist der Golf noch da?" in parsed.text
    assert any("nested too deeply" in d for d in parsed.defects)
    [lead] = extract(parsed).enquiries
    assert lead.customer.email == "erika@example.org"


@pytest.mark.parametrize(
    "from_header",
    [
        b"From: =?utf-8?q?M=C3=BCller=2C_Hans?= <hans@example.org>",  # the comma is encoded
        b"From: M\xc3\xbcller, Hans <hans@example.org>",  # raw 8-bit, comma unquoted
        b'From: "M\xfcller, Hans" <hans@example.org>',
    ],
)
def test_a_display_name_with_a_comma_is_one_sender(from_header: bytes) -> None:
    parsed = parse_mail(from_header + b"\r\nSubject: Anfrage\r\n\r\nHallo\r\n")
    assert (parsed.from_name, parsed.from_email) == ("Müller, Hans", "hans@example.org")


def test_a_forwarded_enquiry_is_read_as_the_customers_enquiry() -> None:
    original = enquiry(
        sender="Jonas Weber <jonas@example.net>",
        subject="Leasing Kodiaq",
        body="Guten Tag, was kostet das Leasing für den Kodiaq? Tel. 0171 2223334\nGruß Jonas Weber",
    )
    raw = forward_with_attachment(
        "WG: Leasing Kodiaq",
        original,
        sender="Anna Berger <anna@autohaus-muster.example>",
        note="Bitte übernehmen.",
    )
    extraction = extract(parse_mail(raw), region="DE")
    [lead] = extraction.enquiries
    assert (lead.customer.email, lead.customer.display_name) == ("jonas@example.net", "Jonas Weber")
    assert lead.customer.phones == ["0171 2223334"]
    assert (lead.vehicle.make, lead.vehicle.model, lead.type) == ("Skoda", "Kodiaq", "leasing")
    assert lead.message.startswith("Bitte übernehmen.") and "Kodiaq" in lead.message
    assert extraction.forwarded_by == "anna@autohaus-muster.example"


# -- contacts from free text ----------------------------------------------------------------


def test_a_phone_number_in_the_text_is_the_customers() -> None:
    raw = enquiry(body="Guten Tag,\nich bin erreichbar unter 0171 2223334.\nViele Grüße")
    [lead] = extract(parse_mail(raw), region="DE").enquiries
    assert lead.customer.phones == ["0171 2223334"]


def test_without_the_dealers_country_only_international_numbers_are_found() -> None:
    raw = enquiry(body="Mobil 0171 2223334, aus dem Ausland +43 664 1234567")
    [lead] = extract(parse_mail(raw)).enquiries
    assert lead.customer.phones == ["+43 664 1234567"]


def test_the_quoted_dealer_numbers_and_our_footer_are_not_the_customers() -> None:
    raw = enquiry(
        subject="AW: Ihre Anfrage bei Autohaus Muster",
        body=(
            "Danke, Samstag passt. Autohaus Muster Zentrale: 089 9876543\n\n"
            "Am 28.11.2026 schrieb Autohaus Muster:\n> Rufen Sie uns an: 089 1234567\n"
            "> Anna Berger, Mobil 0171 5556667"
        ),
    )
    [lead] = extract(parse_mail(raw), region="DE", own_numbers={"+49899876543"}).enquiries
    assert lead.customer.phones == []


def test_the_vehicle_named_in_the_text_and_the_name_in_the_signature() -> None:
    raw = enquiry(
        sender="kunde@example.org",
        subject="Anfrage",
        body="Hallo,\nich interessiere mich für Leasing für den Kodiaq.\n\n"
        "Mit freundlichen Grüßen\nErika Mustermann",
    )
    [lead] = extract(parse_mail(raw), region="DE").enquiries
    assert (lead.vehicle.make, lead.vehicle.model) == ("Skoda", "Kodiaq")
    assert lead.customer.display_name == "Erika Mustermann" and lead.type == "leasing"


@pytest.mark.parametrize(
    ("text", "make", "model"),
    [
        ("Ist der VW Golf 8 GTI noch zu haben?", "VW", "Golf"),
        ("Angebot für einen Mercedes C 220d", "Mercedes-Benz", "C-Klasse"),
        ("Probefahrt mit dem neuen ID.4", "VW", "ID.4"),
        ("Was kostet der Citroen C3?", "Citroën", "C3"),
        ("BMW 320d Touring gesehen", "BMW", "3er"),
        ("Haben Sie noch Skoda?", "Skoda", ""),
    ],
)
def test_german_spellings_of_makes_and_models(text: str, make: str, model: str) -> None:
    [lead] = extract(parse_mail(enquiry(subject="Anfrage", body=text)), region="DE").enquiries
    assert (lead.vehicle.make, lead.vehicle.model) == (make, model)


def test_a_name_in_from_is_not_replaced_by_the_signature() -> None:
    raw = enquiry(sender="Erika Mustermann <erika@example.org>", body="Hallo\n\nGruß\nTante Erika")
    [lead] = extract(parse_mail(raw), region="DE").enquiries
    assert lead.customer.display_name == "Erika Mustermann"


# -- addresses that can never be answered (issue 12) ------------------------------------------


@pytest.mark.parametrize("sender", ["<<<@@@>>>", "a@b@c@d", "foo@localhost", "@example.org"])
def test_impossible_addresses_never_become_the_customer(sender: str) -> None:
    raw = f"From: {sender}\r\nSubject: Anfrage\r\n\r\nIst der Golf noch da?\r\n".encode()
    extraction = extract(parse_mail(raw), region="DE")
    assert extraction.kind == "unrecognised"
    assert all(not e.customer.email for e in extraction.enquiries)


def test_an_impossible_address_in_an_adf_lead_is_dropped() -> None:
    document = (
        "<adf><prospect><customer><contact><name part='full'>Ali Kaya</name><email>a@b@c@d</email>"
        "<phone>0151 1112223</phone></contact></customer></prospect></adf>"
    )
    extraction = extract(
        parse_mail(enquiry(sender="Leads <leads@provider.example>", body=document)), region="DE"
    )
    [lead] = extraction.enquiries
    assert lead.customer.email == "" and lead.customer.phones == ["0151 1112223"]
    form = enquiry(
        sender="Web <noreply@partner.example>",
        body="Name: Ali Kaya\nE-Mail: a@b@c@d.de@x\nTelefon: 0151 1112223",
    )
    [lead] = extract(parse_mail(form), region="DE").enquiries
    assert lead.customer.email == "" and lead.customer.phones == ["0151 1112223"]


def test_our_own_mail_without_our_headers_is_not_a_lead() -> None:
    message = EmailMessage(policy=SMTP)
    message["From"] = "Autohaus Muster <muster@leads.example.com>"
    message["To"] = "kunde@example.org"
    message["Subject"] = "Ihre Anfrage bei Autohaus Muster GmbH"
    message["Message-ID"] = "<stripped-by-a-forwarder@relay.example>"
    message.set_content("Guten Tag, vielen Dank für Ihre Anfrage.")
    extraction = extract(parse_mail(message.as_bytes()), own_addresses={"muster@leads.example.com"})
    assert (extraction.kind, extraction.family) == ("auto_reply", "our_own")
    # Our Message-ID alone gives it away too.
    del message["Message-ID"]
    message["Message-ID"] = "<lms.ar.12.a1b2c3d4e5f6@leads.example.com>"
    assert extract(parse_mail(message.as_bytes())).family == "our_own"


# -- in the pipeline ------------------------------------------------------------------------


@pytest.fixture
def stack(db_url: str, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(db_url, relay_url=f"maildir://{tmp_path}/outbox", worker_threads=None, smtp=False)
    yield s
    s.close()


def ingest(
    stack: Stack, raw: bytes, *, sender: str = "kunde@example.org", via: str = "smtp"
) -> InboundMessage:
    [stored] = store_message(
        stack.db, raw, envelope_from=sender, recipients=[DEMO_MAILBOX], via=via, now=stack.runtime.clock()
    )
    stack.runtime.ingest(stored.id)
    with stack.db.session() as session:
        row = session.get(InboundMessage, stored.id)
        assert row is not None
        return row


def test_a_phone_in_the_text_reaches_the_contact(stack: Stack) -> None:
    ingest(stack, enquiry(sender="erika@example.org", body="Bitte rufen Sie mich an: 0171 2223334\nErika"))
    with stack.db.session() as session:
        contact = session.scalars(select(Contact)).one()
        assert contact.phone == "+491712223334"
    [lead] = stack.leads()
    assert lead.contact.phone == "+491712223334"


@pytest.mark.parametrize("sender", ["<<<@@@>>>", "a@b@c@d"])
def test_impossible_senders_get_no_contact_and_no_answer(stack: Stack, sender: str) -> None:
    raw = (
        f"From: {sender}\r\nTo: {DEMO_MAILBOX}\r\nSubject: Anfrage\r\n\r\nIst der Golf noch da?\r\n".encode()
    )
    row = ingest(stack, raw, sender="")
    assert row.state == "unrecognised"
    assert stack.leads() == [] and stack.outbound() == []
    assert stack.count(Contact) == 0


def test_an_encoded_comma_in_from_gives_one_contact_and_one_recipient(stack: Stack) -> None:
    raw = enquiry(sender="=?utf-8?q?M=C3=BCller=2C_Hans?= <hans@example.org>", body="Probefahrt bitte")
    ingest(stack, raw, sender="hans@example.org")
    [contact] = list(_contacts(stack))
    assert (contact.name, contact.email) == ("Müller, Hans", "hans@example.org")
    [answer] = stack.outbound("autoresponse")
    assert answer.envelope_to == ["hans@example.org"]
    assert b"\nTo: hans@example.org" in answer.raw.replace(b"\r\n", b"\n")


def _contacts(stack: Stack) -> list[Contact]:
    with stack.db.session() as session:
        return list(session.scalars(select(Contact)))


def test_our_autoresponse_coming_back_stripped_is_not_a_lead(stack: Stack) -> None:
    ingest(stack, enquiry(sender="kunde@example.org", subject="Probefahrt"))
    [answer] = stack.outbound("autoresponse")
    stripped = b"\r\n".join(
        line
        for line in answer.raw.split(b"\r\n")
        if not line.lower().startswith((b"x-lms-origin", b"message-id"))
    )
    row = ingest(stack, stripped, sender="")
    assert row.state == "ignored" and "our own mail came back" in (row.reason or "")
    assert len(stack.leads()) == 1 and stack.count(Contact) == 1


def test_a_null_envelope_sender_with_a_persons_from_is_a_lead_but_never_answered(stack: Stack) -> None:
    row = ingest(stack, enquiry(sender="Erika <erika@example.org>", subject="Probefahrt"), sender="")
    assert row.state == "processed"
    [lead] = stack.leads()
    assert stack.outbound("autoresponse") == []
    with stack.db.session() as session:
        skipped = session.scalars(
            select(LeadActivity.text).where(
                LeadActivity.lead_id == lead.id, LeadActivity.kind == "autoresponse_skipped"
            )
        ).all()
    assert skipped == ["null envelope sender (RFC 3834: no automatic answer)"]


def test_a_file_without_envelope_is_still_answered(stack: Stack) -> None:
    # lms ingest and IMAP see no envelope: only a Return-Path header could say it was null.
    ingest(stack, enquiry(sender="erika@example.org", subject="Probefahrt"), sender="", via="ingest")
    assert len(stack.outbound("autoresponse")) == 1


def test_lms_parse_shows_kind_phones_vehicle_and_sender_check(stack: Stack, tmp_path: Path) -> None:
    from click.testing import CliRunner

    from lms.cli import main
    from tests.support.robots import dsn

    mail = tmp_path / "mail.eml"
    mail.write_bytes(enquiry(subject="Leasing", body="Leasing für den Kodiaq? Erreichbar unter 0171 2223334"))
    portal = tmp_path / "portal.eml"
    portal.write_bytes(enquiry(sender="mobile.de <noreply@mobile.de>", headers={"Reply-To": "j@example.net"}))
    bounce = tmp_path / "bounce.eml"
    bounce.write_bytes(dsn())
    cli = CliRunner(env={"LMS_DATABASE_URL": stack.settings.database_url})
    result = cli.invoke(main, ["parse", str(mail), str(portal), str(bounce), "--json", "--dealer", "muster"])
    assert result.exit_code == 0, result.output
    lead, portal_lead, robot = (json.loads(line) for line in result.stdout.splitlines())
    contact = lead["lead"]["contact"]
    assert (contact["phones"], contact["phones_e164"]) == (["0171 2223334"], ["+491712223334"])
    assert lead["lead"]["vehicle"] == {"make": "Skoda", "model": "Kodiaq"}
    assert (lead["kind"], lead["family"], lead["sender_verification"]) == ("lead", "lead", None)
    assert portal_lead["sender_verification"]["state"] == "not_checked"
    assert (robot["kind"], robot["family"], robot["lead"]) == ("bounce", "dsn", None)
    assert robot["reason"] == "delivery status notification (RFC 3464): failed"
    assert robot["report"]["recipients"] == ["kunde@example.org"] and robot["report"]["status"] == "failed"
    # Without a dealer there is no country: numbers are shown as found, not placed.
    bare = json.loads(cli.invoke(main, ["parse", str(mail), "--json"]).stdout)
    assert bare["lead"]["contact"]["phones"] == [] and bare["lead"]["contact"]["phones_e164"] == []
