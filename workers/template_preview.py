"""The autoresponder as a dealer set it up, rendered with placeholders: to look at, or sent
as a test mail through the outbox."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from models.tables import Dealer
from workers.compose import RenderedMail, TemplateRenderError, build_message, render_mail
from workers.lead_mail import new_message_id, queue_outbound
from workers.mail_context import sample_context


class PreviewError(Exception):
    """No such dealer, or its blocks do not render; the message says which."""


def _dealer(session: Session, dealer_id: str) -> Dealer:
    dealer = session.get(Dealer, dealer_id)
    if dealer is None:
        raise PreviewError(f"no dealer {dealer_id!r}")
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
        raise PreviewError(f"the template does not render: {exc}") from None


def preview(
    session: Session, dealer_id: str, *, group: str, lang: str | None, now: datetime
) -> tuple[bytes, RenderedMail]:
    """The autoresponse with placeholders such as ``[contact.name]``: its MIME bytes and parts."""
    dealer = _dealer(session, dealer_id)
    rendered = _render(dealer, group, lang)
    raw = build_message(
        rendered,
        from_name=dealer.from_name,
        from_address=dealer.from_address,
        to="[contact.email]",
        message_id=new_message_id("preview", None, dealer),
        date=now,
        origin=dealer.id,
        auto_submitted="auto-replied",
    )
    return raw, rendered


def queue_test_mail(
    session: Session,
    dealer_id: str,
    *,
    to: str,
    group: str,
    lang: str | None,
    now: datetime,
    grace: timedelta,
) -> int:
    """The rendered autoresponse as an outbox row to ``to``; returns the row id."""
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
    return queue_outbound(
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
        grace=grace,
    )
