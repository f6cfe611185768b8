"""A raw message into sender, subject, text and attachments.

mail-parser first; the standard library (``policy.default``) where mail-parser shows
defects, finds no body or fails (see DESIGN.md, mail-parser gaps). The raw bytes are never
changed: they stay in the database whatever this module makes of them.
"""

from __future__ import annotations

import email
import email.policy
import logging
from dataclasses import dataclass, field
from email.message import EmailMessage, Message
from email.utils import getaddresses, parseaddr
from typing import Any

import mailparser

from intake.parsing.html_text import html_to_text

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    size: int
    payload: bytes = field(repr=False, default=b"")


@dataclass
class ParsedMail:
    from_name: str = ""
    from_email: str = ""
    reply_to: str = ""
    sender: str = ""
    return_path: str | None = None  # None: no header; "": the null path <>
    subject: str = ""
    text: str = ""
    html: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    # Lower-cased header names, every value of each, unfolded.
    headers: dict[str, list[str]] = field(default_factory=dict)
    message_id: str = ""
    in_reply_to: str = ""
    references: list[str] = field(default_factory=list)
    content_type: str = "text/plain"
    defects: list[str] = field(default_factory=list)

    def header(self, name: str) -> str:
        values = self.headers.get(name.lower())
        return values[0] if values else ""

    @property
    def body_text(self) -> str:
        """The readable text: the plain part, else the HTML part made readable."""
        return self.text or (html_to_text(self.html) if self.html else "")


def _clean_header(value: Any) -> str:
    return " ".join(str(value).split()) if value is not None else ""


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _address(value: str) -> tuple[str, str]:
    name, addr = parseaddr(value)
    addr = addr.strip().rstrip(".")  # "user@example.com." is the same mailbox
    return _clean_header(name), addr.lower() if "@" in addr else addr


def _std_parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def _std_headers(message: Message) -> dict[str, list[str]]:
    headers: dict[str, list[str]] = {}
    for name, value in message.items():
        try:
            text = _clean_header(value)
        except Exception:  # a header the policy cannot decode: keep what compat32 sees
            text = _clean_header(message.get(name, ""))
        headers.setdefault(name.lower(), []).append(text)
    return headers


def _payload_bytes(part: Message) -> bytes:
    payload = part.get_payload(decode=True)
    return payload if isinstance(payload, bytes) else b""


def _std_bodies(message: EmailMessage) -> tuple[str, str, list[Attachment], list[str]]:
    text_parts: list[str] = []
    html_parts: list[str] = []
    attachments: list[Attachment] = []
    defects: list[str] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        content_type = part.get_content_type()
        filename = part.get_filename()
        disposition = part.get_content_disposition()
        if filename or disposition == "attachment":
            payload = _payload_bytes(part)
            attachments.append(Attachment(filename or "", content_type, len(payload), payload))
            continue
        if content_type not in ("text/plain", "text/html"):
            continue
        try:
            content = part.get_content()
        except (LookupError, UnicodeError) as exc:
            # Unknown or too narrow charset label: decode leniently, note the defect.
            defects.append(f"charset: {exc}")
            payload = _payload_bytes(part)
            content = payload.decode("utf-8", errors="replace")
        (text_parts if content_type == "text/plain" else html_parts).append(str(content))
    return "\n".join(text_parts), "\n".join(html_parts), attachments, defects


def parse_mail(raw: bytes) -> ParsedMail:
    std = _std_parse(raw)
    parsed = ParsedMail(headers=_std_headers(std))
    parsed.defects = [type(d).__name__ for d in std.defects]

    used_fallback = False
    try:
        mp = mailparser.parse_from_bytes(raw)
        parsed.subject = _clean_header(mp.subject)
        parsed.text = "\n".join(mp.text_plain).strip()
        parsed.html = "\n".join(mp.text_html).strip()
        parsed.defects += [str(c) for c in mp.defects_categories]
        parsed.attachments = [
            Attachment(
                filename=_clean_header(a.get("filename")),
                content_type=str(a.get("mail_content_type") or "application/octet-stream"),
                size=len(a.get("payload") or ""),
            )
            for a in mp.attachments
        ]
        if mp.defects or not (parsed.text or parsed.html):
            used_fallback = True
    except Exception as exc:
        parsed.defects.append(f"mail-parser: {type(exc).__name__}: {exc}")
        used_fallback = True

    if used_fallback:
        text, html, attachments, defects = _std_bodies(std)
        parsed.text = parsed.text or text.strip()
        parsed.html = parsed.html or html.strip()
        parsed.attachments = parsed.attachments or attachments
        parsed.defects += defects
    if not parsed.subject:
        parsed.subject = parsed.header("subject")
    parsed.text = _normalise_newlines(parsed.text)
    parsed.html = _normalise_newlines(parsed.html)

    # Senders: From, then the fallbacks a broken From leaves us with.
    for header_name in ("from", "reply-to", "sender", "return-path"):
        name, addr = _address(parsed.header(header_name))
        if "@" in addr:
            parsed.from_name, parsed.from_email = name, addr
            break
    parsed.reply_to = _address(parsed.header("reply-to"))[1]
    parsed.sender = _address(parsed.header("sender"))[1]
    if "return-path" in parsed.headers:
        parsed.return_path = _address(parsed.header("return-path"))[1]
    parsed.message_id = parsed.header("message-id")
    parsed.in_reply_to = parsed.header("in-reply-to")
    parsed.references = parsed.header("references").split()
    parsed.content_type = std.get_content_type()
    return parsed


def all_addresses(parsed: ParsedMail, header: str) -> list[str]:
    return [addr.lower() for _, addr in getaddresses(parsed.headers.get(header, [])) if addr]
