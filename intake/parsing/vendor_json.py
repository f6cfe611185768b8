"""Bounce, complaint and delivery notifications of cloud mail services, sent as JSON in a
mail (an SNS e-mail subscription, a forwarded webhook). (Pure.)

Shapes as the vendors document them: Amazon SES notifications (``notificationType``) and
event publishing (``eventType``), also wrapped in an Amazon SNS envelope (``Type:
Notification`` with the event as a JSON string in ``Message``); SendGrid's Event Webhook (a
list of events with ``event`` and ``sg_event_id``); Mailgun webhooks (``event-data``);
Postmark (``RecordType``); SparkPost (``msys``); Mandrill (``mandrill_events``); Mailjet and
Brevo events (``event`` with their message ids).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

_MAX_JSON = 256_000


@dataclass
class VendorEvent:
    vendor: str
    event: str  # bounce | complaint | delivery | delay | reject | other
    detail: str = ""
    recipients: list[str] = field(default_factory=list)
    message_ids: list[str] = field(default_factory=list)  # the original mail's Message-ID(s)


_EVENT_WORDS = {
    "bounce": "bounce",
    "bounced": "bounce",
    "hardbounce": "bounce",
    "hard_bounce": "bounce",
    "softbounce": "delay",
    "soft_bounce": "delay",
    "failed": "bounce",
    "dropped": "bounce",
    "blocked": "bounce",
    "invalid_email": "bounce",
    "complaint": "complaint",
    "complained": "complaint",
    "spamcomplaint": "complaint",
    "spam_report": "complaint",
    "spamreport": "complaint",
    "spam": "complaint",
    "delivery": "delivery",
    "delivered": "delivery",
    "deliverydelay": "delay",
    "deferred": "delay",
    "delayed": "delay",
    "reject": "reject",
    "rejected": "reject",
}


def _event(word: Any) -> str:
    return _EVENT_WORDS.get(str(word or "").replace(" ", "").lower(), "other")


def _first_json(text: str) -> Any:
    stripped = text.lstrip()
    if stripped[:1] not in ("{", "[") or len(stripped) > _MAX_JSON:
        return None
    try:
        value, _ = json.JSONDecoder().raw_decode(stripped)  # a footer may follow (SNS)
    except ValueError:
        return None
    return value


def _angle(message_id: Any) -> str:
    value = str(message_id or "").strip()
    if not value:
        return ""
    return value if value.startswith("<") else f"<{value}>"


def _ses(data: dict[str, Any]) -> VendorEvent | None:
    kind = data.get("notificationType") or data.get("eventType")
    if not kind or "mail" not in data:
        return None
    event = VendorEvent("Amazon SES", _event(kind))
    mail = data.get("mail") or {}
    common = mail.get("commonHeaders") or {}
    ids = [_angle(common.get("messageId"))] + [
        _angle(h.get("value"))
        for h in mail.get("headers") or []
        if str(h.get("name", "")).lower() == "message-id"
    ]
    event.message_ids = [i for i in dict.fromkeys(ids) if i]
    section = data.get(str(kind)[:1].lower() + str(kind)[1:]) or {}
    if event.event == "bounce":
        people = section.get("bouncedRecipients") or []
        event.recipients = [str(p.get("emailAddress", "")).lower() for p in people if p.get("emailAddress")]
        codes = [str(p.get("diagnosticCode") or p.get("status") or "") for p in people]
        event.detail = f"{section.get('bounceType', '')} {section.get('bounceSubType', '')}".strip()
        if section.get("bounceType") == "Transient":
            event.event = "delay"
        if any(codes):
            event.detail += ": " + "; ".join(c for c in codes if c)
    elif event.event == "complaint":
        people = section.get("complainedRecipients") or []
        event.recipients = [str(p.get("emailAddress", "")).lower() for p in people if p.get("emailAddress")]
        event.detail = str(section.get("complaintFeedbackType") or "complaint")
    else:
        event.recipients = [
            str(r).lower() for r in (section.get("recipients") or mail.get("destination") or [])
        ]
        event.detail = str(kind)
    return event


def _sendgrid(items: list[Any]) -> VendorEvent | None:
    events = [
        i
        for i in items
        if isinstance(i, dict) and "event" in i and ("sg_event_id" in i or "sg_message_id" in i)
    ]
    if not events:
        return None
    first = events[0]
    event = VendorEvent("SendGrid", _event(first.get("event")))
    event.recipients = [str(e.get("email", "")).lower() for e in events if e.get("email")]
    event.message_ids = [_angle(e.get("smtp-id")) for e in events if e.get("smtp-id")]
    event.detail = str(
        first.get("reason") or first.get("response") or first.get("type") or first.get("event")
    )
    return event


def _mailgun(data: dict[str, Any]) -> VendorEvent | None:
    body = data.get("event-data")
    if not isinstance(body, dict):
        return None
    event = VendorEvent("Mailgun", _event(body.get("event")))
    if body.get("event") == "failed" and body.get("severity") == "temporary":
        event.event = "delay"
    if body.get("recipient"):
        event.recipients = [str(body["recipient"]).lower()]
    headers = (body.get("message") or {}).get("headers") or {}
    if headers.get("message-id"):
        event.message_ids = [_angle(headers["message-id"])]
    status = body.get("delivery-status") or {}
    event.detail = str(
        status.get("description") or status.get("message") or body.get("reason") or body.get("event")
    )
    return event


def _postmark(data: dict[str, Any]) -> VendorEvent | None:
    record = data.get("RecordType")
    if not record:
        return None
    event = VendorEvent("Postmark", _event(record))
    if data.get("Type") in ("SoftBounce", "Transient"):
        event.event = "delay"
    address = data.get("Email") or data.get("Recipient")
    event.recipients = [str(address).lower()] if address else []
    event.detail = str(data.get("Description") or data.get("Details") or data.get("Type") or record)
    return event


def _sparkpost(items: list[Any]) -> VendorEvent | None:
    for item in items:
        body = item.get("msys") if isinstance(item, dict) else None
        if isinstance(body, dict) and body:
            inner = next(iter(body.values()))
            if isinstance(inner, dict):
                event = VendorEvent("SparkPost", _event(inner.get("type")))
                if inner.get("rcpt_to"):
                    event.recipients = [str(inner["rcpt_to"]).lower()]
                event.detail = str(inner.get("reason") or inner.get("raw_reason") or inner.get("type"))
                return event
    return None


def _generic(data: dict[str, Any]) -> VendorEvent | None:
    """Mailjet, Brevo and the like: an ``event`` beside the vendor's own message id."""
    if "event" not in data or not any(
        k in data for k in ("MessageID", "Message_GUID", "message-id", "messageId")
    ):
        return None
    event = VendorEvent("mail service", _event(data.get("event")))
    if data.get("email"):
        event.recipients = [str(data["email"]).lower()]
    if data.get("message-id") and "@" in str(data["message-id"]):
        event.message_ids = [_angle(data["message-id"])]
    event.detail = str(data.get("error") or data.get("reason") or data.get("event"))
    return event


