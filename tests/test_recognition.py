"""Recognition without a database: what a mail is, and what it asks for."""

from __future__ import annotations

from pathlib import Path

import pytest

from intake.parsing.extract import extract
from intake.parsing.mime import parse_mail
from tests.support.mails import enquiry, html_mail

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize(
    ("fixture", "kind", "reason"),
    [
        ("postfix_bounce.eml", "bounce", "delivery status"),
        ("exchange_bounce.eml", "bounce", "delivery status"),
        ("ooo_de.eml", "auto_reply", "auto-replied"),
        ("ooo_en.eml", "auto_reply", "x-autoreply"),
        ("newsletter.eml", "bulk", "list-unsubscribe"),
        ("mobile_de_search_alert.eml", "bulk", "saved-search"),
    ],
)
def test_non_leads_are_recognised_with_their_reason(fixture: str, kind: str, reason: str) -> None:
    extraction = extract(parse_mail((FIXTURES / fixture).read_bytes()))
    assert extraction.kind == kind
    assert reason in extraction.reason.lower()
    assert extraction.enquiries == []


@pytest.mark.parametrize(
    "subject",
    [
        "Automatische Antwort: Ihre Anfrage",
        "Abwesenheitsnotiz: Ihre Anfrage",
        "Out of Office: Re: Golf",
        "Autoreply: your enquiry",
        "Auto-Reply: Anfrage",
    ],
)
def test_auto_reply_subjects_without_headers(subject: str) -> None:
    extraction = extract(parse_mail(enquiry(subject=subject, body="Ich bin bis Montag nicht im Büro.")))
    assert extraction.kind == "auto_reply"


@pytest.mark.parametrize(
    ("subject", "body", "expected"),
    [
        ("Probefahrt Golf", "Wann ginge es?", "test_drive"),
        ("Anfrage", "I would like to book a test drive on Saturday.", "test_drive"),
        ("Inzahlungnahme meines Passat", "", "trade_in"),
        ("Question", "Would you take my car as a trade-in?", "trade_in"),
        ("Finanzierung", "Welche Raten wären möglich?", "financing"),
        ("Question", "What financing options do you offer?", "financing"),
        ("Leasingangebot Tiguan", "", "leasing"),
        ("Enquiry", "Can I lease the Tiguan for 36 months?", "leasing"),
        ("Werkstatttermin", "Inspektion fällig", "service"),
        ("Booking", "I need a service appointment for my car", "service"),
        ("Ersatzteil", "Ich brauche einen Außenspiegel", "parts"),
        ("Question", "Do you sell spare parts for the Golf 7?", "parts"),
        ("Bitte um Rückruf", "", "callback"),
        ("Question", "Please call me back tomorrow.", "callback"),
        ("Neuwagen-Anfrage", "", "new_car"),
        ("Looking for a used car", "", "used_car"),
        ("Hallo", "Ist das Auto noch da?", "general"),
        ("Probefahrt mit Finanzierung", "", "test_drive"),  # the first wish counts
    ],
)
def test_lead_type_from_german_and_english_words(subject: str, body: str, expected: str) -> None:
    [lead] = extract(parse_mail(enquiry(subject=subject, body=body or "Viele Grüße"))).enquiries
    assert lead.type == expected


def test_a_portal_mail_takes_the_customer_from_reply_to_and_the_fields_from_the_body() -> None:
    raw = enquiry(
        sender="mobile.de <noreply@mobile.de>",
        subject="Anfrage zu Ihrem Inserat VW Golf 1.5 TSI",
        headers={"Reply-To": "Jonas Weber <jonas@example.net>"},
        body=(
            "Sie haben eine neue Anfrage.\n\nName: Jonas Weber\nE-Mail: jonas@example.net\n"
            "Telefon: 0176 12345678\nFahrzeug: VW Golf 1.5 TSI\nPreis: 18.900 €\nErstzulassung: 03/2021\n"
            "Kilometerstand: 45.000 km\nNachricht:\nIst eine Probefahrt am Samstag möglich?\nGruß Jonas\n\n"
            "Zum Inserat: https://suchen.mobile.de/fahrzeuge/details.html?id=123456789\n"
        ),
    )
    [lead] = extract(parse_mail(raw)).enquiries
    assert lead.source == "mobile.de" and lead.format == "portal"
    assert lead.customer.email == "jonas@example.net" and lead.customer.display_name == "Jonas Weber"
    assert lead.customer.phones == ["0176 12345678"]
    assert (lead.vehicle.make, lead.vehicle.model, lead.vehicle.price) == ("VW", "Golf 1.5 TSI", 18900.0)
    assert (lead.vehicle.first_registration, lead.vehicle.odometer) == ("03/2021", 45000)
    assert lead.vehicle.url == "https://suchen.mobile.de/fahrzeuge/details.html?id=123456789"
    assert lead.message.startswith("Ist eine Probefahrt am Samstag möglich?")
    assert lead.type == "test_drive" and lead.language == "de"


