"""Every robot recognised: stored as ignored with its kind and reason, never a lead, never
waiting for a person; a report on one of our own mails lands on its lead."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from intake.parsing.extract import extract
from intake.parsing.mime import parse_mail
from intake.store import store_message
from models.tables import Contact, InboundMessage, LeadActivity, OutboundMessage
from tests.support.mails import DEMO_MAILBOX, enquiry
from tests.support.robots import (
    Robot,
    all_robots,
    arf,
    customer_mail_like_a_robot,
    dsn,
    text_bounce,
    vendor_notifications,
)
from tests.support.stack import Stack
from workers.bounces import bouncing_reason

FIXTURES = Path(__file__).parent / "fixtures"


def customer_enquiry() -> bytes:
    return enquiry(sender="Kunde <kunde@example.org>", subject="Probefahrt Golf")


SISIMAI = {
    "arf-03.eml": "arf",
    "arf-22.eml": "arf",
    "ced-us-amazonses-01.eml": "vendor_notification",
    "email-einsundeins-02.eml": "bounce",
    "email-exim-02.eml": "bounce",
    "rhost-franceptt-12.eml": "dsn",
}
ROBOTS = all_robots() + [
    Robot(f"sisimai:{name}", family, (FIXTURES / "robots" / "sisimai" / name).read_bytes())
    for name, family in SISIMAI.items()
]
KIND_OF = {
    "arf": "bounce",
    "dsn": "bounce",
    "bounce": "bounce",
    "vendor_notification": "bounce",
    "list_notice": "bulk",
    "challenge": "auto_reply",
    "vacation": "auto_reply",
    "auto_reply": "auto_reply",
    "read_receipt": "auto_reply",
}


@pytest.mark.parametrize("robot", ROBOTS, ids=[r.name for r in ROBOTS])
def test_every_robot_is_recognised_with_its_family_and_a_reason(robot: Robot) -> None:
    extraction = extract(parse_mail(robot.raw), region="DE")
    assert (extraction.kind, extraction.family) == (KIND_OF[robot.family], robot.family)
    assert extraction.reason and extraction.enquiries == []


def test_the_families_the_tests_cover() -> None:
    counts = Counter(r.family for r in ROBOTS)
    # Every family of issue 15 is there, several mails each.
    assert {f for f, n in counts.items() if n >= 2} >= set(KIND_OF) - {"auto_reply", "read_receipt"}


@pytest.mark.parametrize("raw", customer_mail_like_a_robot())
def test_people_who_write_robot_words_are_still_leads(raw: bytes) -> None:
    extraction = extract(parse_mail(raw), region="DE")
    assert extraction.kind == "lead" and extraction.enquiries


@pytest.mark.parametrize(
    ("action", "status", "expected"),
    [
        ("failed", "5.1.1", "failed"),
        ("delayed", "4.4.7", "delayed"),
        ("delivered", "2.0.0", "delivered"),
        ("relayed", "2.0.0", "relayed"),
    ],
)
def test_a_delivery_report_names_status_recipient_and_the_original(
    action: str, status: str, expected: str
) -> None:
    report = extract(parse_mail(dsn(action, status))).bounce
    assert report is not None
    assert report.status == expected and report.recipients == ["kunde@example.org"]
    assert report.original_message_ids == ["<8f2e1c@autohaus-muster.example>"]
    assert status in report.reason


def test_vendor_notifications_name_the_bounced_address() -> None:
    for robot in vendor_notifications():
        report = extract(parse_mail(robot.raw)).bounce
        assert report is not None and report.recipients == ["kunde@example.org"], robot.name
        assert report.status in ("failed", "complaint", "delivered"), robot.name


def test_a_bounce_without_from_header_is_ignored_not_unrecognised() -> None:
    raw = text_bounce(
        "Mail delivery failed: returning message to sender",
        "This message was created automatically by mail delivery software.\n550 5.1.1 unknown user",
        sender=None,
    )
    parsed = parse_mail(raw)
    assert parsed.from_email == ""
    assert extract(parsed).kind == "bounce"


def test_a_sender_without_domain_is_kept_as_written() -> None:
    parsed = parse_mail(text_bounce("Returned mail: User unknown", "...", sender="MAILER-DAEMON"))
    assert parsed.from_email == "MAILER-DAEMON"
    assert extract(parsed).reason == "sent by MAILER-DAEMON"


# -- in the pipeline --------------------------------------------------------------------------


@pytest.fixture
def stack(db_url: str, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(db_url, relay_url=f"maildir://{tmp_path}/outbox", worker_threads=None, smtp=False)
    yield s
    s.close()


def ingest(stack: Stack, raw: bytes, *, sender: str = "") -> InboundMessage:
    [stored] = store_message(
        stack.db, raw, envelope_from=sender, recipients=[DEMO_MAILBOX], via="smtp", now=stack.runtime.clock()
    )
    stack.runtime.ingest(stored.id)
    with stack.db.session() as session:
        row = session.get(InboundMessage, stored.id)
        assert row is not None
        return row


def test_no_robot_becomes_a_lead_or_waits_for_a_person(stack: Stack) -> None:
    rows = [ingest(stack, robot.raw) for robot in ROBOTS]
    assert [(r.state, bool(r.reason)) for r in rows] == [("ignored", True)] * len(ROBOTS)
    assert stack.leads() == [] and stack.outbound() == []
    # The stored reason says which kind of robot it was.
    assert rows[0].reason.startswith("bounce: delivery status notification")


def _lead_with_autoresponse(stack: Stack) -> tuple[int, OutboundMessage]:
    ingest(
        stack,
        enquiry(sender="Kunde <kunde@example.org>", subject="Probefahrt Golf"),
        sender="kunde@example.org",
    )
    [lead] = stack.leads()
    [answer] = stack.outbound("autoresponse")
    return lead.id, answer


def _activities(stack: Stack, lead_id: int) -> list[tuple[str, str]]:
    with stack.db.session() as session:
        rows = session.scalars(
            select(LeadActivity).where(LeadActivity.lead_id == lead_id).order_by(LeadActivity.id)
        )
        return [(a.kind, a.text) for a in rows]


def _contact(stack: Stack) -> Contact:
    with stack.db.session() as session:
        return session.scalars(select(Contact)).one()


def test_a_bounce_of_our_autoresponse_lands_on_its_lead_and_stops_further_mail(stack: Stack) -> None:
    lead_id, answer = _lead_with_autoresponse(stack)
    row = ingest(
        stack, dsn(original=answer.raw, diagnostic="smtp; 550 5.1.1 <kunde@example.org>: User unknown")
    )
    assert row.state == "ignored" and f"(lead {lead_id})" in (row.reason or "")
    kinds = dict(_activities(stack, lead_id))
    assert kinds["undeliverable"].startswith(
        "undeliverable: 5.1.1 550 5.1.1 <kunde@example.org>: User unknown"
    )
    assert "autoresponse to kunde@example.org" in kinds["undeliverable"]
    assert _contact(stack).details["bouncing"]["address"] == "kunde@example.org"
    with stack.db.session() as session:
        reason = bouncing_reason(session, "muster", "Kunde@Example.org")
        assert reason is not None and "5.1.1" in reason
        assert bouncing_reason(session, "muster", "someone.else@example.org") is None
    assert len(stack.leads()) == 1  # the bounce made no lead


def test_a_delay_is_noted_but_the_address_is_not_given_up(stack: Stack) -> None:
    lead_id, answer = _lead_with_autoresponse(stack)
    ingest(stack, dsn("delayed", "4.4.7", "smtp; 451 4.4.7 try again later", original=answer.raw))
    assert [k for k, _ in _activities(stack, lead_id)].count("delivery_delayed") == 1
    assert "bouncing" not in _contact(stack).details


def test_a_text_bounce_quoting_our_message_id_and_a_cloud_json_bounce_find_the_lead(stack: Stack) -> None:
    lead_id, answer = _lead_with_autoresponse(stack)
    exim = text_bounce(
        "Mail delivery failed: returning message to sender",
        "This message was created automatically by mail delivery software.\n\n  kunde@example.org\n"
        "    host mx.example.org: 550 5.1.1 User unknown\n\n"
        "------ This is a copy of the message, including all the headers. ------\n\n"
        f"Message-ID: {answer.message_id}\nSubject: Ihre Anfrage\n",
    )
    assert f"(lead {lead_id})" in (ingest(stack, exim).reason or "")
    ses = vendor_notifications()[0].raw.replace(
        b"<8f2e1c@autohaus-muster.example>", answer.message_id.encode()
    )
    assert f"(lead {lead_id})" in (ingest(stack, ses).reason or "")
    assert [k for k, _ in _activities(stack, lead_id)].count("undeliverable") == 2


def test_a_complaint_about_our_mail_is_recorded_and_stops_further_mail(stack: Stack) -> None:
    lead_id, answer = _lead_with_autoresponse(stack)
    ingest(stack, arf(original=answer.raw))
    assert dict(_activities(stack, lead_id))["complaint"].startswith("complaint (marked as spam)")
    assert "complaint" in _contact(stack).details["bouncing"]["reason"]


def test_a_bounce_of_the_forward_to_the_dealer_does_not_mark_the_customer(stack: Stack) -> None:
    ingest(
        stack,
        enquiry(sender="Kunde <kunde@example.org>", subject="Probefahrt Golf"),
        sender="kunde@example.org",
    )
    [lead] = stack.leads()
    [forward] = stack.outbound("forward")
    ingest(stack, dsn(original=forward.raw, recipient="verkauf@autohaus-muster.example"))
    assert "forward to verkauf@autohaus-muster.example" in dict(_activities(stack, lead.id))["undeliverable"]
    assert "bouncing" not in _contact(stack).details


def test_a_bounce_of_someone_elses_mail_is_ignored_without_a_lead(stack: Stack) -> None:
    row = ingest(stack, dsn())
    assert row.state == "ignored" and "(lead" not in (row.reason or "")
    with stack.db.session() as session:
        assert session.scalar(select(LeadActivity.id).limit(1)) is None
