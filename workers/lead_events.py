"""What follows from something that happened to a lead, besides the action itself: its
response-time facts are brought up to date and the dealer's webhooks get the event, in the
same transaction. The lead actions, ingest, assignment and the escalation pass each call one
function here (the one place to look for "what else happens when…")."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from models.policy import DealerPolicy, load_policy
from models.tables import Lead
from workers import lead_facts, webhooks


def _policy(session: Session, lead: Lead, policy: DealerPolicy | None) -> DealerPolicy:
    return policy if policy is not None else load_policy(session, lead.dealer_id)


def created(session: Session, policy: DealerPolicy, lead: Lead, *, now: datetime) -> None:
    """A new lead, routed: ``lead.created``, and ``lead.assigned`` when it has an editor."""
    lead_facts.created(session, policy, lead, now=now)
    webhooks.emit(session, policy, lead, "lead.created", now=now)
    if lead.editor_id is not None:
        webhooks.emit(session, policy, lead, "lead.assigned", now=now)


def assigned(session: Session, lead: Lead, *, now: datetime, policy: DealerPolicy | None = None) -> None:
    """Another editor (or the pool): who gets the credit while it is unanswered changes."""
    policy = _policy(session, lead, policy)
    lead_facts.refresh(session, policy, lead, now=now)
    webhooks.emit(session, policy, lead, "lead.assigned", now=now)


def answered(
    session: Session, lead: Lead, *, now: datetime, by: str, policy: DealerPolicy | None = None
) -> None:
    """A seller's reply to the customer (every one; the first is the lead's first answer)."""
    policy = _policy(session, lead, policy)
    facts = lead_facts.refresh(session, policy, lead, now=now)
    first = facts is not None and facts.first_answer_at == now and facts.first_answer_kind == "reply"
    webhooks.emit(
        session, policy, lead, "lead.answered", now=now, extra={"answer": {"by": by, "first": first}}
    )


def completed(session: Session, lead: Lead, *, now: datetime, policy: DealerPolicy | None = None) -> None:
    policy = _policy(session, lead, policy)
    lead_facts.refresh(session, policy, lead, now=now)
    webhooks.emit(session, policy, lead, "lead.completed", now=now)


def reopened(session: Session, lead: Lead, *, now: datetime, policy: DealerPolicy | None = None) -> None:
    lead_facts.refresh(session, _policy(session, lead, policy), lead, now=now)


def escalated(session: Session, policy: DealerPolicy, lead: Lead, stage: str, *, now: datetime) -> None:
    """A stage fired (the reminder is no escalation: it only reminds the editor)."""
    if stage not in ("stage1", "stage2"):
        return
    lead_facts.refresh(session, policy, lead, now=now)
    webhooks.emit(session, policy, lead, "lead.escalated", now=now, extra={"stage": stage})
