"""MIME bytes of every mail we send. (Pure.)

Three shapes: a framed HTML mail (``multipart/alternative`` of text and HTML; the HTML inside
``multipart/related`` with the header image when there is one; all of it inside
``multipart/mixed`` with the PDFs when there are), a plain-text mail, and a forward (a text
summary and the original message attached byte for byte as ``message/rfc822``).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import TYPE_CHECKING

from intake.parsing.charsets import decode_header_value
from intake.parsing.our_mail import OUR_HEADER

if TYPE_CHECKING:
    from workers.render.blocks import FramedMail

_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


class AddressError(ValueError):
    """An address we cannot write into a header as one mailbox."""


def header_safe(value: str) -> str:
    """Text that can go into a header as it is: no CR, LF or other control characters.

    Encoded words (RFC 2047) are decoded first: the email package would decode them when
    the header is set, and a ``=0D=0A`` inside one would become a real line break, i.e. a
    new header (``Bcc:`` injection). Whatever still starts like one after that is broken up
    so that no reader decodes it.
    """
    for _ in range(3):
        if not _ENCODED_WORD.search(value):
            break
        value = decode_header_value(value)
    # Python's own decoder is lenient (spaces inside a word): break every "=?" up.
    value = value.replace("=?", "= ?")
    return " ".join(_CONTROL.sub(" ", value).split())


def mailbox(address: str, name: str = "") -> Address:
    """One mailbox for a header. An address that is not exactly one ``local@domain`` (a comma,
    a second @, spaces, control characters) is refused instead of becoming several recipients."""
    cleaned = address.strip()
    local, at, domain = cleaned.rpartition("@")
    if (
        not at
        or not local
        or not domain
        or "@" in local.strip('"')
        or any(c in cleaned for c in ',;<>()[]\\ "')
        or _CONTROL.search(cleaned)
    ):
        raise AddressError(f"{address!r} is not one mail address")
    try:
        return Address(display_name=header_safe(name), addr_spec=cleaned)
    except (ValueError, IndexError) as exc:
        raise AddressError(f"{address!r} is not one mail address: {exc}") from None


@dataclass(frozen=True)
class Headers:
    from_name: str
    from_address: str
    to: tuple[str, ...]
    subject: str
    message_id: str
    date: datetime
    origin: str  # the dealer id, in our X-LMS-Origin header: our own mail is recognised by it
    reply_to: str | None = None
    in_reply_to: str | None = None
    references: tuple[str, ...] = field(default_factory=tuple)
    # RFC 3834: "auto-replied" for an answer to a message, "auto-generated" for the rest of
    # what a machine writes; None for what a person wrote.
    auto_submitted: str | None = None
    language: str | None = None


def _message(headers: Headers) -> EmailMessage:
    message = EmailMessage(policy=SMTP)
    message["From"] = mailbox(headers.from_address, headers.from_name)
    message["To"] = [mailbox(a) for a in headers.to]
    message["Subject"] = header_safe(headers.subject)[:300]
    message["Date"] = format_datetime(headers.date)
    message["Message-ID"] = headers.message_id
    if headers.reply_to:
        message["Reply-To"] = mailbox(headers.reply_to)
    if headers.in_reply_to:
        message["In-Reply-To"] = header_safe(headers.in_reply_to)
        message["References"] = header_safe(" ".join([*headers.references, headers.in_reply_to]))
    if headers.auto_submitted:
        message["Auto-Submitted"] = headers.auto_submitted  # RFC 3834
        # Ask Exchange and Outlook not to answer our automatic mail with theirs.
        message["X-Auto-Response-Suppress"] = "All"
    message[OUR_HEADER] = header_safe(headers.origin)
    return message


def _language(message: EmailMessage, headers: Headers) -> None:
    if headers.language:
        message["Content-Language"] = headers.language  # after the bodies: set_content drops Content-*


def build_framed(mail: FramedMail, headers: Headers) -> bytes:
    message = _message(headers)
    message.set_content(mail.text)
    message.add_alternative(mail.html, subtype="html")
    if mail.header_image is not None:
        image = mail.header_image
        html_part = next(p for p in message.iter_parts() if p.get_content_type() == "text/html")
        html_part.add_related(
            image.data, image.maintype, image.subtype, cid=f"<{mail.header_cid}>", filename=image.filename
        )
    for part in mail.attachments:
        message.add_attachment(
            part.data, maintype=part.maintype, subtype=part.subtype, filename=part.filename
        )
    _language(message, headers)
    return message.as_bytes()


def build_text(text: str, headers: Headers) -> bytes:
    message = _message(headers)
    message.set_content(text)
    _language(message, headers)
    return message.as_bytes()


def build_forward(text: str, original: bytes, headers: Headers) -> bytes:
    """The summary, and the original message attached unchanged as ``message/rfc822``.

    The email package would re-serialise an attached message (and so change it); the
    multipart body is written here by hand around the original bytes instead.
    """
    message = _message(headers)
    summary = EmailMessage(policy=SMTP)
    summary.set_content(text)
    boundary = "lms-fwd-" + secrets.token_hex(16)
    while boundary.encode() in original:  # cannot happen in practice; cheap to rule out
        boundary = "lms-fwd-" + secrets.token_hex(16)
    message["MIME-Version"] = "1.0"
    message["Content-Type"] = f'multipart/mixed; boundary="{boundary}"'
    # Only the header block: as_bytes() would write an (empty) multipart body of its own.
    head = b"".join(SMTP.fold_binary(name, value) for name, value in message.items()) + b"\r\n"
    eight_bit = any(b > 127 for b in original)
    body = original if original.endswith(b"\n") else original + b"\r\n"
    return (
        head
        + b"This is a forwarded lead in MIME format.\r\n"
        + f"--{boundary}\r\n".encode()
        + summary.as_bytes()
        + f"\r\n--{boundary}\r\n".encode()
        + b"Content-Type: message/rfc822\r\n"
        + b'Content-Disposition: attachment; filename="original.eml"\r\n'
        + (b"Content-Transfer-Encoding: 8bit\r\n" if eight_bit else b"")
        + b"\r\n"
        + body
        + f"--{boundary}--\r\n".encode()
    )
