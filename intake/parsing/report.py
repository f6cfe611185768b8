"""What the parser makes of a mail, as the JSON shape of ``lms parse`` (INTERFACE.md). (Pure.)"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from intake.parsing.extract import extract
from intake.parsing.mime import parse_mail


def parse_report(path: str, raw: bytes, rules: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    parsed = parse_mail(raw)
    extraction = extract(parsed, dealer_sources=rules)
    return {
        "path": path,
        "kind": extraction.kind,
        "reason": extraction.reason,
        "from": {"name": parsed.from_name, "email": parsed.from_email},
        "reply_to": parsed.reply_to,
        "subject": parsed.subject,
        "text": parsed.body_text,
        "attachments": [
            {"filename": a.filename, "content_type": a.content_type, "size": a.size}
            for a in parsed.attachments
        ],
        "lead": extraction.enquiries[0].as_dict() if extraction.enquiries else None,
        "leads": [e.as_dict() for e in extraction.enquiries],
        "defects": parsed.defects + extraction.problems,
    }
