"""``lms leads``: the leads list, one lead's timeline, and the lead actions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import click
from sqlalchemy import select
from sqlalchemy.orm import Session

from lms.common import emit_json, fail, open_db
from models.adf_export import lead_adf
from models.clock import system_clock
from models.lead_views import lead_dict, list_leads
from models.policy import load_policy
from models.tables import Dealer, Lead, User
from workers import lead_actions as actions
from workers.assign import redistribute


def local_time(value: str | None, zone: str) -> str:
    """An ISO instant as the dealer's wall-clock time, for people ("2026-11-30 09:51")."""
    if not value:
        return "-"
    return datetime.fromisoformat(value).astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


def dealer_zones(session: Session) -> dict[str, str]:
    return {d.id: d.timezone for d in session.scalars(select(Dealer))}


@click.group()
def leads() -> None:
    """The leads list and lead actions."""


@leads.command("list")
@click.option("--dealer")
@click.option("--search")
@click.option("--type", "type_")
@click.option("--source")
@click.option("--editor")
@click.option("--status", type=click.Choice(["open", "completed"]))
@click.option("--due", type=click.Choice(["none", "soon", "overdue"]))
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True)
@click.option("--offset", type=click.IntRange(0), default=0)
@click.option("--json", "as_json", is_flag=True)
def leads_list(as_json: bool, **filters: Any) -> None:
    """Leads, most recent activity first."""
    db = open_db()
    with db.read() as session:
        data = list_leads(session, now=system_clock(), **filters)
        zones = dealer_zones(session)
    db.dispose()
    if as_json:
        emit_json(data)
        return
    click.echo(
        f"{'ID':>6}  {'CUSTOMER':<28} {'TYPE':<11} {'EDITOR':<10} {'SOURCE':<12} {'LAST ACTIVITY':<20} DUE"
    )
    for lead in data["leads"]:
        customer = lead["contact"]["name"] or lead["contact"]["email"] or "?"
        click.echo(
            f"{lead['id']:>6}  {customer[:28]:<28} {lead['type']:<11} {(lead['editor'] or '(pool)'):<10} "
            f"{(lead['source'] or '-')[:12]:<12} "
            f"{local_time(lead['last_activity_at'], zones.get(lead['dealer'], 'UTC')):<20} "
            f"{lead['due_state']}"
            + ("  [unverified sender]" if lead.get("sender_verification") == "unverified" else "")
        )
    click.echo(f"{data['total']} lead(s)")


@leads.command("show")
@click.argument("lead_id", type=int)
@click.option("--json", "as_json", is_flag=True)
@click.option("--adf", "as_adf", is_flag=True, help="The lead as ADF/XML (for dealer systems that take ADF).")
def leads_show(lead_id: int, as_json: bool, as_adf: bool) -> None:
    """One lead with contact, vehicle and timeline."""
    db = open_db()
    with db.read() as session:
        lead = session.get(Lead, lead_id)
        if lead is None:
            fail(f"no lead {lead_id}")
        data = lead_dict(session, lead, now=system_clock(), with_activities=True)
        zone = dealer_zones(session).get(lead.dealer_id, "UTC")
        dealer_name = load_policy(session, lead.dealer_id).name
    db.dispose()
    if as_adf:
        click.echo(lead_adf(data, dealer_name=dealer_name), nl=False)
        return
    if as_json:
        emit_json(data)
        return
    contact = data["contact"]
    click.echo(f"Lead {data['id']} ({data['dealer']}) · {data['status']} · {data['type']}")
    click.echo(f"Customer: {contact['name'] or '-'} <{contact['email'] or '-'}> {contact['phone'] or ''}")
    click.echo(f"Editor:   {data['editor'] or '(pool)'}    Source: {data['source'] or '-'}")
    if data.get("sender_note"):
        click.echo(f"Sender:   {data['sender_note']}")
    click.echo(f"Subject:  {data['subject'] or '-'}")
    click.echo(
        f"Created:  {local_time(data['created_at'], zone)}    "
        f"Due: {local_time(data['due_at'], zone)} ({data['due_state']})    Times: {zone}"
    )
    click.echo("Timeline:")
    for activity in data["activities"]:
        click.echo(f"  {local_time(activity['at'], zone)}  {activity['kind']:<20} {activity['text']}")


def _on_lead(lead_id: int, action: Callable[[Session, Lead], object]) -> None:
    """Run ``action`` on the locked lead in one transaction; user mistakes end in one sentence."""
    db = open_db()
    try:
        with db.session() as session:
            action(session, actions.locked_lead(session, lead_id))
    except actions.ActionError as exc:
        fail(str(exc))
    finally:
        db.dispose()


