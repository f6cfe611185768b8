"""A bounce, delay or complaint about one of our own mails, linked to its lead; and the one
check every outgoing mail must pass: never write again to an address that bounced.

The parser says what a report names (:mod:`intake.parsing.bounces`); here it meets the
database: the outbox row with that Message-ID (or the lead id our Message-ID carries), an
activity on the lead ("undeliverable: <reason>"), and, for a permanent failure or a
complaint about a mail to the customer, a mark on the contact.

Where the outbox calls it: :func:`bouncing_reason` before queueing a mail to a customer
(``workers.lead_mail.queue_outbound`` today, the one outbox function after issue 11): a
recipient with a reason gets no mail; write the row as ``failed`` with that reason (or skip it
with an activity) so the lead shows why.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.parsing.bounces import BounceReport
from intake.parsing.thread_markers import lead_ids_in_message_ids
from models.contacts import normalise_email
from models.tables import Contact, Lead, LeadActivity, OutboundMessage

_ACTIVITY = {
    "failed": ("undeliverable", "undeliverable"),
    "complaint": ("complaint", "complaint (marked as spam)"),
    "delayed": ("delivery_delayed", "delivery delayed"),
}


def _reported_outbound(session: Session, dealer_id: str, report: BounceReport) -> OutboundMessage | None:
    if not report.original_message_ids:
        return None
    return session.scalar(
        select(OutboundMessage)
        .where(
            OutboundMessage.dealer_id == dealer_id,
            OutboundMessage.message_id.in_(report.original_message_ids),
        )
        .order_by(OutboundMessage.id)
        .limit(1)
    )


def reported_lead(
    session: Session, dealer_id: str, report: BounceReport
) -> tuple[Lead | None, OutboundMessage | None]:
    outbound = _reported_outbound(session, dealer_id, report)
    if outbound is not None and outbound.lead_id is not None:
        return session.get(Lead, outbound.lead_id), outbound
    for lead_id in lead_ids_in_message_ids(report.original_message_ids):
        lead = session.get(Lead, lead_id)
        if lead is not None and lead.dealer_id == dealer_id:
            return lead, None
    return None, None


def mark_bouncing(contact: Contact, address: str, reason: str, now: datetime) -> None:
    details = dict(contact.details or {})
    details["bouncing"] = {
        "address": normalise_email(address),
        "since": now.isoformat(),
        "reason": reason[:300],
    }
    contact.details = details  # a new dict: the JSON column sees the change
    contact.updated_at = now


def record_bounce(
    session: Session, dealer_id: str, report: BounceReport, *, inbound_id: int, now: datetime
) -> Lead | None:
    """Link the report to the lead of the mail it names; ``None`` when it names none of ours."""
    lead, outbound = reported_lead(session, dealer_id, report)
    if lead is None:
        return None
    kind, label = _ACTIVITY.get(report.status, ("delivery_report", report.status))
    what = f" ({outbound.kind} to {', '.join(outbound.envelope_to)})" if outbound is not None else ""
    text = f"{label}: {report.reason or 'no reason given'}{what}"
    session.add(
        LeadActivity(
            lead_id=lead.id,
            at=now,
            kind=kind,
            text=text[:2000],
            inbound_id=inbound_id,
            outbound_id=outbound.id if outbound else None,
            data={"recipients": report.recipients},
        )
    )
    contact = session.get(Contact, lead.contact_id)
    if report.permanent and contact is not None and contact.email:
        to_customer = outbound is None or contact.email in [normalise_email(a) for a in outbound.envelope_to]
        bounced = [normalise_email(a) for a in report.recipients]
        if to_customer and (contact.email in bounced or not bounced):
            mark_bouncing(contact, contact.email, f"{label}: {report.reason}", now)
    return lead


def bouncing_reason(session: Session, dealer_id: str, address: str) -> str | None:
    """Why we must not write to ``address`` (it bounced or complained), or ``None``."""
    email = normalise_email(address)
    if not email:
        return None
    for details in session.scalars(
        select(Contact.details).where(Contact.dealer_id == dealer_id, Contact.email == email)
    ):
        mark = (details or {}).get("bouncing")
        if mark and mark.get("address") == email:
            return f"{email} bounced on {mark.get('since', '?')[:10]}: {mark.get('reason', '')}".strip()
    return None