def test_an_html_table_form_with_english_labels() -> None:
    html = (
        "<table><tr><th>First name</th><td>Sarah</td></tr><tr><th>Last name</th><td>Miller</td></tr>"
        "<tr><th>Email</th><td><a href='mailto:sarah@example.co.uk'>sarah@example.co.uk</a></td></tr>"
        "<tr><th>Mobile</th><td>+44 7700 900123</td></tr><tr><th>Make</th><td>BMW</td></tr>"
        "<tr><th>Model</th><td>320d Touring</td></tr><tr><th>Message</th><td>Is it still available?<br>"
        "Thanks</td></tr></table>"
    )
    raw = html_mail(html, sender="Website <forms@autohaus-muster.example>", subject="Contact form")
    [lead] = extract(parse_mail(raw)).enquiries
    assert lead.format == "form"
    assert (lead.customer.first_name, lead.customer.last_name) == ("Sarah", "Miller")
    assert lead.customer.email == "sarah@example.co.uk" and lead.customer.phones == ["+44 7700 900123"]
    assert (lead.vehicle.make, lead.vehicle.model) == ("BMW", "320d Touring")
    assert lead.message == "Is it still available?\nThanks"
    assert lead.language == "en"


def test_the_dealer_source_rules_come_first_and_their_form_mailer_is_no_customer() -> None:
    rules = [{"name": "Website", "from": ["*@autohaus-muster.example"], "subject": ["Kontaktformular*"]}]
    raw = html_mail(
        "<table><tr><td>Vorname:</td><td>Erika</td></tr><tr><td>Nachname:</td><td>Muster</td></tr>"
        "<tr><td>Telefon</td><td>0171 2233445</td></tr></table>",
        sender="Website <web@autohaus-muster.example>",
        subject="Kontaktformular: Rückruf",
    )
    [lead] = extract(parse_mail(raw), dealer_sources=rules).enquiries
    assert lead.source == "Website"
    assert lead.customer.email == ""  # web@autohaus-muster.example is the dealer's own form mailer
    assert lead.customer.display_name == "Erika Muster" and lead.type == "callback"


@pytest.mark.parametrize(
    "sender", ["noreply@mobile.de.evil.example", "noreply@rnobile.de", "no-reply@autoscout24-de.example"]
)
def test_look_alike_portal_domains_are_not_trusted(sender: str) -> None:
    raw = enquiry(
        sender=f"mobile.de <{sender}>", subject="Anfrage zu Ihrem Inserat", body="Name: X\nE-Mail: x"
    )
    extraction = extract(parse_mail(raw))
    assert all(e.source not in ("mobile.de", "AutoScout24") for e in extraction.enquiries)
    # A no-reply robot is never the customer: without a Reply-To nobody can be answered.
    assert extraction.kind == "unrecognised"


@pytest.mark.parametrize(
    ("subject", "missed", "vehicle"),
    [
        ("Knd.-Nr: 4711. Verpasster Anruf um 14:32, VW Golf (123456789/987)", True, "VW Golf"),
        (
            "Knd.-Nr: 4711. Angenommener Anruf um 09:05, Mercedes-Benz C 200 (555/1)",
            False,
            "Mercedes-Benz C 200",
        ),
        ("Klantnr: 4711. Gemiste oproep voor BMW 320d (111/222)", True, "BMW 320d"),
        ("N° client : 4711. Appel manqué à 10:00, Renault Clio (333)", True, "Renault Clio"),
        ("SellID 4711 - Richiesta telefonica accettata alle 11:11, Fiat Panda (444)", False, "Fiat Panda"),
    ],
)
def test_autoscout24_call_leads(subject: str, missed: bool, vehicle: str) -> None:
    raw = enquiry(
        sender="AutoScout24 <no-reply@rtm.autoscout24.com>",
        subject=subject,
        body="Anrufer: +49 171 9876543\n<!-- <call/> -->",
    )
    [lead] = extract(parse_mail(raw)).enquiries
    assert lead.type == "callback" and lead.format == "call" and lead.source == "AutoScout24"
    assert lead.vehicle.label == vehicle
    assert lead.customer.phones == ["+49 171 9876543"] and lead.customer.email == ""
    assert ("Missed call" in lead.message) is missed


