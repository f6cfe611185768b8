"""Decoding text whose charset label is wrong, unknown or missing. (Pure.)

Real mail carries labels Python does not know (``iso-8859-8-i`` is the logical-order variant
of Hebrew, ``iso-gb2312`` a misspelling), labels too narrow for the bytes (``us-ascii`` with
umlauts, ``iso-8859-1`` with Windows quotes), and raw 8-bit header bytes with no label at
all (RFC 6532 allows UTF-8; older clients send their local charset).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re

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


_SURROGATE = re.compile("[\udc80-\udcff]")


def has_raw_bytes(text: str) -> bool:
    """compat32 keeps undecodable 8-bit header bytes as lone surrogates U+DC80..U+DCFF."""
    return not text.isascii() and _SURROGATE.search(text) is not None


# RFC 2047 encoded words as clients really write them: spaces inside the encoded text
# ("=?UTF-8?Q? Termin=C3=A4nderung?="), no separator before or between them, an RFC 2231
# language suffix ("=?utf-8*de?Q?...?="), base64 without its padding. Decoded leniently; a
# word that still cannot be decoded is shown as written.
_ENCODED_WORD = re.compile(r"=\?([^?\s*]{1,40})(?:\*[^?\s]{0,20})?\?([bBqQ])\?([^?]*?)\?=")


def _word_bytes(encoding: str, payload: str) -> bytes | None:
    if encoding in "qQ":
        return binascii.a2b_qp(payload.encode("utf-8", "surrogateescape"), header=True)
    data = "".join(payload.split()).rstrip("=")
    if len(data) % 4 == 1:  # one stray character cannot carry a byte
        data = data[:-1]
    try:
        decoded = base64.b64decode(data + "=" * (-len(data) % 4), validate=True)
    except (binascii.Error, ValueError):
        return None
    return decoded if decoded or not data else None


def decode_encoded_words(text: str) -> str:
    """Encoded words to text; whitespace between two encoded words is dropped (RFC 2047
    §6.2), adjacent words in one charset are joined before decoding (a multi-byte character
    may be split between them), all other text is kept as written."""
    out: list[str] = []
    pending = b""
    pending_charset: str | None = None
    position = 0

    def flush() -> None:
        nonlocal pending, pending_charset
        if pending_charset is not None:
            out.append(decode_bytes(pending, pending_charset))
        pending, pending_charset = b"", None

    for match in _ENCODED_WORD.finditer(text):
        between = text[position : match.start()]
        data = _word_bytes(match.group(2), match.group(3))
        if data is None:  # not decodable: keep the word itself as text
            flush()
            out.append(between + match.group(0))
            position = match.end()
            continue
        charset = match.group(1).lower()
        if between and not (between.isspace() and pending_charset is not None):
            flush()
            out.append(between)
        elif pending_charset is not None and charset != pending_charset:
            flush()
        pending += data
        pending_charset = charset
        position = match.end()
    flush()
    out.append(text[position:])
    return "".join(out)


def decode_header_value(value: str, hint: str | None = None) -> str:
    """A raw header value (as compat32 gives it: 8-bit bytes as surrogates) to text.

    Unfolds (RFC 5322 §2.2.3: remove CRLF, keep the whitespace), decodes raw 8-bit bytes,
    then RFC 2047 encoded words (leniently, see ``_ENCODED_WORD``).
    """
    text = re.sub(r"\r?\n(?=[ \t])", "", value).replace("\r", "").replace("\n", "")
    if has_raw_bytes(text):
        text = decode_unlabelled(text.encode("ascii", "surrogateescape"), hint)
    if "=?" not in text:
        return text.strip()
    return decode_encoded_words(text).strip()


def decode_unlabelled(data: bytes, *labels: str | None) -> str:
    """Bytes that came without a charset (raw 8-bit headers and file names): UTF-8 if they
    are valid UTF-8 (it rarely is by accident), else the first of ``labels`` (the part's,
    the message's charset) that decodes them, else Latin-1, which decodes anything."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    for label in labels:
        codec = codec_for(label)
        if codec:
            try:
                return data.decode(codec)
            except (UnicodeDecodeError, LookupError):
                continue
    return data.decode("cp1252", errors="strict") if _cp1252_ok(data) else data.decode("latin-1")


def _cp1252_ok(data: bytes) -> bool:
    # Windows-1252 is what "Latin-1" means in practice (curly quotes, the euro sign); the five
    # bytes it leaves undefined fall back to real Latin-1.
    return not any(b in data for b in (0x81, 0x8D, 0x8F, 0x90, 0x9D))
