"""``lms users``: passwords, invitations and API tokens for the web pane (users themselves come
from the dealer file)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

import click
from sqlalchemy.orm import Session

from lms.common import fail, open_db, settings
from models.clock import system_clock
from models.tables import User
from workers import accounts

T = TypeVar("T")


def _with_user(dealer: str, username: str, action: Callable[[Session, User], T]) -> T:
    db = open_db()
    try:
        with db.session() as session:
            return action(session, accounts.find_user(session, dealer, username))
    except accounts.AccountError as exc:
        fail(str(exc))
    finally:
        db.dispose()


@click.group()
def users() -> None:
    """Sign-in for the web pane: passwords, invitations, API tokens, sessions."""


@users.command("set-password")
@click.argument("dealer")
@click.argument("user")
@click.option("--stdin", "from_stdin", is_flag=True, help="Read the password from the first line of stdin.")
def set_password_cmd(dealer: str, user: str, from_stdin: bool) -> None:
    """Set USER's password (asked twice, not echoed); their open sessions end."""
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        accounts.check_password_rules(password)
    except accounts.AccountError as exc:
        fail(str(exc))
    _with_user(
        dealer,
        user,
        lambda session, row: accounts.set_password(session, row, password, now=system_clock()),
    )
    click.echo(f"password of {user} at {dealer} set; their other sessions are signed out")


@users.command("invite")
@click.argument("dealer")
@click.argument("user")
def invite_cmd(dealer: str, user: str) -> None:
    """Mail USER a one-time link to set their password (through the outbox; it expires)."""
    s = settings()
    base_url = s.web_public_url or f"http://{s.web_listen}"
    valid = timedelta(hours=s.web_invitation_hours)

    def act(session: Session, row: User) -> str:
        accounts.invite(session, row, base_url=base_url, now=system_clock(), valid=valid, grace=timedelta(0))
        return row.email

    email = _with_user(dealer, user, act)
    click.echo(
        f"invitation for {user} queued to {email}, valid for {s.web_invitation_hours:g} hours "
        "(sent by the running lms within seconds)"
    )


@users.command("token")
@click.argument("dealer")
@click.argument("user")
@click.option("--name", default="cli", show_default=True, help="What the token is for.")
def token_cmd(dealer: str, user: str, name: str) -> None:
    """Create a personal API token for USER (Authorization: Bearer); printed once, on the last line."""
    token = _with_user(
        dealer, user, lambda session, row: accounts.create_token(session, row, name=name, now=system_clock())
    )
    click.echo(f"API token for {user} at {dealer} (shown only now; revoke with `lms users revoke-token`):")
    click.echo(token)


@users.command("tokens")
@click.argument("dealer")
@click.argument("user")
def tokens_cmd(dealer: str, user: str) -> None:
    """USER's API tokens (never the tokens themselves)."""

    def act(session: Session, row: User) -> list[str]:
        lines = []
        for t in accounts.list_tokens(session, row):
            if t.revoked_at is None:
                used = f"last used {t.last_used_at:%Y-%m-%d %H:%M}" if t.last_used_at else "never used"
                lines.append(f"{t.id:>5}  {t.name:<20} created {t.created_at:%Y-%m-%d %H:%M}  {used}")
        return lines

    lines = _with_user(dealer, user, act)
    for line in lines:
        click.echo(line)
    click.echo(f"{len(lines)} active token(s)")


@users.command("revoke-token")
@click.argument("dealer")
@click.argument("user")
@click.argument("token_id", type=int, required=False)
@click.option("--all", "all_", is_flag=True, help="Revoke every token of USER.")
def revoke_token_cmd(dealer: str, user: str, token_id: int | None, all_: bool) -> None:
    """Revoke one API token (its id from `lms users tokens`) or all of them."""
    if (token_id is None) == (not all_):
        fail("give a token id or --all")
    count = _with_user(
        dealer,
        user,
        lambda session, row: accounts.revoke_tokens(session, row, now=system_clock(), token_id=token_id),
    )
    if token_id is not None and count == 0:
        fail(f"{user} has no active token {token_id}")
    click.echo(f"{count} token(s) of {user} revoked")


@users.command("sign-out")
@click.argument("dealer")
@click.argument("user")
def sign_out_cmd(dealer: str, user: str) -> None:
    """End every web session of USER now."""
    count = _with_user(
        dealer, user, lambda session, row: accounts.end_sessions(session, row, now=system_clock())
    )
    click.echo(f"{count} session(s) of {user} ended")
