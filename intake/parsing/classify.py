"""Is a message a lead, or something automatic that must never become one? (Pure.)

Signals follow RFC 3834 (Auto-Submitted), RFC 3464 (delivery status notifications), RFC 2369
(List-* headers) and what Exchange, Zammad and RT look at (X-Auto-Response-Suppress,
Precedence, mailer-daemon senders).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from intake.parsing.mime import ParsedMail
from intake.parsing.our_mail import OUR_HEADER

Kind = Literal["lead", "bounce", "auto_reply", "bulk"]

# Addresses that take no replies: robots, daemons, bounce handlers ("noreply-alerts@" too).
NO_REPLY = re.compile(
    r"^(no[-_.]?reply|do[-_.]?not[-_.]?reply|donotreply|noreply[-_.\w]*|mailer-daemon|postmaster|bounces?)"
    r"(\+.*)?$",
    re.I,
)


def is_no_reply(address: str) -> bool:
    return bool(NO_REPLY.match(address.partition("@")[0]))


_DAEMON_LOCALPARTS = re.compile(r"^(mailer-daemon|postmaster|mail-daemon|mailerdaemon)$", re.I)
_BOUNCE_SUBJECT = re.compile(
    r"(undeliver|delivery status notification|returned mail|delivery (has )?failed|"
    r"unzustellbar|nicht zustellbar|failure notice)",
    re.I,
)
_AUTO_REPLY_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|automatische antwort|out of (the )?office|"
    r"abwesenheit|abwesend|i am away|urlaub|r(é|e)ponse automatique|risposta automatica)",
    re.I,
)


@dataclass(frozen=True)
class Classification:
    kind: Kind
    reason: str = ""


def classify(parsed: ParsedMail) -> Classification:
    if is_our_own(parsed):
        return Classification("auto_reply", "our own mail came back")
    content_type = parsed.content_type
    report_type = parsed.header("content-type").lower()
    local = parsed.from_email.partition("@")[0]
    if content_type == "multipart/report" and "delivery-status" in report_type:
        return Classification("bounce", "delivery status notification (multipart/report)")
    if _DAEMON_LOCALPARTS.match(local):
        return Classification("bounce", f"sent by {parsed.from_email}")
    if parsed.return_path == "" and _BOUNCE_SUBJECT.search(parsed.subject):
        return Classification("bounce", "null return path and a bounce subject")
    auto_submitted = parsed.header("auto-submitted").lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return Classification("auto_reply", f"Auto-Submitted: {auto_submitted}")
    if parsed.header("x-autoreply") or parsed.header("x-autorespond"):
        return Classification("auto_reply", "X-Autoreply header")
    if _AUTO_REPLY_SUBJECT.search(parsed.subject):
        return Classification("auto_reply", f"auto-reply subject {parsed.subject!r}")
    precedence = parsed.header("precedence").lower()
    if precedence in ("bulk", "list", "junk"):
        return Classification("bulk", f"Precedence: {precedence}")
    for name in ("list-id", "list-unsubscribe"):
        if parsed.header(name):
            return Classification("bulk", f"{name} header")
    return Classification("lead")


def is_our_own(parsed: ParsedMail) -> bool:
    """Mail we sent (autoresponse, forward, notification) that came back to an intake."""
    return bool(parsed.header(OUR_HEADER))
