"""Mail in → lead → autoresponse out, in one process with the in-memory broker and worker threads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from intake.store import store_message
from models.lead_views import lead_dict
from models.ops_views import ops_status
from models.tables import Dealer, InboundMessage, Lead, LeadActivity, OutboundMessage
from tests.support.clock import FakeClock
from tests.support.mails import DEMO_MAILBOX, enquiry
from tests.support.services import free_port, wait_until
from tests.support.sink import SmtpSink
from tests.support.stack import Stack


@pytest.fixture
def stack(db_url: str, sink: SmtpSink) -> Iterator[Stack]:
    s = Stack(db_url, relay_url=sink.url)
    yield s
    s.close()


def final_inbound(stack: Stack, count: int = 1) -> list[InboundMessage]:
    def done() -> list[InboundMessage] | None:
        rows = stack.inbound()
        finished = [r for r in rows if r.state not in ("received", "routed", "failed")]
        return finished if len(finished) >= count else None

    return wait_until(done, what=f"{count} inbound message(s) processed")  # type: ignore[return-value]


def test_an_enquiry_by_smtp_becomes_an_assigned_lead_and_the_customer_gets_an_answer(
    stack: Stack, sink: SmtpSink
) -> None:
    raw = enquiry(message_id="<enquiry-1@example.org>")
    stack.send(raw)
    wait_until(lambda: sink.to("erika@example.org"), what="the autoresponse at the sink")

    [lead] = stack.leads()
    assert lead.status == "open"
    assert lead.editor is not None and lead.editor.username == "anna"
    assert lead.contact.email == "erika@example.org"
    assert lead.contact.name == "Erika Mustermann"
    assert "Probefahrt" in (lead.message or "")

    [answer] = sink.to("erika@example.org")
    assert answer.envelope_from == "<>"  # RFC 3834: autoresponses go out with the null sender
    assert answer.recipients == ["erika@example.org"]
    message = answer.message
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["In-Reply-To"] == "<enquiry-1@example.org>"
    assert "<enquiry-1@example.org>" in message["References"]
    assert message["From"].addresses[0].addr_spec == DEMO_MAILBOX
    assert message.get_content_type() == "multipart/mixed"  # the demo dealer attaches an exposé
    assert [a.get_filename() for a in message.iter_attachments()] == ["expose.pdf"]
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "Guten Tag Erika Mustermann" in text
    assert "Anna Berger" in text and "Anna Berger" in html
    assert "Musterstraße 1" in text  # the dealer's legal footer

    # The relay's 250 comes before our record of it: wait for the record, not just the mail.
    wait_until(lambda: stack.outbound("autoresponse")[0].state == "sent", what="the answer recorded as sent")
    [out] = stack.outbound("autoresponse")
    assert out.attempts == 1
    assert message["Message-ID"] == out.message_id
    with stack.db.session() as session:
        shown = lead_dict(
            session, session.get(Lead, lead.id), now=stack.runtime.clock(), with_activities=True
        )
    assert [a["kind"] for a in shown["activities"]] == [
        "received",
        "assigned",
        "forward",
        "notification",
        "autoresponse",
    ]


def test_rotation_alternates_over_the_default_users(stack: Stack, sink: SmtpSink) -> None:
    for n in range(4):
        stack.send(enquiry(sender=f"Kunde {n} <kunde{n}@example.org>"))
        wait_until(lambda n=n: len(stack.leads()) == n + 1, what=f"lead {n + 1}")
    assert [lead.editor.username for lead in stack.leads() if lead.editor] == ["anna", "ben", "anna", "ben"]


@pytest.mark.parametrize(
    ("sender", "headers", "reason"),
    [
        ("Erika <erika@example.org>", {"Auto-Submitted": "auto-replied"}, "Auto-Submitted"),
        ("News <news@example.org>", {"Precedence": "bulk"}, "Precedence: bulk"),
        ("News <news@example.org>", {"List-Unsubscribe": "<mailto:unsub@example.org>"}, "list-unsubscribe"),
        ("Mail Delivery System <MAILER-DAEMON@mx.example.org>", {}, "mailer-daemon"),
        ("Autohaus Muster <muster@leads.example.com>", {"X-LMS-Origin": "muster"}, "our own mail"),
    ],
)
def test_automatic_mail_is_ignored_with_its_reason_and_never_answered(
    stack: Stack, sink: SmtpSink, sender: str, headers: dict[str, str], reason: str
) -> None:
    stack.send(enquiry(sender=sender, headers=headers))
    [row] = final_inbound(stack)
    assert row.state == "ignored"
    assert reason.lower() in (row.reason or "").lower()
    assert stack.leads() == []
    assert stack.outbound() == [] and sink.messages == []


def test_a_portal_no_reply_sender_is_answered_at_its_reply_to(stack: Stack, sink: SmtpSink) -> None:
    stack.send(
        enquiry(
            sender="mobile.de <noreply@mobile.de>", headers={"Reply-To": "Jonas Weber <jonas@example.net>"}
        )
    )
    wait_until(lambda: sink.messages, what="the autoresponse")
    [lead] = stack.leads()
    assert lead.contact.email == "jonas@example.net"
    assert sink.messages[0].recipients == ["jonas@example.net"]


def test_running_ingest_again_changes_nothing(stack: Stack, sink: SmtpSink) -> None:
    stack.send(enquiry())
    wait_until(lambda: len(sink.messages) == 3, what="answer, forward and notification")
    [row] = stack.inbound()
    stack.runtime.ingest(row.id)  # a redelivered broker message
    for out in stack.outbound():
        stack.runtime.send(out.id)
    assert len(stack.leads()) == 1
    assert sorted(o.kind for o in stack.outbound()) == ["autoresponse", "forward", "notification"]
    assert len(sink.messages) == 3


def test_the_sweeper_finds_a_message_the_broker_lost(db_url: str, sink: SmtpSink) -> None:
    clock = FakeClock()
    stack = Stack(db_url, relay_url=sink.url, clock=clock, smtp=False)
    try:
        [stored] = store_message(
            stack.db,
            enquiry(),
            envelope_from="erika@example.org",
            recipients=[DEMO_MAILBOX],
            via="smtp",
            now=clock(),
            enqueue=None,  # stored, but the enqueue never happened
        )
        assert stack.runtime.sweep_once().inbound == 0  # within the grace period: left alone
        clock.advance(timedelta(seconds=61))
        assert stack.runtime.sweep_once().inbound == 1
        wait_until(lambda: sink.messages, what="the autoresponse after the sweep")
        assert [lead.inbound_id for lead in stack.leads()] == [stored.id]
    finally:
        stack.close()


@pytest.fixture
def clocked(db_url: str) -> Iterator[tuple[Stack, FakeClock, SmtpSink]]:
    """A stack whose relay port has no server yet, and a clock the test moves."""
    clock = FakeClock()
    sink = SmtpSink(free_port())
    stack = Stack(db_url, relay_url=sink.url, clock=clock, send_max_attempts=3)
    yield stack, clock, sink
    stack.close()
    sink.stop()


def wait_outbound(stack: Stack, predicate: object) -> OutboundMessage:
    """The customer's answer, once ``predicate`` holds for it."""

    def check() -> OutboundMessage | None:
        rows = stack.outbound("autoresponse")
        return rows[0] if rows and predicate(rows[0]) else None  # type: ignore[operator]

    return wait_until(check, what="the outbox row")  # type: ignore[return-value]


