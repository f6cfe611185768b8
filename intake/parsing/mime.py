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
from contextvars import ContextVar
from dataclasses import dataclass, field
from email.message import Message
from email.parser import BytesParser
from email.policy import compat32

import mailparser

from intake.parsing.addresses import is_valid_address, parse_address
from intake.parsing.charsets import decode_bytes, decode_header_value, decode_unlabelled, has_raw_bytes
from intake.parsing.html_text import html_to_text
from intake.parsing.tnef import unpack_tnef

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
    # Header values as written (unfolded, not decoded): addresses and tokens are read from
    # these, so nothing an encoded word decodes to can change them.
    raw_headers: dict[str, list[str]] = field(default_factory=dict)
    # Messages attached as message/rfc822 (a forward, a returned mail) or text/rfc822-headers.
    attached: list[ParsedMail] = field(default_factory=list)
    # Machine-readable report parts (RFC 3464 delivery-status, RFC 5965 feedback-report,
    # RFC 8098 disposition-notification): their type and field blocks (lower-cased names).
    report_type: str = ""
    report_fields: list[dict[str, str]] = field(default_factory=list)

    def header(self, name: str) -> str:
        values = self.headers.get(name.lower())
        return values[0] if values else ""

    @property
    def from_valid(self) -> bool:
        return is_valid_address(self.from_email)

    @property
    def body_text(self) -> str:
        """The readable text: the plain part, else the HTML part made readable."""
        return self.text or (html_to_text(self.html) if self.html else "")


def _normalise_newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n")


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


# Recognition reads attachments only for what small ones carry (ADF/XML, a vendor's JSON, a
# forwarded mail): bigger ones keep their name and size but not their decoded bytes, so a 25 MB
# mail costs memory once, not once per copy. (The web pane's download asks for them whole.)
RECOGNITION_PAYLOAD_LIMIT = 2 * 1024 * 1024
# mail-parser's worth is in decoding text quirks; for a mail this big (attachments, nearly
# always) its copies of every part cost more than it adds: the standard library reads it.
MAILPARSER_MAX_BYTES = 5 * 1024 * 1024
_PAYLOAD_LIMIT: ContextVar[int | None] = ContextVar("lms_payload_limit", default=RECOGNITION_PAYLOAD_LIMIT)


def _estimated_size(part: Message) -> int | None:
    """The decoded size of a part too big to decode here; ``None`` when it is small enough."""
    limit = _PAYLOAD_LIMIT.get()
    encoded = part.get_payload(decode=False)
    if limit is None or not isinstance(encoded, str) or len(encoded) <= limit:
        return None
    if str(part.get("Content-Transfer-Encoding", "")).strip().lower() == "base64":
        return len("".join(encoded.split())) * 3 // 4
    return len(encoded)


def _payload_bytes(part: Message) -> bytes:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        return b""
    return payload if isinstance(payload, bytes) else b""


def _raw_param_header(part: Message, name: str) -> str | None:
    for key, value in _raw_headers(part):
        if key.lower() == name:
            return value
    return None


def _filename(part: Message, hint: str | None) -> str:
    """The attachment's name: RFC 2231 (with or without a charset), encoded words, raw 8-bit
    bytes; bytes without a charset are tried as UTF-8, the part's and the message's charset,
    then Latin-1 (what mail clients do)."""
    part_charset = part.get_content_charset(None)
    for header, param in (("content-disposition", "filename"), ("content-type", "name")):
        raw = _raw_param_header(part, header)
        if raw is None:
            continue
        if not has_raw_bytes(raw):
            try:
                value = part.get_param(param, None, header)
            except Exception:
                continue
        else:
            raw = decode_unlabelled(raw.encode("ascii", "surrogateescape"), part_charset, hint)
            holder = Message()
            try:
                holder[header] = re.sub(r"\r?\n", "", raw)
                value = holder.get_param(param, None, header)
            except Exception:
                continue
        if isinstance(value, tuple):  # RFC 2231: (charset, language, text unquoted as Latin-1)
            charset, _, text = value
            data = text.encode("latin-1", "replace")
            name = decode_bytes(data, charset) if charset else decode_unlabelled(data, part_charset, hint)
        elif value:
            name = str(value)
        else:
            continue
        name = decode_header_value(name, hint)
        if name:
            return name
    return ""


_REPORT_TYPES = ("message/delivery-status", "message/feedback-report", "message/disposition-notification")
_TNEF_TYPES = ("application/ms-tnef", "application/vnd.ms-tnef")
# Enough to read a forward of a forward; a mail nested deeper is read as text only.
_MAX_ATTACHED = 5
_MAX_DEPTH = 3


