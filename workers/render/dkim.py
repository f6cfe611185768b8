"""DKIM signatures (RFC 6376) on what a dealer sends, when the dealer configured a key."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from models.dealer_config import DkimConfig

SIGNED_HEADERS = [b"from", b"to", b"subject", b"date", b"message-id", b"reply-to", b"in-reply-to"]


@lru_cache(maxsize=32)
def _key(path: str, mtime: float) -> bytes:
    return Path(path).read_bytes()


def dkim_sign(raw: bytes, *, selector: str, domain: str, key_file: str) -> bytes:
    """Prepend a DKIM-Signature over the headers that identify the mail."""
    import dkim

    key = _key(key_file, Path(key_file).stat().st_mtime)
    signature = dkim.sign(raw, selector.encode(), domain.encode(), key, include_headers=SIGNED_HEADERS)
    return bytes(signature) + raw


def sign_if_configured(raw: bytes, config: DkimConfig | None) -> bytes:
    if config is None:
        return raw
    return dkim_sign(raw, selector=config.selector, domain=config.domain, key_file=config.key_file)
