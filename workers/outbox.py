"""The one way any mail leaves: autoresponse, reply, forward, new-lead notification, reminder,
stage 1, stage 2, invitation, weekly summary, test mail.

A mail is described as plain data (:class:`MailSpec`, built inside the transaction that read
the lead), prepared outside any transaction (:func:`prepare`: Message-ID, rendering in the
budgeted sandbox, MIME, DKIM), then written in a short one (:func:`queue`: the outbox row
and the lead's activity). The row's ``purpose`` is unique, so writing the same mail twice is
impossible whatever runs twice. A mail that cannot be rendered or addressed still gets its
row, ``failed`` with the reason, and the lead shows it: the lead itself never fails with it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from intake.parsing.our_mail import new_message_id
from models.db import dialect_insert
from models.policy import DealerPolicy
from models.tables import LeadActivity, OutboundMessage
from workers.bounces import bouncing_reason
from workers.render.blocks import FramedMail, render_framed, render_text_kind
from workers.render.dkim import sign_if_configured
from workers.render.mime import AddressError, Headers, build_forward, build_framed, build_text
from workers.render.sandbox import TemplateRenderError

log = logging.getLogger(__name__)

# The kind's code in our Message-IDs (<lms.CODE.LEAD.RANDOM@domain>).
MESSAGE_ID_CODES = {
    "autoresponse": "ar",
    "reply": "re",
    "forward": "fwd",
    "notification": "new",
    "reminder": "esc",
    "stage1": "esc",
    "stage2": "esc",
    "invitation": "inv",
    "weekly_summary": "wk",
    "test": "test",
    "preview": "preview",
}
FRAMED = ("autoresponse", "test", "preview")
TEXT = ("notification", "reminder", "stage1", "stage2", "invitation", "weekly_summary")
# Mails to the customer (a bouncing address gets none).
CUSTOMER_KINDS = ("autoresponse", "reply")
# A person's mail on the lead's timeline is its own kind; what the system sends about a lead
# to its people shows as a notification.
ACTIVITY_KINDS = {"reminder": "notification", "stage1": "notification", "stage2": "notification"}


@dataclass(frozen=True)
class MailSpec:
    kind: str
    purpose: str  # unique per mail: e.g. "autoresponse:lead:7"
    to: tuple[str, ...]
    lang: str
    context: dict[str, Any]  # plain data only (workers.render.context)
    lead_id: int | None = None
    group: str = "default"
    from_name: str | None = None  # default: the dealer's sender name
    # None: the dealer's address; "": the null sender (RFC 3834 §3.3, for autoresponses).
    envelope_from: str | None = None
    reply_to: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = ()
    body_text: str | None = None  # a person's words (reply)
    original: bytes | None = field(default=None, repr=False)  # the forwarded mail, byte for byte
    expires_at: datetime | None = None
    activity_text: str | None = None  # "{subject}" in it becomes the rendered subject
    user_id: int | None = None  # who caused it (a reply's author)


@dataclass(frozen=True)
class PreparedMail:
    spec: MailSpec
    dealer_id: str
    message_id: str
    envelope_from: str
    raw: bytes | None = field(repr=False)
    error: str | None = None  # why it could not be built: the row is written "failed"
    subject: str = ""


def _headers(policy: DealerPolicy, spec: MailSpec, message_id: str, subject: str, now: datetime) -> Headers:
    if spec.kind == "reply":
        auto = None  # a person wrote it
    else:
        auto = "auto-replied" if spec.kind == "autoresponse" else "auto-generated"
    return Headers(
        from_name=spec.from_name or policy.sender_name,
        from_address=policy.sender_address,
        to=spec.to,
        subject=subject,
        message_id=message_id,
        date=now,
        origin=policy.id,
        reply_to=spec.reply_to,
        in_reply_to=spec.in_reply_to,
        references=spec.references,
        auto_submitted=auto,
        language=spec.lang if spec.kind in (*FRAMED, "reply") else None,
    )


def framed(policy: DealerPolicy, spec: MailSpec) -> FramedMail:
    """An autoresponse or reply in the dealer's frame, rendered (to send, or to look at first)."""
    subject = None
    if spec.kind == "reply":
        subject, _ = render_text_kind("reply", spec.lang, spec.context, subject_only=True)
    return render_framed(
        kind="autoresponse",  # the folder of the built-in blocks of the frame
        templates=policy.templates,
        group=spec.group,
        lang=spec.lang,
        default_lang=policy.language,
        context=spec.context,
        body_text=spec.body_text,
        subject=subject,
        with_attachments=spec.kind != "reply",  # the exposé belongs to the first answer
    )


