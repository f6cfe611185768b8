"""Leads as the JSON shapes of INTERFACE.md (``lms leads``, the web pane and its API)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, Text, and_, cast, false, func, not_, or_, select, union
from sqlalchemy.orm import Session, aliased

from models.escalation import due_state
from models.lead_scope import LeadScope
from models.policy import load_policy, policy_for
from models.tables import (
    Contact,
    Dealer,
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
        "trade_ins": list(lead.trade_ins or []),
        "message": lead.message,
        "created_at": iso(lead.created_at),
        "last_activity_at": iso(lead.last_activity_at),
        "due_at": iso(lead.due_at),
        "due_state": lead_due_state(lead, now, reminder_of(session, lead.dealer_id, reminders)),
        "due_kind": lead.due_kind,
        "completion_reason": lead.completion_reason.code if lead.completion_reason else None,
        "completed_at": iso(lead.completed_at),
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


MAX_SEARCH_TERMS = 8
_LIKE_SPECIAL = str.maketrans({"\\": "\\\\", "%": "\\%", "_": "\\_"})


def like_pattern(term: str) -> str:
    """``%term%`` where the term's own ``%``, ``_`` and ``\\`` match themselves (ESCAPE '\\')."""
    return f"%{term.translate(_LIKE_SPECIAL)}%"


# A phone number as people type it: "0171 234 56 78", "+49 (171) 2345-678", "0049/171…".
PHONE_TYPED = re.compile(r"^[+0][\d\s()/.-]{5,}$")


def search_terms(search: str | None) -> list[str]:
    """The words of a search, lower-cased; NUL and other control characters are dropped
    (PostgreSQL refuses NUL in text) and absurdly many words are cut. A phone number with
    spaces is one term of its digits, not several words that each match half the customers."""
    if not search:
        return []
    cleaned = "".join(ch if ch.isprintable() else " " for ch in search).strip()
    if PHONE_TYPED.match(cleaned) and sum(ch.isdigit() for ch in cleaned) >= 5:
        return ["".join(ch for ch in cleaned if ch.isdigit())]
    return [word.lower()[:200] for word in cleaned.split()][:MAX_SEARCH_TERMS]


def search_clause(term: str) -> ColumnElement[bool]:
    """Leads whose customer (name, email, phone), subject, message or vehicle contain ``term``.

    One id set, the union of the leads matching by their own text and those matching by their
    contact: PostgreSQL answers each part with its trigram indexes (migration 0002_web) and
    joins the few ids found, instead of filtering every lead of the dealer by two subplans."""
    pattern = like_pattern(term)
    own = aliased(Lead)
    by_text = select(own.id).where(
        or_(
            func.lower(own.subject).like(pattern, escape="\\"),
            func.lower(own.message).like(pattern, escape="\\"),
            func.lower(cast(own.vehicle, Text)).like(pattern, escape="\\"),
        )
    )
    contact_matches = [
        func.lower(Contact.name).like(pattern, escape="\\"),
        func.lower(Contact.email).like(pattern, escape="\\"),
    ]
    digits = "".join(ch for ch in term if ch.isdigit())
    if len(digits) >= 3 and len(digits) >= len(term.replace(" ", "")) - 2:
        # A phone number as people type it ("0176 123…"): stored in E.164, compare the digits
        # after the trunk zero.
        contact_matches.append(Contact.phone.like(like_pattern(digits.lstrip("0"))))
    of_contact = aliased(Lead)
    by_contact = (
        select(of_contact.id)
        .join(Contact, of_contact.contact_id == Contact.id)
        .where(or_(*contact_matches))
    )
    return Lead.id.in_(union(by_text, by_contact))


def reminders_of(session: Session, dealer_ids: list[str] | None) -> dict[str, timedelta]:
    """Each dealer's reminder (the "soon" span before the due date)."""
    query = select(Dealer)
    if dealer_ids is not None:
        query = query.where(Dealer.id.in_(dealer_ids))
    return {d.id: policy_for(d).escalation.reminder for d in session.scalars(query)}


def due_clause(due: str, *, now: datetime, reminders: dict[str, timedelta]) -> ColumnElement[bool]:
    """:func:`models.escalation.due_state` in SQL: one comparison per dealer's reminder, so a
    filter on "soon" or "none" pages in the database like any other."""
    is_open = Lead.status == "open"
    if due == "overdue":
        return and_(is_open, Lead.due_at <= now)
    within = or_(
        false(),
        *(and_(Lead.dealer_id == dealer, Lead.due_at <= now + span) for dealer, span in reminders.items()),
    )
    if due == "soon":
        return and_(is_open, Lead.due_at > now, within)
    if due == "none":
        return or_(Lead.status != "open", Lead.due_at.is_(None), and_(Lead.due_at > now, not_(within)))
    raise ValueError(f"unknown due state {due!r}")


SORTS = ("activity", "due")


def lead_query(
    session: Session,
    *,
    now: datetime,
    scope: LeadScope | None = None,
    dealer: str | None = None,
    search: str | None = None,
    type_: str | None = None,
    source: str | None = None,
    editor: str | None = None,
    status: str | None = None,
    due: str | None = None,
    sort: str = "activity",
) -> Select[Any]:
    """The leads list's query (filtered, scoped and ordered, not yet paged)."""
    query = select(Lead)
    if scope is not None:
        query = query.where(scope.clause())
        dealer = scope.dealer_id
    if dealer:
        query = query.where(Lead.dealer_id == dealer)
    if type_:
        query = query.where(Lead.type == type_)
    if status:
        query = query.where(Lead.status == status)
    if source:
        sources = select(Source.id).where(Source.name == source)
        query = query.where(Lead.source_id.in_(sources))
    if editor == "-":  # the pool
        query = query.where(Lead.editor_id.is_(None))
    elif editor:
        editors = select(User.id).where(User.username == editor)
        if dealer:
            editors = editors.where(User.dealer_id == dealer)
        query = query.where(Lead.editor_id.in_(editors))
    for term in search_terms(search):
        query = query.where(search_clause(term))
    if due:
        reminders = reminders_of(session, [dealer] if dealer else None)
        query = query.where(due_clause(due, now=now, reminders=reminders))
    if sort == "due":
        return query.order_by(Lead.due_at.asc().nulls_last(), Lead.id.desc())
    return query.order_by(Lead.last_activity_at.desc(), Lead.id.desc())


def count(session: Session, query: Select[Any]) -> int:
    return int(session.scalar(select(func.count()).select_from(query.order_by(None).subquery())) or 0)


def list_leads(
    session: Session,
    *,
    now: datetime,
    limit: int = 50,
    offset: int = 0,
    **filters: Any,
) -> dict[str, Any]:
    """``{"leads": [...], "total": N}``: one page, counted and paged in the database. Filters are
    those of :func:`lead_query` (``scope`` restricts it to what a person may see)."""
    query = lead_query(session, now=now, **filters)
    total = count(session, query)
    page = list(session.scalars(query.limit(limit).offset(offset)).unique())
    reminders: dict[str, timedelta] = {}
    return {
        "leads": [
            lead_dict(session, lead, now=now, with_activities=False, reminders=reminders) for lead in page
        ],
        "total": total,
    }
