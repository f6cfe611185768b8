"""Route a lead in its transaction: load and lock the dealer's rotation rows, count open
leads, call :func:`models.routing.decide`, store the outcome and its explanation.

All rotation rows of a dealer are locked in key order for every decision, so two workers
routing at the same moment take turns: neither sees a rotation the other has moved but
not yet committed, and open-lead counts are read after the lock, so they include the
previous decision. (SQLite serialises writers anyway with BEGIN IMMEDIATE.)
"""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.db import dialect_insert
from models.routing import Decision, LeadFacts, Person, RotationState, decide, keys_for
from models.tables import Dealer, Lead, LeadActivity, RotationCounter, User


def load_people(session: Session, dealer_id: str) -> tuple[dict[str, Person], dict[str, User]]:
    users = {u.username: u for u in session.scalars(select(User).where(User.dealer_id == dealer_id))}
    open_counts = dict(
        session.execute(
            select(Lead.editor_id, func.count())
            .where(Lead.dealer_id == dealer_id, Lead.status == "open", Lead.editor_id.is_not(None))
            .group_by(Lead.editor_id)
        ).all()
    )
    people = {
        name: Person(
            username=name,
            weight=user.weight,
            max_open=user.max_open,
            open_leads=int(open_counts.get(user.id, 0)),
            absences=tuple(
                (date.fromisoformat(a["from"]), date.fromisoformat(a["to"])) for a in user.absences or []
            ),
            active=user.active,
        )
        for name, user in users.items()
    }
    return people, users


def lock_rotations(session: Session, dealer_id: str, keys: list[str]) -> dict[str, RotationCounter]:
    for key in keys:
        session.execute(
            dialect_insert(session, RotationCounter)
            .values(dealer_id=dealer_id, key=key, counter=0, state={})
            .on_conflict_do_nothing(index_elements=["dealer_id", "key"])
        )
    rows = session.scalars(
        select(RotationCounter)
        .where(RotationCounter.dealer_id == dealer_id, RotationCounter.key.in_(keys))
        .order_by(RotationCounter.key)
        .with_for_update()
    )
    return {row.key: row for row in rows}


def previous_editor(session: Session, lead: Lead) -> str | None:
    return session.scalar(
        select(User.username)
        .join(Lead, Lead.editor_id == User.id)
        .where(Lead.contact_id == lead.contact_id, Lead.id != lead.id)
        .order_by(Lead.created_at.desc())
        .limit(1)
    )


def route_lead(
    session: Session,
    dealer: Dealer,
    lead: Lead,
    *,
    mailbox: str,
    now: datetime,
    exclude: str | None = None,
    prefix: str = "",
) -> Decision:
    """``exclude``: a person who must not get it (the one it is redistributed away from)."""
    distribution = dealer.config.get("distribution") or {}
    rotations = lock_rotations(session, dealer.id, keys_for(distribution))
    people, users = load_people(session, dealer.id)
    if exclude in people:
        people[exclude] = replace(people[exclude], active=False)
    vehicle = lead.vehicle or {}
    facts = LeadFacts(
        source=lead.source.name if lead.source else "",
        type=lead.type,
        make=str(vehicle.get("make") or ""),
        status=str(vehicle.get("status") or ""),
        mailbox=mailbox,
        language=lead.language or "",
        previous_editor=previous_editor(session, lead),
    )
    states = {
        key: RotationState(turn=row.counter, credits=dict((row.state or {}).get("credits") or {}))
        for key, row in rotations.items()
    }
    decision = decide(facts, people, distribution, now=now, timezone=dealer.timezone, states=states)
    if decision.rotation is not None and decision.rotation_key is not None:
        row = rotations[decision.rotation_key]
        row.counter = decision.rotation.turn
        row.state = {"credits": decision.rotation.credits}
    lead.editor_id = users[decision.editor].id if decision.editor else None
    lead.group = decision.group
    activity = LeadActivity(
        lead_id=lead.id, at=now, kind="assigned", text=prefix + decision.explain(), data=decision.as_data()
    )
    session.add(activity)
    return decision


def reassign(session: Session, lead: Lead, username: str, *, by: str, reason: str, now: datetime) -> User:
    user = session.scalar(select(User).where(User.dealer_id == lead.dealer_id, User.username == username))
    if user is None or not user.active:
        raise LookupError(f"no active user {username!r} at dealer {lead.dealer_id!r}")
    before = lead.editor.username if lead.editor else "(pool)"
    lead.editor_id = user.id
    lead.last_activity_at = now
    text = f"Reassigned from {before} to {username} by {by}" + (f": {reason}" if reason else "")
    session.add(
        LeadActivity(lead_id=lead.id, at=now, kind="assigned", text=text, data={"by": by, "reason": reason})
    )
    return user


def redistribute(
    session: Session, dealer: Dealer, username: str, *, now: datetime
) -> list[tuple[int, str | None]]:
    """Route every open lead of ``username`` again, without them; (lead id, new editor) each."""
    user = session.scalar(select(User).where(User.dealer_id == dealer.id, User.username == username))
    if user is None:
        raise LookupError(f"no user {username!r} at dealer {dealer.id!r}")
    leads = list(
        session.scalars(
            select(Lead).where(Lead.editor_id == user.id, Lead.status == "open").order_by(Lead.created_at)
        ).unique()
    )
    moved: list[tuple[int, str | None]] = []
    for lead in leads:
        lead.editor_id = None  # not counted as one of their open leads while deciding
        session.flush()
        decision = route_lead(
            session,
            dealer,
            lead,
            mailbox="",
            now=now,
            exclude=username,
            prefix=f"Redistributed from {username}: ",
        )
        moved.append((lead.id, decision.editor))
    return moved
