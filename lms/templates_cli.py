"""``lms templates preview|test-mail``: see and send the autoresponder as the dealer set it up."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import click

from lms.common import fail
from models.settings import Settings
from models.tables import Dealer
from workers.clock import system_clock
from workers.compose import RenderedMail, TemplateRenderError, build_message, render_mail
from workers.lead_mail import new_message_id, queue_outbound
from workers.mail_context import sample_context
from workers.runtime import build_runtime


def _dealer(session: Any, dealer_id: str) -> Dealer:
    dealer = session.get(Dealer, dealer_id)
    if dealer is None:
        fail(f"no dealer {dealer_id!r}")
    return dealer


def _render(dealer: Dealer, group: str, lang: str | None) -> RenderedMail:
    lang = lang or dealer.language
    try:
        return render_mail(
            templates=dealer.config.get("templates") or {},
            group=group,
            lang=lang,
            default_lang=dealer.language,
            context=sample_context(dealer.config, lang, placeholders=True),
        )
    except TemplateRenderError as exc:
        fail(f"the template does not render: {exc}")
        raise


@click.group()
def templates() -> None:
    """The autoresponder's templates."""


@templates.command("preview")
@click.option("--dealer", "dealer_id", required=True)
@click.option("--group", default="default", show_default=True, help="Distribution group.")
@click.option("--lang", default=None, help="de or en (default: the dealer's language).")
@click.option("--out", default="preview", show_default=True, help="Writes OUT.eml and OUT.html.")
def preview(dealer_id: str, group: str, lang: str | None, out: str) -> None:
    """Render the autoresponse with placeholders such as [contact.name] for lead data."""
    runtime = build_runtime(Settings())
    try:
        with runtime.db.session() as session:
            dealer = _dealer(session, dealer_id)
            rendered = _render(dealer, group, lang)
            raw = build_message(
                rendered,
                from_name=dealer.from_name,
                from_address=dealer.from_address,
                to="[contact.email]",
                message_id=new_message_id("preview", None, dealer),
                date=system_clock(),
                origin=dealer.id,
                auto_submitted="auto-replied",
            )
    finally:
        runtime.close()
    base = Path(out).with_suffix("") if out.endswith((".eml", ".html")) else Path(out)
    base.with_suffix(".eml").write_bytes(raw)
    base.with_suffix(".html").write_text(rendered.html, encoding="utf-8")
    click.echo(
        f"wrote {base.with_suffix('.eml')} and {base.with_suffix('.html')} (subject: {rendered.subject})"
    )


@templates.command("test-mail")
@click.option("--dealer", "dealer_id", required=True)
@click.option("--to", "to", required=True, help="Where to send it.")
@click.option("--group", default="default", show_default=True)
@click.option("--lang", default=None)
def test_mail(dealer_id: str, to: str, group: str, lang: str | None) -> None:
    """Send the rendered autoresponse through the outbox and the relay now."""
    runtime = build_runtime(Settings())
    now = runtime.clock()
    try:
        with runtime.db.session() as session:
            dealer = _dealer(session, dealer_id)
            rendered = _render(dealer, group, lang)
            message_id = new_message_id("test", None, dealer)
            raw = build_message(
                rendered,
                from_name=dealer.from_name,
                from_address=dealer.from_address,
                to=to,
                message_id=message_id,
                date=now,
                origin=dealer.id,
                auto_submitted="auto-generated",
            )
            outbound_id = queue_outbound(
                session,
                dealer,
                None,
                kind="test",
                purpose=f"test:{secrets.token_hex(8)}",
                raw=raw,
                message_id=message_id,
                envelope_from=dealer.from_address,
                recipients=[to],
                now=now,
                grace=runtime.grace,
            )
        runtime.send(outbound_id)
        with runtime.db.session() as session:
            from models.tables import OutboundMessage

            row = session.get(OutboundMessage, outbound_id)
            state, error = (row.state, row.last_error) if row else ("missing", None)
    finally:
        runtime.close()
    if state != "sent":
        fail(f"test mail {outbound_id} is {state}: {error or 'see lms ops status'}")
    click.echo(f"test mail {outbound_id} sent to {to}")
