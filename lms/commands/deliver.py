"""``lms deliver``: the MTA pipe. A mail server starts it once per message, so it imports only
what storing a mail needs (a test keeps it that way)."""

from __future__ import annotations

import sys

import click


@click.command("deliver")
@click.option("--recipient", required=True, help="Envelope recipient (the dealer mailbox).")
@click.option("--sender", default="", help="Envelope sender, if the MTA passes it.")
def deliver_cmd(recipient: str, sender: str) -> None:
    """Store one message from stdin (MTA pipe): exit 0 stored, 67 unknown recipient, 65 too big,
    75 try later."""
    from datetime import timedelta
    from functools import partial

    from intake.deliver import EX_TEMPFAIL, deliver, read_limited
    from models import dbapi
    from models.env import PipeSettings, is_real_broker

    try:
        s = PipeSettings.from_env()
        dialect = dbapi.parse_url(s.database_url).backend
    except ValueError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EX_TEMPFAIL)
    raw = read_limited(sys.stdin.buffer, s.smtp_max_bytes)
    enqueue, close = None, None
    # With the in-process broker no worker can hear us: the row is due at once instead, for the
    # sweeper of the process that has the workers.
    grace = timedelta(0)
    if is_real_broker(s.broker_url):
        grace = timedelta(seconds=s.sweep_grace_seconds)
        try:
            from workers.handoff import ingest_enqueuer

            enqueue, close = ingest_enqueuer(s.broker_url, s.queue_prefix)
        except Exception as exc:  # stored is what counts; the sweeper announces it later
            click.echo(f"warning: broker unavailable, the sweeper will pick the mail up ({exc})", err=True)
    connect = partial(
        dbapi.connect,
        s.database_url,
        sqlite_busy_timeout_ms=s.sqlite_busy_timeout_ms,
        statement_timeout_ms=int(s.database_statement_timeout_seconds * 1000),
        connect_timeout_seconds=s.database_connect_timeout_seconds,
    )
    try:
        result = deliver(
            connect,
            dialect,
            raw,
            recipient=recipient,
            sender=sender,
            grace=grace,
            max_bytes=s.smtp_max_bytes,
            enqueue=enqueue,
            timeout_seconds=s.store_timeout_seconds,
            lock_wait=s.sqlite_busy_timeout_ms / 1000,
        )
    finally:
        if close is not None:
            close()
    if result.message:
        click.echo(f"error: {result.message}", err=True)
    sys.exit(result.code)
