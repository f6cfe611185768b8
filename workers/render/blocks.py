"""The dealer's template blocks (INTERFACE.md ``[dealers.templates.<group>]``) and the built-in
templates of every kind of mail, rendered in the budgeted sandbox. (No I/O but reading the
template, image and attachment files the configuration names.)

A dealer's block overrides the built-in one. Tried in this order: the group in the customer's
language, "default" in that language, then both in the dealer's language (the right language
matters more than a group's own wording), then the built-in block of ``templates_email/``.
"""

from __future__ import annotations

import mimetypes
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import make_msgid
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader
from markupsafe import Markup, escape

from intake.parsing.html_text import html_to_text
from models.dealer_config import TemplateConfig
from templates_email import TEMPLATE_DIR
from workers.render.mime import header_safe
from workers.render.sandbox import TemplateRenderError, make_env, render

LANGUAGES = ("de", "en")
BLOCKS = ("subject", "intro", "seller_footer", "legal_footer")

HTML_ENV = make_env(FileSystemLoader(str(TEMPLATE_DIR)), autoescape=True)
TEXT_ENV = make_env(FileSystemLoader(str(TEMPLATE_DIR)), autoescape=False)

__all__ = ["FilePart", "FramedMail", "TemplateRenderError", "render_framed", "render_text_kind"]


@dataclass(frozen=True)
class FilePart:
    filename: str
    data: bytes
    maintype: str
    subtype: str


@dataclass(frozen=True)
class FramedMail:
    """An HTML mail in the dealer's frame: header image, body, seller and legal footers."""

    subject: str
    html: str
    text: str
    language: str
    header_image: FilePart | None = None
    header_cid: str = ""
    attachments: tuple[FilePart, ...] = field(default_factory=tuple)


def language_of(lang: str | None, default_lang: str) -> str:
    return lang if lang in LANGUAGES else (default_lang if default_lang in LANGUAGES else "de")


def template_block(
    templates: Mapping[str, TemplateConfig], group: str, name: str, lang: str, default_lang: str
) -> tuple[str, Any]:
    """The dealer's value for a block and its key; ``None``: use the built-in one."""
    for language in dict.fromkeys((lang, default_lang)):
        for candidate in (group, "default"):
            template = templates.get(candidate)
            block = getattr(template, name) if template is not None else None
            if isinstance(block, dict):
                if block.get(language):
                    return f"templates.{candidate}.{name}.{language}", block[language]
            elif block:
                return f"templates.{candidate}.{name}", block
    return f"built-in {name}.{lang}", None


@lru_cache(maxsize=64)
def _file_part(path: str, mtime: float) -> FilePart:
    data = Path(path).read_bytes()
    kind = mimetypes.guess_type(path)[0] or "application/octet-stream"
    maintype, _, subtype = kind.partition("/")
    return FilePart(Path(path).name, data, maintype, subtype)


def file_part(path: str) -> FilePart:
    return _file_part(path, Path(path).stat().st_mtime)


def render_framed(
    *,
    kind: str,
    templates: Mapping[str, TemplateConfig],
    group: str,
    lang: str,
    default_lang: str,
    context: dict[str, Any],
    body_text: str | None = None,
    subject: str | None = None,
    with_attachments: bool = True,
) -> FramedMail:
    """The autoresponse (``body_text`` None: the intro block) or a person's words framed by the
    header and footers (``body_text``: their text, escaped; ``subject`` given)."""
    lang = language_of(lang, default_lang)
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
        plain = name == "subject"
        parts[name] = render(
            TEXT_ENV if plain else HTML_ENV,
            label,
            ctx,
            source=source,
            file=f"{kind}/{name}.{lang}.{'txt' if plain else 'html'}",
        )
    clean_subject = header_safe(parts["subject"])
    _, image_path = template_block(templates, group, "header_image", lang, default_lang)
    image = file_part(image_path) if image_path else None
    cid = make_msgid(domain="lms.invalid")[1:-1] if image else ""
    html = render(
        HTML_ENV,
        "layout.html",
        {
            **ctx,
            "subject": clean_subject,
            "header_cid": cid,
            "intro": Markup(parts["intro"]),
            "seller_footer": Markup(parts["seller_footer"]),
            "legal_footer": Markup(parts["legal_footer"]),
        },
        file="layout.html",
    )
    _, files = template_block(templates, group, "attachments", lang, default_lang)
    attachments = tuple(file_part(p) for p in files or []) if with_attachments else ()
    return FramedMail(
        subject=clean_subject,
        html=html,
        text=html_to_text(html),
        language=lang,
        header_image=image,
        header_cid=cid,
        attachments=attachments,
    )


def render_text_kind(
    kind: str,
    lang: str,
    context: dict[str, Any],
    *,
    legal_footer_html: str = "",
    subject_only: bool = False,
) -> tuple[str, str]:
    """(subject, body) of a kind of mail (``templates_email/<kind>/subject.<lang>.txt`` and
    ``body.<lang>.txt``), with the dealer's legal footer under the body."""
    lang = language_of(lang, "en")
    ctx = {**context, "lang": lang}
    subject = header_safe(render(TEXT_ENV, f"{kind}/subject.{lang}", ctx, file=f"{kind}/subject.{lang}.txt"))
    if subject_only:
        return subject, ""
    body = render(TEXT_ENV, f"{kind}/body.{lang}", ctx, file=f"{kind}/body.{lang}.txt").strip()
    if legal_footer_html:
        body += "\n\n-- \n" + html_to_text(legal_footer_html)
    return subject, body + "\n"


def check_blocks(templates: Mapping[str, TemplateConfig], default_lang: str, sample: Any) -> None:
    """Render every block of every group in every language against sample data (the
    configuration check); :class:`TemplateRenderError` names the first block that fails.
    ``sample(lang)`` gives the context."""
    for group in sorted(set(templates) | {"default"}):
        for lang in LANGUAGES:
            render_framed(
                kind="autoresponse",
                templates=templates,
                group=group,
                lang=lang,
                default_lang=default_lang,
                context=sample(lang),
            )
