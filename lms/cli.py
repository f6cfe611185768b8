"""``lms``: every component and every operator action (INTERFACE.md "The lms command").

User mistakes end with one clear sentence on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import logging
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
from sqlalchemy import select, update
from sqlalchemy.exc import OperationalError

from intake.deliver import EX_TEMPFAIL, deliver
from intake.importer import header_recipients, iter_messages
from intake.store import UnknownRecipient, store_message
from lms.common import emit_json, fail, open_db, settings
from lms.config_checks import load_checked
from lms.logs import setup_logging
from lms.processes import run_components
from lms.templates_cli import templates
from lms.unassigned import parse_report, unassigned
from lms.views import lead_dict, list_leads, ops_status
from models.business_calendar import BusinessCalendar
from models.config_apply import apply_config
from models.dealer_config import ConfigError, redacted
from models.escalation import parse_when
from models.migrate import upgrade
from models.tables import Dealer, InboundMessage, Lead, Mailbox, OutboundMessage, User
from workers.assign import reassign, redistribute
from workers.broker import queue_depths
from workers.clock import system_clock
from workers.escalations import change_due
from workers.lead_actions import ActionError, acting_user, complete, note, reply
from workers.runtime import build_runtime


def local_time(value: str | None, zone: str) -> str:
    """An ISO instant as the dealer's wall-clock time, for people ("2026-11-30 09:51")."""
    if not value:
        return "-"
    return datetime.fromisoformat(value).astimezone(ZoneInfo(zone)).strftime("%Y-%m-%d %H:%M")


def dealer_zones(session: Any) -> dict[str, str]:
    return {d.id: d.timezone for d in session.scalars(select(Dealer))}