@leads.command("assign")
@click.argument("lead_id", type=int)
@click.argument("user")
@click.option("--by", default="operator", show_default=True, help="Who reassigns it.")
@click.option("--reason", default="", help="Why (recorded on the lead).")
def leads_assign(lead_id: int, user: str, by: str, reason: str) -> None:
    """Give lead ID to USER (recorded with who and why)."""
    _on_lead(
        lead_id,
        lambda session, lead: actions.assign(session, lead, user, by=by, reason=reason, now=system_clock()),
    )
    click.echo(f"lead {lead_id} assigned to {user}")


@leads.command("reply")
@click.argument("lead_id", type=int)
@click.option(
    "--body-file", type=click.File("r", encoding="utf-8"), required=True, help="The text; - for stdin."
)
@click.option("--as", "as_user", default=None, help="Who answers (default: the lead's editor).")
def leads_reply(lead_id: int, body_file: Any, as_user: str | None) -> None:
    """Answer the customer: your text framed by the dealer's header and footers, threaded."""
    body = body_file.read()

    def act(session: Session, lead: Lead) -> None:
        by = actions.acting_user(session, lead, as_user)
        actions.reply(session, lead, body, by=by, now=system_clock())

    _on_lead(lead_id, act)
    click.echo(f"reply to lead {lead_id} queued (the sweeper sends it within seconds)")


@leads.command("due")
@click.argument("lead_id", type=int)
@click.argument("when")
@click.option("--by", default="operator", show_default=True)
def leads_due(lead_id: int, when: str, by: str) -> None:
    """Set a resubmission date: "2026-12-01 10:00" (dealer's time), "2026-12-01" or "+2h"."""
    _on_lead(lead_id, lambda session, lead: actions.set_due(session, lead, when, by=by, now=system_clock()))
    click.echo(f"lead {lead_id} is due {when}")


@leads.command("note")
@click.argument("lead_id", type=int)
@click.argument("text")
@click.option("--by", default="operator", show_default=True)
def leads_note(lead_id: int, text: str, by: str) -> None:
    """Add a note to the lead's timeline."""
    _on_lead(lead_id, lambda session, lead: actions.note(session, lead, text, by=by, now=system_clock()))
    click.echo(f"note added to lead {lead_id}")


@leads.command("complete")
@click.argument("lead_id", type=int)
@click.option("--reason", "code", required=True, help="A completion reason code (e.g. sold).")
@click.option("--by", default="operator", show_default=True)
def leads_complete(lead_id: int, code: str, by: str) -> None:
    """Close the lead with a completion reason."""
    _on_lead(
        lead_id, lambda session, lead: actions.complete(session, lead, code, by=by, now=system_clock())
    )
    click.echo(f"lead {lead_id} completed ({code})")


@leads.command("redistribute")
@click.option("--from", "from_user", required=True, help="The person whose open leads are handed on.")
@click.option("--dealer", default=None, help="Needed when several dealers have this user name.")
def leads_redistribute(from_user: str, dealer: str | None) -> None:
    """Route every open lead of a person again (e.g. they became absent)."""
    db = open_db()
    try:
        with db.session() as session:
            dealers = (
                [dealer]
                if dealer
                else list(session.scalars(select(User.dealer_id).where(User.username == from_user)))
            )
            if len(dealers) != 1:
                fail(f"{from_user!r} is a user at {len(dealers)} dealers; say which with --dealer")
            moved = redistribute(session, load_policy(session, dealers[0]), from_user, now=system_clock())
    except LookupError as exc:
        fail(str(exc.args[0]))
    finally:
        db.dispose()
    for lead_id, editor in moved:
        click.echo(f"lead {lead_id}: {editor or '(pool)'}")
    click.echo(f"{len(moved)} open lead(s) of {from_user} redistributed")


@leads.command("audit")
@click.argument("lead_id", type=int)
@click.option("--json", "as_json", is_flag=True)
def leads_audit(lead_id: int, as_json: bool) -> None:
    """Who read or changed lead ID (the web pane, its API, exports, erasure, retention)."""
    from models.privacy_tables import AuditEntry

    db = open_db()
    with db.read() as session:
        lead = session.get(Lead, lead_id)
        if lead is None:
            fail(f"no lead {lead_id}")
        entries = [
            {"at": e.at.isoformat(), "actor": e.actor, "action": e.action, "detail": e.detail}
            for e in session.scalars(
                select(AuditEntry)
                .where((AuditEntry.lead_id == lead_id) | (AuditEntry.contact_id == lead.contact_id))
                .order_by(AuditEntry.at, AuditEntry.id)
            )
        ]
        zone = dealer_zones(session).get(lead.dealer_id, "UTC")
    db.dispose()
    if as_json:
        emit_json({"lead": lead_id, "entries": entries})
        return
    for e in entries:
        detail = f" ({e['detail']})" if e["detail"] else ""
        click.echo(f"{local_time(e['at'], zone)}  {e['actor']:<20} {e['action']}{detail}")
    click.echo(f"{len(entries)} entr{'y' if len(entries) == 1 else 'ies'}")
