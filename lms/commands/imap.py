"""``lms imap``: the IMAP pollers (bare ``lms imap``, as before) and ``lms imap connect``."""

from __future__ import annotations

import click

from lms.common import fail, open_db, settings
from models.clock import system_clock


@click.group(invoke_without_command=True)
@click.pass_context
def imap(ctx: click.Context) -> None:
    """The IMAP pollers only: one connection per configured [[dealers.imap]] mailbox.

    With a subcommand: manage the mailboxes (connect one to its OAuth2 provider)."""
    if ctx.invoked_subcommand is None:
        from lms.processes import run_components

        run_components(settings(), smtp=False, worker=False, scheduler=False, imap=True)


@imap.command("connect", short_help="Connect an OAuth2 mailbox (device code, or --auth-code).")
@click.argument("dealer")
@click.argument("mailbox")
@click.option(
    "--auth-code",
    is_flag=True,
    help="Authorization code with PKCE in a browser (anywhere) instead of the device code.",
)
@click.option("--redirect-uri", default=None, help="With --auth-code: where the provider sends the browser.")
def connect(dealer: str, mailbox: str, auth_code: bool, redirect_uri: str | None) -> None:
    """Connect MAILBOX (the `user` of a [[dealers.imap]] entry with auth = "xoauth2") of DEALER
    to its OAuth2 provider and store the tokens, encrypted with LMS_SECRET_KEY."""
    from workers.mailbox_connect import (
        ConnectError,
        finish_authorization,
        parse_redirect,
        start_authorization,
        start_device,
        wait_device,
    )

    secret_key = settings().secret_key
    db = open_db()
    try:
        if auth_code:
            started = start_authorization(
                db, dealer, mailbox, secret_key=secret_key, now=system_clock(), redirect_uri=redirect_uri
            )
            click.echo(f"Open this address in a browser, sign in as {mailbox} and allow access:\n")
            click.echo(f"  {started.url}\n")
            click.echo(
                "Your browser is then sent to the redirect address; it may show an error page "
                "(nothing listens there), but its address holds the code."
            )
            pasted = click.prompt("Paste that whole address (or just the code)")
            code, state = parse_redirect(pasted)
            if state is not None and state != started.state:
                raise ConnectError("the pasted address belongs to another sign-in (state differs)")
            done = finish_authorization(
                db, state=started.state, code=code, secret_key=secret_key, now=system_clock()
            )
        else:
            device = start_device(db, dealer, mailbox, secret_key=secret_key, now=system_clock())
            click.echo(f"To connect {device.user} of {device.dealer_id}:")
            click.echo(f"  open   {device.verification_uri}")
            click.echo(f"  enter  {device.user_code}")
            click.echo(f"  and sign in as {device.user} (the code expires at {device.expires_at:%H:%M} UTC).")
            click.echo("Waiting for the sign-in …")
            done = wait_device(db, device, secret_key=secret_key, clock=system_clock)
    except ConnectError as exc:
        fail(str(exc))
    finally:
        db.dispose()
    click.echo(
        f"connected: {done.user} of {done.dealer_id} ({done.provider}); the tokens are stored "
        "encrypted, and the IMAP poller and the relay use them from their next login."
    )
