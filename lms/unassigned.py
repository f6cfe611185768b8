"""``lms unassigned``: stored mails that are no lead and not ignorable wait here for a person;
and the parse report shared with ``lms parse``."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import click
from sqlalchemy import select

from intake.parsing.enquiry import Enquiry
from intake.parsing.extract import extract, sender_as_customer
from intake.parsing.mime import parse_mail
from lms.common import fail, open_db
from models.tables import Dealer, InboundMessage
from workers.ingest import Timing, _finish, apply_enquiry, process_inbound


def parse_report(path: str, raw: bytes, rules: list[dict[str, Any]]) -> dict[str, Any]:
    parsed = parse_mail(raw)
    extraction = extract(parsed, dealer_sources=rules)
    return {
        "path": path,
        "kind": extraction.kind,
        "reason": extraction.reason,
        "from": {"name": parsed.from_name, "email": parsed.from_email},
        "reply_to": parsed.reply_to,
        "subject": parsed.subject,
        "text": parsed.body_text,
        "attachments": [
            {"filename": a.filename, "content_type": a.content_type, "size": a.size}
            for a in parsed.attachments
        ],
        "lead": extraction.enquiries[0].as_dict() if extraction.enquiries else None,
        "leads": [e.as_dict() for e in extraction.enquiries],
        "defects": parsed.defects + extraction.problems,
    }


def _now() -> datetime:
    return datetime.now(UTC)


def _row(session: Any, message_id: int) -> InboundMessage:
    row = session.get(InboundMessage, message_id, with_for_update=True)
    if row is None or row.state != "unrecognised":
        fail(f"no unassigned mail {message_id}")
    assert row is not None
    return row


@click.group()
def unassigned() -> None:
    """Mails that were stored but not recognised as a lead."""


@unassigned.command("list")
@click.option("--dealer")
@click.option("--json", "as_json", is_flag=True)
def list_cmd(dealer: str | None, as_json: bool) -> None:
    """The queue, oldest first."""
    db = open_db()
    with db.session() as session:
        query = select(InboundMessage).where(InboundMessage.state == "unrecognised")
        if dealer:
            query = query.where(InboundMessage.dealer_id == dealer)
        rows: list[dict[str, Any]] = []
        for row in session.scalars(query.order_by(InboundMessage.received_at)):
            parsed = parse_mail(row.raw)
            rows.append(
                {
                    "id": row.id,
                    "dealer": row.dealer_id,
                    "received_at": row.received_at.isoformat(),
                    "from": parsed.from_email,
                    "subject": parsed.subject,
                    "reason": row.reason,
                }
            )
    db.dispose()
    if as_json:
        click.echo(json.dumps({"mails": rows, "total": len(rows)}, ensure_ascii=False))
        return
    for r in rows:
        sender, subject = r["from"][:30], r["subject"][:40]
        click.echo(f"{r['id']:>6}  {r['received_at'][:16]}  {sender:<30} {subject:<40} {r['reason']}")
    click.echo(f"{len(rows)} unassigned mail(s)")


@unassigned.command("show")
@click.argument("message_id", type=int)
@click.option("--json", "as_json", is_flag=True)
def show_cmd(message_id: int, as_json: bool) -> None:
    """What the mail says and why it was not recognised."""
    db = open_db()
    with db.session() as session:
        row = _row(session, message_id)
        report = parse_report(f"inbound:{row.id}", row.raw, [])
        report.update(id=row.id, dealer=row.dealer_id, reason=row.reason, envelope_from=row.envelope_from)
    db.dispose()
    if as_json:
        click.echo(json.dumps(report, ensure_ascii=False))
        return
    click.echo(f"Mail {report['id']} for {report['dealer']}: {report['reason']}")
    click.echo(f"From:    {report['from']['name']} <{report['from']['email']}>")
    click.echo(f"Subject: {report['subject']}")
    click.echo("")
    click.echo(report["text"][:4000])


@unassigned.command("reparse")
@click.argument("message_id", type=int, required=False)
@click.option("--source", default=None, help="Treat the mail(s) as coming from this source.")
def reparse_cmd(message_id: int | None, source: str | None) -> None:
    """Run recognition again (all waiting mails without ID), e.g. after adding a source rule."""
    db = open_db()
    with db.session() as session:
        query = select(InboundMessage.id).where(InboundMessage.state == "unrecognised")
        ids = [message_id] if message_id else list(session.scalars(query))
    results: dict[str, int] = {}
    for inbound_id in ids:
        with db.session() as session:
            row = _row(session, inbound_id)
            result = process_inbound(
                session, row, now=_now(), timing=Timing(grace=timedelta(0)), force_source=source
            )
            results[result.state] = results.get(result.state, 0) + 1
    db.dispose()
    click.echo(", ".join(f"{state} {count}" for state, count in sorted(results.items())) or "nothing to do")


@unassigned.command("create-lead")
@click.argument("message_id", type=int)
@click.option("--email", default="", help="The customer's address, if the mail does not show it.")
@click.option("--phone", default="", help="The customer's phone number.")
@click.option("--name", default="", help="The customer's name.")
@click.option("--type", "type_", default="general", show_default=True)
@click.option("--source", default="E-Mail", show_default=True)
def create_lead_cmd(message_id: int, email: str, phone: str, name: str, type_: str, source: str) -> None:
    """Make a lead of the mail by hand."""
    db = open_db()
    now = _now()
    with db.session() as session:
        row = _row(session, message_id)
        dealer = session.get(Dealer, row.dealer_id)
        assert dealer is not None
        parsed = parse_mail(row.raw)
        # Never a no-reply robot or a portal as the customer: the same rule as recognition.
        customer = sender_as_customer(parsed, system_sender=False)
        customer.name = name or customer.name
        customer.email = email.strip().lower() or customer.email
        if phone:
            customer.phones.append(phone)
        if not (customer.email or customer.phones):
            fail("the mail shows no customer address: pass --email or --phone")
        enquiry = Enquiry(
            type=type_, source=source, customer=customer, message=parsed.body_text, format="manual"
        )
        lead, _ = apply_enquiry(session, dealer, row, parsed, enquiry, 0, now, Timing(grace=timedelta(0)))
        _finish(row, "processed", "lead created by hand", now)
        lead_id = lead.id
    db.dispose()
    click.echo(f"lead {lead_id} created from mail {message_id} (the sweeper sends its autoresponse)")


@unassigned.command("delete")
@click.argument("message_id", type=int)
def delete_cmd(message_id: int) -> None:
    """Take the mail out of the queue (the raw message stays stored)."""
    db = open_db()
    with db.session() as session:
        row = _row(session, message_id)
        _finish(row, "deleted", f"deleted from the unassigned queue at {_now().isoformat()}", _now())
    db.dispose()
    click.echo(f"mail {message_id} removed from the queue; its raw bytes stay stored")