def test_a_broken_header_section_still_gives_sender_and_subject() -> None:
    raw = (
        b"Received: from x by y\r\nX-Broken header without colon\r\nFrom: Erika <erika@example.org>\r\n"
        b"Subject: Probefahrt\r\n\r\nHallo, ich m\xc3\xb6chte eine Probefahrt.\r\n"
    )
    parsed = parse_mail(raw)
    assert parsed.from_email == "erika@example.org" and parsed.subject == "Probefahrt"


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (b"Subject: Anfrage M\xfcller\r\n", "Anfrage Müller"),  # raw Latin-1
        (b"Subject: Anfrage M\xc3\xbcller\r\n", "Anfrage Müller"),  # raw UTF-8
        (b"Subject: =?iso-8859-8-i?B?7vLw5A==?= ok\r\n", "מענה ok"),  # label Python does not know
        (b"Subject: =?utf-8?q?Probe?= =?utf-8?q?fahrt?=\r\n", "Probefahrt"),  # adjacent encoded words
        (b"Subject: =?x-unknown?q?Gr=FC=DFe?=\r\n", "Grüße"),
    ],
)
def test_headers_in_every_charset_mess(header: bytes, expected: str) -> None:
    raw = b"From: erika@example.org.\r\n" + header + b"\r\nHallo\r\n"
    parsed = parse_mail(raw)
    assert parsed.subject == expected
    assert parsed.from_email == "erika@example.org"  # the trailing dot is gone


def test_no_usable_from_falls_back_to_reply_to_then_sender() -> None:
    parsed = parse_mail(
        b"From: undisclosed\r\nReply-To: Jonas <jonas@example.net>\r\nSubject: x\r\n\r\nHi\r\n"
    )
    assert parsed.from_email == "jonas@example.net"
    parsed = parse_mail(b"From: ???\r\nSender: anna@example.org\r\nSubject: x\r\n\r\nHi\r\n")
    assert parsed.from_email == "anna@example.org"


def test_html_only_mail_becomes_readable_text_and_attachments_keep_decoded_names() -> None:
    from email.message import EmailMessage

    message = EmailMessage()
    message["From"] = "erika@example.org"
    message["Subject"] = "Fahrzeugschein"
    message.set_content(
        "<html><body><p>Guten Tag,</p><p>anbei der <b>Fahrzeugschein</b>.</p>"
        "<ul><li>VW Golf</li><li>EZ 2019</li></ul></body></html>",
        subtype="html",
    )
    message.add_attachment(
        b"%PDF-1.4", maintype="application", subtype="pdf", filename="Fahrzeugschein Müller.pdf"
    )
    parsed = parse_mail(message.as_bytes())
    assert parsed.body_text == "Guten Tag,\n\nanbei der Fahrzeugschein.\n\n- VW Golf\n- EZ 2019"
    assert [a.filename for a in parsed.attachments] == ["Fahrzeugschein Müller.pdf"]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("18.900 €", 18900.0),  # German thousands
        ("18.900,00", 18900.0),
        ("18.900,-", 18900.0),
        ("18,900.50", 18900.5),  # English
        ("12345.67", 12345.67),
        ("1.234.567", 1234567.0),
        ("VB", None),
    ],
)
def test_prices_in_german_and_english_notation(text: str, value: float | None) -> None:
    from intake.parsing.numbers import parse_price

    assert parse_price(text) == value


def test_an_adf_price_with_german_thousands_is_not_read_as_a_decimal() -> None:
    document = (
        "<adf><prospect><vehicle><make>VW</make><price currency='EUR'>18.900</price></vehicle>"
        "<customer><contact><email>a@example.org</email></contact></customer></prospect></adf>"
    )
    [lead] = extract(parse_mail(enquiry(body=document))).enquiries
    assert lead.vehicle.price == 18900.0
