"""Due dates on leads and the scheduler pass that fires escalation stages.

A pass takes the leads whose ``next_event_at`` has come (an index range scan: its cost is what
is due, not what is open), locks them with SKIP LOCKED so a second scheduler takes others,
and writes one ``escalation_events`` row per (lead, stage, due version) with INSERT … ON
CONFLICT DO NOTHING: a stage whose row already exists never fires again, whatever runs twice.

Like ingest, a pass prepares outside its write transactions: the events are claimed
(``pending``) and the leads moved on in one short transaction, the notifications rendered
outside it, then queued in a second one that marks the events ``sent``. A pass that dies in
between leaves ``pending`` events; the next pass queues their mails (the outbox's unique
purpose keeps that from doubling anything).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from models.db import Database, dialect_insert
from models.escalation import LeadClock, Step, first_due, plan
from models.log_context import each_logged, log_ids
from models.policy import DealerPolicy, policy_for
from models.tables import Contact, Dealer, EscalationEvent, Lead, LeadActivity, User
from workers import lead_events, outbox
from workers.render.context import lead_context

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
    if lead.id is None:  # a lead not written yet has fired nothing
        return set()
    return set(
        session.scalars(
            select(EscalationEvent.stage).where(
                EscalationEvent.lead_id == lead.id, EscalationEvent.due_version == lead.due_version
            )
        )
    )


def reschedule(session: Session, policy: DealerPolicy, lead: Lead, *, now: datetime) -> None:
    """Recompute when the scheduler must look at the lead next."""
    steps, next_at = plan(
        clock_of(lead), policy.escalation, policy.calendar, done=_done(session, lead), now=now
    )
    lead.next_event_at = steps[0].fire_at if steps else next_at


def set_first_due(session: Session, policy: DealerPolicy, lead: Lead, *, received_at: datetime) -> None:
    lead.due_at = first_due(received_at, policy.calendar, policy.escalation)
    lead.due_kind, lead.due_version, lead.due_set_at = "stage1", 1, received_at
    reschedule(session, policy, lead, now=received_at)


def change_due(
    session: Session, policy: DealerPolicy, lead: Lead, when: datetime, *, by: str, now: datetime
) -> None:
    """A resubmission date set by the seller replaces the due date; the clock starts again."""
    zone = policy.calendar.zone  # people read the dealer's local time
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
    reschedule(session, policy, lead, now=now)


@dataclass
class PassResult:
    leads: int = 0
    fired: dict[str, int] = field(default_factory=dict)
    skipped: int = 0
    outbound_ids: list[int] = field(default_factory=list)


def _recipients(session: Session, policy: DealerPolicy, lead: Lead, stage: str) -> list[User]:
    editor = session.get(User, lead.editor_id) if lead.editor_id else None
    supervisor = session.get(User, editor.supervisor_id) if editor and editor.supervisor_id else None
    if stage == "stage2" or editor is None:
        if supervisor is not None:
            return [supervisor]
        # No editor (a pool lead) or no supervisor: the dealer's supervisors and admins.
        return list(
            session.scalars(
                select(User)
                .where(User.dealer_id == policy.id, User.active, User.role.in_(("supervisor", "admin")))
                .order_by(User.id)
            )
        )
    return [editor]


def _mails(
    session: Session, policy: DealerPolicy, lead: Lead, stage: str, recipients: list[User]
) -> list[outbox.MailSpec]:
    """The notifications of one stage, as plain data (rendered later, outside the transaction)."""
    contact = session.get(Contact, lead.contact_id)
    editor = session.get(User, lead.editor_id) if lead.editor_id else None
    assert contact is not None
    context = lead_context(policy.config, lead, contact, editor, policy.language)
    return [
        outbox.MailSpec(
            kind=stage,
            purpose=f"escalation:{lead.id}:{stage}:{lead.due_version}:{user.username}",
            to=(user.email,),
            lang=policy.language,
            context=context,
            lead_id=lead.id,
            activity_text=f"{{subject}}: sent to {user.username}",
        )
        for user in recipients
        if user.email
    ]


def _fire(
    session: Session, policy: DealerPolicy, lead: Lead, step: Step, now: datetime
) -> list[outbox.MailSpec]:
    recipients = _recipients(session, policy, lead, step.stage)
    mails = _mails(session, policy, lead, step.stage, recipients)
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
    lead_events.escalated(session, policy, lead, step.stage, now=now)  # facts and webhooks (issue 16)
    action = policy.escalation.stage2_action
    if step.stage == "stage2" and action != "inform":
        supervisor = recipients[0] if recipients else None
        lead.editor_id = supervisor.id if action == "supervisor" and supervisor else None
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
        lead_events.assigned(session, lead, now=now, policy=policy)
    return mails


@dataclass
class _Claimed:
    policy: DealerPolicy
    mails: list[outbox.MailSpec]
    events: list[int]


def process_lead(
    session: Session, lead: Lead, policy: DealerPolicy, *, now: datetime, result: PassResult
) -> _Claimed:
    """Claim the lead's due stages (one event row each) and say which mails they send."""
    steps, next_at = plan(
        clock_of(lead), policy.escalation, policy.calendar, done=_done(session, lead), now=now
    )
    claimed = _Claimed(policy, [], [])
    for step in steps:
        event_id = session.scalar(
            dialect_insert(session, EscalationEvent)
            .values(
                lead_id=lead.id,
                stage=step.stage,
                due_version=lead.due_version,
                due_at=step.nominal,
                fired_at=now,
                outcome="pending" if step.fire else "skipped",
            )
            .on_conflict_do_nothing(index_elements=["lead_id", "stage", "due_version"])
            .returning(EscalationEvent.id)
        )
        if event_id is None:
            continue  # another scheduler fired it
        if step.fire:
            log.info("lead %s: %s fired (due %s)", lead.id, step.stage, step.nominal.isoformat())
            claimed.mails += _fire(session, policy, lead, step, now)
            claimed.events.append(event_id)
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
    return claimed