class LmsGroup(click.Group):
    """Turns an unreachable database into one sentence instead of a traceback."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OperationalError as exc:
            fail(f"the database is not reachable or not migrated ({exc.orig}); run `lms migrate`?")


@click.group(cls=LmsGroup)
@click.version_option(package_name="lms")
def main() -> None:
    """Lead intake daemon: mail in, leads out, autoresponses and escalations."""
    setup_logging(settings().log_format)


# -- components ------------------------------------------------------------------------------
@main.command()
def run() -> None:
    """Everything in one process: SMTP intake, IMAP pollers, workers, scheduler, web API."""
    run_components(settings(), smtp=True, worker=True, scheduler=True, imap=True, web=True)


@main.command()
def smtp() -> None:
    """The SMTP intake only."""
    run_components(settings(), smtp=True, worker=False, scheduler=False)


@main.command()
def web() -> None:
    """The read-only JSON API only (LMS_WEB_LISTEN): /healthz, /api/leads, /api/ops/status."""
    run_components(settings(), smtp=False, worker=False, scheduler=False, web=True)


@main.command()
def imap() -> None:
    """The IMAP pollers only: one connection per configured [[dealers.imap]] mailbox."""
    run_components(settings(), smtp=False, worker=False, scheduler=False, imap=True)


@main.command()
@click.option("--threads", type=int, default=None, help="Worker threads (default LMS_WORKER_THREADS).")
def worker(threads: int | None) -> None:
    """The Dramatiq workers only (ingest and send)."""
    s = settings()
    if threads:
        s.worker_threads = threads
    run_components(s, smtp=False, worker=True, scheduler=False)


@main.command()
@click.option("--once", is_flag=True, help="Sweep once and exit.")
def scheduler(once: bool) -> None:
    """Time-based work: the sweeper (rows stuck in a non-final state) and escalations."""
    s = settings()
    if once:
        runtime = build_runtime(s)
        try:
            result = runtime.sweep_once()
            fired = runtime.escalate_once()
        finally:
            runtime.close()
        click.echo(
            f"re-enqueued {result.inbound} inbound and {result.outbound} outbound messages; "
            f"escalations fired {sum(fired.fired.values())}, skipped {fired.skipped}"
        )
        return
    run_components(s, smtp=False, worker=False, scheduler=True)


@main.command()
def migrate() -> None:
    """Apply the database migrations (and the dealer file named by LMS_CONFIG, if set)."""
    db = open_db()
    try:
        upgrade(db)
        click.echo("database is up to date")
        path = settings().config
        if path:
            with db.session() as session:
                applied = apply_config(session, load_checked(path), now=system_clock())
            click.echo(f"applied {path}: {', '.join(applied) or 'no dealers'}")
    except ConfigError as exc:
        fail(f"{settings().config}: {exc}; the configuration in force is unchanged")
    finally:
        db.dispose()


# -- configuration ---------------------------------------------------------------------------
@main.group()
def config() -> None:
    """Dealer configuration (TOML)."""


@config.command("check")
@click.argument("file", type=click.Path(dir_okay=False))
def config_check(file: str) -> None:
    """Validate FILE without applying it."""
    try:
        cfg = load_checked(file)
    except ConfigError as exc:
        fail(f"{file}: {exc}")
    click.echo(f"{file}: ok ({len(cfg.dealers)} dealer(s))")


@config.command("apply")
@click.argument("file", type=click.Path(dir_okay=False))
def config_apply(file: str) -> None:
    """Validate FILE and apply it in one transaction; a bad file changes nothing."""
    db = open_db()
    try:
        cfg = load_checked(file)
        with db.session() as session:
            applied = apply_config(session, cfg, now=system_clock())
    except ConfigError as exc:
        fail(f"{file}: {exc}; the configuration in force is unchanged")
    finally:
        db.dispose()
    click.echo(f"applied {file}: {', '.join(applied) or 'no dealers'}")


@config.command("show")
@click.option("--json", "as_json", is_flag=True)
def config_show(as_json: bool) -> None:
    """The configuration in force (secrets masked)."""
    db = open_db()
    with db.session() as session:
        dealers = [redacted(d.config) for d in session.scalars(select(Dealer).order_by(Dealer.id))]
    if as_json:
        emit_json({"dealers": dealers})
        return
    for dealer in dealers:
        click.echo(f"{dealer['id']}: {dealer['name']}")
        click.echo(f"  mailboxes:  {', '.join(dealer['mailboxes'])}")
        click.echo(f"  forward_to: {', '.join(dealer.get('forward_to') or []) or '-'}")
        click.echo(f"  users:      {', '.join(u['id'] for u in dealer.get('users') or []) or '-'}")
        default = (dealer.get("distribution") or {}).get("default") or {}
        click.echo(f"  default:    {default.get('method')} {', '.join(default.get('users') or [])}")


# -- mail in from outside --------------------------------------------------------------------
@main.command("deliver")
@click.option("--recipient", required=True, help="Envelope recipient (the dealer mailbox).")
@click.option("--sender", default="", help="Envelope sender, if the MTA passes it.")
def deliver_cmd(recipient: str, sender: str) -> None:
    """Store one message from stdin (MTA pipe): exit 0 stored, 67 unknown recipient, 75 try later."""
    s = settings()
    raw = sys.stdin.buffer.read()
    try:
        runtime = build_runtime(s)
    except Exception as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EX_TEMPFAIL)
    enqueue, grace = runtime.intake_handoff(worker_here=False)
    try:
        code = deliver(
            runtime.db,
            raw,
            recipient=recipient,
            sender=sender,
            now=runtime.clock(),
            enqueue=enqueue,
            grace=grace,
        )
    finally:
        runtime.close()
    if code:
        click.echo(
            f"error: {'unknown recipient ' + recipient if code == 67 else 'temporary failure'}", err=True
        )
    sys.exit(code)


@main.command("ingest")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--recipient", default=None, help="Dealer mailbox for files without a usable envelope.")
def ingest_cmd(paths: tuple[Path, ...], recipient: str | None) -> None:
    """Import .eml files, mbox files or Maildir folders."""
    s = settings()
    runtime = build_runtime(s)
    enqueue, grace = runtime.intake_handoff(worker_here=False)
    counts = {"stored": 0, "duplicate": 0, "refused": 0}
    try:
        with runtime.db.session() as session:
            mailboxes = set(session.scalars(select(Mailbox.address)))
        messages = [m for path in paths for m in iter_messages(path)]
        with click.progressbar(messages, label="importing", file=sys.stderr) as bar:
            for message in bar:
                targets = (
                    [recipient]
                    if recipient
                    else [a for a in header_recipients(message.raw) if a in mailboxes][:1]
                )
                if not targets:
                    counts["refused"] += 1
                    click.echo(
                        f"\n{message.origin}: no configured mailbox among its recipients; pass --recipient",
                        err=True,
                    )
                    continue
                try:
                    stored = store_message(
                        runtime.db,
                        message.raw,
                        envelope_from="",
                        recipients=targets,
                        via="ingest",
                        now=runtime.clock(),
                        enqueue=enqueue,
                        grace=grace,
                    )
                except UnknownRecipient as exc:
                    counts["refused"] += 1
                    click.echo(f"\n{message.origin}: unknown recipient {exc}", err=True)
                    continue
                for item in stored:
                    counts["duplicate" if item.duplicate else "stored"] += 1
    finally:
        runtime.close()
    click.echo(f"stored {counts['stored']}, already there {counts['duplicate']}, refused {counts['refused']}")
    if counts["refused"]:
        sys.exit(1)


@main.command("parse")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="JSON lines (the only output there is).")
@click.option("--dealer", default=None, help="Use this dealer's source rules.")
def parse_cmd(paths: tuple[Path, ...], as_json: bool, dealer: str | None) -> None:
    """Show what the parser sees, one JSON line per message, without storing anything."""
    rules: list[dict[str, Any]] = []
    if dealer:
        db = open_db()
        with db.session() as session:
            row = session.get(Dealer, dealer)
            if row is None:
                fail(f"no dealer {dealer!r}")
            rules = list((row.config if row else {}).get("sources") or [])
        db.dispose()
    for path in paths:
        for message in iter_messages(path):
            emit_json(parse_report(message.origin, message.raw, rules))


# -- leads -----------------------------------------------------------------------------------
@main.group()
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
    with db.session() as session:
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
        )
    click.echo(f"{data['total']} lead(s)")


@leads.command("show")
@click.argument("lead_id", type=int)
@click.option("--json", "as_json", is_flag=True)
def leads_show(lead_id: int, as_json: bool) -> None:
    """One lead with contact, vehicle and timeline."""
    db = open_db()
    with db.session() as session:
        lead = session.get(Lead, lead_id)
        if lead is None:
            fail(f"no lead {lead_id}")
        data = lead_dict(session, lead, now=system_clock(), with_activities=True)
        zone = dealer_zones(session).get(lead.dealer_id, "UTC")
    db.dispose()
    if as_json:
        emit_json(data)
        return
    contact = data["contact"]
    click.echo(f"Lead {data['id']} ({data['dealer']}) · {data['status']} · {data['type']}")
    click.echo(f"Customer: {contact['name'] or '-'} <{contact['email'] or '-'}> {contact['phone'] or ''}")
    click.echo(f"Editor:   {data['editor'] or '(pool)'}    Source: {data['source'] or '-'}")
    click.echo(f"Subject:  {data['subject'] or '-'}")
    click.echo(
        f"Created:  {local_time(data['created_at'], zone)}    "
        f"Due: {local_time(data['due_at'], zone)} ({data['due_state']})    Times: {zone}"
    )
    click.echo("Timeline:")
    for activity in data["activities"]:
        click.echo(f"  {local_time(activity['at'], zone)}  {activity['kind']:<20} {activity['text']}")


@leads.command("assign")
@click.argument("lead_id", type=int)
@click.argument("user")
@click.option("--by", default="operator", show_default=True, help="Who reassigns it.")
@click.option("--reason", default="", help="Why (recorded on the lead).")
def leads_assign(lead_id: int, user: str, by: str, reason: str) -> None:
    """Give lead ID to USER (recorded with who and why)."""
    db = open_db()
    try:
        with db.session() as session:
            lead = session.get(Lead, lead_id, with_for_update={"of": Lead})
            if lead is None:
                fail(f"no lead {lead_id}")
            reassign(session, lead, user, by=by, reason=reason, now=system_clock())
    except LookupError as exc:
        fail(str(exc.args[0]))
    finally:
        db.dispose()
    click.echo(f"lead {lead_id} assigned to {user}")


def _lead_action(lead_id: int, action: object) -> None:
    """Run ``action(session, lead)`` on a locked lead; user mistakes end in one sentence."""
    db = open_db()
    try:
        with db.session() as session:
            lead = session.get(Lead, lead_id, with_for_update={"of": Lead})
            if lead is None:
                fail(f"no lead {lead_id}")
            action(session, lead)  # type: ignore[operator]
    except ActionError as exc:
        fail(str(exc))
    finally:
        db.dispose()


@leads.command("reply")
@click.argument("lead_id", type=int)
@click.option(
    "--body-file", type=click.File("r", encoding="utf-8"), required=True, help="The text; - for stdin."
)
@click.option("--as", "as_user", default=None, help="Who answers (default: the lead's editor).")
def leads_reply(lead_id: int, body_file: Any, as_user: str | None) -> None:
    """Answer the customer: your text framed by the dealer's header and footers, threaded."""
    body = body_file.read()

    def act(session: Any, lead: Lead) -> None:
        reply(session, lead, body, by=acting_user(session, lead, as_user), now=system_clock())

    _lead_action(lead_id, act)
    click.echo(f"reply to lead {lead_id} queued (the sweeper sends it within seconds)")


