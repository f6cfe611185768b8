"""Leads as the JSON shapes of INTERFACE.md (``lms leads``, the web pane and its API)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from models.escalation import due_state
from models.policy import load_policy
from models.tables import (
    Contact,
    Lead,
    LeadActivity,
    Source,
    User,
)

# What a person reads about a portal mail's sender (lms leads, the web pane).
SENDER_NOTES = {
    "unverified": "unverified sender",
    "not_checked": "sender not verified",
    "verified": "sender verified",
}


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def reminder_of(session: Session, dealer_id: str, cache: dict[str, timedelta] | None = None) -> timedelta:
    if cache is not None and dealer_id in cache:
        return cache[dealer_id]
    value = load_policy(session, dealer_id).escalation.reminder
    if cache is not None:
        cache[dealer_id] = value
    return value


def lead_due_state(lead: Lead, now: datetime, reminder: timedelta) -> str:
    return due_state(status=lead.status, due_at=lead.due_at, now=now, reminder=reminder)


def lead_dict(
    session: Session,
    lead: Lead,
    *,
    now: datetime,
    with_activities: bool,
    reminders: dict[str, timedelta] | None = None,
) -> dict[str, Any]:
    vehicle = {"make": None, "model": None, "year": None, "status": None, "vin": None, "price": None}
    vehicle.update(lead.vehicle or {})
    data: dict[str, Any] = {
        "id": lead.id,
        "dealer": lead.dealer_id,
        "status": lead.status,
        "type": lead.type,
        "source": lead.source.name if lead.source else None,
        "editor": lead.editor.username if lead.editor else None,
        "group": lead.group,
        "subject": lead.subject,
        "contact": {
            "id": lead.contact.id,
            "name": lead.contact.name,
            "email": lead.contact.email,
            "phone": lead.contact.phone,
        },
        "vehicle": vehicle,
        "message": lead.message,
        "created_at": iso(lead.created_at),
        "last_activity_at": iso(lead.last_activity_at),
        "due_at": iso(lead.due_at),
        "due_state": lead_due_state(lead, now, reminder_of(session, lead.dealer_id, reminders)),
        "due_kind": lead.due_kind,
        "completion_reason": lead.completion_reason.code if lead.completion_reason else None,
        "inbound_id": lead.inbound_id,
        # verified | unverified | not_checked; null when the mail claimed no portal.
        "sender_verification": lead.sender_verification,
        "sender_note": SENDER_NOTES.get(lead.sender_verification or ""),
    }
    if with_activities:
        rows = session.scalars(
            select(LeadActivity)
            .where(LeadActivity.lead_id == lead.id)
            .order_by(LeadActivity.at, LeadActivity.id)
        )
        data["activities"] = [{"at": iso(a.at), "kind": a.kind, "text": a.text} for a in rows]
    return data


def list_leads(
    session: Session,
    *,
    now: datetime,
    dealer: str | None = None,
    search: str | None = None,
    type_: str | None = None,
    source: str | None = None,
    editor: str | None = None,
    status: str | None = None,
    due: str | None = None,
    limit: int = 50,
    offset: int = 0,
) -> dict[str, Any]:
    query = select(Lead).join(Contact, Lead.contact_id == Contact.id)
    if dealer:
        query = query.where(Lead.dealer_id == dealer)
    if type_:
        query = query.where(Lead.type == type_)
    if status:
        query = query.where(Lead.status == status)
    if source:
        query = query.where(Lead.source_id.in_(select(Source.id).where(Source.name == source)))
    if editor:
        query = query.where(Lead.editor_id.in_(select(User.id).where(User.username == editor)))
    if search:
        pattern = f"%{search.lower()}%"
        query = query.where(
            or_(
                func.lower(Contact.name).like(pattern),
                func.lower(Contact.email).like(pattern),
                func.lower(Lead.subject).like(pattern),
                func.lower(Lead.message).like(pattern),
            )
        )
    reminders: dict[str, timedelta] = {}
    ordered = query.order_by(Lead.last_activity_at.desc(), Lead.id.desc())
    if due in (None, "overdue"):
        # Exact in SQL ("overdue" is open and past the due date whatever the dealer): count and
        # page in the database, so a long list costs one page, not every lead.
        if due == "overdue":
            ordered = ordered.where(Lead.status == "open", Lead.due_at <= now)
        total = session.scalar(select(func.count()).select_from(ordered.order_by(None).subquery())) or 0
        page = list(session.scalars(ordered.limit(limit).offset(offset)).unique())
    else:
        # "soon" and "none" depend on each dealer's reminder: narrowed in SQL, decided here.
        if due == "soon":
            ordered = ordered.where(Lead.status == "open", Lead.due_at > now)
        matching = [
            lead
            for lead in session.scalars(ordered).unique()
            if lead_due_state(lead, now, reminder_of(session, lead.dealer_id, reminders)) == due
        ]
        total, page = len(matching), matching[offset : offset + limit]
    return {
        "leads": [
            lead_dict(session, lead, now=now, with_activities=False, reminders=reminders) for lead in page
        ],
        "total": total,
    }
