"""May we send an automatic answer to this message? (Pure, RFC 3834 section 2.)

Never answer automatic, bulk or list mail, bounces, no-reply or daemon addresses, a message
with the null envelope sender, our own mail coming back, or one of the dealer's own
mailboxes; at most one autoresponse per recipient in a window. The caller passes the facts;
this module decides and says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class Gate:
    send: bool
    reason: str


@dataclass(frozen=True)
class AnswerFacts:
    kind: str  # what recognition made of the message: only a "lead" is answered
    kind_reason: str
    our_mail: bool  # it carries our own origin header
    recipient: str  # where the answer would go (the customer's address)
    recipient_takes_replies: bool  # not a no-reply, daemon or bounce address
    recipient_is_ours: bool  # one of the dealer's own mailboxes (our mail, headers stripped)
    # RFC 3834 §2: a message whose return path is null (MAIL FROM:<>, Return-Path: <>) is
    # answered by nobody, whatever its From says.
    null_sender: bool
    auto_response_suppress: str  # X-Auto-Response-Suppress (Exchange), lower-cased
    last_autoresponse_at: datetime | None
    window: timedelta


def autoresponse_gate(facts: AnswerFacts, *, now: datetime) -> Gate:
    if facts.kind != "lead":
        return Gate(False, f"{facts.kind}: {facts.kind_reason}")
    if facts.our_mail:
        return Gate(False, "our own mail came back")
    if not facts.recipient or "@" not in facts.recipient:
        return Gate(False, "no customer address to answer")
    if facts.recipient_is_ours:
        return Gate(False, f"{facts.recipient} is one of our own mailboxes")
    if not facts.recipient_takes_replies:
        return Gate(False, f"{facts.recipient} does not take replies")
    if facts.null_sender:
        return Gate(False, "null envelope sender (RFC 3834: no automatic answer)")
    if any(token in facts.auto_response_suppress for token in ("all", "autoreply", "oof")):
        return Gate(False, f"X-Auto-Response-Suppress: {facts.auto_response_suppress}")
    last = facts.last_autoresponse_at
    if last is not None and now - last < facts.window:
        return Gate(False, f"{facts.recipient} got an autoresponse at {last.isoformat()}")
    return Gate(True, "")