def _build(policy: DealerPolicy, spec: MailSpec, message_id: str, now: datetime) -> tuple[bytes, str]:
    if spec.kind in FRAMED or spec.kind == "reply":
        framed_mail = framed(policy, spec)
        headers = _headers(policy, spec, message_id, framed_mail.subject, now)
        return build_framed(framed_mail, headers), framed_mail.subject
    subject, body = render_text_kind(
        spec.kind, spec.lang, spec.context, legal_footer_html=policy.legal_footer
    )
    headers = _headers(policy, spec, message_id, subject, now)
    if spec.kind == "forward":
        return build_forward(body, spec.original or b"", headers), subject
    if spec.kind in TEXT:
        return build_text(body, headers), subject
    raise ValueError(f"no such kind of mail: {spec.kind!r}")


def prepare(policy: DealerPolicy, spec: MailSpec, *, now: datetime) -> PreparedMail:
    """Everything but the database: Message-ID, rendering, MIME, DKIM. Never raises for a
    template or an address; the reason goes into the prepared mail instead."""
    message_id = new_message_id(MESSAGE_ID_CODES[spec.kind], spec.lead_id, policy.sender_address)
    envelope_from = policy.sender_address if spec.envelope_from is None else spec.envelope_from
    try:
        raw, subject = _build(policy, spec, message_id, now)
        raw = sign_if_configured(raw, policy.dkim)
    except (TemplateRenderError, AddressError, OSError, ValueError) as exc:
        log.warning("%s for lead %s cannot be built: %s", spec.kind, spec.lead_id, exc)
        return PreparedMail(spec, policy.id, message_id, envelope_from, None, f"{type(exc).__name__}: {exc}")
    return PreparedMail(spec, policy.id, message_id, envelope_from, raw, None, subject)


def queue(session: Session, mail: PreparedMail, *, now: datetime, grace: timedelta) -> int | None:
    """The outbox row (``queued``, or ``failed`` with the reason) and the lead's activity;
    ``None`` when this mail (its purpose) was written before."""
    spec = mail.spec
    if mail.raw is not None and spec.kind in CUSTOMER_KINDS and spec.to:
        # An address that bounced our mail for good gets no more: the lead shows why.
        bouncing = bouncing_reason(session, mail.dealer_id, spec.to[0])
        if bouncing:
            mail = replace(mail, raw=None, error=f"{spec.to[0]} bounces: {bouncing}")
    failed = mail.raw is None
    outbound_id = session.scalar(
        dialect_insert(session, OutboundMessage)
        .values(
            dealer_id=mail.dealer_id,
            lead_id=spec.lead_id,
            purpose=spec.purpose,
            kind=spec.kind,
            message_id=mail.message_id,
            envelope_from=mail.envelope_from,
            envelope_to=list(spec.to),
            recipient=(spec.to[0] if spec.to else "").lower(),
            raw=mail.raw or b"",
            state="failed" if failed else "queued",
            attempts=0,
            last_error=mail.error,
            created_at=now,
            next_attempt_at=None if failed else now + grace,
            expires_at=spec.expires_at,
            updated_at=now,
        )
        .on_conflict_do_nothing(index_elements=["purpose"])
        .returning(OutboundMessage.id)
    )
    if outbound_id is None:
        return None
    if spec.lead_id is not None:
        to = ", ".join(spec.to) or "nobody"
        if failed:
            kind, text = f"{spec.kind}_failed", f"{spec.kind.capitalize()} to {to} not sent: {mail.error}"
        else:
            kind = ACTIVITY_KINDS.get(spec.kind, spec.kind)
            text = (spec.activity_text or f"{spec.kind.capitalize()} to {to} queued").replace(
                "{subject}", mail.subject
            )
        session.add(
            LeadActivity(
                lead_id=spec.lead_id,
                at=now,
                kind=kind,
                text=text,
                outbound_id=outbound_id,
                user_id=spec.user_id,
                data={},
            )
        )
    return int(outbound_id)


def send_mail(
    session: Session, policy: DealerPolicy, spec: MailSpec, *, now: datetime, grace: timedelta
) -> int | None:
    """Prepare and queue in one go, for mails a person causes inside their own transaction
    (a reply, an invitation): there is no lock worth keeping short around them."""
    return queue(session, prepare(policy, spec, now=now), now=now, grace=grace)
