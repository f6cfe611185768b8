"""What people do with a lead: answer the customer, note, complete. Each is recorded."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from models.business_calendar import BusinessCalendar
from models.escalation import parse_when
from models.tables import CompletionReason, Contact, Dealer, InboundMessage, Lead, LeadActivity, User
from workers.assign import reassign
from workers.compose import RenderedMail, build_message, render_mail
from workers.escalations import change_due, reschedule
from workers.ingest import reply_address
from workers.lead_mail import new_message_id, queue_outbound
from workers.mail_context import context_for


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
    dealer = session.get(Dealer, lead.dealer_id)
    assert dealer is not None
    try:
        moment = parse_when(when, now=now, calendar=BusinessCalendar.from_config(dealer.config))
    except ValueError as exc:
        raise ActionError(str(exc)) from None
    change_due(session, lead, moment, by=by, now=now)
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


def _render_reply(session: Session, lead: Lead, body: str, by: User) -> tuple[RenderedMail, Dealer, Contact]:
    if not body.strip():
        raise ActionError("the reply is empty")
    contact = session.get(Contact, lead.contact_id)
    dealer = session.get(Dealer, lead.dealer_id)
    assert contact is not None and dealer is not None
    if not contact.email:
        raise ActionError(
            f"the customer of lead {lead.id} has no email address; call {contact.phone or 'them'}"
        )
    lang = lead.language or dealer.language
    subject = lead.subject or ("Ihre Anfrage" if lang == "de" else "Your enquiry")
    subject = subject if subject.lower().startswith(("re:", "aw:")) else f"Re: {subject}"
    rendered = render_mail(
        templates=dealer.config.get("templates") or {},
        group=lead.group,
        lang=lang,
        default_lang=dealer.language,
        context=context_for(dealer, lead, contact, by, lang),
        body_text=body.strip(),
        subject=subject,
        with_attachments=False,
    )
    return rendered, dealer, contact


def reply_preview(session: Session, lead: Lead, body: str, *, by: User) -> RenderedMail:
    """The reply exactly as :func:`reply` would frame it; nothing is queued or recorded."""
    return _render_reply(session, lead, body, by)[0]


def reply(
    session: Session, lead: Lead, body: str, *, by: User, now: datetime, grace: timedelta = timedelta(0)
) -> int:
    """The seller's words framed by the dealer's header and footers, to the customer, in the
    enquiry's thread. It is the reaction that stops the stage-1 clock."""
    rendered, dealer, contact = _render_reply(session, lead, body, by)
    assert contact.email  # checked while rendering
    in_reply_to, references = _thread(session, lead)
    message_id = new_message_id("re", lead, dealer)
    raw = build_message(
        rendered,
        from_name=f"{by.name} | {dealer.from_name}",
        from_address=dealer.from_address,
        to=contact.email,
        message_id=message_id,
        date=now,
        origin=dealer.id,
        in_reply_to=in_reply_to,
        references=references,
        reply_to=reply_address(dealer.from_address, lead.reply_token or ""),
    )
    outbound_id = queue_outbound(
        session,
        dealer,
        lead,
        kind="reply",
        purpose=f"reply:lead:{lead.id}:{secrets.token_hex(8)}",
        raw=raw,
        message_id=message_id,
        envelope_from=dealer.from_address,
        recipients=[contact.email],
        now=now,
        grace=grace,
        activity_text=f"{by.username} answered {contact.email}:\n{body.strip()[:4000]}",
    )
    lead.reacted_at = now
    lead.last_activity_at = now
    reschedule(session, dealer, lead, now=now)  # the reaction stops the clock
    return outbound_id


def note(session: Session, lead: Lead, text: str, *, by: str, now: datetime) -> None:
    if not text.strip():
        raise ActionError("the note is empty")
    session.add(
        LeadActivity(lead_id=lead.id, at=now, kind="note", text=f"{by}: {text.strip()}", data={"by": by})
    )
    lead.last_activity_at = now


def usable_reasons(session: Session, dealer_id: str) -> dict[str, CompletionReason]:
    """System reasons, overridden (renamed or hidden) by the dealer's rows of the same code."""
    rows = session.scalars(
        select(CompletionReason)
        .where(or_(CompletionReason.dealer_id.is_(None), CompletionReason.dealer_id == dealer_id))
        .order_by(CompletionReason.dealer_id.is_not(None))
    )
    reasons: dict[str, CompletionReason] = {}
    for row in rows:  # system rows first, the dealer's win
        reasons[row.code] = row
    return {code: row for code, row in reasons.items() if not row.hidden}


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
    dealer = session.get(Dealer, lead.dealer_id)
    assert dealer is not None
    reschedule(session, dealer, lead, now=now)


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
