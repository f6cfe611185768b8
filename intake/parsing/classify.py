"""Is a message a lead, or something automatic that must never become one? (Pure.)

Signals follow RFC 3834 (Auto-Submitted), RFC 3464 (delivery status notifications), RFC 5965
(abuse reports), RFC 8098 (read receipts), RFC 2369 (List-* headers) and what Exchange,
Zammad, RT and Sisimai look at (X-Auto-Response-Suppress, Precedence, daemon senders,
vendor texts in many languages, cloud services' JSON notifications).

The coarse ``kind`` (bounce, auto_reply, bulk) is what the rest of the pipeline acts on; the
``family`` says which robot it was, for the record and the counts:

========================  ==========  ===================================================
family                    kind        what
========================  ==========  ===================================================
our_own                   auto_reply  our own mail came back (header, Message-ID, mailbox)
arf                       bounce      complaint report (RFC 5965), also forwarded
dsn                       bounce      RFC 3464 report: failed, delayed, relayed, delivered
bounce                    bounce      a mail system's report without RFC 3464 structure
vendor_notification       bounce      JSON notification of a cloud mail service
read_receipt              auto_reply  RFC 8098 disposition notification
list_notice               bulk        list manager: not a member, loop alert, moderation
challenge                 auto_reply  challenge-response ("please confirm your mail")
vacation                  auto_reply  out-of-office / vacation notice
auto_reply                auto_reply  other Auto-Submitted mail
bulk                      bulk        Precedence bulk/list/junk, List-* headers
========================  ==========  ===================================================

Cheap checks come first: headers, then the subject, and the body only when a header or the
subject already points at a robot (or the body starts like JSON).
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

from intake.parsing import robot_texts as texts
from intake.parsing.mime import ParsedMail
from intake.parsing.our_mail import OUR_HEADER
from intake.parsing.thread_markers import is_forward_subject, is_our_message_id
from intake.parsing.vendor_json import VendorEvent, vendor_event

Kind = Literal["lead", "bounce", "auto_reply", "bulk"]

# Addresses that take no replies: robots, daemons, bounce handlers ("noreply-alerts@" too).
NO_REPLY = re.compile(
    r"^(no[-_.]?reply|do[-_.]?not[-_.]?reply|donotreply|noreply[-_.\w]*|mailer-daemon|postmaster|bounces?)"
    r"(\+.*)?$",
    re.I,
)
_JSON_TYPES = ("application/json", "text/json")


def is_no_reply(address: str) -> bool:
    return bool(NO_REPLY.match(address.partition("@")[0]))


@dataclass(frozen=True)
class Classification:
    kind: Kind
    reason: str = ""
    family: str = ""
    vendor: VendorEvent | None = None
    # The mail a report's facts are in: the attached one when a person forwarded it.
    report_of: ParsedMail | None = None


def is_our_own(parsed: ParsedMail, own_addresses: Collection[str] = ()) -> str:
    """Why this is mail we sent (autoresponse, forward, notification) that came back to an
    intake, even with our headers stripped by a forwarding server; "" when it is not."""
    if parsed.header(OUR_HEADER):
        return "our own mail came back (X-LMS-Origin)"
    if parsed.message_id and is_our_message_id(parsed.message_id):
        return f"our own mail came back (Message-ID {parsed.message_id})"
    if own_addresses and parsed.from_email:
        local, _, domain = parsed.from_email.lower().partition("@")
        if f"{local.split('+', 1)[0]}@{domain}" in own_addresses:
            return f"our own mail came back (sent from our mailbox {parsed.from_email})"
    return ""


def _report(parsed: ParsedMail) -> Classification | None:
    report_type = parsed.report_type
    declared = parsed.header("content-type").lower()
    if report_type == "message/feedback-report" or "feedback-report" in declared:
        fields = parsed.report_fields[0] if parsed.report_fields else {}
        kind = fields.get("feedback-type", "abuse")
        return Classification("bounce", f"complaint report (ARF, RFC 5965): feedback type {kind}", "arf")
    if report_type == "message/delivery-status" or (
        parsed.content_type == "multipart/report" and "delivery-status" in declared
    ):
        actions = sorted(
            {f.get("action", "").strip().lower() for f in parsed.report_fields if f.get("action")}
        )
        status = ", ".join(actions) or "no per-recipient fields"
        return Classification("bounce", f"delivery status notification (RFC 3464): {status}", "dsn")
    if report_type == "message/disposition-notification" or "disposition-notification" in declared:
        return Classification(
            "auto_reply", "read receipt (RFC 8098 disposition notification)", "read_receipt"
        )
    return None


def _vendor(parsed: ParsedMail) -> Classification | None:
    candidates = []
    text = parsed.text.lstrip()
    if text[:1] in ("{", "["):
        candidates.append(text)
    for attachment in parsed.attachments:
        if attachment.content_type in _JSON_TYPES or attachment.filename.lower().endswith(".json"):
            candidates.append(attachment.payload[:256_000].decode("utf-8", "replace"))
    for candidate in candidates:
        event = vendor_event(candidate)
        if event is not None:
            reason = f"{event.vendor} {event.event} notification (JSON)" + (
                f": {event.detail}" if event.detail else ""
            )
            return Classification("bounce", reason[:300], "vendor_notification", event)
    return None


def _robot_sender(parsed: ParsedMail) -> bool:
    local = parsed.from_email.partition("@")[0]
    return not parsed.from_email or bool(texts.DAEMON_LOCALPART.match(local))


def _bounce(parsed: ParsedMail) -> Classification | None:
    subject = parsed.subject
    local = parsed.from_email.partition("@")[0]
    if parsed.from_email and texts.DAEMON_LOCALPART.match(local):
        return Classification("bounce", f"sent by {parsed.from_email}", "bounce")
    if parsed.header("x-failed-recipients"):
        return Classification("bounce", "X-Failed-Recipients header", "bounce")
    if not texts.BOUNCE_SUBJECT.search(subject):
        return None
    if parsed.return_path == "" or not parsed.from_email:
        why = "no sender" if not parsed.from_email else "null return path"
        return Classification("bounce", f"{why} and a bounce subject {subject[:80]!r}", "bounce")
    auto = parsed.header("auto-submitted").lower()
    if auto and not auto.startswith("no"):
        return Classification("bounce", f"Auto-Submitted and a bounce subject {subject[:80]!r}", "bounce")
    for mail in parsed.attached:
        inner = _robot(mail)
        if inner is not None and inner.family in ("dsn", "bounce", "arf"):
            reason = f"bounce subject with a returned report inside: {inner.reason}"
            return Classification("bounce", reason, inner.family, inner.vendor, mail)
    text = parsed.body_text[:20000]
    if texts.BOUNCE_BODY_CERTAIN.search(text):
        forwarded = " (forwarded by a person)" if is_forward_subject(subject) else ""
        return Classification("bounce", f"a mail system's bounce text{forwarded}: {subject[:80]!r}", "bounce")
    return None


def _forwarded_robot(parsed: ParsedMail) -> Classification | None:
    """A complaint report or bounce a person forwarded ("Fw: …"), attached or inline."""
    for mail in parsed.attached:
        inner = _robot(mail)
        if inner is not None and inner.family in ("arf", "dsn", "bounce", "vendor_notification"):
            return Classification(inner.kind, f"forwarded: {inner.reason}", inner.family, inner.vendor, mail)
    if texts.ARF_SUBJECT.search(parsed.subject) and (
        parsed.attached or texts.ARF_BODY.search(parsed.body_text[:20000])
    ):
        return Classification(
            "bounce", f"complaint report without ARF structure: {parsed.subject[:80]!r}", "arf"
        )
    if is_forward_subject(parsed.subject):
        text = parsed.body_text[:20000]
        if texts.ARF_BODY.search(text):
            return Classification("bounce", "complaint report forwarded inline", "arf")
        if texts.BOUNCE_SUBJECT.search(parsed.subject) and texts.BOUNCE_BODY_CERTAIN.search(text):
            return Classification("bounce", f"bounce forwarded inline: {parsed.subject[:80]!r}", "bounce")
    return None


def _list_notice(parsed: ParsedMail) -> Classification | None:
    local = parsed.from_email.partition("@")[0]
    for name in texts.LIST_HEADERS:
        if parsed.header(name) and (
            texts.LIST_SUBJECT.search(parsed.subject) or parsed.header("x-list-administrivia")
        ):
            return Classification(
                "bulk", f"mailing-list notice ({name} header): {parsed.subject[:80]!r}", "list_notice"
            )
    if texts.LIST_SUBJECT.search(parsed.subject) and (
        texts.LIST_SENDER.search(local)
        or _robot_sender(parsed)
        or parsed.return_path == ""
        or parsed.header("auto-submitted")
        or "google" in parsed.from_email.partition("@")[2]
        or any(parsed.header(n) for n in texts.LIST_HEADERS)
    ):
        return Classification("bulk", f"list manager notice: {parsed.subject[:80]!r}", "list_notice")
    if texts.LIST_SENDER.search(local) and (parsed.return_path == "" or parsed.header("auto-submitted")):
        return Classification("bulk", f"list manager notice from {parsed.from_email}", "list_notice")
    return None


def _challenge(parsed: ParsedMail) -> Classification | None:
    for name in texts.CHALLENGE_HEADERS:
        if parsed.header(name):
            return Classification("auto_reply", f"challenge-response ({name} header)", "challenge")
    if texts.CHALLENGE_SENDER.search(parsed.from_email) or (
        texts.CHALLENGE_SUBJECT.search(parsed.subject)
        and (
            parsed.header("auto-submitted")
            or parsed.return_path == ""
            or parsed.header("precedence")
            or "please confirm" in parsed.body_text[:2000].lower()
            or "verify" in parsed.body_text[:2000].lower()
            or "bestätig" in parsed.body_text[:2000].lower()
        )
    ):
        return Classification("auto_reply", f"challenge-response: {parsed.subject[:80]!r}", "challenge")
    return None


def _auto_reply(parsed: ParsedMail) -> Classification | None:
    vacation_subject = bool(texts.VACATION_SUBJECT.search(parsed.subject))
    auto_submitted = parsed.header("auto-submitted").lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        family = "vacation" if vacation_subject else "auto_reply"
        return Classification("auto_reply", f"Auto-Submitted: {auto_submitted}", family)
    for name in texts.VACATION_HEADERS:
        if parsed.header(name):
            label = "X-Autoreply" if name == "x-autoreply" else name
            return Classification("auto_reply", f"{label} header", "vacation")
    if vacation_subject:
        return Classification("auto_reply", f"auto-reply subject {parsed.subject!r}", "vacation")
    return None


def _bulk(parsed: ParsedMail) -> Classification | None:
    precedence = parsed.header("precedence").lower()
    if precedence in ("bulk", "list", "junk"):
        return Classification("bulk", f"Precedence: {precedence}", "bulk")
    for name in ("list-id", "list-unsubscribe"):
        if parsed.header(name):
            return Classification("bulk", f"{name} header", "bulk")
    return None


def _robot(parsed: ParsedMail) -> Classification | None:
    return (
        _report(parsed)
        or _vendor(parsed)
        or _list_notice(parsed)
        or _bounce(parsed)
        or _challenge(parsed)
        or _auto_reply(parsed)
    )


def classify(parsed: ParsedMail, *, own_addresses: Collection[str] = ()) -> Classification:
    own = is_our_own(parsed, own_addresses)
    if own:
        return Classification("auto_reply", own, "our_own")
    found = _robot(parsed) or _forwarded_robot(parsed) or _bulk(parsed)
    return found or Classification("lead")
