"""Render outgoing mail from the dealer's template blocks and build its MIME bytes. (Pure.)

Dealers edit their blocks, so every block is untrusted. It renders in a sandbox stricter
than Jinja2's own: strict undefined variables, plain dicts only (never ORM objects), no
method calls at all, repetition and powers bounded before they are computed, and the
rendered size bounded after. HTML is autoescaped; subjects are plain text and can carry no
CR or LF into a header.
"""

from __future__ import annotations

import mimetypes
import operator
import re
from dataclasses import dataclass, field
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError
from jinja2.runtime import Macro
from jinja2.sandbox import SandboxedEnvironment, SecurityError
from markupsafe import Markup, escape

from intake.parsing.charsets import decode_header_value
from intake.parsing.html_text import html_to_text
from models.autoresponse_gate import OUR_HEADER
from templates_email import TEMPLATE_DIR

MAX_RENDERED_BYTES = 512 * 1024
MAX_REPEAT = 10_000
LANGUAGES = ("de", "en")
BLOCKS = ("subject", "intro", "seller_footer", "legal_footer")


class TemplateRenderError(Exception):
    """A block failed to render; ``block`` names it (e.g. ``templates.default.intro.de``)."""

    def __init__(self, block: str, reason: str) -> None:
        super().__init__(f"{block}: {reason}")
        self.block = block
        self.reason = reason


class StrictSandbox(SandboxedEnvironment):
    """Jinja2's sandbox, minus calls and unbounded arithmetic.

    The stock sandbox still lets a template call "safe" methods (``name.upper()``,
    ``range(10**9)``); blocks need none of that, filters do the formatting.
    """

    intercepted_binops = frozenset({"*", "**"})

    def is_safe_callable(self, obj: Any) -> bool:
        return isinstance(obj, Macro)

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        if op == "**" and isinstance(right, int | float) and abs(right) > 64:
            raise SecurityError("a power this large is not allowed in a template")
        if op == "*":
            for seq, count in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(count, int)
                    and len(seq) * count > MAX_REPEAT
                ):
                    raise SecurityError(f"repeating text more than {MAX_REPEAT} characters is not allowed")
        return operator.mul(left, right) if op == "*" else operator.pow(left, right)


def _env(autoescape: bool) -> StrictSandbox:
    return StrictSandbox(
        loader=FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=autoescape,
        undefined=StrictUndefined,
        keep_trailing_newline=False,
    )


_HTML_ENV = _env(autoescape=True)
_TEXT_ENV = _env(autoescape=False)


_CONTROL = re.compile(r"[\x00-\x1f\x7f]+")
_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


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


@dataclass(frozen=True)
class FilePart:
    filename: str
    data: bytes
    maintype: str
    subtype: str


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    html: str
    text: str
    language: str
    header_image: FilePart | None = None
    header_cid: str = ""
    attachments: tuple[FilePart, ...] = field(default_factory=tuple)


def _render(env: StrictSandbox, block: str, source: str | None, file: str, ctx: dict[str, Any]) -> str:
    try:
        template = env.from_string(source) if source is not None else env.get_template(file)
        # Stream, and stop at the bound: a loop that would write gigabytes never gets to.
        chunks: list[str] = []
        size = 0
        for chunk in template.generate(ctx):
            size += len(chunk)
            if size > MAX_RENDERED_BYTES:
                raise TemplateRenderError(block, f"renders to more than {MAX_RENDERED_BYTES} bytes")
            chunks.append(chunk)
        rendered = "".join(chunks)
    except TemplateError as exc:
        raise TemplateRenderError(block, f"{type(exc).__name__}: {exc}") from None
    except (ArithmeticError, ValueError, TypeError, MemoryError, RecursionError, AttributeError) as exc:
        raise TemplateRenderError(block, f"{type(exc).__name__}: {exc}") from None
    if len(rendered.encode("utf-8")) > MAX_RENDERED_BYTES:
        raise TemplateRenderError(block, f"renders to more than {MAX_RENDERED_BYTES} bytes")
    return rendered


def template_block(
    templates: dict[str, Any], group: str, name: str, lang: str, default_lang: str
) -> tuple[str, Any]:
    """The dealer's value for a block, with its key. Tried in this order: the group in the
    customer's language, "default" in that language, then both in the dealer's default
    language (the right language matters more than a group's own wording). ``None``: built-in."""
    for language in dict.fromkeys((lang, default_lang)):
        for candidate in (group, "default"):
            block = (templates.get(candidate) or {}).get(name)
            if isinstance(block, dict):
                if block.get(language):
                    return f"templates.{candidate}.{name}.{language}", block[language]
            elif block:
                return f"templates.{candidate}.{name}", block
    return f"built-in {name}.{lang}", None


