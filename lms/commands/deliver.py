"""``lms deliver``: the MTA pipe. A mail server starts it once per message, so it imports only
what storing a mail needs."""

from __future__ import annotations

import sys

import click


@click.command("deliver")
@click.option("--recipient", required=True, help="Envelope recipient (the dealer mailbox).")
@click.option("--sender", default="", help="Envelope sender, if the MTA passes it.")
def deliver_cmd(recipient: str, sender: str) -> None:
    """Store one message from stdin (MTA pipe): exit 0 stored, 67 unknown recipient, 75 try later."""
    from intake.deliver import EX_NOUSER, EX_TEMPFAIL, deliver
    from lms.common import settings
    from workers.runtime import build_runtime

    raw = sys.stdin.buffer.read()
    try:
        runtime = build_runtime(settings())
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
        why = f"unknown recipient {recipient}" if code == EX_NOUSER else "temporary failure"
        click.echo(f"error: {why}", err=True)
    sys.exit(code)
