"""``lms config``: check, apply and show the dealer configuration (TOML)."""

from __future__ import annotations

import click
from sqlalchemy import select

from lms.common import emit_json, fail, open_db
from models.clock import system_clock
from models.config_apply import apply_config
from models.dealer_config import ConfigError, redacted
from models.tables import Dealer
from workers.config_checks import load_checked


@click.group()
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
    with db.read() as session:
        dealers = [redacted(d.config) for d in session.scalars(select(Dealer).order_by(Dealer.id))]
    db.dispose()
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