@dataclass
class _Bodies:
    text: list[str] = field(default_factory=list)
    html: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    attached: list[Message] = field(default_factory=list)
    report_type: str = ""
    report_fields: list[dict[str, str]] = field(default_factory=list)


def _report_fields(part: Message, hint: str | None) -> list[dict[str, str]]:
    """The field blocks of a report part: compat32 parses each block as a header section."""
    payload = part.get_payload()
    blocks: list[dict[str, str]] = []
    if isinstance(payload, list):
        for block in payload:
            if isinstance(block, Message):
                fields: dict[str, str] = {}
                for name, value in _raw_headers(block):
                    fields.setdefault(name.lower(), decode_header_value(value, hint))
                blocks.append(fields)
    elif isinstance(payload, str):  # a transfer-encoded report: decode and read the lines
        text = decode_bytes(_payload_bytes(part))
        for chunk in re.split(r"\n\s*\n", _normalise_newlines(text)):
            fields = {}
            for line in chunk.splitlines():
                match = _HEADER_LINE.match(line)
                if match:
                    fields.setdefault(match.group(1).lower(), match.group(2).strip())
            if fields:
                blocks.append(fields)
    return blocks


def _std_bodies(message: Message, hint: str | None) -> _Bodies:
    found = _Bodies()
    inside_attached: set[int] = set()  # parts of an attached message: its reports are not ours
    for part in message.walk():
        content_type = part.get_content_type()
        if content_type == "message/rfc822" or content_type == "text/rfc822-headers":
            if len(found.attached) < _MAX_ATTACHED:
                found.attached.append(part)
            if content_type == "message/rfc822":
                inside_attached.update(id(p) for p in part.walk() if p is not part)
                continue  # its parts follow in the walk: their text is part of this mail's
        if content_type in _REPORT_TYPES and id(part) not in inside_attached:
            if not found.report_type:
                found.report_type = content_type
                found.report_fields = _report_fields(part, hint)
            continue
        if content_type in _REPORT_TYPES:
            continue
        if part.is_multipart():
            continue
        filename = _filename(part, hint)
        disposition = str(part.get("Content-Disposition") or "").split(";")[0].strip().lower()
        is_text = content_type in ("text/plain", "text/html")
        if content_type in _TNEF_TYPES or filename.lower() == "winmail.dat":
            tnef = unpack_tnef(_payload_bytes(part))
            if tnef is not None:
                # Outlook's rich format: the real body and attachments are inside.
                found.text += [tnef.text] if tnef.text else []
                found.html += [tnef.html] if tnef.html else []
                found.attachments += [Attachment(n, t, len(d), d) for n, t, d in tnef.attachments]
                found.defects += tnef.problems
                continue
        if filename or disposition == "attachment" or not is_text:
            size = _estimated_size(part)
            if size is not None:
                found.attachments.append(Attachment(filename, content_type, size, b""))
                continue
            payload = _payload_bytes(part)
            found.attachments.append(Attachment(filename, content_type, len(payload), payload))
            continue
        charset = part.get_content_charset()
        content = decode_bytes(_payload_bytes(part), charset)
        if "\ufffd" in content:
            found.defects.append(f"charset: undecodable bytes in a {charset or 'unlabelled'} part")
        (found.text if content_type == "text/plain" else found.html).append(content)
    return found


class _TooBigForMailParser(Exception):
    pass


def _looks_undecoded(text: str) -> bool:
    # ISO-2022-JP left as escape sequences, or decoding that already gave up.
    return "\x1b$" in text or "\x1b(" in text or "\ufffd" in text


def parse_mail(raw: bytes, *, whole_attachments: bool = False) -> ParsedMail:
    """Never raises: whatever cannot be understood becomes a defect, the rest is kept.
    ``whole_attachments``: decode every attachment, however big (to hand it out)."""
    parsed = ParsedMail()
    token = _PAYLOAD_LIMIT.set(None if whole_attachments else RECOGNITION_PAYLOAD_LIMIT)
    try:
        _parse_into(parsed, raw)
    except Exception as exc:  # the last line of defence; the raw bytes stay stored
        log.exception("parsing failed")
        parsed.defects.append(f"parser error: {type(exc).__name__}: {exc}")
        if not (parsed.text or parsed.html):
            parsed.text = decode_bytes(raw)
    finally:
        _PAYLOAD_LIMIT.reset(token)
    return parsed