def test_relay_down_keeps_the_answer_queued_and_it_is_sent_once_the_relay_is_back(
    clocked: tuple[Stack, FakeClock, SmtpSink],
) -> None:
    stack, clock, sink = clocked
    stack.send(enquiry())
    row = wait_outbound(stack, lambda r: r.attempts == 1 and r.state == "queued")
    assert "Connection" in (row.last_error or "") or "refused" in (row.last_error or "").lower()

    wait_until(
        lambda: [(r.attempts, r.state) for r in stack.outbound()] == [(1, "queued")] * 3,
        what="a first failed attempt of answer, forward and notification",
    )
    sink.start()
    assert stack.runtime.sweep_once().outbound == 0  # the backoff has not run out yet
    clock.advance(timedelta(seconds=31))
    assert stack.runtime.sweep_once().outbound == 3  # answer, forward, notification
    wait_outbound(stack, lambda r: r.state == "sent")
    wait_until(lambda: len(sink.messages) == 3, what="all three mails")
    assert len(sink.to("erika@example.org")) == 1
    clock.advance(timedelta(hours=2))
    assert stack.runtime.sweep_once().outbound == 0  # sent is final: nothing goes out twice


def test_a_4xx_answer_is_retried_and_then_delivered(clocked: tuple[Stack, FakeClock, SmtpSink]) -> None:
    stack, clock, sink = clocked
    sink.start()
    sink.handler.reply = "451 4.7.1 Greylisted, try again later"
    stack.send(enquiry())
    row = wait_outbound(stack, lambda r: r.attempts == 1 and r.state == "queued")
    assert "451" in (row.last_error or "")
    sink.handler.reply = None
    clock.advance(timedelta(seconds=31))
    stack.runtime.sweep_once()
    wait_outbound(stack, lambda r: r.state == "sent")
    assert len(sink.to("erika@example.org")) == 1


