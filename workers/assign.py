"""Who gets a lead, in the database: a snapshot of the people and the rotations, the pure
decision (:func:`models.routing.decide`), and its outcome written with a compare-and-set.

The snapshot is read outside any write transaction and the decision made there; the write
transaction only stores it. A rotation row is updated only if its turn is still the one the
decision was made on (``UPDATE … WHERE counter = <turn read>``): when another worker moved
the rotation meanwhile, :class:`RoutingConflict` is raised and the transaction rolls back.
The caller then decides again inside its write transaction, after :func:`lock_rotations`
(so a busy dealer's workers take turns instead of retrying each other out). Either way no
turn is handed out twice and none is skipped.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from models.db import dialect_insert
from models.dealer_config import DistributionConfig
from models.policy import DealerPolicy
from models.routing import Decision, LeadFacts, Person, RotationState, absences_of, decide, keys_for
from models.tables import Lead, LeadActivity, RotationCounter, User
from workers import lead_events


class RoutingConflict(Exception):
    """The rotation moved between the snapshot and the write: decide again."""


@dataclass(frozen=True)
class RoutingSnapshot:
    people: dict[str, Person]
    user_ids: dict[str, int]
    states: dict[str, RotationState]


def snapshot(session: Session, policy: DealerPolicy) -> RoutingSnapshot:
    """People (with their open leads now) and the rotations, as the decision needs them."""
    users = list(session.scalars(select(User).where(User.dealer_id == policy.id)))
    open_counts: dict[int | None, int] = {}
    # Counting open leads reads every open lead of the dealer: only when a rule needs it.
    if _counts_matter(policy.distribution) or any(u.max_open is not None for u in users):
        open_counts = dict(
            session.execute(
                select(Lead.editor_id, func.count())
                .where(Lead.dealer_id == policy.id, Lead.status == "open", Lead.editor_id.is_not(None))
                .group_by(Lead.editor_id)
            ).all()
        )
    people = {
        user.username: Person(
            username=user.username,
            weight=user.weight,
            max_open=user.max_open,
            open_leads=int(open_counts.get(user.id, 0)),
            absences=absences_of(user.absences),
            active=user.active,
        )
        for user in users
    }
    keys = keys_for(policy.distribution)
    rows = session.scalars(
        select(RotationCounter).where(RotationCounter.dealer_id == policy.id, RotationCounter.key.in_(keys))
    )
    states = {
        row.key: RotationState(turn=row.counter, credits=dict((row.state or {}).get("credits") or {}))
        for row in rows
    }
    return RoutingSnapshot(people, {u.username: u.id for u in users}, states)


def _counts_matter(distribution: DistributionConfig) -> bool:
    methods = [distribution.default.method, *(rule.assign.method for rule in distribution.rules)]
    return "least_open" in methods


def lock_rotations(session: Session, policy: DealerPolicy) -> None:
    """Lock the dealer's rotation rows (in key order, so lockers never wait in a circle)."""
    keys = keys_for(policy.distribution)
    for key in keys:
        session.execute(
            dialect_insert(session, RotationCounter)
            .values(dealer_id=policy.id, key=key, counter=0, state={})
            .on_conflict_do_nothing(index_elements=["dealer_id", "key"])
        )
    session.execute(
        select(RotationCounter.key)
        .where(RotationCounter.dealer_id == policy.id, RotationCounter.key.in_(keys))
        .order_by(RotationCounter.key)
        .with_for_update()
    ).all()


def previous_editor(session: Session, contact_id: int | None, *, other_than: int | None = None) -> str | None:
    """The editor of the contact's latest earlier lead (the "owner" rule)."""
    if contact_id is None:
        return None
    query = (
        select(User.username)
        .join(Lead, Lead.editor_id == User.id)
        .where(Lead.contact_id == contact_id)
        .order_by(Lead.created_at.desc(), Lead.id.desc())
        .limit(1)
    )
    if other_than is not None:
        query = query.where(Lead.id != other_than)
    return session.scalar(query)


