"""Data protection (GDPR): a person's data exported whole, erased for good while counts stay,
and the dealer's retention periods applied by the scheduler."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select, text

from intake.store import store_message
from lms.cli import main
from models.lead_views import list_leads
from models.tables import Base, InboundMessage, Lead, OutboundMessage
from models.webhook_tables import WebhookDelivery
from tests.support.clock import FakeClock
from tests.support.mails import DEMO_MAILBOX, enquiry
from tests.support.stack import DEMO_CONFIG, Stack
from workers import lead_actions as actions

ERIKA = enquiry(
    sender="Erika Mustermann <erika@example.org>",
    subject="Probefahrt VW Golf",
    body="Guten Tag, ich hätte gern eine Probefahrt.\nErreichbar unter 0171 2223334.\nErika Mustermann",
    message_id="<erika-1@example.org>",
)


JONAS = "Hallo, ist der Tiguan noch da?\nJonas Weber"


# The dealer hands its leads to a CRM: the webhook bodies hold the person's data too. Nobody
# delivers them here (no workers), so they wait, as they would while the CRM is down.
CRM = (
    '\n[[dealers.webhooks]]\nname = "crm"\nurl = "http://127.0.0.1:9/hook"\n'
    'events = ["lead.created", "lead.answered"]\nsecret = "a-long-shared-secret-for-the-crm"\n'
)


@pytest.fixture
def stack(db_url: str, tmp_path: Path) -> Iterator[Stack]:
    for asset in ("header.png", "expose.pdf"):
        shutil.copy(DEMO_CONFIG.parent / asset, tmp_path / asset)
    config = tmp_path / "dealer.toml"
    config.write_text(DEMO_CONFIG.read_text() + CRM)
    s = Stack(
        db_url, relay_url=f"maildir://{tmp_path}/outbox", smtp=False, worker_threads=None, config=config
    )
    yield s
    s.close()


def make_lead(stack: Stack, raw: bytes, sender: str = "erika@example.org") -> Lead:
    [stored] = store_message(
        stack.db, raw, envelope_from=sender, recipients=[DEMO_MAILBOX], via="smtp", now=stack.runtime.clock()
    )
    stack.runtime.ingest(stored.id)
    with stack.db.read() as session:
        return session.scalars(select(Lead).where(Lead.inbound_id == stored.id)).unique().one()


def everything_stored(stack: Stack) -> str:
    """Every value of every row of every table, as one text to search."""
    parts = []
    with stack.db.read() as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(table.select()):
                for value in row:
                    if isinstance(value, bytes):
                        parts.append(value.decode("utf-8", "replace"))
                    elif value is not None:
                        parts.append(json.dumps(value, default=str, ensure_ascii=False))
    return "\n".join(parts)


def test_export_holds_everything_about_the_person_and_is_audited(stack: Stack) -> None:
    lead = make_lead(stack, ERIKA)
    with stack.db.session() as session:
        locked = actions.locked_lead(session, lead.id)
        actions.note(session, locked, "Kundin ruft morgen an", by="anna", now=stack.runtime.clock())
    cli = CliRunner(env={"LMS_DATABASE_URL": stack.settings.database_url})
    result = cli.invoke(main, ["contacts", "export", "erika@example.org", "--by", "datenschutz"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["contact"]["email"] == "erika@example.org" and data["contact"]["name"] == "Erika Mustermann"
    assert "+491712223334" in data["contact"]["details"]["phones"]
    [exported] = data["leads"]
    assert exported["id"] == lead.id and "Probefahrt" in exported["message"]
    assert [a["kind"] for a in exported["activities"]][-1] == "note"
    [received] = data["mails_received"]
    assert base64.b64decode(received["raw_base64"]) == ERIKA  # the mail as it came, byte for byte
    assert {m["kind"] for m in data["mails_sent"]} == {"autoresponse", "forward", "notification"}
    assert ("datenschutz", "export") in [(e["actor"], e["action"]) for e in data["access_log"]]
    audit = cli.invoke(main, ["leads", "audit", str(lead.id), "--json"])
    assert ("datenschutz", "export") in [
        (e["actor"], e["action"]) for e in json.loads(audit.stdout)["entries"]
    ]
    missing = cli.invoke(main, ["contacts", "export", "nobody@example.org"])
    assert missing.exit_code != 0 and "no contact" in missing.output


def test_erasure_leaves_no_trace_of_the_person_but_keeps_the_counts(stack: Stack) -> None:
    lead = make_lead(stack, ERIKA)
    other = make_lead(
        stack,
        enquiry(sender="Jonas Weber <jonas@example.net>", subject="Tiguan", body=JONAS),
        sender="jonas@example.net",
    )
    before = everything_stored(stack)
    assert "erika@example.org" in before and "Mustermann" in before and "2223334" in before
    cli = CliRunner(env={"LMS_DATABASE_URL": stack.settings.database_url})
    assert cli.invoke(main, ["contacts", "erase", "erika@example.org"], input="n\n").exit_code != 0  # asked
    result = cli.invoke(main, ["contacts", "erase", "erika@example.org", "--yes"])
    assert result.exit_code == 0, result.output
    assert "1 lead(s) anonymised, 1 received and 3 sent mail(s) deleted" in result.output
    after = everything_stored(stack)
    for trace in ("erika@example.org", "Erika", "Mustermann", "2223334", "erika-1@example.org"):
        assert trace not in after, f"{trace!r} is still stored"
    assert "jonas@example.net" in after  # the other customer untouched
    with stack.db.read() as session:
        hooks = {(h.lead_id, h.state) for h in session.scalars(select(WebhookDelivery))}
    assert hooks == {(lead.id, "erased"), (other.id, "queued")}  # Erika's never goes out
    with stack.db.read() as session:
        kept = session.get(Lead, lead.id)
        assert kept is not None and kept.anonymised_at is not None
        assert (kept.type, kept.status, kept.source.name if kept.source else None) == (  # counts for reports
            lead.type,
            "open",
            "E-Mail",
        )
        assert list_leads(session, now=stack.runtime.clock())["total"] == 2
        assert session.get(Lead, other.id).message  # type: ignore[union-attr]
    # Erasing again changes nothing and fails nothing; the erasure is in the audit log.
    assert cli.invoke(main, ["contacts", "erase", str(kept.contact_id), "--yes"]).exit_code == 0
    audit = json.loads(cli.invoke(main, ["leads", "audit", str(lead.id), "--json"]).stdout)["entries"]
    assert [e["action"] for e in audit] == ["erase", "erase"]


def test_retention_anonymises_old_completed_leads_and_deletes_old_raw_mails(
    db_url: str, tmp_path: Path
) -> None:
    config = tmp_path / "dealer.toml"
    config.write_text(
        DEMO_CONFIG.read_text().replace(
            "[dealers.escalation]",
            '[dealers.retention]\ncompleted_leads = "30d"\nraw_mails = "7d"\n\n[dealers.escalation]',
        )
    )
    for asset in ("header.png", "expose.pdf"):
        (tmp_path / asset).write_bytes((DEMO_CONFIG.parent / asset).read_bytes())
    clock = FakeClock()
    stack = Stack(
        db_url,
        relay_url=f"maildir://{tmp_path}/outbox",
        smtp=False,
        worker_threads=None,
        clock=clock,
        config=config,
    )
    try:
        old = make_lead(stack, ERIKA)
        with stack.db.session() as session:
            actions.complete(session, actions.locked_lead(session, old.id), "sold", by="anna", now=clock())
        stack.runtime.send([o.id for o in stack.outbound()])  # sent: final, so retention may take it
        clock.advance(timedelta(days=20))
        young = make_lead(
            stack,
            enquiry(sender="Jonas Weber <jonas@example.net>", subject="Tiguan", body=JONAS),
            sender="jonas@example.net",
        )
        assert stack.runtime.retention_once() == {
            "leads": 0,
            "contacts": 0,
            "mails": 4,
        }  # Erika's mails: 20 > 7 days
        clock.advance(timedelta(days=11))  # Erika's lead completed 31 days ago; Jonas' mails 11 days old
        assert stack.runtime.retention_once() == {
            "leads": 1,
            "contacts": 1,
            "mails": 1,
        }  # Jonas' mail (sent ones pending)
        with stack.db.read() as session:
            erika = session.get(Lead, old.id)
            jonas = session.get(Lead, young.id)
            assert erika is not None and erika.anonymised_at is not None and erika.message is None
            assert erika.contact.erased_at is not None and erika.contact.email is None
            assert (
                jonas is not None
                and jonas.anonymised_at is None
                and jonas.contact.email == "jonas@example.net"
            )
            deleted = session.execute(
                text("SELECT count(*) FROM inbound_messages WHERE raw_deleted_at IS NOT NULL")
            ).scalar()
            assert deleted == 2
            assert all(r.raw == b"" for r in session.scalars(select(InboundMessage)))
            assert session.scalars(select(OutboundMessage).where(OutboundMessage.lead_id == young.id)).first()
        assert stack.runtime.retention_once() == {"leads": 0, "contacts": 0, "mails": 0}  # nothing twice
    finally:
        stack.close()
