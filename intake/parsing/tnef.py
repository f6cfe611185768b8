"""Outlook's TNEF container (``winmail.dat``, ``application/ms-tnef``): the body and the
attachments it hides, read with ``tnefparse``. (Pure; never raises.)

Outlook sends it when "Rich Text" is on; every other client shows one opaque attachment.
A body kept only as compressed RTF is not read (a plain-text part usually travels beside it).
"""

from __future__ import annotations

import logging
import mimetypes
from dataclasses import dataclass, field

from intake.parsing.charsets import decode_unlabelled

logging.getLogger("tnefparse").setLevel(logging.ERROR)


@dataclass
class Tnef:
    text: str = ""
    html: str = ""
    attachments: list[tuple[str, str, bytes]] = field(default_factory=list)  # name, type, data
    problems: list[str] = field(default_factory=list)


def _text(value: object, codepage: str | None) -> str:
    if isinstance(value, bytes):
        return decode_unlabelled(value.rstrip(b"\x00"), codepage).strip()
    return str(value or "").strip("\x00").strip()


def unpack_tnef(data: bytes) -> Tnef | None:
    """``None`` when ``data`` is no TNEF container (then it stays an ordinary attachment)."""
    try:
        from tnefparse import TNEF

        tnef = TNEF(data, do_checksum=False)
    except Exception:
        return None
    result = Tnef()
    codepage = getattr(tnef, "codepage", None)
    try:
        result.text = _text(tnef.body, codepage)
        result.html = _text(tnef.htmlbody, codepage)
        if not (result.text or result.html) and getattr(tnef, "_rtfbody", None):
            result.problems.append("TNEF body only as compressed RTF: not read")
        for attachment in tnef.attachments:
            # tnefparse decodes a short name as UTF-8; Outlook wrote it in the message's code page.
            name = getattr(attachment, "_name", b"")
            try:
                name = attachment.long_filename() if not isinstance(name, bytes) else name
            except Exception:
                name = ""
            if isinstance(name, bytes):
                name = decode_unlabelled(name.rstrip(b"\x00"), codepage)
            name = str(name).strip("\x00").strip()
            content_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
            result.attachments.append((name, content_type, bytes(attachment.data or b"")))
    except Exception as exc:  # a damaged container: keep what was read
        result.problems.append(f"TNEF partly unreadable: {type(exc).__name__}")
    return result
