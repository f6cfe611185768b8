"""Render outgoing mail from template blocks and build its MIME bytes. (Pure.)

Dealers edit their blocks, so every block is untrusted: it renders in Jinja2's sandbox with
strict undefined variables, gets plain dicts only (never ORM objects, whose methods would
stay callable), HTML is autoescaped, and the result is bounded in size.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, TemplateError
from jinja2.sandbox import SandboxedEnvironment
from markupsafe import Markup

from intake.parsing.html_text import html_to_text
from models.autoresponse_gate import OUR_HEADER
from templates_email import TEMPLATE_DIR

MAX_RENDERED_BYTES = 512 * 1024
LANGUAGES = ("de", "en")
_CRLF = re.compile(r"[\r\n]+")


class TemplateRenderError(Exception):
    """A block failed to render; ``block`` names it (e.g. ``templates.default.intro.de``)."""

    def __init__(self, block: str, reason: str) -> None:
        super().__init__(f"{block}: {reason}")
        self.block = block
        self.reason = reason


@dataclass(frozen=True)
class RenderedMail:
    subject: str
    html: str
    text: str
    language: str


def _env(autoescape: bool) -> SandboxedEnvironment:
    return SandboxedEnvironment(
        loader=FileSystemLoader(str(TEMPLATE_DIR)),
        autoescape=autoescape,
        undefined=StrictUndefined,
        keep_trailing_newline=False,
    )


_HTML_ENV = _env(autoescape=True)
_TEXT_ENV = _env(autoescape=False)


def header_safe(value: str) -> str:
    """No CR or LF may reach a header: they would start a new header (header injection)."""
    return _CRLF.sub(" ", value).strip()


def _render(env: SandboxedEnvironment, block: str, source: str | None, file: str, ctx: dict[str, Any]) -> str:
    try:
        template = env.from_string(source) if source is not None else env.get_template(file)
        rendered = template.render(ctx)
    except TemplateError as exc:
        raise TemplateRenderError(block, f"{type(exc).__name__}: {exc}") from None
    except (ArithmeticError, ValueError, TypeError, MemoryError, RecursionError) as exc:
        raise TemplateRenderError(block, f"{type(exc).__name__}: {exc}") from None
    if len(rendered.encode("utf-8")) > MAX_RENDERED_BYTES:
        raise TemplateRenderError(block, f"renders to more than {MAX_RENDERED_BYTES} bytes")
    return rendered


def _block(
    templates: dict[str, Any], group: str, name: str, lang: str, default_lang: str
) -> tuple[str, str | None]:
    """The dealer's text for a block: the group's, else "default"'s; per language where the
    block has languages, falling back to the dealer's default language. ``None``: built-in."""
    for candidate in (group, "default"):
        block = (templates.get(candidate) or {}).get(name)
        if isinstance(block, dict):
            for language in (lang, default_lang):
                if block.get(language):
                    return f"templates.{candidate}.{name}.{language}", block[language]
        elif block:
            return f"templates.{candidate}.{name}", block
    return f"built-in {name}.{lang}", None


def render_autoresponse(
    *, templates: dict[str, Any], group: str, lang: str, default_lang: str, context: dict[str, Any]
) -> RenderedMail:
    lang = lang if lang in LANGUAGES else default_lang
    ctx = {**context, "lang": lang}
    parts: dict[str, str] = {}
    for name in ("subject", "intro", "seller_footer", "legal_footer"):
        label, source = _block(templates, group, name, lang, default_lang)
        extension = "txt" if name == "subject" else "html"
        env = _TEXT_ENV if name == "subject" else _HTML_ENV
        parts[name] = _render(env, label, source, f"autoresponse/{name}.{lang}.{extension}", ctx)
    subject = header_safe(parts["subject"])
    html = _render(
        _HTML_ENV,
        "layout.html",
        None,
        "layout.html",
        {
            **ctx,
            "subject": subject,
            "intro": Markup(parts["intro"]),
            "seller_footer": Markup(parts["seller_footer"]),
            "legal_footer": Markup(parts["legal_footer"]),
        },
    )
    return RenderedMail(subject=subject, html=html, text=html_to_text(html), language=lang)


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
    message["Content-Language"] = rendered.language
    message.set_content(rendered.text)
    message.add_alternative(rendered.html, subtype="html")
    return message.as_bytes()
