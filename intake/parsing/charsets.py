"""Decoding text whose charset label is wrong, unknown or missing. (Pure.)

Real mail carries labels Python does not know (``iso-8859-8-i`` is the logical-order variant
of Hebrew, ``iso-gb2312`` a misspelling), labels too narrow for the bytes (``us-ascii`` with
umlauts, ``iso-8859-1`` with Windows quotes), and raw 8-bit header bytes with no label at
all (RFC 6532 allows UTF-8; older clients send their local charset).
"""

from __future__ import annotations

import codecs
import re
from email.header import decode_header

ALIASES = {
    "iso-8859-8-i": "iso-8859-8",
    "iso-8859-8-e": "iso-8859-8",
    "iso-8859-6-i": "iso-8859-6",
    "iso-8859-6-e": "iso-8859-6",
    "iso-gb2312": "gb2312",
    "x-gbk": "gbk",
    "x-sjis": "shift_jis",
    "x-euc-jp": "euc_jp",
    "ansi_x3.4-1968": "ascii",
    "x-unknown": "",
    "unknown-8bit": "",
    "x-user-defined": "",
    "default": "",
}
# Labels whose bytes are, in practice, often a superset: decode with the superset.
WIDER = {
    "ascii": "utf-8",
    "us-ascii": "utf-8",
    "iso-8859-1": "cp1252",
    "latin-1": "cp1252",
    "gb2312": "gb18030",
}


def codec_for(label: str | None) -> str | None:
    if not label:
        return None
    name = label.strip().strip('"').lower()
    name = ALIASES.get(name, name)
    if not name:
        return None
    try:
        canonical = codecs.lookup(name).name
    except LookupError:
        return None
    return WIDER.get(canonical, WIDER.get(name, canonical))


def decode_bytes(data: bytes, label: str | None = None) -> str:
    """Bytes to text: the labelled charset (widened), else UTF-8, else Windows-1252."""
    codec = codec_for(label)
    if codec:
        try:
            return data.decode(codec)
        except (UnicodeDecodeError, LookupError):
            pass
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    if codec:
        return data.decode(codec, errors="replace")
    return data.decode("cp1252", errors="replace")


def has_raw_bytes(text: str) -> bool:
    """compat32 keeps undecodable 8-bit header bytes as lone surrogates U+DC80..U+DCFF."""
    return any("\udc80" <= ch <= "\udcff" for ch in text)


_ENCODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")


def decode_header_value(value: str, hint: str | None = None) -> str:
    """A raw header value (as compat32 gives it: 8-bit bytes as surrogates) to text.

    Unfolds (RFC 5322 §2.2.3: remove CRLF, keep the whitespace), decodes raw 8-bit bytes,
    then RFC 2047 encoded words; whitespace between adjacent encoded words is dropped
    (RFC 2047 §6.2) and other whitespace kept as written.
    """
    text = re.sub(r"\r?\n(?=[ \t])", "", value).replace("\r", "").replace("\n", "")
    if has_raw_bytes(text):
        text = decode_bytes(text.encode("ascii", "surrogateescape"), hint)
    if "=?" not in text or not _ENCODED_WORD.search(text):
        return text.strip()
    try:
        parts = decode_header(text)
    except Exception:  # a malformed encoded word: show it as written rather than fail
        return text.strip()
    decoded = []
    for chunk, charset in parts:
        if isinstance(chunk, str):
            decoded.append(chunk)
        else:
            decoded.append(decode_bytes(chunk, charset))
    return "".join(decoded).strip()
