"""A raw message into sender, subject, text and attachments. (Pure; never raises.)

Bodies: mail-parser first; the standard library where mail-parser fails, shows defects,
finds no body, or returns text that was not decoded (ISO-2022-JP escapes, replacement
characters). Headers and attachments: the standard library's ``compat32`` parse, decoded by
:mod:`intake.parsing.charsets`, because mail-parser loses raw 8-bit header bytes and invents
random names for attachments without one (DESIGN.md, mail-parser gaps). The raw bytes are
never changed: they stay in the database whatever this module makes of them.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32
from email.utils import parseaddr

import mailparser

from intake.parsing.charsets import decode_bytes, decode_header_value, has_raw_bytes
from intake.parsing.html_text import html_to_text

log = logging.getLogger(__name__)
# mail-parser logs every content type it does not render (calendar, richtext, pkcs7) at
# WARNING; for us those are attachments, not problems.
logging.getLogger("mailparser").setLevel(logging.ERROR)

_HEADER_LINE = re.compile(r"^([A-Za-z][A-Za-z0-9-]{1,40}):[ \t]?(.*)$")


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
    reply_to_name: str = ""
    sender: str = ""
    return_path: str | None = None  # None: no header; "": the null path <>
    subject: str = ""
    text: str = ""
    html: str = ""
    attachments: list[Attachment] = field(default_factory=list)
    # Lower-cased header names, every value of each, decoded.
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


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


def _address(raw_value: str, hint: str | None) -> tuple[str, str]:
    """(name, address) of an address header; ``addr (Name)`` comments give the name."""
    unfolded = decode_header_value(raw_value, hint) if has_raw_bytes(raw_value) else raw_value
    unfolded = re.sub(r"\r?\n", "", unfolded)
    name, addr = parseaddr(unfolded)
    if not addr and "@" in unfolded:
        # parseaddr gives up on some broken forms; take the first thing that looks like one.
        match = re.search(r"<?([^\s<>\"(),;:]+@[^\s<>\"(),;:]+)>?", unfolded)
        addr = match.group(1) if match else ""
    addr = addr.strip().rstrip(".")  # "user@example.com." is the same mailbox
    # A display name is one line of text, whatever an encoded word smuggled into it.
    name = " ".join(decode_header_value(name, hint).replace('"', " ").split())
    if name.lower() == addr.lower():
        name = ""
    return name, addr.lower() if "@" in addr else addr


def _raw_headers(message: Message) -> list[tuple[str, str]]:
    return [(str(k), v if isinstance(v, str) else str(v)) for k, v in message._headers]  # type: ignore[attr-defined]


def _recover_headers(message: Message, raw: bytes) -> list[tuple[str, str]]:
    """When a broken line ended the header section early, the real From and Subject sit at
    the top of the "body": take header-looking lines from there until the first blank line."""
    if message.is_multipart():
        return []
    payload = message.get_payload(decode=False)
    if not isinstance(payload, str):
        return []
    found: list[tuple[str, str]] = []
    for line in payload.splitlines():
        if not line.strip():
            break
        match = _HEADER_LINE.match(line)
        if match:
            found.append((match.group(1), match.group(2)))
        elif line[:1] in (" ", "\t") and found:
            found[-1] = (found[-1][0], found[-1][1] + " " + line.strip())
    return found


def _payload_bytes(part: Message) -> bytes:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        return b""
    return payload if isinstance(payload, bytes) else b""


def _filename(part: Message, hint: str | None) -> str:
    try:
        name = part.get_filename() or part.get_param("name", header="content-type")
    except Exception:
        return ""
    if isinstance(name, tuple):  # RFC 2231 triple
        charset, _, value = name
        name = decode_bytes(value.encode("latin-1", "replace"), charset)
    return decode_header_value(str(name), hint) if name else ""


def _std_bodies(message: Message, hint: str | None) -> tuple[str, str, list[Attachment], list[str]]:
    text_parts: list[str] = []
    html_parts: list[str] = []
    attachments: list[Attachment] = []
    defects: list[str] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        content_type = part.get_content_type()
        filename = _filename(part, hint)
        disposition = str(part.get("Content-Disposition") or "").split(";")[0].strip().lower()
        is_text = content_type in ("text/plain", "text/html")
        if filename or disposition == "attachment" or not is_text:
            if content_type.startswith("multipart/"):
                continue
            payload = _payload_bytes(part)
            attachments.append(Attachment(filename, content_type, len(payload), payload))
            continue
        charset = part.get_content_charset()
        content = decode_bytes(_payload_bytes(part), charset)
        if "\ufffd" in content:
            defects.append(f"charset: undecodable bytes in a {charset or 'unlabelled'} part")
        (text_parts if content_type == "text/plain" else html_parts).append(content)
    return "\n".join(text_parts), "\n".join(html_parts), attachments, defects


def _looks_undecoded(text: str) -> bool:
    # ISO-2022-JP left as escape sequences, or decoding that already gave up.
    return "\x1b$" in text or "\x1b(" in text or "\ufffd" in text


def parse_mail(raw: bytes) -> ParsedMail:
    """Never raises: whatever cannot be understood becomes a defect, the rest is kept."""
    parsed = ParsedMail()
    try:
        _parse_into(parsed, raw)
    except Exception as exc:  # the last line of defence; the raw bytes stay stored
        log.exception("parsing failed")
        parsed.defects.append(f"parser error: {type(exc).__name__}: {exc}")
        if not (parsed.text or parsed.html):
            parsed.text = decode_bytes(raw)
    return parsed


def _parse_into(parsed: ParsedMail, raw: bytes) -> None:
    try:
        message = BytesParser(policy=compat32).parsebytes(raw)
    except Exception as exc:  # the standard parser itself gave up: keep an empty shell
        parsed.defects.append(f"unparseable: {type(exc).__name__}: {exc}")
        parsed.text = decode_bytes(raw)
        return
    parsed.defects = [type(d).__name__ for d in message.defects]
    hint = message.get_content_charset(None)

    raw_headers = _raw_headers(message)
    present = {name.lower() for name, _ in raw_headers}
    if "from" not in present or "subject" not in present or parsed.defects:
        recovered = [(n, v) for n, v in _recover_headers(message, raw) if n.lower() not in present]
        if recovered:
            parsed.defects.append("header section broken: headers recovered from the body")
            raw_headers += recovered
    for name, value in raw_headers:
        parsed.headers.setdefault(name.lower(), []).append(decode_header_value(value, hint))
    raw_by_name: dict[str, str] = {}
    for name, value in raw_headers:
        raw_by_name.setdefault(name.lower(), value)

    parsed.subject = parsed.header("subject")
    for header_name in ("from", "reply-to", "sender", "return-path"):
        name, addr = _address(raw_by_name.get(header_name, ""), hint)
        if "@" in addr:
            parsed.from_name, parsed.from_email = name, addr
            if header_name != "from":
                parsed.defects.append(f"no usable From: sender taken from {header_name}")
            break
    parsed.reply_to_name, parsed.reply_to = _address(raw_by_name.get("reply-to", ""), hint)
    parsed.sender = _address(raw_by_name.get("sender", ""), hint)[1]
    if "return-path" in raw_by_name:
        parsed.return_path = _address(raw_by_name["return-path"], hint)[1]
    parsed.message_id = parsed.header("message-id").strip()
    parsed.in_reply_to = parsed.header("in-reply-to").strip()
    parsed.references = parsed.header("references").split()
    parsed.content_type = message.get_content_type()

    std_text, std_html, attachments, std_defects = _std_bodies(message, hint)
    parsed.attachments = attachments
    use_std = False
    try:
        # The same compat32 parse mail-parser would do itself: hand it ours instead of
        # parsing the bytes a second time (the parse is most of the cost of a mail).
        mp = mailparser.MailParser(message)
        parsed.text = "\n".join(mp.text_plain).strip()
        parsed.html = "\n".join(mp.text_html).strip()
        if mp.defects:
            parsed.defects += [str(c) for c in mp.defects_categories]
            use_std = True
        if not (parsed.text or parsed.html) or _looks_undecoded(parsed.text + parsed.html):
            use_std = True
    except Exception as exc:
        parsed.defects.append(f"mail-parser: {type(exc).__name__}: {exc}")
        use_std = True
    if use_std and (std_text or std_html):
        parsed.text, parsed.html = std_text.strip(), std_html.strip()
        parsed.defects += std_defects
    parsed.text = _normalise_newlines(parsed.text)
    parsed.html = _normalise_newlines(parsed.html)
