"""A stored inbound message becomes what it means, in one transaction, safe to repeat:

- automatic mail (bounce, auto-reply, bulk, saved-search alert): ``ignored`` with the reason;
- a customer's reply to our mail: an activity on its lead;
- each enquiry in it: a contact (matched by email, then phone) and either an activity on the
  contact's open lead or a new lead, assigned by rotation and answered by the autoresponder;
- a mail nobody can make sense of: ``unrecognised``, waiting for a person.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.orm import Session

from intake.parsing.classify import Classification
from intake.parsing.enquiry import Enquiry
from intake.parsing.extract import extract
from intake.parsing.mime import ParsedMail, parse_mail
from intake.store import mailbox_key
from models.autoresponse_gate import autoresponse_gate
from models.contacts import normalise_email, normalise_phone
from models.db import dialect_insert
from models.durations import parse_duration
from models.tables import (
    INBOUND_FINAL_STATES,
    Contact,
    Dealer,
    InboundMessage,
    Lead,
    LeadActivity,
    OutboundMessage,
    Source,
    User,
)
from workers.assign import route_lead
from workers.bounces import record_bounce
from workers.compose import build_message, render_mail
from workers.escalations import set_first_due
from workers.lead_mail import new_message_id, queue_lead_mails, queue_outbound
from workers.mail_context import context_for
from workers.parse_facts import NOTHING_CONFIGURED, RECEIVING_VIAS, ReceivingSide, extract_options
from workers.reply_lookup import find_replied_lead

log = logging.getLogger(__name__)

RESEND_WINDOW = timedelta(days=30)


@dataclass(frozen=True)
class Timing:
    # How long a new outbox row waits for its enqueued send before the sweeper steps in.
    grace: timedelta = timedelta(seconds=60)
    # An autoresponse not delivered by then is marked expired rather than sent late.
    autoresponse_max_age: timedelta = timedelta(hours=4)


@dataclass
class IngestResult:
    state: str
    lead_ids: list[int] = field(default_factory=list)
    outbound_ids: list[int] = field(default_factory=list)


def ingest_message(
    session: Session,
    inbound_id: int,
    *,
    now: datetime,
    timing: Timing = Timing(),
    receiving: ReceivingSide = NOTHING_CONFIGURED,
) -> IngestResult:
    # FOR UPDATE serialises two workers on the same row (PostgreSQL); on SQLite the
    # BEGIN IMMEDIATE of every transaction does the same.
    row = session.get(InboundMessage, inbound_id, with_for_update=True)
    if row is None:
        return IngestResult("missing")
    if row.state in INBOUND_FINAL_STATES:
        return IngestResult(row.state)
    return process_inbound(session, row, now=now, timing=timing, receiving=receiving)


def process_inbound(
    session: Session,
    row: InboundMessage,
    *,
    now: datetime,
    timing: Timing,
    force_source: str | None = None,
    receiving: ReceivingSide = NOTHING_CONFIGURED,
) -> IngestResult:
    dealer = session.get(Dealer, row.dealer_id)
    assert dealer is not None
    parsed = parse_mail(row.raw)
    extraction = extract(parsed, **extract_options(parsed, row, dealer, receiving))
    if extraction.kind in ("auto_reply", "bounce", "bulk"):
        linked = None
        if extraction.bounce is not None:  # a report on one of our mails: onto its lead
            linked = record_bounce(session, dealer.id, extraction.bounce, inbound_id=row.id, now=now)
        where = f" (lead {linked.id})" if linked is not None else ""
        finish_inbound(row, "ignored", f"{extraction.kind}: {extraction.reason}{where}", now)
        return IngestResult("ignored", lead_ids=[linked.id] if linked is not None else [])

    replied = find_replied_lead(session, dealer.id, extraction, parsed)
    if replied is not None:
        text = _strip_quote(parsed.body_text)[:20000]
        _activity(session, replied, now, "customer_reply", text or parsed.subject, inbound_id=row.id)
        replied.last_activity_at = now
        finish_inbound(row, "processed", f"reply to lead {replied.id}", now)
        return IngestResult("processed", lead_ids=[replied.id])

    if extraction.kind == "unrecognised" or not extraction.enquiries:
        finish_inbound(row, "unrecognised", extraction.reason or "no enquiry found", now)
        return IngestResult("unrecognised")

    result = IngestResult("processed")
    for ordinal, enquiry in enumerate(extraction.enquiries):
        if force_source:
            enquiry.source = force_source
        lead, outbound_ids = apply_enquiry(session, dealer, row, parsed, enquiry, ordinal, now, timing)
        result.lead_ids.append(lead.id)
        result.outbound_ids += outbound_ids
    finish_inbound(row, "processed", extraction.reason or None, now)
    return result


def finish_inbound(row: InboundMessage, state: str, reason: str | None, now: datetime) -> None:
    row.state = state
    row.reason = reason
    row.error = None
    row.next_attempt_at = None
    row.updated_at = now


def _activity(session: Session, lead: Lead, now: datetime, kind: str, text: str, **extra: Any) -> None:
    session.add(LeadActivity(lead_id=lead.id, at=now, kind=kind, text=text, data={}, **extra))


_QUOTE_START = re.compile(
    r"^(>|-{2,} ?(original|ursprüngliche)|am .{5,80} schrieb|on .{5,80} wrote|von: |from: )", re.I
)


def _strip_quote(text: str) -> str:
    """The new part of a reply: up to the first quoted line or "On … wrote:" header."""
    kept: list[str] = []
    for line in text.splitlines():
        if _QUOTE_START.match(line.strip()):
            break
        kept.append(line)
    return "\n".join(kept).strip() or text.strip()


def fingerprint(enquiry: Enquiry) -> str:
    """What makes two mails the same enquiry: who, about what, saying what."""
    words = " ".join(re.findall(r"\w+", enquiry.message.lower()))[:2000]
    parts = [
        enquiry.source.lower(),
        normalise_email(enquiry.customer.email),
        ",".join(sorted(re.sub(r"\D", "", p) for p in enquiry.customer.phones)),
        enquiry.vehicle.make.lower(),
        enquiry.vehicle.model.lower(),
        enquiry.vehicle.vin,
        enquiry.vehicle.url,
        words,
    ]
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


def _resent_lead(
    session: Session, dealer_id: str, enquiry: Enquiry, digest: str, now: datetime
) -> Lead | None:
    conditions: list[ColumnElement[bool]] = [
        (Lead.fingerprint == digest) & (Lead.created_at >= now - RESEND_WINDOW)
    ]
    if enquiry.external_id:
        conditions.append(Lead.external_id == enquiry.external_id)
    return session.scalar(
        select(Lead).where(Lead.dealer_id == dealer_id, or_(*conditions)).order_by(Lead.id).limit(1)
    )


def match_contact(session: Session, dealer: Dealer, enquiry: Enquiry, now: datetime) -> Contact:
    """Email first, then phone (E.164, the dealer's country as default region); merge new
    details without overwriting good ones with empty ones."""
    customer = enquiry.customer
    email = normalise_email(customer.email) if customer.email else ""
    phones = [p for p in (normalise_phone(raw, dealer.country) for raw in customer.phones) if p]
    contact = None
    if email:
        contact = session.scalar(
            select(Contact)
            .where(Contact.dealer_id == dealer.id, Contact.email == email)
            .order_by(Contact.id)
            .limit(1)
        )
    if contact is None and phones:
        contact = session.scalar(
            select(Contact)
            .where(Contact.dealer_id == dealer.id, Contact.phone.in_(phones))
            .order_by(Contact.id)
            .limit(1)
        )
    if contact is None:
        contact = Contact(dealer_id=dealer.id, created_at=now, updated_at=now, details={})
        session.add(contact)
    details = dict(contact.details or {})
    for key in ("first_name", "last_name", "salutation", "street", "postal_code", "city"):
        value = getattr(customer, key)
        if value and not details.get(key):
            details[key] = value
    known = list(details.get("phones") or [])
    details["phones"] = known + [p for p in phones if p not in known]
    contact.details = details
    if customer.display_name and not contact.name:
        contact.name = customer.display_name[:200]
    if email and not contact.email:
        contact.email = email
    if phones and not contact.phone:
        contact.phone = phones[0]
    contact.updated_at = now
    session.flush()
    return contact


def _source_id(session: Session, dealer_id: str, name: str) -> int | None:
    if not name:
        return None
    session.execute(
        dialect_insert(session, Source)
        .values(dealer_id=dealer_id, name=name[:100], rules={})
        .on_conflict_do_nothing(index_elements=["dealer_id", "name"])
    )
    return session.scalar(select(Source.id).where(Source.dealer_id == dealer_id, Source.name == name[:100]))


def apply_enquiry(
    session: Session,
    dealer: Dealer,
    row: InboundMessage,
    parsed: ParsedMail,
    enquiry: Enquiry,
    ordinal: int,
    now: datetime,
    timing: Timing,
) -> tuple[Lead, list[int]]:
    """The enquiry as a resend, an activity on an open lead, or a new routed lead; returns the
    lead and the outbox rows written (answer, forward, notification)."""
    digest = fingerprint(enquiry)
    resent = _resent_lead(session, dealer.id, enquiry, digest, now)
    if resent is not None:
        why = "ADF status resend" if enquiry.resend else "same enquiry as before"
        _activity(
            session,
            resent,
            now,
            "resent",
            f"The enquiry arrived again ({why}); no new lead.",
            inbound_id=row.id,
        )
        return resent, []

    contact = match_contact(session, dealer, enquiry, now)
    open_lead = session.scalar(
        select(Lead)
        .where(Lead.dealer_id == dealer.id, Lead.contact_id == contact.id, Lead.status == "open")
        .order_by(Lead.last_activity_at.desc())
        .limit(1)
    )
    if open_lead is not None:
        text = f"New enquiry ({enquiry.type}): {parsed.subject}\n{enquiry.message}".strip()
        _activity(session, open_lead, now, "enquiry", text[:20000], inbound_id=row.id)
        open_lead.last_activity_at = now
        if not open_lead.vehicle and not enquiry.vehicle.is_empty():
            open_lead.vehicle = enquiry.vehicle.as_dict()
        _activity(
            session, open_lead, now, "autoresponse_skipped", "follow-up on an open lead: not answered again"
        )
        return open_lead, []

    lead = Lead(
        dealer_id=dealer.id,
        contact_id=contact.id,
        inbound_id=row.id,
        ordinal=ordinal,
        type=enquiry.type,
        source_id=_source_id(session, dealer.id, enquiry.source),
        group="default",
        status="open",
        language=enquiry.language or dealer.language,
        subject=parsed.subject[:500] or None,
        message=enquiry.message[:20000],
        vehicle=enquiry.vehicle.as_dict(),
        trade_ins=[v.as_dict() for v in enquiry.trade_ins],
        links=enquiry.links,
        format=enquiry.format,
        external_id=enquiry.external_id[:300] or None,
        sender_verification=enquiry.sender_check or None,
        fingerprint=digest,
        reply_token=secrets.token_hex(8),
        created_at=now,
        last_activity_at=now,
    )
    session.add(lead)
    session.flush()
    who = contact.email or contact.phone or "unknown"
    _activity(
        session,
        lead,
        now,
        "received",
        f"Received via {row.via} from {who} ({enquiry.format}, {enquiry.source or 'no source'})",
        inbound_id=row.id,
    )
    if enquiry.sender_check_detail:
        _activity(session, lead, now, "sender_check", enquiry.sender_check_detail)

    mailbox = mailbox_key(row.envelope_to[0]) if row.envelope_to else ""
    route_lead(session, dealer, lead, mailbox=mailbox, now=now)
    set_first_due(session, dealer, lead, received_at=row.received_at)
    editor = session.get(User, lead.editor_id) if lead.editor_id else None
    outbound = queue_lead_mails(session, dealer, lead, contact, editor, row, now=now, grace=timing.grace)
    answer = _autoresponse(session, dealer, lead, contact, editor, row, parsed, now, timing)
    return lead, ([answer] if answer is not None else []) + outbound


def reply_address(mailbox: str, token: str) -> str:
    local, _, domain = mailbox.partition("@")
    return f"{local}+r-{token}@{domain}"


def _autoresponse(
    session: Session,
    dealer: Dealer,
    lead: Lead,
    contact: Contact,
    editor: User | None,
    row: InboundMessage,
    parsed: ParsedMail,
    now: datetime,
    timing: Timing,
) -> int | None:
    recipient = contact.email or ""
    last = session.scalar(
        select(func.max(OutboundMessage.created_at)).where(
            OutboundMessage.dealer_id == dealer.id,
            OutboundMessage.kind == "autoresponse",
            OutboundMessage.recipient == recipient,
        )
    )
    gate = autoresponse_gate(
        parsed,
        Classification("lead"),
        recipient=recipient,
        envelope_from=row.envelope_from,
        envelope_known=row.via in RECEIVING_VIAS,
        last_autoresponse_at=last,
        window=parse_duration(dealer.config.get("autoresponse_window") or "24h"),
        now=now,
    )
    if not gate.send:
        _activity(session, lead, now, "autoresponse_skipped", gate.reason)
        return None
    lang = lead.language or dealer.language
    context = context_for(dealer, lead, contact, editor, lang)
    rendered = render_mail(
        templates=dealer.config.get("templates") or {},
        group=lead.group,
        lang=lang,
        default_lang=dealer.language,
        context=context,
    )
    message_id = new_message_id("ar", lead, dealer)
    raw = build_message(
        rendered,
        from_name=dealer.from_name,
        from_address=dealer.from_address,
        to=recipient,
        message_id=message_id,
        date=now,
        origin=dealer.id,
        in_reply_to=parsed.message_id or None,
        references=parsed.references,
        auto_submitted="auto-replied",
        reply_to=reply_address(dealer.from_address, lead.reply_token or ""),
    )
    # RFC 3834 §3.3: the null envelope sender, so nothing bounces back to a robot.
    return queue_outbound(
        session,
        dealer,
        lead,
        kind="autoresponse",
        purpose=f"autoresponse:lead:{lead.id}",
        raw=raw,
        message_id=message_id,
        envelope_from="",
        recipients=[recipient],
        now=now,
        grace=timing.grace,
        expires_at=now + timing.autoresponse_max_age,
    )
