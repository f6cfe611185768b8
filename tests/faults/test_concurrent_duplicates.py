"""Mails about the same customer processed at the same moment by competing workers.

Two copies of one mail (a relay's retry: same Message-ID, one more Received: line) and two
different first mails of a new customer, all ingested at once by three worker processes of
three threads each: every customer is one contact with one lead, one forward, one new-lead
notification and one autoresponse. (PostgreSQL, before identities were locked: 30 customers
gave 40 contacts and 10 doubled leads. SQLite is right by its write lock alone.)
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from sqlalchemy import func, select

from intake.store import store_message
from models.tables import Contact, InboundMessage, Lead, LeadActivity, OutboundMessage
from tests.support.mails import DEMO_MAILBOX, enquiry
from tests.support.processes import LmsProcess, lms_env
from tests.support.services import wait_until
from tests.support.stack import redis_runtime

CUSTOMERS = 30


def mails_of(n: int) -> list[bytes]:
    """Two copies of one first mail, and a second, different first mail of the same customer."""
    first = enquiry(
        sender=f"Kunde {n} <kunde{n}@example.org>",
        subject=f"Probefahrt Golf {n}",
        message_id=f"<first-{n}@example.org>",
    )
    retried = (
        b"Received: from relay2.example.net by mx.example.com; Sat, 28 Nov 2026 09:15:07 +0100\r\n" + first
    )
    other = enquiry(
        sender=f"Kunde {n} <kunde{n}@example.org>",
        subject=f"Finanzierung {n}",
        body="Und was kostet eine Finanzierung über 48 Monate?",
        message_id=f"<other-{n}@example.org>",
    )
    return [first, retried, other]


def test_copies_and_first_mails_at_once_make_one_contact_and_one_lead_each(
    db_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    settings, runtime = redis_runtime(db_url, redis_prefix, tmp_path / "outbox")
    ids = []
    for n in range(CUSTOMERS):
        for raw in mails_of(n):
            [stored] = store_message(
                runtime.db,
                raw,
                envelope_from=f"kunde{n}@example.org",
                recipients=[DEMO_MAILBOX],
                via="smtp",
                now=runtime.clock(),
            )
            ids.append(stored.id)
    for inbound_id in ids:  # one message each, so nine threads race for the same customers
        runtime.ingest_actor.send(inbound_id)
    env = lms_env(**settings)
    workers = [LmsProcess("worker", "--threads", "3", env=env, log=tmp_path / f"w{i}.log") for i in range(3)]
    try:

        def settled() -> bool:
            with runtime.db.read() as session:
                pending = session.scalar(
                    select(func.count())
                    .select_from(InboundMessage)
                    .where(InboundMessage.state != "processed")
                )
                sent = session.scalar(
                    select(func.count()).select_from(OutboundMessage).where(OutboundMessage.state == "sent")
                )
            return pending == 0 and sent == 3 * CUSTOMERS

        wait_until(settled, timeout=120, what="every mail processed and every mail sent")
    finally:
        for worker in workers:
            assert worker.stop() == 0, worker.log()
    with runtime.db.read() as session:
        contacts = Counter(session.scalars(select(Contact.email)))
        leads = Counter(session.scalars(select(Contact.email).join(Lead, Lead.contact_id == Contact.id)))
        mails = Counter(session.execute(select(OutboundMessage.kind, OutboundMessage.lead_id)).all())
        follow_ups = session.scalar(
            select(func.count()).select_from(LeadActivity).where(LeadActivity.kind.in_(("enquiry", "resent")))
        )
    runtime.close()
    customers = {f"kunde{n}@example.org" for n in range(CUSTOMERS)}
    assert contacts == dict.fromkeys(customers, 1)
    assert leads == dict.fromkeys(customers, 1)
    # Per lead: one answer, one forward, one notification, nothing twice.
    assert Counter(kind for kind, _ in mails) == {
        "autoresponse": CUSTOMERS,
        "forward": CUSTOMERS,
        "notification": CUSTOMERS,
    }
    assert set(mails.values()) == {1}
    assert follow_ups == 2 * CUSTOMERS  # the copy and the second mail, each recorded on the lead
