"""Keep a lead's response-time facts (``lead_facts``) up to date, in the transaction of whatever
just happened to it (the lead arrived, a seller answered, it was completed or reopened, a stage
fired, it was reassigned). The rule is pure (:mod:`models.response_facts`); this reads the
lead's history and writes its one row."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.db import dialect_insert
from models.escalation import first_due
from models.policy import DealerPolicy
from models.report_tables import LeadFact
from models.response_facts import Answer, LeadHistory, ResponseFacts, compute_facts
from models.tables import EscalationEvent, InboundMessage, Lead, LeadActivity

PROBE_FORMAT = "probe"  # issue 14's end-to-end probe: never counted in reports


def arrival_of(session: Session, lead: Lead) -> datetime:
    """When the customer's enquiry was stored: the clock of stage 1 starts there too."""
    if lead.inbound_id is not None:
        received = session.scalar(
            select(InboundMessage.received_at).where(InboundMessage.id == lead.inbound_id)
        )
        if received is not None:
            return received
    return lead.created_at


def stage1_due_of(session: Session, policy: DealerPolicy, lead: Lead, arrived: datetime) -> datetime | None:
    """The lead's first stage-1 due date (a resubmission date set later replaces ``due_at``)."""
    if lead.due_version == 1 and lead.due_kind == "stage1":
        return lead.due_at
    fired = session.scalar(
        select(EscalationEvent.due_at).where(
            EscalationEvent.lead_id == lead.id,
            EscalationEvent.stage == "stage1",
            EscalationEvent.due_version == 1,
        )
    )
    return fired if fired is not None else first_due(arrived, policy.calendar, policy.escalation)


def history_of(session: Session, policy: DealerPolicy, lead: Lead) -> LeadHistory:
    stored = session.execute(
        select(
            LeadFact.arrived_at,
            LeadFact.stage1_due_at,
            LeadFact.first_answer_at,
            LeadFact.first_answer_kind,
            LeadFact.first_answer_by,
        ).where(LeadFact.lead_id == lead.id)
    ).first()
    if stored is not None:
        arrived, stage1_due = stored.arrived_at, stored.stage1_due_at
    else:
        arrived = arrival_of(session, lead)
        stage1_due = stage1_due_of(session, policy, lead, arrived)
    previous = (
        Answer(stored.first_answer_at, stored.first_answer_kind or "reply", stored.first_answer_by)
        if stored is not None and stored.first_answer_at is not None
        else None
    )
    reply = session.execute(
        select(LeadActivity.at, LeadActivity.user_id)
        .where(LeadActivity.lead_id == lead.id, LeadActivity.kind == "reply")
        .order_by(LeadActivity.at, LeadActivity.id)
        .limit(1)
    ).first()
    escalations = session.execute(
        select(EscalationEvent.stage, EscalationEvent.fired_at).where(
            EscalationEvent.lead_id == lead.id,
            EscalationEvent.stage.in_(("stage1", "stage2")),
            EscalationEvent.outcome != "skipped",
        )
    ).all()
    return LeadHistory(
        arrived_at=arrived,
        stage1_due_at=stage1_due,
        editor_id=lead.editor_id,
        first_reply=Answer(reply.at, "reply", reply.user_id) if reply is not None else None,
        completed_at=lead.completed_at if lead.status == "completed" else None,
        completion_reason=lead.completion_reason.code if lead.completion_reason else None,
        completed_by=lead.editor_id,
        escalations=[(stage, fired_at) for stage, fired_at in escalations],
        previous_answer=previous,
    )


def store(session: Session, lead: Lead, facts: ResponseFacts, *, now: datetime) -> None:
    values = {
        **facts.as_row(),
        "dealer_id": lead.dealer_id,
        "source_id": lead.source_id,
        "type": lead.type,
        "updated_at": now,
    }
    session.execute(
        dialect_insert(session, LeadFact)
        .values(lead_id=lead.id, **values)
        .on_conflict_do_update(index_elements=["lead_id"], set_=values)
    )


def created(session: Session, policy: DealerPolicy, lead: Lead, *, now: datetime) -> ResponseFacts | None:
    """A lead just written by ingest: nothing has happened to it yet, so no history to read (the
    stage-1 clock started when its mail was stored: ``due_set_at``)."""
    if lead.format == PROBE_FORMAT:
        return None
    arrived = lead.due_set_at or lead.created_at
    history = LeadHistory(arrived_at=arrived, stage1_due_at=lead.due_at, editor_id=lead.editor_id)
    facts = compute_facts(history, policy.calendar, policy.config.reports.answered_reasons)
    store(session, lead, facts, now=now)
    return facts


def refresh(session: Session, policy: DealerPolicy, lead: Lead, *, now: datetime) -> ResponseFacts | None:
    """Recompute and store the lead's facts (none for a probe lead)."""
    if lead.format == PROBE_FORMAT:
        return None
    session.flush()  # the activity or event that was just added counts
    session.expire(lead, ["completion_reason"])  # its id may have changed in this transaction
    facts = compute_facts(
        history_of(session, policy, lead), policy.calendar, policy.config.reports.answered_reasons
    )
    store(session, lead, facts, now=now)
    return facts
