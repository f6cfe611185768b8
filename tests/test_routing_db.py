"""Routing in the database: concurrent workers, the pipeline end to end, lead actions."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from intake.store import store_message
from lms.cli import main
from models.tables import LeadActivity, User
from tests.support.mails import DEMO_MAILBOX, adf_sample, enquiry, with_attachment
from tests.support.processes import LmsProcess, lms_env
from tests.support.services import wait_until
from tests.support.sink import SmtpSink
from tests.support.stack import Stack, redis_runtime

RULES = Path(__file__).parent / "fixtures" / "dealer_rules.toml"


def test_concurrent_worker_processes_never_hand_out_a_turn_twice_or_skip_anyone(
    db_url: str, redis_prefix: str, tmp_path: Path
) -> None:
    settings, runtime = redis_runtime(db_url, redis_prefix, tmp_path / "outbox")
    total = 60
    for n in range(total):  # stored first, so the workers start on a full queue at once
        store_message(
            runtime.db,
            enquiry(sender=f"Kunde {n} <kunde{n}@example.org>"),
            envelope_from="",
            recipients=[DEMO_MAILBOX],
            via="smtp",
            now=runtime.clock(),
            enqueue=runtime.enqueue_ingest,
        )
    env = lms_env(**settings)
    workers = [LmsProcess("worker", "--threads", "3", env=env, log=tmp_path / f"w{i}.log") for i in range(3)]
    try:

        def assigned() -> list[dict[str, object]] | None:
            with runtime.db.session() as session:
                rows = [
                    a.data
                    for a in session.scalars(select(LeadActivity).where(LeadActivity.kind == "assigned"))
                ]
            return rows if len(rows) == total else None

        decisions = wait_until(assigned, timeout=120, what=f"{total} leads routed")
    finally:
        for worker in workers:
            assert worker.stop() == 0, worker.log()
        runtime.close()
    turns = sorted(d["turn"] for d in decisions)  # type: ignore[union-attr]
    assert turns == list(range(1, total + 1))  # no turn twice, none skipped
    by_turn = [d["editor"] for d in sorted(decisions, key=lambda d: d["turn"])]  # type: ignore[arg-type,return-value]
    assert by_turn == ["anna", "ben"] * (total // 2)  # the rotation, in order
    assert Counter(by_turn) == {"anna": total // 2, "ben": total // 2}


@pytest.fixture
def live(db_url: str, sink: SmtpSink) -> Iterator[Stack]:
    s = Stack(db_url, relay_url=sink.url, config=RULES)
    yield s
    s.close()


def test_portal_and_adf_mails_by_smtp_reach_the_right_editors_and_the_forward_carries_the_original(
    live: Stack, sink: SmtpSink
) -> None:
    portal = enquiry(
        sender="mobile.de <noreply@mobile.de>",
        headers={"Reply-To": "jonas@example.net"},
        subject="Anfrage zu Ihrem Inserat",
        body="Name: Jonas Weber\nTelefon: 0176 1112223\nNachricht: Da?",
    )
    adf = with_attachment(
        "New lead", adf_sample("02_").encode(), filename="lead.xml", maintype="text", subtype="xml"
    )
    plain = enquiry(sender="Erika <erika@example.org>", subject="Frage")
    for count, raw in enumerate((portal, adf, plain), 1):  # in order: least_open depends on it
        live.send(raw)
        wait_until(lambda count=count: len(live.leads()) == count, what=f"lead {count}")
    wait_until(lambda: len(sink.to("verkauf@autohaus-muster.example")) == 3, what="three forwards")
    editors = {
        lead.contact.email or lead.contact.phone: lead.editor.username for lead in live.leads() if lead.editor
    }
    assert editors == {
        "jonas@example.net": "ben",
        "johnny@customer.com": "carla",
        "erika@example.org": "anna",
    }
    groups = {lead.contact.email: lead.group for lead in live.leads()}
    assert groups["jonas@example.net"] == "used"

    forwards = {f.message["Subject"]: f for f in sink.to("verkauf@autohaus-muster.example")}
    originals = {portal, adf, plain}
    for forward in forwards.values():
        message = forward.message
        assert message["X-LMS-Origin"] == "muster" and message["Auto-Submitted"] == "auto-generated"
        [attached] = [p for p in message.iter_attachments() if p.get_content_type() == "message/rfc822"]
        assert attached.get_filename() == "original.eml"
        raw_part = forward.raw.split(b"Content-Type: message/rfc822\r\n", 1)[1].split(b"\r\n\r\n", 1)[1]
        assert any(raw_part.startswith(original) for original in originals)  # byte for byte
        summary = message.get_body(("plain",)).get_content()
        assert "Kunde:" in summary and "Bearbeiter:" in summary
    jonas = next(f for s, f in forwards.items() if "Jonas" in s).message
    assert jonas["Reply-To"] == "jonas@example.net"
    # the editors got their notification
    assert len(sink.to("ben@autohaus-muster.example")) == 1
    assert len(sink.to("carla@autohaus-muster.example")) == 1
    # and a forward coming back to our intake is recognised as ours, never a lead
    live.send(forwards[next(iter(forwards))].raw)
    wait_until(
        lambda: len(live.inbound()) == 4 and live.inbound()[-1].state == "ignored", what="the echo ignored"
    )
    assert len(live.leads()) == 3


def test_lms_leads_show_explains_the_assignment(live: Stack, sink: SmtpSink) -> None:
    live.send(
        enquiry(
            sender="mobile.de <noreply@mobile.de>",
            headers={"Reply-To": "jonas@example.net"},
            subject="Anfrage",
            body="Name: Jonas\nTelefon: 0176 1112223",
        )
    )
    wait_until(lambda: live.leads(), what="the lead")
    cli = CliRunner(env={"LMS_DATABASE_URL": live.settings.database_url})
    shown = cli.invoke(main, ["leads", "show", str(live.leads()[0].id)])
    assert "rule 'Used cars from portals' matched" in shown.output
    assert "method least_open over ben, carla" in shown.output and "assigned to ben" in shown.output


def test_assign_and_redistribute(live: Stack, sink: SmtpSink) -> None:
    for n in range(4):  # one after the other, so lead ids follow the rotation
        live.send(enquiry(sender=f"kunde{n}@example.org"))
        wait_until(
            lambda n=n: len([lead for lead in live.leads() if lead.editor]) == n + 1, what=f"lead {n + 1}"
        )
    cli = CliRunner(env={"LMS_DATABASE_URL": live.settings.database_url})
    first = live.leads()[0]
    result = cli.invoke(
        main, ["leads", "assign", str(first.id), "carla", "--by", "max", "--reason", "knows him"]
    )
    assert result.exit_code == 0, result.output
    shown = json.loads(cli.invoke(main, ["leads", "show", str(first.id), "--json"]).stdout)
    assert shown["editor"] == "carla"
    assert shown["activities"][-1]["text"] == "Reassigned from anna to carla by max: knows him"
    assert cli.invoke(main, ["leads", "assign", str(first.id), "nobody"]).exit_code != 0

    with live.db.session() as session:  # ben becomes absent today
        ben = session.scalars(select(User).where(User.username == "ben")).one()
        ben.absences = [{"from": "2000-01-01", "to": "2099-12-31"}]
    result = cli.invoke(main, ["leads", "redistribute", "--from", "ben"])
    assert result.exit_code == 0, result.output
    assert "2 open lead(s) of ben redistributed" in result.output
    assert Counter(lead.editor.username for lead in live.leads() if lead.editor) == {"anna": 3, "carla": 1}
