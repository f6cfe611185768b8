"""May we send an automatic answer to this message? (Pure, RFC 3834 section 2.)

Never answer automatic, bulk or list mail, bounces, no-reply or daemon addresses, nor our
own mail coming back; at most one autoresponse per recipient in a window. The caller passes
the facts; this module decides and says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from intake.parsing.classify import Classification, is_no_reply
from intake.parsing.mime import ParsedMail

OUR_HEADER = "X-LMS-Origin"


@dataclass(frozen=True)
class Gate:
    send: bool
    reason: str


def autoresponse_gate(
    parsed: ParsedMail,
    classification: Classification,
    *,
    recipient: str,
    envelope_from: str,
    envelope_known: bool = True,
    last_autoresponse_at: datetime | None,
    window: timedelta,
    now: datetime,
) -> Gate:
    if classification.kind != "lead":
        return Gate(False, f"{classification.kind}: {classification.reason}")
    if parsed.header(OUR_HEADER.lower()):
        return Gate(False, "our own mail came back")
    if not recipient or "@" not in recipient:
        return Gate(False, "no customer address to answer")
    if is_no_reply(recipient):
        return Gate(False, f"{recipient} does not take replies")
    # RFC 3834 §2: never answer a message whose envelope sender (MAIL FROM, or the
    # Return-Path the delivering server recorded) is null, whatever its From says. An intake
    # that saw no envelope (files, IMAP) leaves only the Return-Path header to go by.
    if parsed.return_path == "" or (envelope_known and envelope_from.strip() in ("", "<>")):
        return Gate(False, "null envelope sender (RFC 3834: no automatic answer)")
    suppress = parsed.header("x-auto-response-suppress").lower()
    if any(token in suppress for token in ("all", "autoreply", "oof")):
        return Gate(False, f"X-Auto-Response-Suppress: {suppress}")
    if last_autoresponse_at is not None and now - last_autoresponse_at < window:
        return Gate(False, f"{recipient} got an autoresponse at {last_autoresponse_at.isoformat()}")
    return Gate(True, "")
