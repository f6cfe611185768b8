"""A stored mail shown safely: its HTML part sanitised (nh3) into a document served with a CSP
that blocks scripts and every remote resource, to be framed in a sandbox; its attachments as
downloads from the raw bytes, never rendered in our origin."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import nh3
from starlette.exceptions import HTTPException
from starlette.responses import Response

from intake.parsing.mime import ParsedMail, parse_mail

# Framed with sandbox (no scripts, no same-origin), and the response itself forbids everything
# but inline styles and data: images: a tracking pixel or remote image never loads.
FRAME_CSP = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; font-src 'none'; "
    "form-action 'none'; base-uri 'none'; frame-ancestors 'self'; sandbox"
)
DOCUMENT = (
    '<!doctype html><html><head><meta charset="utf-8"><meta name="referrer" content="no-referrer">'
    "<style>body{{font:14px/1.45 system-ui,sans-serif;margin:.5rem;color:#222}}"
    "img{{max-width:100%}}table{{border-collapse:collapse}}</style></head><body>{body}</body></html>"
)


def sanitised_html(html: str) -> str:
    return nh3.clean(html, link_rel="noopener noreferrer nofollow")


def html_document(raw: bytes) -> Response:
    parsed = parse_mail(raw)
    body = sanitised_html(parsed.html) if parsed.html else ""
    return Response(
        DOCUMENT.format(body=body),
        media_type="text/html; charset=utf-8",
        headers={
            "Content-Security-Policy": FRAME_CSP,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
            "Referrer-Policy": "no-referrer",
        },
    )


def attachment_list(parsed: ParsedMail) -> list[dict[str, Any]]:
    return [
        {
            "index": i,
            "filename": a.filename or f"attachment-{i + 1}",
            "content_type": a.content_type,
            "size": a.size,
        }
        for i, a in enumerate(parsed.attachments)
    ]


def attachment_download(raw: bytes, index: str) -> Response:
    parsed = parse_mail(raw, whole_attachments=True)
    if not index.isdigit() or int(index) >= len(parsed.attachments):
        raise HTTPException(404)
    found = parsed.attachments[int(index)]
    name = found.filename or f"attachment-{int(index) + 1}"
    fallback = "".join(ch if (ch.isascii() and ch.isalnum()) or ch in "._-" else "_" for ch in name)
    return Response(
        found.payload,
        # Never the sender's type: an HTML or SVG "attachment" must not render in our origin.
        media_type="application/octet-stream",
        headers={
            "Content-Disposition": f"attachment; filename=\"{fallback}\"; filename*=UTF-8''{quote(name)}",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
            "Cache-Control": "no-store",
        },
    )