def decide_for(
    policy: DealerPolicy,
    snap: RoutingSnapshot,
    facts: LeadFacts,
    *,
    now: datetime,
    exclude: str | None = None,
) -> Decision:
    """``exclude``: a person who must not get it (the one it is redistributed away from)."""
    people = dict(snap.people)
    if exclude in people:
        people[exclude] = replace(people[exclude], active=False)
    return decide(facts, people, policy.distribution, now=now, timezone=policy.timezone, states=snap.states)


def apply_decision(
    session: Session,
    policy: DealerPolicy,
    lead: Lead,
    decision: Decision,
    user_ids: Mapping[str, int],
    *,
    now: datetime,
    prefix: str = "",
) -> None:
    """Store the decision; :class:`RoutingConflict` when its rotation moved since the snapshot
    (a decision that moved a rotation to turn N was made on turn N - 1)."""
    if decision.rotation is not None and decision.rotation_key is not None:
        key = decision.rotation_key
        read = decision.rotation.turn - 1
        if read == 0:
            session.execute(
                dialect_insert(session, RotationCounter)
                .values(dealer_id=policy.id, key=key, counter=0, state={})
                .on_conflict_do_nothing(index_elements=["dealer_id", "key"])
            )
        moved = session.execute(
            update(RotationCounter)
            .where(
                RotationCounter.dealer_id == policy.id,
                RotationCounter.key == key,
                RotationCounter.counter == read,
            )
            .values(counter=decision.rotation.turn, state={"credits": decision.rotation.credits})
        ).rowcount  # type: ignore[attr-defined]
        if moved != 1:
            raise RoutingConflict(f"rotation {key!r} of {policy.id} moved past turn {read}")
    lead.editor_id = user_ids[decision.editor] if decision.editor else None
    lead.group = decision.group
    session.add(
        LeadActivity(
            lead_id=lead.id,
            at=now,
            kind="assigned",
            text=prefix + decision.explain(),
            data=decision.as_data(),
        )
    )


def facts_of(lead: Lead, *, mailbox: str, previous: str | None) -> LeadFacts:
    vehicle = lead.vehicle or {}
    return LeadFacts(
        source=lead.source.name if lead.source else "",
        type=lead.type,
        make=str(vehicle.get("make") or ""),
        status=str(vehicle.get("status") or ""),
        mailbox=mailbox,
        language=lead.language or "",
        previous_editor=previous,
    )


def route_lead(
    session: Session,
    policy: DealerPolicy,
    lead: Lead,
    *,
    mailbox: str,
    now: datetime,
    exclude: str | None = None,
    prefix: str = "",
) -> Decision:
    """Snapshot, decision and write in the caller's transaction (a person's action)."""
    snap = snapshot(session, policy)
    facts = facts_of(
        lead, mailbox=mailbox, previous=previous_editor(session, lead.contact_id, other_than=lead.id)
    )
    decision = decide_for(policy, snap, facts, now=now, exclude=exclude)
    apply_decision(session, policy, lead, decision, snap.user_ids, now=now, prefix=prefix)
    lead_events.assigned(session, lead, now=now, policy=policy)  # facts and webhooks (issue 16)
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
    lead_events.assigned(session, lead, now=now)  # facts and webhooks (issue 16)
    return user


def redistribute(
    session: Session, policy: DealerPolicy, username: str, *, now: datetime
) -> list[tuple[int, str | None]]:
    """Route every open lead of ``username`` again, without them; (lead id, new editor) each."""
    user = session.scalar(select(User).where(User.dealer_id == policy.id, User.username == username))
    if user is None:
        raise LookupError(f"no user {username!r} at dealer {policy.id!r}")
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
            policy,
            lead,
            mailbox="",
            now=now,
            exclude=username,
            prefix=f"Redistributed from {username}: ",
        )
        moved.append((lead.id, decision.editor))
    return moved