def test_a_5xx_answer_fails_at_once_with_the_reply_text(clocked: tuple[Stack, FakeClock, SmtpSink]) -> None:
    stack, clock, sink = clocked
    sink.start()
    sink.handler.reply = "550 5.7.1 Relaying denied"
    stack.send(enquiry())
    row = wait_outbound(stack, lambda r: r.state == "failed")
    assert row.attempts == 1
    assert "550" in (row.last_error or "") and "Relaying denied" in (row.last_error or "")
    wait_until(lambda: [r.state for r in stack.outbound()] == ["failed"] * 3, what="all three failed")
    clock.advance(timedelta(hours=1))
    assert stack.runtime.sweep_once().outbound == 0


def test_attempts_are_bounded_and_the_row_ends_dead(clocked: tuple[Stack, FakeClock, SmtpSink]) -> None:
    stack, clock, _sink = clocked  # the relay never comes up
    stack.send(enquiry())
    for attempt in (1, 2):

        def all_tried(a: int = attempt) -> bool:
            rows = stack.outbound()
            return len(rows) == 3 and all(r.attempts == a and r.state == "queued" for r in rows)

        wait_until(all_tried, what=f"attempt {attempt} of every row")
        clock.advance(timedelta(hours=1))
        stack.runtime.sweep_once()
    row = wait_outbound(stack, lambda r: r.state == "dead")
    assert row.attempts == 3
    with stack.db.session() as session:
        status = ops_status(session, now=clock(), queues={})
    wait_until(lambda: all(o.state == "dead" for o in stack.outbound()), what="every row dead")
    with stack.db.session() as session:
        status = ops_status(session, now=clock(), queues={})
    assert status["dead"] == 3 and status["outbound"] == {"dead": 3}


