"""What the parser makes of a mail, as the JSON shape of ``lms parse`` (INTERFACE.md). (Pure.)"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from typing import Any

from intake.parsing.authenticity import Trust
from intake.parsing.extract import extract
from intake.parsing.mime import parse_mail
from intake.parsing.phones import e164


def parse_report(
    path: str,
    raw: bytes,
    rules: Sequence[dict[str, Any]] = (),
    *,
    region: str = "",
    own_addresses: Collection[str] = (),
    trust: Trust | None = None,
) -> dict[str, Any]:
    parsed = parse_mail(raw)
    extraction = extract(
        parsed, dealer_sources=rules, region=region, own_addresses=own_addresses, trust=trust
    )
    leads = []
    for enquiry in extraction.enquiries:
        lead = enquiry.as_dict()
        # Each number as written and, where the dealer's country places it, in E.164.
        lead["contact"]["phones_e164"] = [e164(p, region) or None for p in enquiry.customer.phones]
        leads.append(lead)
    bounce = extraction.bounce
    return {
        "path": path,
        "kind": extraction.kind,
        "family": extraction.family or ("lead" if extraction.kind == "lead" else extraction.kind),
        "reason": extraction.reason,
        "from": {"name": parsed.from_name, "email": parsed.from_email},
        "reply_to": parsed.reply_to,
        "subject": parsed.subject,
        "text": parsed.body_text,
        "attachments": [
            {"filename": a.filename, "content_type": a.content_type, "size": a.size}
            for a in parsed.attachments
        ],
        "lead": leads[0] if leads else None,
        "leads": leads,
        "sender_verification": (
            {
                "state": extraction.enquiries[0].sender_check,
                "detail": extraction.enquiries[0].sender_check_detail,
            }
            if extraction.enquiries and extraction.enquiries[0].sender_check
            else None
        ),
        "report": (
            {
                "status": bounce.status,
                "reason": bounce.reason,
                "recipients": bounce.recipients,
                "original_message_ids": bounce.original_message_ids,
                "ours": bounce.ours,
            }
            if bounce is not None
            else None
        ),
        "thread": {
            "reply_token": extraction.reply_token or None,
            "our_message_ids": extraction.reply_message_ids,
            "lead_id_in_subject": extraction.subject_lead_id,
        },
        "defects": parsed.defects + extraction.problems,
    }
