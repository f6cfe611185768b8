"""``lms templates preview|test-mail``: see and send the autoresponder as the dealer set it up."""

from __future__ import annotations

from pathlib import Path

import click

from lms.common import fail, settings
from models.tables import OutboundMessage
from workers.runtime import build_runtime
from workers.template_preview import PreviewError, preview, queue_test_mail


@click.group()
def templates() -> None:
    """The autoresponder's templates."""


@templates.command("preview")
@click.option("--dealer", "dealer_id", required=True)
@click.option("--group", default="default", show_default=True, help="Distribution group.")
@click.option("--lang", default=None, help="de or en (default: the dealer's language).")
@click.option("--out", default="preview", show_default=True, help="Writes OUT.eml and OUT.html.")
def preview_cmd(dealer_id: str, group: str, lang: str | None, out: str) -> None:
    """Render the autoresponse with placeholders such as [contact.name] for lead data."""
    runtime = build_runtime(settings())
    try:
        with runtime.db.read() as session:
            raw, html, subject = preview(session, dealer_id, group=group, lang=lang, now=runtime.clock())
    except PreviewError as exc:
        fail(str(exc))
    finally:
        runtime.close()
    base = Path(out).with_suffix("") if out.endswith((".eml", ".html")) else Path(out)
    base.with_suffix(".eml").write_bytes(raw)
    base.with_suffix(".html").write_text(html, encoding="utf-8")
    click.echo(f"wrote {base.with_suffix('.eml')} and {base.with_suffix('.html')} (subject: {subject})")


@templates.command("test-mail")
@click.option("--dealer", "dealer_id", required=True)
@click.option("--to", "to", required=True, help="Where to send it.")
@click.option("--group", default="default", show_default=True)
@click.option("--lang", default=None)
def test_mail(dealer_id: str, to: str, group: str, lang: str | None) -> None:
    """Send the rendered autoresponse through the outbox and the relay now."""
    runtime = build_runtime(settings())
    try:
        with runtime.db.session() as session:
            outbound_id = queue_test_mail(
                session, dealer_id, to=to, group=group, lang=lang, now=runtime.clock(), grace=runtime.grace
            )
        runtime.send(outbound_id)
        with runtime.db.read() as session:
            row = session.get(OutboundMessage, outbound_id)
            state, error = (row.state, row.last_error) if row else ("missing", None)
    except PreviewError as exc:
        fail(str(exc))
    finally:
        runtime.close()
    if state != "sent":
        fail(f"test mail {outbound_id} is {state}: {error or 'see lms ops status'}")
    click.echo(f"test mail {outbound_id} sent to {to}")
