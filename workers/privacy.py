"""Data protection for the people whose enquiries we hold (GDPR): everything about a person as
JSON (Art. 15 access, Art. 20 portability), erasure (Art. 17), the dealer's retention periods,
and the audit log of who read or changed a lead.

Erasure anonymises rather than deletes: the contact's name, addresses and phones, the leads'
texts and vehicles' identifying parts, the timeline's texts, and the raw mails received from
and sent to the person go; the rows stay with their type, source, editor, states and times, so
counts and response-time reports over past periods do not change.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, or_, select, update
from sqlalchemy.orm import Session

from intake.parsing.mime import parse_mail
from models.contacts import normalise_email
from models.durations import parse_duration
from models.lead_views import iso, lead_dict
from models.policy import DealerPolicy
from models.privacy_tables import AuditEntry
from models.tables import (
    INBOUND_FINAL_STATES,
    OUTBOUND_FINAL_STATES,
    Contact,
    InboundMessage,
    Lead,
    LeadActivity,
    OutboundMessage,
)
from models.webhook_tables import WebhookDelivery

ERASED = "(erased)"
# What of a vehicle says nothing about the person and stays for reports.
VEHICLE_KEEP = ("interest", "status", "year", "make", "model", "trim", "price", "currency")


class NoSuchContact(LookupError):
    pass


def record(
    session: Session,
    *,
    dealer_id: str,
    actor: str,
    action: str,
    now: datetime,
    lead_id: int | None = None,
    contact_id: int | None = None,
    user_id: int | None = None,
    detail: str = "",
) -> None:
    """One line of the audit log (read, change, download, export, erase, retention)."""
    session.add(
        AuditEntry(
            at=now,
            dealer_id=dealer_id,
            user_id=user_id,
            actor=actor[:100],
            action=action,
            lead_id=lead_id,
            contact_id=contact_id,
            detail=detail[:2000],
            data={},
        )
    )


def find_contact(session: Session, key: str, *, dealer: str | None = None) -> Contact:
    """A contact by id, or by email address (of ``dealer``, if several dealers hold it)."""
    if key.isdigit():
        contact = session.get(Contact, int(key))
        if contact is None or (dealer and contact.dealer_id != dealer):
            raise NoSuchContact(f"no contact {key}")
        return contact
    query = select(Contact).where(Contact.email == normalise_email(key))
    if dealer:
        query = query.where(Contact.dealer_id == dealer)
    found = list(session.scalars(query))
    if not found:
        raise NoSuchContact(f"no contact with the address {key}")
    if len(found) > 1:
        raise NoSuchContact(f"{key} is a contact of several dealers; say which with --dealer")
    return found[0]


def _leads(session: Session, contact: Contact) -> list[Lead]:
    return list(session.scalars(select(Lead).where(Lead.contact_id == contact.id).order_by(Lead.id)).unique())


def _inbound_of(session: Session, contact: Contact, lead_ids: list[int]) -> list[InboundMessage]:
    """The mails the person sent: those that made or joined their leads, and any other from
    their address (a mail waiting unrecognised, say)."""
    linked = select(LeadActivity.inbound_id).where(
        LeadActivity.lead_id.in_(lead_ids), LeadActivity.inbound_id.is_not(None)
    )
    conditions: list[ColumnElement[bool]] = [InboundMessage.id.in_(linked)]
    if contact.email:
        conditions.append(InboundMessage.envelope_from == contact.email)
    return list(
        session.scalars(
            select(InboundMessage)
            .where(InboundMessage.dealer_id == contact.dealer_id, or_(*conditions))
            .order_by(InboundMessage.id)
        )
    )


def _outbound_of(session: Session, contact: Contact, lead_ids: list[int]) -> list[OutboundMessage]:
    conditions: list[ColumnElement[bool]] = [OutboundMessage.lead_id.in_(lead_ids)]
    if contact.email:
        conditions.append(OutboundMessage.recipient == contact.email)
    return list(
        session.scalars(
            select(OutboundMessage)
            .where(OutboundMessage.dealer_id == contact.dealer_id, or_(*conditions))
            .order_by(OutboundMessage.id)
        )
    )


def export_contact(session: Session, contact: Contact, *, now: datetime, actor: str) -> dict[str, Any]:
    """Everything held about the person, as one JSON-ready document; the export is audited."""
    leads = _leads(session, contact)
    lead_ids = [lead.id for lead in leads]
    received = []
    for row in _inbound_of(session, contact, lead_ids):
        parsed = parse_mail(row.raw) if row.raw else None
        received.append(
            {
                "id": row.id,
                "received_at": iso(row.received_at),
                "via": row.via,
                "envelope_from": row.envelope_from,
                "subject": parsed.subject if parsed else None,
                "text": parsed.body_text if parsed else None,
                "raw_base64": base64.b64encode(row.raw).decode() if row.raw else None,
                "raw_deleted_at": iso(row.raw_deleted_at),
            }
        )
    sent = [
        {
            "id": row.id,
            "kind": row.kind,
            "to": row.envelope_to,
            "created_at": iso(row.created_at),
            "state": row.state,
            "sent_at": iso(row.sent_at),
            "raw_base64": base64.b64encode(row.raw).decode() if row.raw else None,
        }
        for row in _outbound_of(session, contact, lead_ids)
    ]
    record(session, dealer_id=contact.dealer_id, actor=actor, action="export", now=now, contact_id=contact.id)
    return {
        "exported_at": iso(now),
        "dealer": contact.dealer_id,
        "contact": {
            "id": contact.id,
            "name": contact.name,
            "email": contact.email,
            "phone": contact.phone,
            "details": contact.details or {},
            "created_at": iso(contact.created_at),
            "updated_at": iso(contact.updated_at),
            "erased_at": iso(contact.erased_at),
        },
        "leads": [
            {
                **lead_dict(session, lead, now=now, with_activities=True),
                "trade_ins": lead.trade_ins or [],
                "links": lead.links or [],
                "language": lead.language,
            }
            for lead in leads
        ],
        "mails_received": received,
        "mails_sent": sent,
        "access_log": [
            {"at": iso(e.at), "actor": e.actor, "action": e.action, "lead": e.lead_id, "detail": e.detail}
            for e in session.scalars(
                select(AuditEntry)
                .where(or_(AuditEntry.contact_id == contact.id, AuditEntry.lead_id.in_(lead_ids)))
                .order_by(AuditEntry.at, AuditEntry.id)
            )
        ],
    }


def _anonymise_lead(session: Session, lead: Lead, now: datetime) -> None:
    lead.subject = None
    lead.message = None
    lead.vehicle = {k: v for k, v in (lead.vehicle or {}).items() if k in VEHICLE_KEEP}
    lead.trade_ins = []
    lead.links = []
    lead.external_id = None
    lead.fingerprint = None
    lead.reply_token = None
    lead.anonymised_at = now
    session.execute(update(LeadActivity).where(LeadActivity.lead_id == lead.id).values(text=ERASED, data={}))
    # Webhook bodies hold the lead as it was sent (or was to be sent): they go too, and what was
    # not delivered yet is never sent nor replayed.
    hooks = update(WebhookDelivery).where(WebhookDelivery.lead_id == lead.id)
    session.execute(
        hooks.where(WebhookDelivery.state != "delivered").values(
            state="erased", next_attempt_at=None, last_error=ERASED, updated_at=now
        )
    )
    session.execute(hooks.values(body=b""))


def _delete_raw(rows: list[Any], now: datetime, *, addresses: bool = False) -> None:
    """The bytes go (and, erasing a person, the addresses the row keeps of them)."""
    for row in rows:
        if row.raw_deleted_at is None:
            row.raw, row.raw_deleted_at = b"", now
        if addresses and isinstance(row, OutboundMessage):
            row.envelope_to, row.recipient = [], ""
        if addresses and isinstance(row, InboundMessage):
            row.envelope_from, row.message_id, row.reason, row.error = "", None, ERASED, None


def erase_contact(session: Session, contact: Contact, *, now: datetime, actor: str) -> dict[str, int]:
    """Erase the person (Art. 17): what it erased, counted. Safe to run twice."""
    leads = _leads(session, contact)
    lead_ids = [lead.id for lead in leads]
    inbound = _inbound_of(session, contact, lead_ids)
    outbound = _outbound_of(session, contact, lead_ids)
    for lead in leads:
        _anonymise_lead(session, lead, now)
    _delete_raw(inbound, now, addresses=True)
    _delete_raw(outbound, now, addresses=True)
    contact.name = contact.email = contact.phone = None
    contact.details = {}
    contact.erased_at = now
    contact.updated_at = now
    record(session, dealer_id=contact.dealer_id, actor=actor, action="erase", now=now, contact_id=contact.id)
    return {"leads": len(leads), "mails_received": len(inbound), "mails_sent": len(outbound)}


def apply_retention(
    session: Session, policy: DealerPolicy, *, now: datetime, batch: int = 500
) -> dict[str, int]:
    """One pass of the dealer's retention periods (a batch of each; the next pass goes on)."""
    done = {"leads": 0, "contacts": 0, "mails": 0}
    retention = policy.config.retention
    if retention.raw_mails:
        cutoff = now - parse_duration(retention.raw_mails)
        # A mail still on its way (not in a final state) keeps its bytes.
        received = session.scalars(
            select(InboundMessage)
            .where(
                InboundMessage.dealer_id == policy.id,
                InboundMessage.received_at < cutoff,
                InboundMessage.raw_deleted_at.is_(None),
                InboundMessage.state.in_(INBOUND_FINAL_STATES),
            )
            .limit(batch)
        ).all()
        sent = session.scalars(
            select(OutboundMessage)
            .where(
                OutboundMessage.dealer_id == policy.id,
                OutboundMessage.created_at < cutoff,
                OutboundMessage.raw_deleted_at.is_(None),
                OutboundMessage.state.in_(OUTBOUND_FINAL_STATES),
            )
            .limit(batch)
        ).all()
        _delete_raw([*received, *sent], now)
        done["mails"] = len(received) + len(sent)
    if retention.completed_leads:
        cutoff = now - parse_duration(retention.completed_leads)
        leads = list(
            session.scalars(
                select(Lead)
                .where(
                    Lead.dealer_id == policy.id,
                    Lead.status == "completed",
                    Lead.completed_at < cutoff,
                    Lead.anonymised_at.is_(None),
                )
                .limit(batch)
            ).unique()
        )
        for lead in leads:
            _anonymise_lead(session, lead, now)
            record(
                session, dealer_id=policy.id, actor="retention", action="retention", now=now, lead_id=lead.id
            )
        done["leads"] = len(leads)
        for contact_id in {lead.contact_id for lead in leads}:
            contact = session.get(Contact, contact_id)
            # A contact goes once none of their leads is open or still within the period.
            still = session.scalar(
                select(Lead.id).where(
                    Lead.contact_id == contact_id,
                    or_(Lead.status != "completed", Lead.completed_at >= cutoff),
                )
            )
            if contact is not None and still is None and contact.erased_at is None:
                erase_contact(session, contact, now=now, actor="retention")
                done["contacts"] += 1
    return done
