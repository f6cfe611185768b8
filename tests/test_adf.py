"""ADF/XML leads from tests/fixtures/adf (copied from shared/samples/adf), wrapped the ways
real senders send them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from intake.parsing.extract import extract
from intake.parsing.mime import parse_mail
from intake.store import store_message
from models.tables import Lead, LeadActivity
from tests.support.mails import DEMO_MAILBOX, adf_sample, enquiry, html_mail, with_attachment
from tests.support.stack import Stack

SAMPLE = adf_sample("02_")  # upper-case <?ADF?> PI, 1-digit hour, phones home/work/mobile


def wrappings(document: str) -> dict[str, bytes]:
    data = document.encode()
    return {
        "text body": enquiry(sender="Lead Provider <leads@provider.example>", body=document),
        ".xml attachment": with_attachment(
            "A new lead.", data, filename="lead.xml", maintype="application", subtype="octet-stream"
        ),
        "text/xml": with_attachment("A new lead.", data, filename="lead", maintype="text", subtype="xml"),
        "application/xml": with_attachment(
            "A new lead.", data, filename="x", maintype="application", subtype="xml"
        ),
        "application/x-adf+xml": with_attachment(
            "A new lead.", data, filename="x", maintype="application", subtype="x-adf+xml"
        ),
        "HTML comment": html_mail(f"<html><body><p>New lead</p><!-- {document} --></body></html>"),
        "HTML as text": html_mail(
            "<html><body><pre>"
            + document.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            + "</pre></body></html>"
        ),
    }


@pytest.mark.parametrize("how", list(wrappings(SAMPLE)))
def test_adf_is_found_and_mapped_however_it_is_wrapped(how: str) -> None:
    extraction = extract(parse_mail(wrappings(SAMPLE)[how]))
    assert extraction.kind == "lead", extraction.reason
    [lead] = extraction.enquiries
    assert lead.format == "adf"
    assert lead.customer.first_name == "Johnny" and lead.customer.last_name == "Customer"
    assert lead.customer.email == "johnny@customer.com"
    assert lead.customer.phones == ["857-485-7485", "867-586-7584", "979-685-9685"]
    vehicle = lead.vehicle
    assert (vehicle.year, vehicle.make, vehicle.model, vehicle.vin, vehicle.stock) == (
        1995,
        "BUICK",
        "Regal",
        "2G4WF52L6S1472882",
        "12886",
    )
    assert vehicle.status == "used" and lead.type == "used_car"
    assert lead.message == "What is your best price?"
    assert lead.source == "name of promotion"
    assert lead.external_id == "uniqueLeadId@name of promotion"


@pytest.mark.parametrize("name", ["01_", "02_", "03_", "04_"])
def test_every_sample_parses_without_problems(name: str) -> None:
    extraction = extract(
        parse_mail(
            with_attachment(
                "lead", adf_sample(name).encode(), filename="lead.xml", maintype="text", subtype="xml"
            )
        )
    )
    assert extraction.problems == []


def test_sample_deviations_are_tolerated() -> None:
    [minimal] = extract(parse_mail(enquiry(body=adf_sample("01_")))).enquiries  # offset -08:0, no vendorname
    assert (minimal.vehicle.year, minimal.vehicle.make) == (2008, "Make")
    assert minimal.customer.phones == ["323-223-3322"]
    assert minimal.customer.email == ""  # "emailaddress" is no address

    cdata = extract(parse_mail(enquiry(body=adf_sample("03_")))).enquiries[0]  # no prolog, CDATA comments
    assert "Click for full customer profile: https://example.com/profile" in cdata.message
    assert cdata.message.count("\n") >= 3  # the structured lines stay lines
    assert cdata.source == "Example" and "https://example.com" in cdata.links

    empty = extract(
        parse_mail(
            with_attachment("x", adf_sample("04_").encode(), filename="a.xml", maintype="text", subtype="xml")
        )
    )
    # <email>mailto:</email> and nothing else: no way to reach anyone, a person must look.
    assert empty.kind == "unrecognised" and "no customer contact" in empty.reason


def test_several_documents_and_prospects_make_one_lead_each() -> None:
    two = SAMPLE.replace("</adf>", "").replace("<adf>", "<adf>" + SAMPLE.split("<adf>")[1].split("</adf>")[0])
    two += "</adf>"
    body = two + "\n\n" + adf_sample("03_").replace("(000) 000-0000", "0171 5555555")
    enquiries = extract(parse_mail(enquiry(body=body))).enquiries
    assert len(enquiries) == 3
    assert [e.customer.first_name for e in enquiries] == ["Johnny", "Johnny", "Example"]


def test_broken_adf_as_real_senders_write_it() -> None:
    document = (
        "<?ADF VERSION=1.0?><ADF><PROSPECT status=resend><ID source=Portal sequence=1>A-77</ID>"
        "<requestdate>2008-06-25T8:47:50</requestdate>"
        "<vehicle interest=trade-in status=used><make>Opel</make><model>Astra</model>"
        "<odometer units=km>88.000</odometer></vehicle>"
        "<vehicle interest=lease status=cpo><make>VW & Co</make><model>Golf</model>"
        "<price currency=EUR type=quote>18.900,00</price></vehicle>"
        "<customer><contact><email>mailto:Erika@Example.org</email><name part=full>Erika M.</name>"
        "<phone type=cellphone>0176 1234567</phone></contact></customer></PROSPECT></ADF>"
    )
    [lead] = extract(parse_mail(enquiry(body=document))).enquiries
    assert lead.resend and lead.external_id == "A-77@Portal"
    assert lead.customer.email == "erika@example.org" and lead.customer.name == "Erika M."
    assert lead.type == "leasing"
    assert (lead.vehicle.make, lead.vehicle.status, lead.vehicle.price) == ("VW & Co", "used", 18900.0)
    [trade_in] = lead.trade_ins
    assert (trade_in.make, trade_in.model, trade_in.odometer) == ("Opel", "Astra", 88000)


@pytest.mark.parametrize(
    "document",
    [
        '<?xml version="1.0"?><!DOCTYPE adf [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
        '<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]><adf><prospect><customer><contact><name part="full">&c;'
        "</name><email>x@example.org</email></contact></customer></prospect></adf>",
        '<?xml version="1.0"?><!DOCTYPE adf [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><adf><prospect>'
        "<customer><contact><email>x@example.org</email></contact><comments>&xxe;</comments></customer>"
        "</prospect></adf>",
    ],
    ids=["billion laughs", "external entity"],
)
def test_hostile_xml_is_refused_with_a_reason_and_the_mail_waits_for_a_person(
    document: str, sqlite_url: str, tmp_path: Path
) -> None:
    extraction = extract(
        parse_mail(
            with_attachment("lead", document.encode(), filename="lead.xml", maintype="text", subtype="xml")
        )
    )
    assert extraction.kind == "unrecognised"
    assert "entities" in extraction.reason and "refused" in extraction.reason
    assert "root:" not in str(extraction.enquiries)  # nothing of /etc/passwd leaked


@pytest.fixture
def stack(sqlite_url: str, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(sqlite_url, relay_url=f"maildir://{tmp_path}/outbox", worker_threads=None, smtp=False)
    yield s
    s.close()


def ingest(stack: Stack, raw: bytes) -> None:
    for stored in store_message(
        stack.db,
        raw,
        envelope_from="leads@provider.example",
        recipients=[DEMO_MAILBOX],
        via="smtp",
        now=stack.runtime.clock(),
    ):
        stack.runtime.ingest(stored.id)


def test_an_adf_lead_and_its_resend_make_one_lead(stack: Stack) -> None:
    ingest(
        stack, with_attachment("A lead", SAMPLE.encode(), filename="lead.xml", maintype="text", subtype="xml")
    )
    resent = SAMPLE.replace("<prospect>", '<prospect status="resend">')
    ingest(
        stack,
        with_attachment(
            "The lead again", resent.encode(), filename="lead.xml", maintype="text", subtype="xml"
        ),
    )
    [lead] = stack.leads()
    assert lead.contact.phone == "+498574857485"  # the dealer's country (DE) as the default region
    assert lead.vehicle["vin"] == "2G4WF52L6S1472882"
    assert lead.source is not None and lead.source.name == "name of promotion"
    with stack.db.session() as session:
        kinds = [a.kind for a in session.query(LeadActivity).filter_by(lead_id=lead.id)]
    assert "resent" in kinds
    assert stack.count(Lead) == 1