def _file_part(path: str) -> FilePart:
    data = Path(path).read_bytes()
    kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
    maintype, _, subtype = kind.partition("/")
    return FilePart(Path(path).name, data, maintype, subtype)


def render_mail(
    *,
    templates: dict[str, Any],
    group: str,
    lang: str,
    default_lang: str,
    context: dict[str, Any],
    body_text: str | None = None,
    subject: str | None = None,
    with_attachments: bool = True,
) -> RenderedMail:
    """The autoresponse (``body_text`` None: the intro block) or a seller's answer framed by
    the header and footers (``body_text``: their words, escaped, and ``subject``)."""
    lang = lang if lang in LANGUAGES else default_lang
    ctx = {**context, "lang": lang}
    parts: dict[str, str] = {}
    for name in BLOCKS:
        if name == "subject" and subject is not None:
            parts[name] = subject
            continue
        if name == "intro" and body_text is not None:
            parts[name] = str(escape(body_text)).replace("\n", "<br>\n")
            continue
        label, source = template_block(templates, group, name, lang, default_lang)
        extension = "txt" if name == "subject" else "html"
        env = _TEXT_ENV if name == "subject" else _HTML_ENV
        parts[name] = _render(env, label, source, f"autoresponse/{name}.{lang}.{extension}", ctx)
    clean_subject = header_safe(parts["subject"])
    _, image_path = template_block(templates, group, "header_image", lang, default_lang)
    image = _file_part(image_path) if image_path else None
    cid = make_msgid(domain="lms.invalid")[1:-1] if image else ""
    html = _render(
        _HTML_ENV,
        "layout.html",
        None,
        "layout.html",
        {
            **ctx,
            "subject": clean_subject,
            "header_cid": cid,
            "intro": Markup(parts["intro"]),
            "seller_footer": Markup(parts["seller_footer"]),
            "legal_footer": Markup(parts["legal_footer"]),
        },
    )
    _, files = template_block(templates, group, "attachments", lang, default_lang)
    attachments = tuple(_file_part(p) for p in files or []) if with_attachments else ()
    return RenderedMail(
        subject=clean_subject,
        html=html,
        text=html_to_text(html),
        language=lang,
        header_image=image,
        header_cid=cid,
        attachments=attachments,
    )


def salutation(name: str | None, lang: str) -> str:
    greeting = "Guten Tag" if lang == "de" else "Hello"
    name = header_safe(name or "")
    return f"{greeting} {name}" if name else greeting


def build_message(
    rendered: RenderedMail,
    *,
    from_name: str,
    from_address: str,
    to: str,
    message_id: str,
    date: datetime,
    origin: str,
    in_reply_to: str | None = None,
    references: list[str] | None = None,
    auto_submitted: str | None = None,
    reply_to: str | None = None,
) -> bytes:
    """multipart/alternative (text, HTML); the HTML inside multipart/related with the header
    image when there is one; all of it inside multipart/mixed with the PDFs when there are."""
    message = EmailMessage(policy=SMTP)
    message["From"] = Address(display_name=header_safe(from_name), addr_spec=from_address)
    message["To"] = to
    message["Subject"] = rendered.subject
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    if reply_to:
        message["Reply-To"] = reply_to
    if in_reply_to:
        message["In-Reply-To"] = header_safe(in_reply_to)
        message["References"] = header_safe(" ".join([*(references or []), in_reply_to]))
    if auto_submitted:
        message["Auto-Submitted"] = auto_submitted  # RFC 3834
        # Ask Exchange and Outlook not to answer our automatic mail with theirs.
        message["X-Auto-Response-Suppress"] = "All"
    message[OUR_HEADER] = header_safe(origin)
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    if rendered.header_image is not None:
        image = rendered.header_image
        html_part = next(p for p in message.iter_parts() if p.get_content_type() == "text/html")
        html_part.add_related(
            image.data, image.maintype, image.subtype, cid=f"<{rendered.header_cid}>", filename=image.filename
        )
    for part in rendered.attachments:
        message.add_attachment(
            part.data, maintype=part.maintype, subtype=part.subtype, filename=part.filename
        )
    message["Content-Language"] = rendered.language  # after the bodies: set_content drops Content-*
    return message.as_bytes()


def dkim_sign(raw: bytes, *, selector: str, domain: str, key_file: str) -> bytes:
    """Prepend a DKIM-Signature (RFC 6376) over the headers that identify the mail."""
    import dkim

    signature = dkim.sign(
        raw,
        selector.encode(),
        domain.encode(),
        Path(key_file).read_bytes(),
        include_headers=[b"from", b"to", b"subject", b"date", b"message-id", b"reply-to", b"in-reply-to"],
    )
    return bytes(signature) + raw


