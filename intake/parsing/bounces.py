"""What a bounce, delivery report or complaint says about the mail it reports on. (Pure.)

From the structured parts where there are any (RFC 3464 per-recipient fields, RFC 5965
feedback fields, the returned message or its headers), from the vendor's JSON, and else from
the text: which original Message-ID(s), which recipient(s), which status and why. The worker
links a report on one of our mails to its lead with these facts.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from intake.parsing.mime import ParsedMail
from intake.parsing.robot_texts import DELAY_TEXT, SUCCESS_TEXT
from intake.parsing.thread_markers import our_message_ids
from intake.parsing.vendor_json import VendorEvent

Status = Literal["failed", "delayed", "delivered", "relayed", "complaint", "unknown"]

_ADDRESS = re.compile(r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_SMTP_CODE = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b|\b([245]\d\d)[ -]")
_ACTION_ORDER = ("failed", "delayed", "relayed", "expanded", "delivered")


@dataclass
class BounceReport:
    status: Status
    reason: str = ""
    recipients: list[str] = field(default_factory=list)
    original_message_ids: list[str] = field(default_factory=list)  # as written, with <>
    ours: bool = False  # the reported mail carries our origin header or one of our Message-IDs

    @property
    def permanent(self) -> bool:
        return self.status in ("failed", "complaint")


def _address_of(field_value: str) -> str:
    # "rfc822; anna@example.org" (RFC 3464 §2.3.2)
    value = field_value.partition(";")[2] if ";" in field_value else field_value
    match = _ADDRESS.search(value)
    return match.group(0).lower() if match else ""


def _from_dsn(parsed: ParsedMail, report: BounceReport) -> None:
    per_recipient = parsed.report_fields[1:] or parsed.report_fields
    actions = []
    reasons = []
    for fields in per_recipient:
        recipient = _address_of(fields.get("final-recipient", "") or fields.get("original-recipient", ""))
        if recipient and recipient not in report.recipients:
            report.recipients.append(recipient)
        action = fields.get("action", "").strip().lower()
        if action:
            actions.append(action)
        diagnostic = " ".join(fields.get("diagnostic-code", "").split())
        status = fields.get("status", "").strip()
        reasons.append(" ".join(p for p in (status, diagnostic.partition(";")[2].strip() or diagnostic) if p))
    for action in _ACTION_ORDER:
        if action in actions:
            report.status = "delivered" if action == "expanded" else action  # type: ignore[assignment]
            break
    report.reason = "; ".join(r for r in reasons if r)[:500]


def _from_arf(parsed: ParsedMail, report: BounceReport) -> None:
    fields = parsed.report_fields[0] if parsed.report_fields else {}
    report.status = "complaint"
    kind = fields.get("feedback-type", "abuse")
    report.reason = f"complaint ({kind})" + (
        f" from {fields['user-agent']}" if fields.get("user-agent") else ""
    )
    for key in ("original-rcpt-to", "removal-recipient"):
        address = _address_of(fields.get(key, ""))
        if address and address not in report.recipients:
            report.recipients.append(address)


def _status_from_text(text: str) -> Status:
    if SUCCESS_TEXT.search(text[:3000]):
        return "delivered"
    if DELAY_TEXT.search(text[:3000]):
        return "delayed"
    return "failed"


def _reason_from_text(text: str) -> str:
    for line in text.splitlines():
        if _SMTP_CODE.search(line) and len(line.strip()) > 8:
            return " ".join(line.split())[:300]
    return ""


def bounce_report(parsed: ParsedMail, family: str, vendor: VendorEvent | None = None) -> BounceReport:
    """The facts of a report whose family the classifier found (dsn, bounce, arf, vendor)."""
    report = BounceReport(status="unknown")
    if family == "arf":
        _from_arf(parsed, report)
    elif parsed.report_type == "message/delivery-status":
        _from_dsn(parsed, report)
    elif vendor is not None:
        report.status = {
            "bounce": "failed",
            "complaint": "complaint",
            "delivery": "delivered",
            "delay": "delayed",
            "reject": "failed",
        }.get(vendor.event, "unknown")  # type: ignore[assignment]
        report.reason = f"{vendor.vendor}: {vendor.event} {vendor.detail}".strip()[:500]
        report.recipients = list(vendor.recipients)
        report.original_message_ids = list(vendor.message_ids)
    text = parsed.body_text
    if report.status == "unknown":
        report.status = _status_from_text(f"{parsed.subject}\n{text}")
    if not report.reason:
        report.reason = _reason_from_text(text) or parsed.subject[:200]
    for value in parsed.headers.get("x-failed-recipients", []):
        for address in _ADDRESS.findall(value):
            if address.lower() not in report.recipients:
                report.recipients.append(address.lower())
    returned = [m for m in parsed.attached if m.message_id or m.headers]
    for mail in returned:
        if mail.message_id and mail.message_id not in report.original_message_ids:
            report.original_message_ids.append(mail.message_id)
        if mail.header("x-lms-origin"):
            report.ours = True
    # Our Message-IDs anywhere in the report (returned headers quoted as text, a vendor's
    # JSON, an inline forward) name the mail for sure.
    ours = our_message_ids([text, *(m.message_id for m in returned), *report.original_message_ids])
    for message_id in ours:
        if message_id not in report.original_message_ids:
            report.original_message_ids.append(message_id)
    report.ours = report.ours or bool(ours) or "x-lms-origin:" in text.lower()
    if not report.recipients and report.status != "complaint":
        for mail in returned:
            for value in mail.raw_headers.get("to", []):
                report.recipients += [
                    a.lower() for a in _ADDRESS.findall(value) if a.lower() not in report.recipients
                ]
    return report