def _deliver(db: Database, claimed: list[_Claimed], *, now: datetime, grace: timedelta) -> list[int]:
    """Render the claimed stages' mails (outside any transaction), then queue them and mark
    their events sent in one short transaction."""
    prepared = [outbox.prepare(c.policy, spec, now=now) for c in claimed for spec in c.mails]
    events = [e for c in claimed for e in c.events]
    ids: list[int] = []
    with db.session() as session:
        for mail in prepared:
            outbound_id = outbox.queue(session, mail, now=now, grace=grace)
            if outbound_id is not None:
                ids.append(outbound_id)
        if events:
            session.execute(
                update(EscalationEvent).where(EscalationEvent.id.in_(events)).values(outcome="sent")
            )
    return ids


def _recover(db: Database, *, now: datetime, grace: timedelta, after: timedelta) -> list[int]:
    """Events left ``pending`` for longer than ``after`` by a pass that died before queueing
    their mails."""
    with db.session() as session:
        events = list(
            session.scalars(
                select(EscalationEvent)
                .where(
                    EscalationEvent.outcome == "pending",
                    EscalationEvent.fired_at < now - after,
                )
                .limit(500)
                .with_for_update(skip_locked=True)
            )
        )
        claimed = []
        for event in events:
            lead = session.get(Lead, event.lead_id)
            if lead is None:
                continue
            dealer = session.get(Dealer, lead.dealer_id)
            assert dealer is not None
            policy = policy_for(dealer)
            recipients = _recipients(session, policy, lead, event.stage)
            claimed.append(
                _Claimed(policy, _mails(session, policy, lead, event.stage, recipients), [event.id])
            )
    return _deliver(db, claimed, now=now, grace=grace) if claimed else []


def _log_ids(lead: Lead) -> dict[str, object]:
    return log_ids(lead_id=lead.id, dealer=lead.dealer_id)


def run_pass(
    db: Database,
    *,
    now: datetime,
    grace: timedelta,
    batch: int = 200,
    recover_after: timedelta = timedelta(seconds=60),
) -> PassResult:
    """One scheduler pass over what is due; repeat while a batch comes back full."""
    result = PassResult()
    result.outbound_ids += _recover(db, now=now, grace=grace, after=recover_after)
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
            wanted = {lead.dealer_id for lead in leads}
            dealers = {d.id: d for d in session.scalars(select(Dealer).where(Dealer.id.in_(wanted)))}
            claimed = [
                process_lead(session, lead, policy_for(dealers[lead.dealer_id]), now=now, result=result)
                for lead in each_logged(leads, _log_ids)
            ]
        result.leads += len(leads)
        claimed = [c for c in claimed if c.mails or c.events]
        if claimed:
            result.outbound_ids += _deliver(db, claimed, now=now, grace=grace)
        if len(leads) < batch:
            return result


def next_event(db: Database) -> datetime | None:
    with db.read() as session:
        return session.scalar(select(func.min(Lead.next_event_at)))
