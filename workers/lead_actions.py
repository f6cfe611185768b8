"""What people do with a lead: reassign, set a due date, answer the customer, note, complete,
reopen. Each is recorded on the lead's timeline with who did it."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from intake.parsing.our_mail import reply_address
from models.escalation import parse_when
from models.policy import DealerPolicy, load_policy
from models.tables import CompletionReason, Contact, InboundMessage, Lead, LeadActivity, User
from workers import lead_events, outbox
from workers.assign import reassign
from workers.escalations import change_due, reschedule
from workers.render.blocks import FramedMail
from workers.render.context import lead_context


class ActionError(Exception):
    """The action cannot be done; the message says why, for the person who asked."""


def locked_lead(session: Session, lead_id: int) -> Lead:
    """The lead, locked for an action (FOR UPDATE on PostgreSQL; SQLite's write lock anyway)."""
    lead = session.get(Lead, lead_id, with_for_update={"of": Lead})
    if lead is None:
        raise ActionError(f"no lead {lead_id}")
    return lead


def assign(session: Session, lead: Lead, username: str, *, by: str, reason: str, now: datetime) -> User:
    try:
        return reassign(session, lead, username, by=by, reason=reason, now=now)
    except LookupError as exc:
        raise ActionError(str(exc.args[0])) from None


def set_due(session: Session, lead: Lead, when: str, *, by: str, now: datetime) -> datetime:
    """A resubmission date as people write it (see :func:`models.escalation.parse_when`)."""
    if lead.status != "open":
        raise ActionError(f"lead {lead.id} is {lead.status}")
    policy = load_policy(session, lead.dealer_id)
    try:
        moment = parse_when(when, now=now, calendar=policy.calendar)
    except ValueError as exc:
        raise ActionError(str(exc)) from None
    change_due(session, policy, lead, moment, by=by, now=now)
    return moment


def acting_user(session: Session, lead: Lead, username: str | None) -> User:
    if username is None:
        if lead.editor is None:
            raise ActionError(f"lead {lead.id} has no editor; say who answers with --as USER")
        return lead.editor
    user = session.scalar(select(User).where(User.dealer_id == lead.dealer_id, User.username == username))
    if user is None or not user.active:
        raise ActionError(f"no active user {username!r} at dealer {lead.dealer_id!r}")
    return user


def _thread(session: Session, lead: Lead) -> tuple[str | None, list[str]]:
    """The customer's latest message on this lead, to answer in its thread."""
    ids = [
        message_id
        for message_id in session.scalars(
            select(InboundMessage.message_id)
            .join(LeadActivity, LeadActivity.inbound_id == InboundMessage.id)
            .where(LeadActivity.lead_id == lead.id)
            .order_by(LeadActivity.at, LeadActivity.id)
        )
        if message_id
    ]
    return (ids[-1], ids[:-1]) if ids else (None, [])


def reply_mail(session: Session, policy: DealerPolicy, lead: Lead, body: str, *, by: User) -> outbox.MailSpec:
    """The seller's words as a mail to the customer (not queued): for a preview, or to send."""
    if not body.strip():
        raise ActionError("the reply is empty")
    contact = session.get(Contact, lead.contact_id)
    assert contact is not None
    if not contact.email:
        raise ActionError(
            f"the customer of lead {lead.id} has no email address; call {contact.phone or 'them'}"
        )
    lang = lead.language or policy.language
    in_reply_to, references = _thread(session, lead)
    return outbox.MailSpec(
        kind="reply",
        purpose=f"reply:lead:{lead.id}:{secrets.token_hex(8)}",
        to=(contact.email,),
        lang=lang,
        context=lead_context(policy.config, lead, contact, by, lang),
        lead_id=lead.id,
        group=lead.group,
        from_name=f"{by.name} | {policy.sender_name}",
        reply_to=reply_address(policy.sender_address, lead.reply_token or ""),
        in_reply_to=in_reply_to,
        references=tuple(references),
        body_text=body.strip(),
        activity_text=f"{by.username} answered {contact.email}:\n{body.strip()[:4000]}",
        user_id=by.id,
    )


def reply_preview(session: Session, lead: Lead, body: str, *, by: User) -> FramedMail:
    """The reply exactly as :func:`reply` would frame it; nothing is queued or recorded."""
    policy = load_policy(session, lead.dealer_id)
    return outbox.framed(policy, reply_mail(session, policy, lead, body, by=by))


def reply(
    session: Session, lead: Lead, body: str, *, by: User, now: datetime, grace: timedelta = timedelta(0)
) -> int:
    """The seller's words framed by the dealer's header and footers, to the customer, in the
    enquiry's thread. It is the reaction that stops the stage-1 clock. Returns the outbox row."""
    policy = load_policy(session, lead.dealer_id)
    outbound_id = outbox.send_mail(
        session, policy, reply_mail(session, policy, lead, body, by=by), now=now, grace=grace
    )
    assert outbound_id is not None  # its purpose is new (a random part)
    lead.reacted_at = now
    lead.last_activity_at = now
    reschedule(session, policy, lead, now=now)  # the reaction stops the clock
    lead_events.answered(session, lead, now=now, by=by.username, policy=policy)
    return outbound_id


def note(session: Session, lead: Lead, text: str, *, by: str, now: datetime) -> None:
    if not text.strip():
        raise ActionError("the note is empty")
    session.add(
        LeadActivity(lead_id=lead.id, at=now, kind="note", text=f"{by}: {text.strip()}", data={"by": by})
    )
    lead.last_activity_at = now


def usable_reasons(
    session: Session, dealer_id: str, *, include_hidden: bool = False
) -> dict[str, CompletionReason]:
    """System reasons, overridden (renamed or hidden) by the dealer's rows of the same code;
    ``include_hidden``: hidden ones too (old leads and reports still name them)."""
    rows = session.scalars(
        select(CompletionReason)
        .where(or_(CompletionReason.dealer_id.is_(None), CompletionReason.dealer_id == dealer_id))
        .order_by(CompletionReason.dealer_id.is_not(None))
    )
    reasons: dict[str, CompletionReason] = {}
    for row in rows:  # system rows first, the dealer's win
        reasons[row.code] = row
    return {code: row for code, row in reasons.items() if include_hidden or not row.hidden}


def complete(session: Session, lead: Lead, code: str, *, by: str, now: datetime) -> CompletionReason:
    if lead.status == "completed":
        raise ActionError(f"lead {lead.id} is already completed")
    reasons = usable_reasons(session, lead.dealer_id)
    reason = reasons.get(code)
    if reason is None:
        raise ActionError(f"unknown completion reason {code!r}; one of: {', '.join(sorted(reasons))}")
    lead.status, lead.completed_at, lead.completion_reason_id = "completed", now, reason.id
    lead.last_activity_at = now
    lead.next_event_at = None
    session.add(
        LeadActivity(
            lead_id=lead.id, at=now, kind="completed", text=f"Completed by {by}: {reason.label}", data={}
        )
    )
    lead_events.completed(session, lead, now=now)
    return reason


def reopen(session: Session, lead: Lead, *, by: str, now: datetime) -> None:
    """A completed lead is open again (the customer came back, a mistake); its reason stays in
    the timeline. Its due date and stages stand as they were: stages that fired never fire twice."""
    if lead.status != "completed":
        raise ActionError(f"lead {lead.id} is not completed")
    before = lead.completion_reason.label if lead.completion_reason else "-"
    lead.status, lead.completed_at, lead.completion_reason_id = "open", None, None
    lead.last_activity_at = now
    session.add(
        LeadActivity(
            lead_id=lead.id,
            at=now,
            kind="reopened",
            text=f"Reopened by {by} (was: {before})",
            data={"by": by},
        )
    )
    reschedule(session, load_policy(session, lead.dealer_id), lead, now=now)
    lead_events.reopened(session, lead, now=now)


def to_pool(session: Session, lead: Lead, *, by: str, reason: str, now: datetime) -> None:
    """Give the lead back to the dealer's pool (no editor)."""
    if lead.editor_id is None:
        raise ActionError(f"lead {lead.id} is in the pool already")
    before = lead.editor.username if lead.editor else "?"
    lead.editor_id = None
    lead.last_activity_at = now
    text = f"Moved from {before} to the pool by {by}" + (f": {reason}" if reason else "")
    session.add(
        LeadActivity(lead_id=lead.id, at=now, kind="assigned", text=text, data={"by": by, "reason": reason})
    )
    lead_events.assigned(session, lead, now=now)
