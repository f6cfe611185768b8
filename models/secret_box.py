"""Encryption of secrets kept in the database (OAuth2 refresh and access tokens).

Fernet (AES-128-CBC + HMAC-SHA256, from ``cryptography``): authenticated, so a row edited by
hand or decrypted with the wrong key fails loudly instead of yielding garbage. The key is
derived from ``LMS_SECRET_KEY`` with HKDF and a purpose label, so the same environment
variable can serve other purposes (web sessions) without sharing key material; the secret
itself is never stored. Rotation: ``LMS_SECRET_KEY="new old"`` decrypts with either and
encrypts with the first (MultiFernet); re-connecting or the next refresh re-encrypts.
"""

from __future__ import annotations

import base64

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

MIN_SECRET_CHARS = 16


class SecretKeyError(Exception):
    """No usable LMS_SECRET_KEY, or a stored secret that this key cannot open."""


def _fernet(secret: str, purpose: bytes) -> Fernet:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"lms/" + purpose).derive(
        secret.encode()
    )
    return Fernet(base64.urlsafe_b64encode(key))


class SecretBox:
    def __init__(self, secret_key: str | None, *, purpose: bytes = b"oauth-tokens") -> None:
        secrets = (secret_key or "").split()
        if not secrets:
            raise SecretKeyError(
                "LMS_SECRET_KEY is not set: it encrypts the OAuth2 tokens in the database "
                "(make one with: python3 -c 'import secrets; print(secrets.token_urlsafe(32))')"
            )
        if any(len(s) < MIN_SECRET_CHARS for s in secrets):
            raise SecretKeyError(f"LMS_SECRET_KEY is too short (at least {MIN_SECRET_CHARS} characters)")
        self._box = MultiFernet([_fernet(s, purpose) for s in secrets])

    def seal(self, plain: str) -> str:
        return self._box.encrypt(plain.encode()).decode("ascii")

    def open(self, sealed: str) -> str:
        try:
            return self._box.decrypt(sealed.encode("ascii")).decode()
        except InvalidToken:
            raise SecretKeyError(
                "a stored token cannot be decrypted with LMS_SECRET_KEY (was the key changed? "
                "keep the old one after the new: LMS_SECRET_KEY=\"new old\")"
            ) from None
