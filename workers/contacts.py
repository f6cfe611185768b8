"""The customer behind an enquiry: found by email, then by phone (E.164), or created; new
details merged without overwriting good ones with empty ones.

Looking up and then inserting races on PostgreSQL: two first mails of one new customer
arriving together would each find nothing and each create a contact (and then a lead). So
before looking, the transaction takes an advisory lock per identity (each normalised email
and phone, in sorted order so two transactions never wait for each other in a circle): the
second mail waits until the first has committed, then finds its contact and open lead. The
unique key on (dealer, email) is the guarantee behind it. SQLite needs neither: its write
lock already serialises every writer.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from intake.parsing.enquiry import CustomerInfo
from models.contacts import normalise_email, normalise_phone
from models.tables import Contact

DETAIL_KEYS = ("first_name", "last_name", "salutation", "street", "postal_code", "city")


def identities(customer: CustomerInfo, region: str) -> tuple[str, list[str]]:
    """(normalised email, E.164 phones) of a customer as an enquiry names them."""
    email = normalise_email(customer.email) if customer.email else ""
    phones = [p for p in (normalise_phone(raw, region) for raw in customer.phones) if p]
    return email, list(dict.fromkeys(phones))


def lock_identities(session: Session, dealer_id: str, keys: Iterable[str]) -> None:
    """Serialise transactions about the same customer (PostgreSQL; a no-op on SQLite)."""
    lock_identity_keys(session, [(dealer_id, key) for key in keys])


def lock_identity_keys(session: Session, keys: Iterable[tuple[str, str]]) -> None:
    """Advisory locks for (dealer, identity) pairs, in one sorted order. A transaction holding
    one already takes it again at once (they are re-entrant), so locking all of a batch first
    and each again later is safe."""
    if session.get_bind().dialect.name != "postgresql":
        return
    for dealer_id, key in sorted(set(keys)):
        if key:
            session.execute(
                text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
                {"key": f"{dealer_id}\x1f{key}"},
            )


def find_contact(session: Session, dealer_id: str, email: str, phones: list[str]) -> Contact | None:
    contact = None
    if email:
        contact = session.scalar(
            select(Contact).where(Contact.dealer_id == dealer_id, Contact.email == email).limit(1)
        )
    if contact is None and phones:
        contact = session.scalar(
            select(Contact)
            .where(Contact.dealer_id == dealer_id, Contact.phone.in_(phones))
            .order_by(Contact.id)
            .limit(1)
        )
    return contact


def match_contact(
    session: Session, dealer_id: str, region: str, customer: CustomerInfo, now: datetime
) -> Contact:
    """The customer's contact, locked for this transaction, created when new."""
    email, phones = identities(customer, region)
    lock_identities(session, dealer_id, [email, *phones] if email else phones)
    contact = find_contact(session, dealer_id, email, phones)
    if contact is None:
        contact = Contact(dealer_id=dealer_id, created_at=now, updated_at=now, details={})
        session.add(contact)
    details = dict(contact.details or {})
    for key in DETAIL_KEYS:
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
