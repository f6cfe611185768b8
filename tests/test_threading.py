"""A customer's answer finds its lead even after Outlook or Exchange rewrote In-Reply-To."""

from __future__ import annotations

from collections.abc import Iterator
from email import message_from_bytes
from email.policy import default
from pathlib import Path

import pytest
from sqlalchemy import select

from intake.parsing.thread_markers import normalised_subject
from intake.store import store_message
from models.tables import InboundMessage, Lead, LeadActivity
from tests.support.mails import DEMO_MAILBOX, enquiry
from tests.support.stack import Stack

OUTLOOK_ID = "<AM0PR01MB1234.rewritten@outlook.example>"


@pytest.fixture
def stack(db_url: str, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(db_url, relay_url=f"maildir://{tmp_path}/outbox", worker_threads=None, smtp=False)
    yield s
    s.close()


def ingest(stack: Stack, raw: bytes, *, to: str = DEMO_MAILBOX) -> InboundMessage:
    [stored] = store_message(
        stack.db,
        raw,
        envelope_from="kunde@example.org",
        recipients=[to],
        via="smtp",
        now=stack.runtime.clock(),
    )
    stack.runtime.ingest(stored.id)
    with stack.db.session() as session:
        row = session.get(InboundMessage, stored.id)
        assert row is not None
        return row


def first_lead(stack: Stack) -> tuple[Lead, str, str]:
    """A lead with its autoresponse: (lead, the answer's subject, the answer's Reply-To)."""
    ingest(stack, enquiry(sender="Kunde <kunde@example.org>", subject="Probefahrt Golf"))
    [lead] = stack.leads()
    [answer] = stack.outbound("autoresponse")
    message = message_from_bytes(answer.raw, policy=default)
    return lead, str(message["Subject"]), str(message["Reply-To"])


def replies(stack: Stack, lead_id: int) -> list[str]:
    with stack.db.session() as session:
        return list(
            session.scalars(
                select(LeadActivity.text).where(
                    LeadActivity.lead_id == lead_id, LeadActivity.kind == "customer_reply"
                )
            )
        )


def outlook_reply(
    subject: str, body: str, *, sender: str = "Kunde <kunde@example.org>", **headers: str
) -> bytes:
    return enquiry(sender=sender, subject=subject, body=body, headers={"In-Reply-To": OUTLOOK_ID, **headers})


@pytest.mark.parametrize("header", ["Cc", "X-Original-To", "Delivered-To"])
def test_our_token_in_any_recipient_header(stack: Stack, header: str) -> None:
    lead, _, reply_to = first_lead(stack)
    row = ingest(stack, outlook_reply("Antwort", "Samstag passt.", **{header: reply_to}))
    assert row.state == "processed" and row.reason == f"reply to lead {lead.id}"
    assert replies(stack, lead.id) == ["Samstag passt."]


def test_the_lead_token_in_the_subject_from_the_customer(stack: Stack) -> None:
    lead, _, _ = first_lead(stack)
    ingest(stack, outlook_reply(f"AW: [Lead #{lead.id}] Probefahrt: Kunde", "Ich komme um 10."))
    assert replies(stack, lead.id) == ["Ich komme um 10."]


def test_the_lead_token_from_a_stranger_is_no_reply(stack: Stack) -> None:
    lead, _, _ = first_lead(stack)
    ingest(
        stack,
        outlook_reply(f"[Lead #{lead.id}] Anfrage", "Auch ich will einen Golf.", sender="x@other.example"),
    )
    assert replies(stack, lead.id) == [] and len(stack.leads()) == 2


def test_same_customer_same_subject_while_the_lead_is_open(stack: Stack) -> None:
    lead, subject, _ = first_lead(stack)
    ingest(stack, outlook_reply(f"AW: {subject}", "Danke, wann passt es Ihnen?"))
    assert replies(stack, lead.id) == ["Danke, wann passt es Ihnen?"]
    # Another person under the same subject is their own lead.
    ingest(stack, outlook_reply(f"AW: {subject}", "Ich auch!", sender="Anna <anna@example.net>"))
    assert len(stack.leads()) == 2 and replies(stack, lead.id) == ["Danke, wann passt es Ihnen?"]


def test_after_completion_the_subject_alone_threads_nothing(stack: Stack) -> None:
    lead, subject, _ = first_lead(stack)
    with stack.db.session() as session:
        stored = session.get(Lead, lead.id)
        assert stored is not None
        stored.status, stored.completed_at = "completed", stack.runtime.clock()
    ingest(stack, outlook_reply(f"AW: {subject}", "Ist der Golf doch noch da?"))
    assert replies(stack, lead.id) == [] and len(stack.leads()) == 2


@pytest.mark.parametrize(
    ("subject", "key"),
    [
        ("AW: WG: Ihre Anfrage  bei Autohaus Muster", "ihre anfrage bei autohaus muster"),
        ("RE[2]: Re^3: Fwd: Angebot", "angebot"),
        ("SV: VS: TR: RV: Antw: Probefahrt", "probefahrt"),
        ("AW: [Lead #12] Probefahrt: Kunde", "probefahrt: kunde"),
    ],
)
def test_subjects_as_a_thread_key(subject: str, key: str) -> None:
    assert normalised_subject(subject) == key
