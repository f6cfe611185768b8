"""The autoresponder as a dealer set it up, rendered with placeholders: to look at, or sent
as a test mail through the outbox."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from models.policy import DealerPolicy, UnknownDealer, load_policy
from workers import outbox
from workers.render.blocks import language_of
from workers.render.context import sample_context


class PreviewError(Exception):
    """No such dealer, or its blocks do not render; the message says which."""


def _policy(session: Session, dealer_id: str) -> DealerPolicy:
    try:
        return load_policy(session, dealer_id)
    except UnknownDealer as exc:
        raise PreviewError(str(exc.args[0])) from None


def _spec(policy: DealerPolicy, kind: str, to: str, group: str, lang: str | None) -> outbox.MailSpec:
    lang = language_of(lang or policy.language, policy.language)
    return outbox.MailSpec(
        kind=kind,
        purpose=f"{kind}:{secrets.token_hex(8)}",
        to=(to,),
        lang=lang,
        context=sample_context(policy.config, lang, placeholders=True),
        group=group,
    )


def _built(policy: DealerPolicy, spec: outbox.MailSpec, now: datetime) -> outbox.PreparedMail:
    mail = outbox.prepare(policy, spec, now=now)
    if mail.raw is None:
        raise PreviewError(f"the template does not render: {mail.error}")
    return mail


def preview(
    session: Session, dealer_id: str, *, group: str, lang: str | None, now: datetime
) -> tuple[bytes, str, str]:
    """The autoresponse with placeholders such as ``[contact.name]``: MIME bytes, HTML, subject."""
    from email import message_from_bytes
    from email import policy as email_policy

    policy = _policy(session, dealer_id)
    mail = _built(policy, _spec(policy, "preview", "contact@example.invalid", group, lang), now)
    assert mail.raw is not None
    message = message_from_bytes(mail.raw, policy=email_policy.default)
    html = message.get_body(("html",))
    return mail.raw, html.get_content() if html is not None else "", mail.subject


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
    policy = _policy(session, dealer_id)
    mail = _built(policy, _spec(policy, "test", to, group, lang), now)
    outbound_id = outbox.queue(session, mail, now=now, grace=grace)
    assert outbound_id is not None
    return outbound_id
