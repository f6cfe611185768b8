"""Due dates on leads and the scheduler pass that fires escalation stages.

A pass takes the leads whose ``next_event_at`` has come (an index range scan: its cost is what
is due, not what is open), locks them with SKIP LOCKED so a second scheduler takes others,
and writes one ``escalation_events`` row per (lead, stage, due version) with INSERT … ON
CONFLICT DO NOTHING: a stage whose row already exists never fires again, whatever runs twice.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models.business_calendar import BusinessCalendar
from models.db import Database, dialect_insert
from models.escalation import EscalationRules, LeadClock, Step, first_due, plan
from models.tables import Contact, Dealer, EscalationEvent, Lead, LeadActivity, User
from workers.compose import build_notification, lead_summary
from workers.lead_mail import lead_data, new_message_id, queue_outbound

log = logging.getLogger(__name__)


def clock_of(lead: Lead) -> LeadClock:
    return LeadClock(
        status=lead.status,
        due_at=lead.due_at,
        due_kind=lead.due_kind,
        due_set_at=lead.due_set_at,
        reacted_at=lead.reacted_at,
    )


def _done(session: Session, lead: Lead) -> set[str]:
    return set(
        session.scalars(
            select(EscalationEvent.stage).where(
                EscalationEvent.lead_id == lead.id, EscalationEvent.due_version == lead.due_version
            )
        )
    )


Policy = tuple[BusinessCalendar, EscalationRules]


def policy_of(dealer: Dealer, cache: dict[str, Policy] | None = None) -> Policy:
    """The dealer's calendar and escalation rules, parsed from its configuration once per pass."""
    if cache is not None and dealer.id in cache:
        return cache[dealer.id]
    policy = (BusinessCalendar.from_config(dealer.config), EscalationRules.from_config(dealer.config))
    if cache is not None:
        cache[dealer.id] = policy
    return policy


def reschedule(session: Session, dealer: Dealer, lead: Lead, *, now: datetime) -> None:
    """Recompute when the scheduler must look at the lead next."""
    calendar, rules = policy_of(dealer)
    steps, next_at = plan(clock_of(lead), rules, calendar, done=_done(session, lead), now=now)
    lead.next_event_at = steps[0].fire_at if steps else next_at


def set_first_due(session: Session, dealer: Dealer, lead: Lead, *, received_at: datetime) -> None:
    calendar, rules = policy_of(dealer)
    lead.due_at = first_due(received_at, calendar, rules)
    lead.due_kind, lead.due_version, lead.due_set_at = "stage1", 1, received_at
    reschedule(session, dealer, lead, now=received_at)


def change_due(session: Session, lead: Lead, when: datetime, *, by: str, now: datetime) -> None:
    """A resubmission date set by the seller replaces the due date; the clock starts again."""
    dealer = session.get(Dealer, lead.dealer_id)
    assert dealer is not None
    zone = policy_of(dealer)[0].zone  # people read the dealer's local time
    before = lead.due_at.astimezone(zone).isoformat() if lead.due_at else "none"
    lead.due_at, lead.due_kind, lead.due_set_at = when, "resubmission", now
    lead.due_version += 1
    lead.last_activity_at = now
    session.add(
        LeadActivity(
            lead_id=lead.id,
            at=now,
            kind="due_changed",
            data={"by": by},
            text=f"Due date changed from {before} to {when.astimezone(zone).isoformat()} by {by} "
            "(resubmission)",
        )
    )
    reschedule(session, dealer, lead, now=now)


@dataclass
class PassResult:
    leads: int = 0
    fired: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    outbound_ids: list[int] = field(default_factory=list)


SUBJECTS = {
    "de": {
        "reminder": "Erinnerung: Lead #{id} ist bald fällig ({due})",
        "stage1": "Eskalation Stufe 1: Lead #{id} ist überfällig",
        "stage2": "Eskalation Stufe 2: Lead #{id} ({editor}) ist seit {since} überfällig",
    },
    "en": {
        "reminder": "Reminder: lead #{id} is due soon ({due})",
        "stage1": "Escalation stage 1: lead #{id} is overdue",
        "stage2": "Escalation stage 2: lead #{id} ({editor}) has been overdue since {since}",
    },
}


def _recipients(session: Session, dealer: Dealer, lead: Lead, stage: str) -> list[User]:
    editor = session.get(User, lead.editor_id) if lead.editor_id else None
    supervisor = session.get(User, editor.supervisor_id) if editor and editor.supervisor_id else None
    if stage == "stage2" or editor is None:
        if supervisor is not None:
            return [supervisor]
        # No editor (a pool lead) or no supervisor: the dealer's supervisors and admins.
        return list(
            session.scalars(
                select(User).where(
                    User.dealer_id == dealer.id, User.active, User.role.in_(("supervisor", "admin"))
                )
            )
        )
    return [editor]


