"""``lms unassigned``: stored mails that are no lead and not ignorable wait here for a person."""

from __future__ import annotations

import click

from lms.common import emit_json, fail, open_db
from models.clock import system_clock
from workers import unassigned as queue


@click.group()
def unassigned() -> None:
    """Mails that were stored but not recognised as a lead."""


@unassigned.command("list")
@click.option("--dealer")
@click.option("--json", "as_json", is_flag=True)
def list_cmd(dealer: str | None, as_json: bool) -> None:
    """The queue, oldest first."""
    db = open_db()
    with db.read() as session:
        rows = queue.list_waiting(session, dealer=dealer)
    db.dispose()
    if as_json:
        emit_json({"mails": rows, "total": len(rows)})
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
    try:
        with db.read() as session:
            report = queue.describe(session, message_id)
    except queue.NotUnassigned as exc:
        fail(str(exc))
    finally:
        db.dispose()
    if as_json:
        emit_json(report)
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
    results: dict[str, int] = {}
    try:
        with db.session() as session:
            ids = [message_id] if message_id else queue.waiting_ids(session)
        for inbound_id in ids:
            with db.session() as session:
                result = queue.reparse(session, inbound_id, now=system_clock(), source=source)
            results[result.state] = results.get(result.state, 0) + 1
    except queue.NotUnassigned as exc:
        fail(str(exc))
    finally:
        db.dispose()
    click.echo(", ".join(f"{state} {count}" for state, count in sorted(results.items())) or "nothing to do")


@unassigned.command("create-lead")
@click.argument("message_id", type=int)
@click.option("--email", default="", help="The customer's address, if the mail does not show it.")
@click.option("--phone", default="", help="The customer's phone number.")
@click.option("--name", default="", help="The customer's name.")
@click.option("--type", "type_", default="general", show_default=True)
@click.option("--source", default="E-Mail", show_default=True)
@click.option("--by", default="operator", show_default=True)
def create_lead_cmd(
    message_id: int, email: str, phone: str, name: str, type_: str, source: str, by: str
) -> None:
    """Make a lead of the mail by hand."""
    db = open_db()
    facts = queue.ByHand(email=email, phone=phone, name=name, type=type_, source=source)
    try:
        with db.session() as session:
            lead_id = queue.create_lead(session, message_id, facts, now=system_clock(), by=by)
    except (queue.NotUnassigned, queue.CannotCreate) as exc:
        fail(str(exc).replace("give an email address or a phone number", "pass --email or --phone"))
    finally:
        db.dispose()
    click.echo(f"lead {lead_id} created from mail {message_id} (the sweeper sends its autoresponse)")


@unassigned.command("delete")
@click.argument("message_id", type=int)
@click.option("--by", default="operator", show_default=True)
def delete_cmd(message_id: int, by: str) -> None:
    """Take the mail out of the queue (the raw message stays stored)."""
    db = open_db()
    try:
        with db.session() as session:
            queue.delete(session, message_id, now=system_clock(), by=by)
    except queue.NotUnassigned as exc:
        fail(str(exc))
    finally:
        db.dispose()
    click.echo(f"mail {message_id} removed from the queue; its raw bytes stay stored")
