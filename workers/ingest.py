"""A stored inbound message becomes a contact, an open lead, an assignment and an
autoresponse in the outbox, all in one transaction. Safe to run any number of times."""

from __future__ import annotations

import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from intake.parsing.classify import classify
from intake.parsing.mime import ParsedMail, parse_mail
from models.autoresponse_gate import NO_REPLY_LOCALPART, autoresponse_gate
from models.db import dialect_insert
from models.rotation import pick_by_turn
from models.tables import (
    INBOUND_FINAL_STATES,
    Contact,
    Dealer,
    InboundMessage,
    Lead,
    LeadActivity,
    OutboundMessage,
    RotationCounter,
    User,
)
from workers.compose import build_message, render_autoresponse, salutation

log = logging.getLogger(__name__)

AUTORESPONSE_WINDOW = timedelta(hours=24)


@dataclass
class IngestResult:
    state: str
    lead_ids: list[int] = field(default_factory=list)
    outbound_ids: list[int] = field(default_factory=list)


def ingest_message(
    session: Session, inbound_id: int, *, now: datetime, grace: timedelta = timedelta(seconds=60)
) -> IngestResult:
    """``grace``: how long a new outbox row waits for its enqueued send before the sweeper steps in."""
    # FOR UPDATE serialises two workers on the same row (PostgreSQL); on SQLite the
    # BEGIN IMMEDIATE of every transaction does the same.
    row = session.get(InboundMessage, inbound_id, with_for_update=True)
    if row is None:
        return IngestResult("missing")
    if row.state in INBOUND_FINAL_STATES:
        return IngestResult(row.state)
    dealer = session.get(Dealer, row.dealer_id)
    assert dealer is not None

    parsed = parse_mail(row.raw)
    classification = classify(parsed)
    if classification.kind != "lead":
        _finish(row, "ignored", f"{classification.kind}: {classification.reason}", now)
        return IngestResult("ignored")

    customer_email = _customer_address(parsed)
    if not customer_email:
        _finish(row, "unrecognised", "no customer address in From, Reply-To or Sender", now)
        return IngestResult("unrecognised")

    contact = _contact(session, dealer.id, customer_email, parsed.from_name, now)
    lead = Lead(
        dealer_id=dealer.id,
        contact_id=contact.id,
        inbound_id=row.id,
        ordinal=0,
        type="general",
        group="default",
        status="open",
        language=dealer.language,
        subject=parsed.subject[:500] or None,
        message=parsed.body_text[:20000],
        vehicle={},
        created_at=now,
        last_activity_at=now,
    )
    session.add(lead)
    session.flush()
    _activity(
        session, lead, now, "received", f"Received via {row.via} from {customer_email}", inbound_id=row.id
    )

    editor = _rotate(session, dealer)
    if editor is not None:
        lead.editor_id = editor.id
        _activity(session, lead, now, "assigned", f"Assigned to {editor.username} by rotation (default)")
    else:
        _activity(session, lead, now, "assigned", "No default user available: left in the pool")

    result = IngestResult("processed", lead_ids=[lead.id])
    outbound = _autoresponse(session, dealer, lead, contact, editor, row, parsed, classification, now, grace)
    if outbound is not None:
        result.outbound_ids.append(outbound)
    _finish(row, "processed", None, now)
    return result


def _finish(row: InboundMessage, state: str, reason: str | None, now: datetime) -> None:
    row.state = state
    row.reason = reason
    row.error = None
    row.next_attempt_at = None
    row.updated_at = now


def _customer_address(parsed: ParsedMail) -> str:
    """The customer's address: From, unless From is a no-reply robot and Reply-To says more."""
    sender = parsed.from_email
    if (not sender or NO_REPLY_LOCALPART.match(sender.partition("@")[0])) and parsed.reply_to:
        return parsed.reply_to
    return sender if "@" in sender else ""