@leads.command("due")
@click.argument("lead_id", type=int)
@click.argument("when")
@click.option("--by", default="operator", show_default=True)
def leads_due(lead_id: int, when: str, by: str) -> None:
    """Set a resubmission date: "2026-12-01 10:00" (dealer's time), "2026-12-01" or "+2h"."""
    now = system_clock()

    def act(session: Any, lead: Lead) -> None:
        dealer = session.get(Dealer, lead.dealer_id)
        try:
            moment = parse_when(when, now=now, calendar=BusinessCalendar.from_config(dealer.config))
        except ValueError as exc:
            raise ActionError(str(exc)) from None
        if lead.status != "open":
            raise ActionError(f"lead {lead_id} is {lead.status}")
        change_due(session, lead, moment, by=by, now=now)

    _lead_action(lead_id, act)
    click.echo(f"lead {lead_id} is due {when}")


@leads.command("note")
@click.argument("lead_id", type=int)
@click.argument("text")
@click.option("--by", default="operator", show_default=True)
def leads_note(lead_id: int, text: str, by: str) -> None:
    """Add a note to the lead's timeline."""
    _lead_action(lead_id, lambda session, lead: note(session, lead, text, by=by, now=system_clock()))
    click.echo(f"note added to lead {lead_id}")


@leads.command("complete")
@click.argument("lead_id", type=int)
@click.option("--reason", "code", required=True, help="A completion reason code (e.g. sold).")
@click.option("--by", default="operator", show_default=True)
def leads_complete(lead_id: int, code: str, by: str) -> None:
    """Close the lead with a completion reason."""
    _lead_action(lead_id, lambda session, lead: complete(session, lead, code, by=by, now=system_clock()))
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
            row = session.get(Dealer, dealers[0])
            if row is None:
                fail(f"no dealer {dealers[0]!r}")
            moved = redistribute(session, row, from_user, now=system_clock())
    except LookupError as exc:
        fail(str(exc.args[0]))
    finally:
        db.dispose()
    for lead_id, editor in moved:
        click.echo(f"lead {lead_id}: {editor or '(pool)'}")
    click.echo(f"{len(moved)} open lead(s) of {from_user} redistributed")


