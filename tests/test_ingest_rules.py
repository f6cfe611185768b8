"""Contacts, open leads, replies and the unassigned queue, on both databases."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from intake.store import store_message
from lms.cli import main
from models.tables import Contact, InboundMessage, Lead, LeadActivity
from tests.support.clock import FakeClock
from tests.support.mails import DEMO_MAILBOX, enquiry, html_mail
from tests.support.services import wait_until
from tests.support.sink import SmtpSink
from tests.support.stack import Stack

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def stack(db_url: str, tmp_path: Path, clock: FakeClock) -> Iterator[Stack]:
    s = Stack(db_url, relay_url=f"maildir://{tmp_path}/outbox", worker_threads=None, smtp=False, clock=clock)
    yield s
    s.close()


def ingest(stack: Stack, raw: bytes, *, to: str = DEMO_MAILBOX) -> InboundMessage:
    [stored] = store_message(
        stack.db, raw, envelope_from="x@example.org", recipients=[to], via="smtp", now=stack.runtime.clock()
    )
    stack.runtime.ingest(stored.id)
    with stack.db.session() as session:
        row = session.get(InboundMessage, stored.id)
        assert row is not None
        return row


def activities(stack: Stack, lead_id: int) -> list[tuple[str, str]]:
    with stack.db.session() as session:
        rows = session.scalars(
            select(LeadActivity).where(LeadActivity.lead_id == lead_id).order_by(LeadActivity.id)
        )
        return [(a.kind, a.text) for a in rows]


def web_form(phone: str, *, name: str = "Erika Muster", message: str = "Bitte um Rückruf") -> bytes:
    return html_mail(
        f"<table><tr><td>Name</td><td>{name}</td></tr><tr><td>Telefon</td><td>{phone}</td></tr>"
        f"<tr><td>Nachricht</td><td>{message}</td></tr></table>",
        sender="Website <web@autohaus-muster.example>",
        subject="Kontaktformular: Anfrage",
    )


def test_the_same_phone_in_different_notations_is_one_contact(stack: Stack, clock: FakeClock) -> None:
    ingest(stack, web_form("0176 12345678"))
    clock.advance(timedelta(hours=1))
    ingest(stack, web_form("+49 (176) 123 456-78", message="Ich warte noch auf den Rückruf"))
    clock.advance(timedelta(hours=1))
    ingest(stack, web_form("0049 176 12345678", message="Hallo?"))
    [contact] = stack_contacts(stack)
    assert contact.phone == "+4917612345678"
    [lead] = stack.leads()  # the open-lead rule: later enquiries are activities on it
    assert lead.source is not None and lead.source.name == "Website"
    kinds = [kind for kind, _ in activities(stack, lead.id)]
    assert kinds.count("enquiry") == 2
    assert lead.last_activity_at == clock()


def stack_contacts(stack: Stack) -> list[Contact]:
    with stack.db.session() as session:
        return list(session.scalars(select(Contact)))


def test_new_details_are_merged_and_good_ones_never_overwritten(stack: Stack) -> None:
    ingest(stack, enquiry(sender="Erika Mustermann <erika@example.org>", body="Ist der Golf noch da?"))
    ingest(
        stack,
        enquiry(
            sender="erika@example.org",
            subject="Rückruf",
            body="Name: \nTelefon: 0171 9988776\nNachricht: Bitte rufen Sie mich an",
        ),
    )
    [contact] = stack_contacts(stack)
    assert contact.name == "Erika Mustermann"  # the second mail had none: kept
    assert contact.phone == "+491719988776"  # the second mail had one: added


def test_an_enquiry_after_completion_opens_a_new_lead(stack: Stack, clock: FakeClock) -> None:
    ingest(stack, enquiry(subject="Probefahrt Golf"))
    with stack.db.session() as session:
        lead = session.scalars(select(Lead)).one()
        lead.status, lead.completed_at = "completed", clock()
    clock.advance(timedelta(days=3))
    ingest(stack, enquiry(subject="Finanzierung Tiguan", body="Welche Raten wären möglich?"))
    first, second = stack.leads()
    assert (first.status, second.status) == ("completed", "open")
    assert second.type == "financing" and second.contact_id == first.contact_id


def test_a_re_sent_portal_mail_makes_no_second_lead_even_after_completion(
    stack: Stack, clock: FakeClock
) -> None:
    def portal_mail() -> bytes:  # a new Message-ID each time, as portals do when they resend
        return enquiry(
            sender="mobile.de <noreply@mobile.de>",
            headers={"Reply-To": "jonas@example.net"},
            subject="Anfrage zu Ihrem Inserat",
            body="Name: Jonas\nNachricht: Noch da?",
        )

    ingest(stack, portal_mail())
    with stack.db.session() as session:
        session.scalars(select(Lead)).one().status = "completed"
    clock.advance(timedelta(hours=5))
    ingest(stack, portal_mail())
    [lead] = stack.leads()
    assert ("resent", "The enquiry arrived again (same enquiry as before); no new lead.") in activities(
        stack, lead.id
    )


def test_automatic_mail_is_ignored_never_a_lead_never_answered(stack: Stack) -> None:
    for fixture in (
        "postfix_bounce.eml",
        "exchange_bounce.eml",
        "ooo_de.eml",
        "ooo_en.eml",
        "newsletter.eml",
    ):
        row = ingest(stack, (FIXTURES / fixture).read_bytes())
        assert row.state == "ignored" and row.reason
    assert stack.leads() == [] and stack.outbound() == []


@pytest.fixture
def live(db_url: str, sink: SmtpSink) -> Iterator[Stack]:
    s = Stack(db_url, relay_url=sink.url)
    yield s
    s.close()


def test_a_customer_reply_to_our_answer_becomes_an_activity_on_its_lead(live: Stack, sink: SmtpSink) -> None:
    live.send(enquiry(subject="Probefahrt Golf"))
    wait_until(lambda: sink.to("erika@example.org"), what="the autoresponse")
    answer = sink.to("erika@example.org")[0].message
    reply_to = answer["Reply-To"]
    assert reply_to.startswith("muster+r-") and reply_to.endswith("@leads.example.com")

    reply = enquiry(
        subject="Re: " + answer["Subject"],
        to=reply_to,
        headers={"In-Reply-To": answer["Message-ID"], "References": answer["Message-ID"]},
        body="Samstag um 10 Uhr passt mir gut.\n\nAm 28.11.2026 schrieb Autohaus Muster:\n> Guten Tag",
    )
    live.send(reply, to=reply_to)  # the plus address is accepted: it reaches the dealer mailbox
    wait_until(
        lambda: all(r.state == "processed" for r in live.inbound()) and len(live.inbound()) == 2,
        what="the reply processed",
    )
    [lead] = live.leads()
    assert ("customer_reply", "Samstag um 10 Uhr passt mir gut.") in activities(live, lead.id)
    assert len(live.outbound("autoresponse")) == 1  # a reply is not answered again


def test_a_reply_found_by_the_token_alone(live: Stack, sink: SmtpSink) -> None:
    live.send(enquiry(subject="Finanzierung"))
    wait_until(lambda: sink.to("erika@example.org"), what="the autoresponse")
    reply_to = sink.to("erika@example.org")[0].message["Reply-To"]
    live.send(enquiry(subject="Antwort", to=reply_to, body="Die Rate passt."), to=reply_to)
    wait_until(lambda: len([r for r in live.inbound() if r.state == "processed"]) == 2, what="the reply")
    [lead] = live.leads()
    assert ("customer_reply", "Die Rate passt.") in activities(live, lead.id)


def test_the_unassigned_queue(stack: Stack) -> None:
    cli = CliRunner(env={"LMS_DATABASE_URL": stack.settings.database_url})
    nobody = ingest(stack, enquiry(sender="Portal <noreply@portal.example>", subject="Anfrage", body="Hallo"))
    other = ingest(stack, enquiry(sender="System <no-reply@system.example>", subject="Info", body="Text"))
    assert nobody.state == other.state == "unrecognised"

    listed = json.loads(cli.invoke(main, ["unassigned", "list", "--json"]).stdout)
    assert [m["id"] for m in listed["mails"]] == [nobody.id, other.id]
    assert "no customer contact" in listed["mails"][0]["reason"]
    shown = cli.invoke(main, ["unassigned", "show", str(nobody.id)])
    assert "noreply@portal.example" in shown.output and "Hallo" in shown.output

    refused = cli.invoke(main, ["unassigned", "create-lead", str(nobody.id)])
    assert refused.exit_code != 0 and "--email" in refused.output
    created = cli.invoke(
        main,
        ["unassigned", "create-lead", str(nobody.id), "--email", "kunde@example.org", "--type", "test_drive"],
    )
    assert created.exit_code == 0, created.output
    [lead] = stack.leads()
    assert lead.contact.email == "kunde@example.org" and lead.type == "test_drive"

    assert cli.invoke(main, ["unassigned", "delete", str(other.id)]).exit_code == 0
    with stack.db.session() as session:
        row = session.get(InboundMessage, other.id)
        assert row is not None and row.state == "deleted" and b"Text" in row.raw  # marked, never erased
    assert json.loads(cli.invoke(main, ["unassigned", "list", "--json"]).stdout)["total"] == 0
    assert cli.invoke(main, ["unassigned", "show", str(other.id)]).exit_code != 0


def test_reparse_after_a_source_rule_was_added(stack: Stack) -> None:
    cli = CliRunner(env={"LMS_DATABASE_URL": stack.settings.database_url})
    row = ingest(
        stack,
        enquiry(
            sender="Formular <formular@partner.example>",
            subject="Anfrage",
            headers={"Reply-To": "noreply@partner.example"},
            body="Vorname: Ali\nNachname: Kaya\nTelefon: 0151 1112223",
        ),
    )
    assert row.state == "processed"  # the phone number in the form is enough
    [lead] = stack.leads()
    assert lead.contact.phone == "+491511112223"
    no_contact = ingest(stack, enquiry(sender="noreply@partner.example", subject="Test", body="nur Text"))
    assert no_contact.state == "unrecognised"
    result = cli.invoke(main, ["unassigned", "reparse", "--source", "Partner"])
    assert result.exit_code == 0 and "unrecognised 1" in result.output


def test_lms_parse_prints_what_the_parser_sees(tmp_path: Path) -> None:
    path = tmp_path / "portal.eml"
    path.write_bytes(
        enquiry(
            sender="mobile.de <noreply@mobile.de>",
            headers={"Reply-To": "jonas@example.net"},
            subject="Probefahrt",
            body="Name: Jonas\nTelefon: 0176 1234567",
        )
    )
    result = CliRunner().invoke(main, ["parse", str(path), str(FIXTURES / "ooo_en.eml"), "--json"])
    assert result.exit_code == 0, result.output
    lead, ooo = (json.loads(line) for line in result.stdout.splitlines())
    assert set(lead) >= {
        "path",
        "kind",
        "from",
        "reply_to",
        "subject",
        "text",
        "attachments",
        "lead",
        "defects",
    }
    assert lead["kind"] == "lead" and lead["lead"]["source"] == "mobile.de"
    assert lead["lead"]["contact"]["email"] == "jonas@example.net" and lead["lead"]["type"] == "test_drive"
    assert ooo["kind"] == "auto_reply" and ooo["lead"] is None
