"""Escalations in the database: simulated time end to end, two schedulers, lead actions."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner
from sqlalchemy import func, insert, select

from lms.cli import main
from models.lead_views import lead_dict, list_leads
from models.settings import Settings
from models.tables import Contact, EscalationEvent, Lead, OutboundMessage, User
from tests.support.clock import FakeClock
from tests.support.mails import enquiry
from tests.support.processes import ROOT, lms_env
from tests.support.services import wait_until
from tests.support.sink import SmtpSink
from tests.support.stack import Stack, prepare_database
from workers.lead_actions import reply
from workers.runtime import build_runtime

BERLIN = ZoneInfo("Europe/Berlin")
ALWAYS_OPEN = Path(__file__).parent / "fixtures" / "dealer_always_open.toml"


def berlin(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=BERLIN).astimezone(UTC)


@pytest.fixture
def clocked(db_url: str, sink: SmtpSink) -> Iterator[tuple[Stack, FakeClock, SmtpSink]]:
    clock = FakeClock(
        berlin("2026-11-30T10:00")
    )  # a Monday; the demo dealer is open 08:00-12:30, 13:30-18:00
    stack = Stack(db_url, relay_url=sink.url, clock=clock)
    yield stack, clock, sink
    stack.close()


def subjects(sink: SmtpSink, address: str) -> list[str]:
    # Whitespace normalised: CPython folds a long non-ASCII subject leaving a doubled space.
    return [" ".join(m.message["Subject"].split()) for m in sink.to(address)]


def test_an_unanswered_lead_escalates_at_the_right_times_and_an_answered_one_does_not(
    clocked: tuple[Stack, FakeClock, SmtpSink], tmp_path: Path
) -> None:
    stack, clock, sink = clocked
    # One after the other: with two worker threads the order of ingestion decides the rotation.
    stack.send(enquiry(sender="erika@example.org", subject="Probefahrt"))  # → anna
    wait_until(lambda: stack.leads(), what="the first lead")
    stack.send(enquiry(sender="jonas@example.net", subject="Finanzierung"))  # → ben
    wait_until(lambda: len(sink.to("ben@autohaus-muster.example")) == 1, what="both leads notified")
    erika, jonas = stack.leads()
    assert erika.due_at == berlin("2026-11-30T12:00") and jonas.due_at == berlin("2026-11-30T12:00")

    def tick(at: str) -> None:
        clock.advance(berlin(at) - clock())
        stack.runtime.escalate_once()  # enqueues the notifications it writes

    clock.advance(timedelta(minutes=30))  # 10:30: ben answers his customer (in simulated time)
    with stack.db.session() as session:
        lead = session.get(Lead, jonas.id)
        assert lead is not None
        text = "Gern, die Konditionen schicke ich Ihnen heute noch."
        reply(session, lead, text, by=lead.editor, now=clock())  # type: ignore[arg-type]
    # Written without an enqueue: the sweeper (at the simulated now, never ahead of it: a sweeper
    # that believes it is later takes live send leases for expired ones) hands it to the relay.
    stack.runtime.sweep_once()
    wait_until(lambda: sink.to("jonas@example.net")[1:], what="ben's reply at the customer")

    tick("2026-11-30T11:29:59")
    assert len(sink.to("anna@autohaus-muster.example")) == 1  # just the new-lead notification
    tick("2026-11-30T11:30")
    wait_until(lambda: len(sink.to("anna@autohaus-muster.example")) == 2, what="the reminder")
    assert (
        subjects(sink, "anna@autohaus-muster.example")[1]
        == "Erinnerung: Lead #1 ist bald fällig (30.11.2026 12:00)"
    )
    tick("2026-11-30T12:00")
    wait_until(lambda: len(sink.to("anna@autohaus-muster.example")) == 3, what="stage 1")
    assert subjects(sink, "anna@autohaus-muster.example")[2] == "Eskalation Stufe 1: Lead #1 ist überfällig"
    tick("2026-11-30T15:59:59")
    assert sink.to("max@autohaus-muster.example") == []
    tick("2026-11-30T16:00")
    wait_until(lambda: sink.to("max@autohaus-muster.example"), what="stage 2 to the supervisor")
    assert subjects(sink, "max@autohaus-muster.example") == [
        "Eskalation Stufe 2: Lead #1 (Anna Berger) ist seit 30.11.2026 12:00 überfällig"
    ]
    tick("2026-12-02T12:00")  # days later: nothing fires twice
    assert (
        len(sink.to("anna@autohaus-muster.example")) == 3 and len(sink.to("max@autohaus-muster.example")) == 1
    )
    assert len(sink.to("ben@autohaus-muster.example")) == 1  # answered at 10:30: no reminder, no escalation

    with stack.db.session() as session:  # the views, at the simulated time
        shown = lead_dict(session, session.get(Lead, erika.id), now=clock(), with_activities=True)  # type: ignore[arg-type]
        overdue = list_leads(session, now=clock(), due="overdue")
        soon = list_leads(session, now=berlin("2026-11-30T11:45"), due="soon")
    assert [a["kind"] for a in shown["activities"] if a["kind"] in ("reminder", "escalated")] == [
        "reminder",
        "escalated",
        "escalated",
    ]
    assert shown["due_state"] == "overdue"
    # The state follows the due date alone: the answered lead is overdue too, it just stopped escalating.
    assert sorted(lead["id"] for lead in overdue["leads"]) == sorted([erika.id, jonas.id])
    assert soon["total"] == 2 and {lead["due_state"] for lead in soon["leads"]} == {"soon"}


def test_a_resubmission_date_restarts_the_clock(clocked: tuple[Stack, FakeClock, SmtpSink]) -> None:
    stack, clock, _sink = clocked
    stack.send(enquiry())
    wait_until(lambda: stack.leads(), what="the lead")
    [lead] = stack.leads()
    cli = CliRunner(env={"LMS_DATABASE_URL": stack.settings.database_url})
    result = cli.invoke(main, ["leads", "due", str(lead.id), "2026-12-03 09:00", "--by", "anna"])
    assert result.exit_code == 0, result.output
    with stack.db.session() as session:
        moved = session.get(Lead, lead.id)
        assert moved is not None
        assert (moved.due_at, moved.due_kind, moved.due_version) == (
            berlin("2026-12-03T09:00"),
            "resubmission",
            2,
        )
    shown = json.loads(cli.invoke(main, ["leads", "show", str(lead.id), "--json"]).stdout)
    [changed] = [a for a in shown["activities"] if a["kind"] == "due_changed"]
    assert changed["text"] == (
        "Due date changed from 2026-11-30T12:00:00+01:00 to 2026-12-03T09:00:00+01:00 by anna (resubmission)"
    )
    clock.advance(berlin("2026-11-30T12:00") - clock())  # the old due date passes: nothing
    assert stack.runtime.escalate_once().fired == {}
    clock.advance(berlin("2026-12-03T09:00") - clock())
    assert stack.runtime.escalate_once().fired == {"stage1": 1}  # the reminder at 08:30 was stale: skipped
    soon = cli.invoke(main, ["leads", "due", str(lead.id), "bald"])
    assert soon.exit_code != 0 and "no date" in soon.output


def test_two_schedulers_fire_every_stage_of_1000_due_leads_once(pg_url: str, tmp_path: Path) -> None:
    settings = {"database_url": pg_url, "relay_url": f"maildir://{tmp_path}/outbox"}
    runtime = build_runtime(Settings(**settings))  # type: ignore[arg-type]
    prepare_database(runtime, ALWAYS_OPEN)
    now = datetime.now(UTC)
    with runtime.db.session() as session:
        anna = session.scalars(select(User).where(User.username == "anna")).one()
        contact = Contact(
            dealer_id="muster", email="x@example.org", created_at=now, updated_at=now, details={}
        )
        session.add(contact)
        session.flush()
        session.execute(
            insert(Lead),
            [
                {
                    "dealer_id": "muster",
                    "contact_id": contact.id,
                    "editor_id": anna.id,
                    "status": "open",
                    "due_at": now - timedelta(minutes=1),
                    "due_set_at": now - timedelta(hours=3),
                    "due_version": 1,
                    "due_kind": "stage1",
                    "next_event_at": now - timedelta(minutes=31),
                    "created_at": now,
                    "last_activity_at": now,
                    "vehicle": {},
                    "trade_ins": [],
                    "links": [],
                    "ordinal": 0,
                }
                for _ in range(1000)
            ],
        )
    env = lms_env(**settings)
    schedulers = [
        subprocess.Popen(
            [sys.executable, "-m", "lms", "scheduler", "--once"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=300)[0].decode() for p in schedulers]
    assert all(p.returncode == 0 for p in schedulers), outputs
    with runtime.db.session() as session:
        events = session.execute(
            select(EscalationEvent.stage, EscalationEvent.outcome, func.count()).group_by(
                EscalationEvent.stage, EscalationEvent.outcome
            )
        ).all()
        counts = (
            select(func.count().label("n"))
            .select_from(EscalationEvent)
            .group_by(EscalationEvent.lead_id, EscalationEvent.stage)
            .subquery()
        )
        per_lead = session.scalar(select(func.max(counts.c.n)))
        mails = session.scalar(select(func.count()).select_from(OutboundMessage))
        pending = session.scalar(select(func.count()).select_from(Lead).where(Lead.next_event_at <= now))
    runtime.close()
    assert sorted(events) == [("reminder", "skipped", 1000), ("stage1", "sent", 1000)]
    assert per_lead == 1 and mails == 1000 and pending == 0
    # What each scheduler reports firing adds up to the 1,000: none counted a stage twice.
    reported = [int(re.search(r"escalations fired (\d+)", out).group(1)) for out in outputs]  # type: ignore[union-attr]
    assert sum(reported) == 1000