def test_an_ingest_failure_is_recorded_and_retried(db_url: str, sink: SmtpSink) -> None:
    clock = FakeClock()
    stack = Stack(db_url, relay_url=sink.url, clock=clock, smtp=False, worker_threads=None)
    try:
        [stored] = store_message(
            # A real envelope sender: MAIL FROM:<> is never answered (RFC 3834), nothing would render.
            stack.db,
            enquiry(),
            envelope_from="erika@example.org",
            recipients=[DEMO_MAILBOX],
            via="smtp",
            now=clock(),
        )
        with stack.db.session() as session:  # a stored configuration no schema accepts
            dealer = session.get(Dealer, "muster")
            assert dealer is not None
            dealer.config = {**dealer.config, "timezone": "Nowhere/Nothing"}
        stack.runtime.ingest(stored.id)
        [row] = stack.inbound()
        assert row.state == "failed" and row.attempts == 1
        assert "Nowhere/Nothing" in (row.error or "")
        assert stack.leads() == []  # nothing half done
        with stack.db.session() as session:
            assert session.scalar(select(LeadActivity.id)) is None
            assert (row.next_attempt_at or clock()) > clock()  # retried later, by the sweeper
    finally:
        stack.close()


def test_a_failing_autoresponse_does_not_take_the_lead_with_it(db_url: str, sink: SmtpSink) -> None:
    """A block that passes the configuration check but fails on real data: the lead, the
    forward and the notification happen; the answer is a visible failed outbox row."""
    stack = Stack(db_url, relay_url=sink.url)
    try:
        with stack.db.session() as session:
            dealer = session.get(Dealer, "muster")
            assert dealer is not None
            templates = {"default": {"intro": {"de": "<p>{{ vehicle.year + 1 }}</p>"}}}
            dealer.config = {**dealer.config, "templates": templates}
        stack.send(enquiry(body="Ich interessiere mich für den Golf.\nBaujahr: zweitausend\nErika"))
        wait_until(lambda: len(sink.messages) == 2, what="forward and notification")
        [lead] = stack.leads()
        assert lead.editor is not None
        states = {o.kind: (o.state, o.last_error or "") for o in stack.outbound()}
        assert states["forward"][0] == "sent" and states["notification"][0] == "sent"
        assert states["autoresponse"][0] == "failed" and "TemplateRenderError" in states["autoresponse"][1]
        assert sink.to("erika@example.org") == []
        [row] = stack.inbound()
        assert row.state == "processed"
        with stack.db.session() as session:
            shown = lead_dict(
                session, session.get(Lead, lead.id), now=stack.runtime.clock(), with_activities=True
            )  # type: ignore[arg-type]
        [failed] = [a for a in shown["activities"] if a["kind"] == "autoresponse_failed"]
        # The reason names the block that failed and why, for the person who mends it.
        assert "not sent" in failed["text"] and "templates.default.intro.de: TypeError" in failed["text"]
    finally:
        stack.close()


def test_ops_retry_resends_a_failed_answer_once_the_cause_is_fixed(
    clocked: tuple[Stack, FakeClock, SmtpSink],
) -> None:
    from click.testing import CliRunner

    from lms.cli import main

    stack, clock, sink = clocked
    sink.start()
    sink.handler.reply = "550 5.7.1 Relaying denied"
    stack.send(enquiry())
    answer = wait_outbound(stack, lambda r: r.state == "failed")
    wait_until(lambda: [r.state for r in stack.outbound()] == ["failed"] * 3, what="all three failed")
    cli = CliRunner(env={"LMS_DATABASE_URL": stack.settings.database_url})
    status = json.loads(cli.invoke(main, ["ops", "status", "--json"]).stdout)
    assert status["outbound"] == {"failed": 3} and status["failed"] == 3
    assert cli.invoke(main, ["ops", "retry"]).exit_code != 0  # says what to retry
    sink.handler.reply = None  # the relay configuration is fixed
    result = cli.invoke(main, ["ops", "retry", "--outbound", str(answer.id)])
    assert result.exit_code == 0 and "queued again: 0 inbound, 1 outbound" in result.output
    clock.advance(timedelta(minutes=1))
    stack.runtime.sweep_once()  # the workers' clock: the retried row is due, no live lease looks expired
    wait_outbound(stack, lambda r: r.state == "sent")
    assert len(sink.to("erika@example.org")) == 1
    result = cli.invoke(main, ["ops", "retry", "--all-failed"])
    assert "queued again: 0 inbound, 2 outbound" in result.output