# -- operations ------------------------------------------------------------------------------
@main.group()
def ops() -> None:
    """Operations: queue and failure view, replay."""


@ops.command("status")
@click.option("--json", "as_json", is_flag=True)
def ops_status_cmd(as_json: bool) -> None:
    """Counts per state, queue depths, oldest pending age, dead letters."""
    s = settings()
    runtime = build_runtime(s)
    try:
        queues: dict[str, int] = {}
        if not s.broker_url.startswith("memory"):
            runtime.broker.declare_queue(runtime.ingest_actor.queue_name)
            runtime.broker.declare_queue(runtime.send_actor.queue_name)
            queues = queue_depths(runtime.broker)
        with runtime.db.session() as session:
            data = ops_status(session, now=runtime.clock(), queues=queues)
    finally:
        runtime.close()
    if as_json:
        emit_json(data)
        return
    click.echo("inbound:  " + (", ".join(f"{k} {v}" for k, v in sorted(data["inbound"].items())) or "none"))
    click.echo("outbound: " + (", ".join(f"{k} {v}" for k, v in sorted(data["outbound"].items())) or "none"))
    click.echo("queues:   " + (", ".join(f"{k} {v}" for k, v in data["queues"].items()) or "in-process"))
    click.echo(
        f"oldest pending: {data['oldest_pending_seconds']}s · dead: {data['dead']} · failed: {data['failed']}"
    )
    for box in data["imap"]:
        state = "connected" if box["connected"] else "disconnected"
        error = f", last error {box['last_error']}" if box["last_error"] else ""
        click.echo(
            f"imap {box['mailbox']} {box['folder']}: {state}, taken {box['taken']}, "
            f"last success {box['last_success'] or '-'}{error}"
        )


@ops.command("retry")
@click.option("--inbound", "inbound_id", type=int)
@click.option("--outbound", "outbound_id", type=int)
@click.option("--all-failed", is_flag=True, help="Every dead or failed row, in and out.")
def ops_retry(inbound_id: int | None, outbound_id: int | None, all_failed: bool) -> None:
    """Put dead or failed rows back in the pipeline (the sweeper picks them up at once)."""
    if not (inbound_id or outbound_id or all_failed):
        fail("say what to retry: --inbound ID, --outbound ID or --all-failed")
    db = open_db()
    now = system_clock()
    with db.session() as session:
        inbound_q = update(InboundMessage).where(InboundMessage.state.in_(("failed", "dead")))
        outbound_q = update(OutboundMessage).where(OutboundMessage.state.in_(("failed", "dead")))
        n_in = n_out = 0
        if inbound_id or all_failed:
            q = inbound_q.where(InboundMessage.id == inbound_id) if inbound_id else inbound_q
            n_in = session.execute(
                q.values(state="received", attempts=0, next_attempt_at=now, updated_at=now)
            ).rowcount  # type: ignore[attr-defined]
        if outbound_id or all_failed:
            q = outbound_q.where(OutboundMessage.id == outbound_id) if outbound_id else outbound_q
            n_out = session.execute(
                q.values(state="queued", attempts=0, next_attempt_at=now, updated_at=now)
            ).rowcount  # type: ignore[attr-defined]
    db.dispose()
    click.echo(f"queued again: {n_in} inbound, {n_out} outbound")


main.add_command(unassigned)
main.add_command(templates)


if __name__ == "__main__":
    logging.basicConfig()
    main()
