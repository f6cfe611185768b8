"""``lms contacts``: what data protection asks of a dealer (GDPR): a person's data as JSON,
and erasure."""

from __future__ import annotations

import click

from lms.common import emit_json, fail, open_db
from models.clock import system_clock
from workers.privacy import NoSuchContact, erase_contact, export_contact, find_contact


@click.group()
def contacts() -> None:
    """A person's data: export (Art. 15/20) and erasure (Art. 17)."""


@contacts.command("export")
@click.argument("contact")
@click.option("--dealer", default=None, help="When an address is a contact of several dealers.")
@click.option("--by", default="cli", show_default=True, help="Who asks (recorded in the audit log).")
def export_cmd(contact: str, dealer: str | None, by: str) -> None:
    """Everything held about CONTACT (an id or an email address) as one JSON document."""
    db = open_db()
    try:
        with db.session() as session:
            data = export_contact(
                session, find_contact(session, contact, dealer=dealer), now=system_clock(), actor=by
            )
    except NoSuchContact as exc:
        fail(str(exc.args[0]))
    finally:
        db.dispose()
    emit_json(data)


@contacts.command("erase")
@click.argument("contact")
@click.option("--dealer", default=None, help="When an address is a contact of several dealers.")
@click.option("--by", default="cli", show_default=True, help="Who erases (recorded in the audit log).")
@click.option("--yes", is_flag=True, help="Do it without asking.")
def erase_cmd(contact: str, dealer: str | None, by: str, yes: bool) -> None:
    """Anonymise CONTACT: name, addresses, phones, the texts of their leads and the raw mails go;
    counts and times stay for reports. It cannot be undone."""
    db = open_db()
    try:
        with db.session() as session:
            person = find_contact(session, contact, dealer=dealer)
            if not yes and not click.confirm(f"Erase contact {person.id} ({person.email or person.phone})?"):
                fail("nothing erased")
            done = erase_contact(session, person, now=system_clock(), actor=by)
            contact_id = person.id
    except NoSuchContact as exc:
        fail(str(exc.args[0]))
    finally:
        db.dispose()
    click.echo(
        f"contact {contact_id} erased: {done['leads']} lead(s) anonymised, "
        f"{done['mails_received']} received and {done['mails_sent']} sent mail(s) deleted"
    )
