"""The queue of stored mails that are no recognisable lead ("nicht zugeordnete Leads"): list,
look at, recognise again, make a lead of by hand, or take out of the queue (the raw bytes stay)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.parsing.enquiry import Enquiry
from intake.parsing.extract import Extraction, sender_as_customer
from intake.parsing.mime import parse_mail
from intake.parsing.report import parse_report
from models.tables import InboundMessage
from workers.ingest import IngestResult, Timing, Understood, finish_inbound, process_inbound


class NotUnassigned(LookupError):
    """No mail with this id waits in the queue."""


class CannotCreate(ValueError):
    """A lead cannot be made of this mail as asked; the message says why."""


def waiting(session: Session, inbound_id: int, *, lock: bool = True) -> InboundMessage:
    row = session.get(InboundMessage, inbound_id, with_for_update=lock)
    if row is None or row.state != "unrecognised":
        raise NotUnassigned(f"no unassigned mail {inbound_id}")
    return row


def list_waiting(session: Session, *, dealer: str | None = None) -> list[dict[str, Any]]:
    """The queue, oldest first: who sent it, what it says it is about, why it waits."""
    query = select(InboundMessage).where(InboundMessage.state == "unrecognised")
    if dealer:
        query = query.where(InboundMessage.dealer_id == dealer)
    rows: list[dict[str, Any]] = []
    for row in session.scalars(query.order_by(InboundMessage.received_at, InboundMessage.id)):
        parsed = parse_mail(row.raw)
        rows.append(
            {
                "id": row.id,
                "dealer": row.dealer_id,
                "received_at": row.received_at.isoformat(),
                "from": parsed.from_email,
                "from_name": parsed.from_name,
                "subject": parsed.subject,
                "reason": row.reason,
            }
        )
    return rows


def describe(session: Session, inbound_id: int) -> dict[str, Any]:
    row = waiting(session, inbound_id, lock=False)
    report = parse_report(f"inbound:{row.id}", row.raw)
    report.update(
        id=row.id,
        dealer=row.dealer_id,
        reason=row.reason,
        envelope_from=row.envelope_from,
        received_at=row.received_at.isoformat(),
    )
    return report


def reparse(session: Session, inbound_id: int, *, now: datetime, source: str | None = None) -> IngestResult:
    """Run recognition again on one waiting mail (e.g. after a new source rule);
    ``source`` makes it a lead of that source."""
    row = waiting(session, inbound_id)
    return process_inbound(session, row, now=now, timing=Timing(grace=timedelta(0)), force_source=source)


@dataclass(frozen=True)
class ByHand:
    email: str = ""
    phone: str = ""
    name: str = ""
    type: str = "general"
    source: str = "E-Mail"


def create_lead(session: Session, inbound_id: int, facts: ByHand, *, now: datetime, by: str) -> int:
    """A lead made of a waiting mail by a person; returns its id."""
    row = waiting(session, inbound_id)
    parsed = parse_mail(row.raw)
    # Never a no-reply robot or a portal as the customer: the same rule as recognition.
    customer = sender_as_customer(parsed, system_sender=False)
    customer.name = facts.name or customer.name
    customer.email = facts.email.strip().lower() or customer.email
    if facts.phone:
        customer.phones.append(facts.phone)
    if not (customer.email or customer.phones):
        raise CannotCreate("the mail shows no customer address: give an email address or a phone number")
    enquiry = Enquiry(
        type=facts.type, source=facts.source, customer=customer, message=parsed.body_text, format="manual"
    )
    understood = Understood(parsed, Extraction("lead", "lead created by hand", enquiries=[enquiry]))
    result = process_inbound(session, row, now=now, timing=Timing(grace=timedelta(0)), understood=understood)
    row.reason = f"lead created by hand by {by}"
    return result.lead_ids[0]


def delete(session: Session, inbound_id: int, *, now: datetime, by: str) -> None:
    """Out of the queue; the raw message stays stored."""
    row = waiting(session, inbound_id)
    finish_inbound(row, "deleted", f"deleted from the unassigned queue by {by} at {now.isoformat()}", now)


def waiting_ids(session: Session, *, dealer: str | None = None) -> list[int]:
    query = select(InboundMessage.id).where(InboundMessage.state == "unrecognised")
    if dealer:
        query = query.where(InboundMessage.dealer_id == dealer)
    return list(session.scalars(query.order_by(InboundMessage.id)))