TYPE_LABELS = {
    "de": {
        "new_car": "Neuwagen",
        "used_car": "Gebrauchtwagen",
        "test_drive": "Probefahrt",
        "trade_in": "Inzahlungnahme",
        "financing": "Finanzierung",
        "leasing": "Leasing",
        "service": "Werkstatt",
        "parts": "Teile",
        "callback": "Rückruf",
        "general": "Allgemein",
    },
    "en": {
        "new_car": "New car",
        "used_car": "Used car",
        "test_drive": "Test drive",
        "trade_in": "Trade-in",
        "financing": "Financing",
        "leasing": "Leasing",
        "service": "Service",
        "parts": "Parts",
        "callback": "Callback",
        "general": "General",
    },
}
SUMMARY_LABELS = {
    "de": ("Kunde", "Art", "Quelle", "Fahrzeug", "Bearbeiter", "Fällig", "Nachricht", "im Pool"),
    "en": ("Customer", "Type", "Source", "Vehicle", "Editor", "Due", "Message", "in the pool"),
}


def lead_summary(lead: dict[str, Any], *, lang: str, legal_footer_html: str = "") -> str:
    """A plain-text summary of a lead for the people who work on it. ``lead`` is plain data."""
    lang = lang if lang in SUMMARY_LABELS else "en"
    customer, kind, source, vehicle, editor, due, message, pool = SUMMARY_LABELS[lang]
    contact = lead["contact"]
    who = " ".join(
        p
        for p in (
            contact.get("name") or "",
            f"<{contact['email']}>" if contact.get("email") else "",
            contact.get("phone") or "",
        )
        if p
    )
    car = lead.get("vehicle") or {}
    car_text = car.get("label") or " ".join(str(car[k]) for k in ("make", "model") if car.get(k))
    if car.get("year"):
        car_text += f" ({car['year']})"
    rows = [
        (customer, who or "-"),
        (kind, TYPE_LABELS[lang].get(lead["type"], lead["type"])),
        (source, lead.get("source") or "-"),
        (vehicle, car_text or "-"),
        (editor, lead.get("editor_name") or pool),
        (due, lead.get("due_at") or "-"),
    ]
    width = max(len(label) for label, _ in rows) + 1
    text = f"Lead #{lead['id']}\n\n" + "\n".join(f"{label + ':':<{width}} {value}" for label, value in rows)
    if lead.get("message"):
        text += f"\n\n{message}:\n{lead['message'][:3000]}"
    if legal_footer_html:
        text += "\n\n-- \n" + html_to_text(legal_footer_html)
    return text


def _headers_only(
    *,
    from_name: str,
    from_address: str,
    to: list[str],
    subject: str,
    message_id: str,
    date: datetime,
    origin: str,
) -> EmailMessage:
    message = EmailMessage(policy=SMTP)
    message["From"] = Address(display_name=header_safe(from_name), addr_spec=from_address)
    message["To"] = ", ".join(to)
    message["Subject"] = header_safe(subject)[:300]
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    # RFC 3834: mail we generate (not a reply to anything) is auto-generated.
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    message[OUR_HEADER] = header_safe(origin)
    return message


def build_notification(*, text: str, **headers: Any) -> bytes:
    message = _headers_only(**headers)
    message.set_content(text)
    return message.as_bytes()


def build_forward(*, text: str, original: bytes, reply_to: str | None = None, **headers: Any) -> bytes:
    """The summary, and the original message attached unchanged as ``message/rfc822``.

    The email package would re-serialise an attached message (and so change it); the
    multipart body is written here by hand around the original bytes instead.
    """
    import secrets as _secrets

    message = _headers_only(**headers)
    if reply_to:
        message["Reply-To"] = header_safe(reply_to)
    summary = EmailMessage(policy=SMTP)
    summary.set_content(text)
    boundary = "lms-fwd-" + _secrets.token_hex(16)
    while boundary.encode() in original:  # cannot happen in practice; cheap to rule out
        boundary = "lms-fwd-" + _secrets.token_hex(16)
    message["MIME-Version"] = "1.0"
    message["Content-Type"] = f'multipart/mixed; boundary="{boundary}"'
    # Only the header block: as_bytes() would write a (empty) multipart body of its own.
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


def check_templates(dealer: dict[str, Any], sample: Any) -> None:
    """Render every block of every group in every language against sample data; raise
    :class:`TemplateRenderError` naming the first block that fails. ``sample(lang)`` gives
    the context."""
    templates = dealer.get("templates") or {}
    default_lang = dealer.get("language", "de")
    for group in sorted(set(templates) | {"default"}):
        for lang in LANGUAGES:
            render_mail(
                templates=templates, group=group, lang=lang, default_lang=default_lang, context=sample(lang)
            )
