"""The leads list's query: due states, search and sort in SQL, the same on both databases."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from models.escalation import due_state
from models.lead_scope import scope_for
from models.lead_views import list_leads, reminders_of
from models.tables import Contact, Lead, User
from tests.support.stack import Stack
from tests.web.conftest import WEB_CONFIG

NOW = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)


@pytest.fixture
def stack(db_url: str, tmp_path: Path) -> Iterator[Stack]:
    s = Stack(db_url, relay_url=f"maildir://{tmp_path}/o", smtp=False, worker_threads=None, config=WEB_CONFIG)
    yield s
    s.close()


def add_lead(stack: Stack, *, dealer: str = "muster", **fields: Any) -> int:
    contact_fields = {k: fields.pop(k) for k in ("name", "email", "phone") if k in fields}
    with stack.db.session() as session:
        contact = Contact(dealer_id=dealer, created_at=NOW, updated_at=NOW, details={}, **contact_fields)
        session.add(contact)
        session.flush()
        lead = Lead(
            dealer_id=dealer,
            contact_id=contact.id,
            created_at=NOW,
            last_activity_at=fields.pop("last_activity_at", NOW),
            vehicle=fields.pop("vehicle", {}),
            trade_ins=[],
            links=[],
            **fields,
        )
        session.add(lead)
        session.flush()
        return lead.id


def ids(stack: Stack, **filters: Any) -> list[int]:
    with stack.db.session() as session:
        return [lead["id"] for lead in list_leads(session, now=NOW, limit=1000, **filters)["leads"]]


def test_due_states_are_filtered_in_sql_exactly_as_every_view_decides_them(stack: Stack) -> None:
    # "other" keeps a 30 min reminder; muster gets 2 h (its own reminder decides "soon").
    with stack.db.session() as session:
        from models.tables import Dealer

        dealer = session.get(Dealer, "muster")
        assert dealer is not None
        dealer.config = {**dealer.config, "escalation": {**dealer.config["escalation"], "reminder": "2h"}}
    offsets = [None, -60, -1, 0, 1, 29, 31, 90, 119, 121, 600]
    for dealer in ("muster", "other"):
        for minutes in offsets:
            due = NOW + timedelta(minutes=minutes) if minutes is not None else None
            add_lead(stack, dealer=dealer, due_at=due, name=f"{dealer}{minutes}")
        add_lead(stack, dealer=dealer, due_at=NOW - timedelta(hours=1), status="completed", name="done")
    with stack.db.session() as session:
        reminders = reminders_of(session, None)
        leads = list(session.scalars(select(Lead)).unique())
        expected = {
            state: sorted(
                lead.id
                for lead in leads
                if due_state(
                    status=lead.status, due_at=lead.due_at, now=NOW, reminder=reminders[lead.dealer_id]
                )
                == state
            )
            for state in ("none", "soon", "overdue")
        }
    assert reminders == {"muster": timedelta(hours=2), "other": timedelta(minutes=30)}
    for state, wanted in expected.items():
        assert sorted(ids(stack, due=state)) == wanted, state
        for dealer in ("muster", "other"):
            mine = sorted(ids(stack, due=state, dealer=dealer))
            with stack.db.session() as session:
                in_dealer = {
                    lead.id for lead in session.scalars(select(Lead).where(Lead.dealer_id == dealer))
                }
            assert mine == sorted(set(wanted) & in_dealer)
    assert len(expected["soon"]) == 7 and len(expected["overdue"]) == 6  # the table above means something
    with stack.db.session() as session:  # paged and counted in the database
        page = list_leads(session, now=NOW, due="soon", limit=2)
    assert page["total"] == 7 and len(page["leads"]) == 2


def test_search_covers_customer_subject_message_and_vehicle_and_escapes_wildcards(stack: Stack) -> None:
    name = add_lead(stack, name="Erika Mustermann", email="erika@example.org")
    email = add_lead(stack, name="X", email="jan.kowalski@example.pl")
    phone = add_lead(stack, name="Y", phone="+4917612345678")
    add_lead(stack, name="Y2", phone="+4917699990000")
    subject = add_lead(stack, name="Z", subject="Probefahrt 100% sicher")
    message = add_lead(stack, name="W", message="Ich suche einen Kombi_mit Anhängerkupplung")
    vehicle = add_lead(stack, name="V", vehicle={"make": "Škoda", "model": "Octavia RS"})
    backslash = add_lead(stack, name="B", subject=r"C:\Temp")
    add_lead(stack, name="Plain", subject="Probefahrt 1000 sicher", message="Kombi mit Haken")
    assert ids(stack, search="mustermann") == [name]
    assert ids(stack, search="KOWALSKI") == [email]
    assert ids(stack, search="0176 1234") == [phone]  # as people type it: trunk zero and a space
    assert ids(stack, search="+49 (176) 123-456") == [phone]
    assert ids(stack, search="0176 2345") == []  # one number (…1762345), not two words matching apart
    assert ids(stack, search="100%") == [subject]  # % matches itself, not anything
    assert ids(stack, search="kombi_mit") == [message]  # so does _
    assert ids(stack, search="octavia") == [vehicle]
    assert ids(stack, search="c:\\temp") == [backslash]
    assert ids(stack, search="probefahrt sicher 100%") == [subject]  # every word must match
    assert ids(stack, search="mus\x00ter\x00") == [name]  # NUL breaks words (PostgreSQL refuses it)
    assert ids(stack, search="erika\x00") == [name]
    assert ids(stack, search="nobody-at-all") == []
    assert len(ids(stack, search="%")) == 1 and len(ids(stack, search="_")) == 1


def test_sort_by_due_date_puts_leads_without_one_last_and_the_scope_applies(stack: Stack) -> None:
    later = add_lead(stack, name="later", due_at=NOW + timedelta(hours=5), last_activity_at=NOW)
    sooner = add_lead(
        stack, name="sooner", due_at=NOW + timedelta(hours=1), last_activity_at=NOW - timedelta(days=1)
    )
    none = add_lead(stack, name="none", last_activity_at=NOW + timedelta(minutes=1))
    assert ids(stack, sort="due") == [sooner, later, none]
    assert ids(stack, sort="activity") == [none, later, sooner]
    with stack.db.session() as session:
        anna = session.scalar(select(User).where(User.username == "anna"))
        carl = session.scalar(select(User).where(User.username == "carl"))
        assert anna is not None and carl is not None
        session.get(Lead, later).editor_id = carl.id  # type: ignore[union-attr]
        session.get(Lead, sooner).editor_id = anna.id  # type: ignore[union-attr]
        scope = scope_for(session, anna)
    assert ids(stack, scope=scope, sort="due") == [sooner, none]  # carl's lead is another team's
