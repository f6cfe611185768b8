"""Which lead a customer's answer belongs to, even after Outlook or Exchange rewrote its
In-Reply-To: our reply token in any recipient header, our Message-IDs in In-Reply-To or
References, the ``[Lead #N]`` subject token of our forwards and notifications (from the
lead's customer or one of the dealer's people), then the same customer writing under the same
subject while the lead is open."""

from __future__ import annotations

from email.parser import BytesHeaderParser
from email.policy import compat32

from sqlalchemy import select
from sqlalchemy.orm import Session

from intake.parsing.charsets import decode_header_value
from intake.parsing.extract import Extraction
from intake.parsing.mime import ParsedMail
from intake.parsing.thread_markers import normalised_subject
from models.contacts import normalise_email
from models.tables import Contact, Lead, OutboundMessage, User

_MAX_CANDIDATES = 20


def _by_token(session: Session, dealer_id: str, token: str) -> Lead | None:
    return session.scalar(select(Lead).where(Lead.dealer_id == dealer_id, Lead.reply_token == token))


def _by_message_ids(session: Session, dealer_id: str, ids: list[str]) -> Lead | None:
    lead_id = session.scalar(
        select(OutboundMessage.lead_id).where(
            OutboundMessage.dealer_id == dealer_id, OutboundMessage.message_id.in_(ids)
        )
    )
    return session.get(Lead, lead_id) if lead_id is not None else None


def _by_subject_token(session: Session, dealer_id: str, lead_id: int, sender: str) -> Lead | None:
    lead = session.get(Lead, lead_id)
    if lead is None or lead.dealer_id != dealer_id:
        return None
    contact = session.get(Contact, lead.contact_id)
    if contact is not None and contact.email and contact.email == sender:
        return lead
    # One of the dealer's people answering our notification or forward.
    staff = session.scalar(select(User.id).where(User.dealer_id == dealer_id, User.email == sender).limit(1))
    return lead if staff is not None else None


def _subject_of(raw: bytes) -> str:
    try:
        return decode_header_value(
            str(BytesHeaderParser(policy=compat32).parsebytes(raw).get("Subject") or "")
        )
    except Exception:
        return ""


def _by_contact_and_subject(session: Session, dealer_id: str, sender: str, subject: str) -> Lead | None:
    key = normalised_subject(subject)
    if not key or not sender:
        return None
    leads = session.scalars(
        select(Lead)
        .join(Contact, Lead.contact_id == Contact.id)
        .where(Lead.dealer_id == dealer_id, Lead.status == "open", Contact.email == sender)
        .order_by(Lead.last_activity_at.desc())
        .limit(_MAX_CANDIDATES)
    ).unique()
    for lead in leads:
        if normalised_subject(lead.subject or "") == key:
            return lead
        for raw in session.scalars(select(OutboundMessage.raw).where(OutboundMessage.lead_id == lead.id)):
            if normalised_subject(_subject_of(raw)) == key:
                return lead
    return None


def find_replied_lead(
    session: Session, dealer_id: str, extraction: Extraction, parsed: ParsedMail | None = None
) -> Lead | None:
    if extraction.reply_token:
        lead = _by_token(session, dealer_id, extraction.reply_token)
        if lead is not None:
            return lead
    if extraction.reply_message_ids:
        lead = _by_message_ids(session, dealer_id, extraction.reply_message_ids)
        if lead is not None:
            return lead
    if parsed is None:
        return None
    sender = normalise_email(parsed.from_email) if parsed.from_valid else ""
    if extraction.subject_lead_id is not None and sender:
        lead = _by_subject_token(session, dealer_id, extraction.subject_lead_id, sender)
        if lead is not None:
            return lead
    if sender and (parsed.in_reply_to or parsed.references or _is_reply_subject(parsed.subject)):
        return _by_contact_and_subject(session, dealer_id, sender, parsed.subject)
    return None


def _is_reply_subject(subject: str) -> bool:
    # Only an answer ("AW: …", "Re: …") is threaded by its subject; a new mail with a subject
    # like the old one is a new enquiry (the open-lead rule of ingest takes it).
    return normalised_subject(subject) != " ".join(subject.split()).casefold()