def _fire(
    session: Session,
    dealer: Dealer,
    lead: Lead,
    step: Step,
    policy: Policy,
    now: datetime,
    grace: timedelta,
) -> list[int]:
    calendar, rules = policy
    lang = dealer.language if dealer.language in SUBJECTS else "en"
    editor = session.get(User, lead.editor_id) if lead.editor_id else None
    contact = session.get(Contact, lead.contact_id)
    assert contact is not None
    due_local = lead.due_at.astimezone(calendar.zone).strftime("%d.%m.%Y %H:%M") if lead.due_at else "-"
    subject = SUBJECTS[lang][step.stage].format(
        id=lead.id, due=due_local, editor=editor.name if editor else "Pool", since=due_local
    )
    legal = ((dealer.config.get("templates") or {}).get("default") or {}).get("legal_footer") or ""
    text = lead_summary(lead_data(lead, contact, editor), lang=lang, legal_footer_html=legal)
    ids: list[int] = []
    recipients = _recipients(session, dealer, lead, step.stage)
    for user in recipients:
        message_id = new_message_id("esc", lead, dealer)
        raw = build_notification(
            text=f"{subject}\n\n{text}",
            to=[user.email],
            subject=subject,
            message_id=message_id,
            from_name=dealer.from_name,
            from_address=dealer.from_address,
            date=now,
            origin=dealer.id,
        )
        ids.append(
            queue_outbound(
                session,
                dealer,
                lead,
                kind="notification",
                raw=raw,
                message_id=message_id,
                purpose=f"escalation:{lead.id}:{step.stage}:{lead.due_version}:{user.username}",
                envelope_from=dealer.from_address,
                recipients=[user.email],
                now=now,
                grace=grace,
                activity_text=f"{subject}: sent to {user.username}",
            )
        )
    kind = {"reminder": "reminder", "stage1": "escalated", "stage2": "escalated"}[step.stage]
    who = ", ".join(u.username for u in recipients) or "nobody (no supervisor configured)"
    session.add(
        LeadActivity(
            lead_id=lead.id,
            at=now,
            kind=kind,
            data={"stage": step.stage},
            text=f"{step.stage} due {step.nominal.isoformat()}: {who} informed",
        )
    )
    if step.stage == "stage2" and rules.stage2_action != "inform":
        supervisor = recipients[0] if recipients else None
        lead.editor_id = supervisor.id if rules.stage2_action == "supervisor" and supervisor else None
        target = supervisor.username if lead.editor_id and supervisor else "the pool"
        session.add(
            LeadActivity(
                lead_id=lead.id,
                at=now,
                kind="assigned",
                data={"stage": "stage2"},
                text=f"Stage 2: moved to {target}",
            )
        )
    return ids


def process_lead(
    session: Session,
    lead: Lead,
    *,
    now: datetime,
    grace: timedelta,
    result: PassResult,
    policies: dict[str, Policy] | None = None,
) -> None:
    dealer = session.get(Dealer, lead.dealer_id)
    assert dealer is not None
    policy = policy_of(dealer, policies)
    calendar, rules = policy
    steps, next_at = plan(clock_of(lead), rules, calendar, done=_done(session, lead), now=now)
    for step in steps:
        inserted = session.scalar(
            dialect_insert(session, EscalationEvent)
            .values(
                lead_id=lead.id,
                stage=step.stage,
                due_version=lead.due_version,
                due_at=step.nominal,
                fired_at=now,
                outcome="sent" if step.fire else "skipped",
            )
            .on_conflict_do_nothing(index_elements=["lead_id", "stage", "due_version"])
            .returning(EscalationEvent.id)
        )
        if inserted is None:
            continue  # another scheduler fired it
        if step.fire:
            result.outbound_ids += _fire(session, dealer, lead, step, policy, now, grace)
            result.fired[step.stage] = result.fired.get(step.stage, 0) + 1
        else:
            result.skipped += 1
            session.add(
                LeadActivity(
                    lead_id=lead.id,
                    at=now,
                    kind="reminder_skipped",
                    data={},
                    text="Reminder not sent: stage 1 was due as well",
                )
            )
    lead.next_event_at = next_at


def run_pass(db: Database, *, now: datetime, grace: timedelta, batch: int = 500) -> PassResult:
    """One scheduler pass over what is due; repeat while a batch comes back full."""
    result = PassResult()
    policies: dict[str, Policy] = {}
    while True:
        with db.session() as session:
            leads = list(
                session.scalars(
                    select(Lead)
                    .where(Lead.next_event_at <= now)
                    .order_by(Lead.next_event_at)
                    .limit(batch)
                    .with_for_update(skip_locked=True, of=Lead)
                ).unique()
            )
            for lead in leads:
                process_lead(session, lead, now=now, grace=grace, result=result, policies=policies)
        result.leads += len(leads)
        if len(leads) < batch:
            return result


def next_event(db: Database) -> datetime | None:
    with db.session() as session:
        return session.scalar(select(func.min(Lead.next_event_at)))
