"""``lms ingest`` (files into the pipeline) and ``lms parse`` (what the parser sees)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from sqlalchemy import select

from intake.importer import iter_messages, recipients_for
from intake.parsing.report import parse_report
from intake.store import UnknownRecipient, store_message
from lms.common import emit_json, fail, open_db, settings
from models.policy import UnknownDealer, load_policy
from models.tables import Mailbox


@click.command("ingest")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--recipient", default=None, help="Dealer mailbox for files without a usable envelope.")
def ingest_cmd(paths: tuple[Path, ...], recipient: str | None) -> None:
    """Import .eml files, mbox files or Maildir folders."""
    from workers.runtime import build_runtime

    runtime = build_runtime(settings())
    enqueue, grace = runtime.intake_handoff(worker_here=False)
    counts = {"stored": 0, "duplicate": 0, "refused": 0}
    try:
        with runtime.db.read() as session:
            mailboxes = set(session.scalars(select(Mailbox.address)))
        messages = [m for path in paths for m in iter_messages(path)]
        with click.progressbar(messages, label="importing", file=sys.stderr) as bar:
            for message in bar:
                targets = recipients_for(message.raw, mailboxes, recipient)
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


@click.command("parse")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="JSON lines (the only output there is).")
@click.option(
    "--dealer",
    default=None,
    help="Use this dealer's source rules, country (phones) and trusted authserv-ids.",
)
def parse_cmd(paths: tuple[Path, ...], as_json: bool, dealer: str | None) -> None:
    """Show what the parser sees, one JSON line per message, without storing anything."""
    options: dict[str, Any] = {}
    if dealer:
        from workers.parse_facts import parse_options

        db = open_db()
        try:
            with db.read() as session:
                options = parse_options(load_policy(session, dealer), settings().authserv_id)
        except UnknownDealer:
            fail(f"no dealer {dealer!r}")
        finally:
            db.dispose()
    for path in paths:
        for message in iter_messages(path):
            emit_json(parse_report(message.origin, message.raw, **options))