_SES_LOOSE = re.compile(r'"(?:notificationType|eventType)"\s*:\s*"(\w+)"')
_SES_ADDRESS = re.compile(r'"emailAddress"\s*:\s*"([^"]+)"')
_SES_DIAGNOSTIC = re.compile(r'"diagnosticCode"\s*:\s*"([^"]*)"')


def _ses_loose(text: str) -> VendorEvent | None:
    """SES JSON a mail system folded or cut (a line break inside a string): read the fields
    that matter by pattern rather than lose the notification."""
    kind = _SES_LOOSE.search(text[:_MAX_JSON])
    if kind is None or '"mail"' not in text:
        return None
    event = VendorEvent("Amazon SES", _event(kind.group(1)))
    event.recipients = [a.lower() for a in dict.fromkeys(_SES_ADDRESS.findall(text))]
    diagnostic = _SES_DIAGNOSTIC.search(text)
    event.detail = diagnostic.group(1) if diagnostic else kind.group(1)
    return event


def vendor_event(text: str) -> VendorEvent | None:
    """The notification a mail body (or JSON attachment) carries, if it is one."""
    data = _first_json(text)
    if data is None:
        return _ses_loose(text) if text.lstrip()[:1] == "{" else None
    if isinstance(data, dict) and data.get("Type") == "Notification" and isinstance(data.get("Message"), str):
        data = _first_json(data["Message"])  # the Amazon SNS envelope
    if isinstance(data, dict) and "mandrill_events" in data:
        events = data["mandrill_events"]
        data = json.loads(events) if isinstance(events, str) else events
        if isinstance(data, list) and data and isinstance(data[0], dict):
            first = data[0]
            msg = first.get("msg") or {}
            return VendorEvent(
                "Mandrill",
                _event(first.get("event")),
                detail=str(msg.get("diag") or msg.get("bounce_description") or first.get("event")),
                recipients=[str(msg.get("email", "")).lower()] if msg.get("email") else [],
            )
    if isinstance(data, dict):
        return _ses(data) or _mailgun(data) or _postmark(data) or _generic(data)
    if isinstance(data, list):
        return _sendgrid(data) or _sparkpost(data)
    return None