def _contact(session: Session, dealer_id: str, email: str, name: str, now: datetime) -> Contact:
    contact = session.scalar(
        select(Contact)
        .where(Contact.dealer_id == dealer_id, Contact.email == email)
        .order_by(Contact.id)
        .limit(1)
    )
    if contact is None:
        contact = Contact(dealer_id=dealer_id, email=email, name=name or None, created_at=now, updated_at=now)
        session.add(contact)
        session.flush()
    elif name and not contact.name:
        contact.name = name
        contact.updated_at = now
    return contact


def _activity(session: Session, lead: Lead, now: datetime, kind: str, text: str, **extra: Any) -> None:
    session.add(LeadActivity(lead_id=lead.id, at=now, kind=kind, text=text, data={}, **extra))


def _rotate(session: Session, dealer: Dealer) -> User | None:
    """The next of the dealer's default users, by a counter advanced atomically in the DB."""
    default = (dealer.config.get("distribution") or {}).get("default") or {}
    if default.get("method") == "pool":
        return None
    names = list(default.get("users") or [])
    users = {
        u.username: u
        for u in session.scalars(
            select(User).where(User.dealer_id == dealer.id, User.username.in_(names), User.active)
        )
    }
    candidates = [n for n in names if n in users]
    if not candidates:
        return None
    key = "default:" + ",".join(candidates)
    session.execute(
        dialect_insert(session, RotationCounter)
        .values(dealer_id=dealer.id, key=key, counter=0)
        .on_conflict_do_nothing(index_elements=["dealer_id", "key"])
    )
    turn = session.scalar(
        update(RotationCounter)
        .where(RotationCounter.dealer_id == dealer.id, RotationCounter.key == key)
        .values(counter=RotationCounter.counter + 1)
        .returning(RotationCounter.counter)
    )
    chosen = pick_by_turn(candidates, int(turn or 1))
    return users[chosen] if chosen else None


def _autoresponse(
    session: Session,
    dealer: Dealer,
    lead: Lead,
    contact: Contact,
    editor: User | None,
    row: InboundMessage,
    parsed: ParsedMail,
    classification: Any,
    now: datetime,
    grace: timedelta,
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
        classification,
        recipient=recipient,
        envelope_from=row.envelope_from,
        last_autoresponse_at=last,
        window=AUTORESPONSE_WINDOW,
        now=now,
    )
    if not gate.send:
        _activity(session, lead, now, "autoresponse_skipped", gate.reason)
        return None
    lang = lead.language or dealer.language
    context = {
        "dealer": {"id": dealer.id, "name": dealer.name, "email": dealer.from_address},
        "editor": {"name": editor.name, "email": editor.email} if editor else {"name": "", "email": ""},
        "contact": {
            "name": contact.name or "",
            "email": contact.email or "",
            "salutation": salutation(contact.name, lang),
        },
        "lead": {"id": lead.id, "type": lead.type, "subject": lead.subject or ""},
        "vehicle": {"label": ""},
    }
    rendered = render_autoresponse(
        templates=dealer.config.get("templates") or {},
        group=lead.group,
        lang=lang,
        default_lang=dealer.language,
        context=context,
    )
    domain = dealer.from_address.partition("@")[2] or "lms.invalid"
    message_id = f"<lms.ar.{lead.id}.{secrets.token_hex(6)}@{domain}>"
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
    )
    outbound = OutboundMessage(
        dealer_id=dealer.id,
        lead_id=lead.id,
        purpose=f"autoresponse:lead:{lead.id}",
        kind="autoresponse",
        message_id=message_id,
        envelope_from="",  # RFC 3834 §3.3: the null sender, so nothing bounces back to a robot
        envelope_to=[recipient],
        recipient=recipient,
        raw=raw,
        state="queued",
        attempts=0,
        created_at=now,
        next_attempt_at=now + grace,
        updated_at=now,
    )
    session.add(outbound)
    session.flush()
    _activity(
        session, lead, now, "autoresponse", f"Autoresponse to {recipient} queued", outbound_id=outbound.id
    )
    return outbound.id
