"""The mails a new lead causes besides the customer's answer: the forward to the dealer's
``forward_to`` (with the original attached) and the new-lead notification to its editor."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from models.tables import Contact, Dealer, InboundMessage, Lead, LeadActivity, OutboundMessage, User
from workers.compose import TYPE_LABELS, build_forward, build_notification, dkim_sign, lead_summary


def lead_data(lead: Lead, contact: Contact, editor: User | None) -> dict[str, Any]:
    return {
        "id": lead.id,
        "type": lead.type,
        "source": lead.source.name if lead.source else None,
        "contact": {"name": contact.name, "email": contact.email, "phone": contact.phone},
        "vehicle": lead.vehicle or {},
        "editor_name": editor.name if editor else None,
        "due_at": lead.due_at.isoformat() if lead.due_at else None,
        "message": lead.message or "",
    }


def queue_outbound(
    session: Session,
    dealer: Dealer,
    lead: Lead | None,
    *,
    kind: str,
    purpose: str,
    raw: bytes,
    message_id: str,
    envelope_from: str,
    recipients: list[str],
    now: datetime,
    grace: timedelta,
    expires_at: datetime | None = None,
    activity_text: str | None = None,
) -> int:
    dkim = dealer.config.get("dkim")
    if dkim:
        raw = dkim_sign(raw, selector=dkim["selector"], domain=dkim["domain"], key_file=dkim["key_file"])
    outbound = OutboundMessage(
        dealer_id=dealer.id,
        lead_id=lead.id if lead else None,
        purpose=purpose,
        kind=kind,
        message_id=message_id,
        envelope_from=envelope_from,
        envelope_to=recipients,
        recipient=recipients[0] if recipients else "",
        raw=raw,
        state="queued",
        attempts=0,
        created_at=now,
        next_attempt_at=now + grace,
        expires_at=expires_at,
        updated_at=now,
    )
    session.add(outbound)
    session.flush()
    if lead is not None:
        text = activity_text or f"{kind.capitalize()} to {', '.join(recipients)} queued"
        session.add(
            LeadActivity(lead_id=lead.id, at=now, kind=kind, text=text, outbound_id=outbound.id, data={})
        )
    return outbound.id


def new_message_id(kind: str, lead: Lead | None, dealer: Dealer) -> str:
    domain = dealer.from_address.partition("@")[2] or "lms.invalid"
    return f"<lms.{kind}.{lead.id if lead else 0}.{secrets.token_hex(6)}@{domain}>"


def queue_lead_mails(
    session: Session,
    dealer: Dealer,
    lead: Lead,
    contact: Contact,
    editor: User | None,
    inbound: InboundMessage,
    *,
    now: datetime,
    grace: timedelta,
) -> list[int]:
    lang = dealer.language
    legal = ((dealer.config.get("templates") or {}).get("default") or {}).get("legal_footer") or ""
    text = lead_summary(lead_data(lead, contact, editor), lang=lang, legal_footer_html=legal)
    label = TYPE_LABELS.get(lang, TYPE_LABELS["en"]).get(lead.type, lead.type)
    who = contact.name or contact.email or contact.phone or "?"
    ids: list[int] = []
    common = {
        "from_name": dealer.from_name,
        "from_address": dealer.from_address,
        "date": now,
        "origin": dealer.id,
    }
    if dealer.forward_to:
        message_id = new_message_id("fwd", lead, dealer)
        raw = build_forward(
            text=text,
            original=inbound.raw,
            reply_to=contact.email,
            to=list(dealer.forward_to),
            subject=f"[Lead #{lead.id}] {label}: {who}",
            message_id=message_id,
            **common,
        )
        ids.append(
            queue_outbound(
                session,
                dealer,
                lead,
                kind="forward",
                purpose=f"forward:lead:{lead.id}",
                raw=raw,
                message_id=message_id,
                envelope_from=dealer.from_address,
                recipients=list(dealer.forward_to),
                now=now,
                grace=grace,
            )
        )
    if editor is not None and editor.email:
        message_id = new_message_id("new", lead, dealer)
        intro = "Ein neuer Lead für Sie" if lang == "de" else "A new lead for you"
        raw = build_notification(
            text=f"{intro}:\n\n{text}",
            to=[editor.email],
            subject=f"[Lead #{lead.id}] {label}: {who}",
            message_id=message_id,
            **common,
        )
        ids.append(
            queue_outbound(
                session,
                dealer,
                lead,
                kind="notification",
                purpose=f"notification:new:lead:{lead.id}:{editor.username}",
                raw=raw,
                message_id=message_id,
                envelope_from=dealer.from_address,
                recipients=[editor.email],
                now=now,
                grace=grace,
            )
        )
    return ids