def _read_headers(
    parsed: ParsedMail, message: Message, raw_headers: list[tuple[str, str]], hint: str | None
) -> None:
    for name, value in raw_headers:
        key = name.lower()
        parsed.headers.setdefault(key, []).append(decode_header_value(value, hint))
        unfolded = re.sub(r"\r?\n(?=[ \t])", "", value) if "\n" in value else value
        parsed.raw_headers.setdefault(key, []).append(unfolded)
    raw_by_name = {key: values[0] for key, values in parsed.raw_headers.items()}

    parsed.subject = parsed.header("subject")
    first: tuple[str, str] | None = None
    for header_name in ("from", "reply-to", "sender", "return-path"):
        name, addr = parse_address(raw_by_name.get(header_name, ""), hint)
        if header_name == "from":
            first = (name, addr)
        if is_valid_address(addr):
            parsed.from_name, parsed.from_email = name, addr
            if header_name != "from":
                parsed.defects.append(f"no usable From: sender taken from {header_name}")
            break
    else:
        if first is not None:  # no address anywhere: keep what From says ("MAILER-DAEMON")
            parsed.from_name, parsed.from_email = first
    parsed.reply_to_name, parsed.reply_to = parse_address(raw_by_name.get("reply-to", ""), hint)
    parsed.sender = parse_address(raw_by_name.get("sender", ""), hint)[1]
    if "return-path" in raw_by_name:
        parsed.return_path = parse_address(raw_by_name["return-path"], hint)[1]
    parsed.message_id = parsed.header("message-id").strip()
    parsed.in_reply_to = parsed.header("in-reply-to").strip()
    parsed.references = parsed.header("references").split()
    parsed.content_type = message.get_content_type()


def _attached_mail(part: Message, hint: str | None, depth: int) -> ParsedMail | None:
    """An attached message (a forward, a returned mail) read with the standard library."""
    if part.get_content_type() == "text/rfc822-headers":
        inner = BytesParser(policy=compat32).parsebytes(_payload_bytes(part), headersonly=True)
    else:
        payload = part.get_payload()
        if not isinstance(payload, list) or not payload or not isinstance(payload[0], Message):
            return None
        inner = payload[0]
    nested = ParsedMail()
    inner_hint = inner.get_content_charset(None) or hint
    _read_headers(nested, inner, _raw_headers(inner), inner_hint)
    if part.get_content_type() == "message/rfc822":
        _fill_bodies(nested, _std_bodies(inner, inner_hint), inner_hint, depth + 1)
    return nested


def _fill_bodies(parsed: ParsedMail, bodies: _Bodies, hint: str | None, depth: int) -> None:
    parsed.text = _normalise_newlines("\n".join(bodies.text).strip())
    parsed.html = _normalise_newlines("\n".join(bodies.html).strip())
    parsed.attachments = bodies.attachments
    parsed.report_type, parsed.report_fields = bodies.report_type, bodies.report_fields
    if depth < _MAX_DEPTH:
        for part in bodies.attached:
            nested = _attached_mail(part, hint, depth)
            if nested is not None:
                parsed.attached.append(nested)


def _parse_into(parsed: ParsedMail, raw: bytes) -> None:
    try:
        message = BytesParser(policy=compat32).parsebytes(raw)
    except RecursionError:
        # Hundreds of nested multiparts exhaust the standard parser's recursion: keep the
        # headers and read the body as text, rather than lose the sender with the structure.
        message = BytesParser(policy=compat32).parsebytes(raw, headersonly=True)
        parsed.defects.append("MIME structure nested too deeply: body read as plain text")
        hint = message.get_content_charset(None)
        _read_headers(parsed, message, _raw_headers(message), hint)
        parsed.content_type = "text/plain"
        body = raw.replace(b"\r\n", b"\n").partition(b"\n\n")[2]
        parsed.text = _normalise_newlines(decode_bytes(body)).strip()
        return
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
    _read_headers(parsed, message, raw_headers, hint)

    try:
        bodies = _std_bodies(message, hint)
    except RecursionError:
        bodies = _Bodies(text=[decode_bytes(raw)], defects=["MIME structure nested too deeply"])
    _fill_bodies(parsed, bodies, hint, 0)
    std_text, std_html = parsed.text, parsed.html
    use_std = False
    try:
        if len(raw) > MAILPARSER_MAX_BYTES:
            raise _TooBigForMailParser
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
    except _TooBigForMailParser:
        use_std = True
    except Exception as exc:
        parsed.defects.append(f"mail-parser: {type(exc).__name__}: {exc}")
        use_std = True
    if use_std and (std_text or std_html):
        parsed.text, parsed.html = std_text, std_html
        parsed.defects += bodies.defects
    parsed.text = _normalise_newlines(parsed.text)
    parsed.html = _normalise_newlines(parsed.html)
