"""Webhook signatures as the Standard Webhooks specification writes them (standardwebhooks.com;
the scheme Svix, Clerk, Resend and others send). (Pure.)

Three headers: ``webhook-id`` (the event's id: the idempotency key, the same on every attempt),
``webhook-timestamp`` (Unix seconds of this attempt) and ``webhook-signature``:
``v1,`` + base64 of HMAC-SHA256 over ``"{id}.{timestamp}.{body}"``. The key is the secret's
bytes; a secret written the Standard Webhooks way (``whsec_`` + base64) is decoded first, so a
receiver built with one of their libraries verifies our mail as it is.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

PREFIX = "whsec_"


def secret_key(secret: str) -> bytes:
    if secret.startswith(PREFIX):
        try:
            return base64.b64decode(secret[len(PREFIX) :], validate=True)
        except ValueError:
            pass  # not base64 after all: the text is the key
    return secret.encode("utf-8")


def signature(secret: str, event_id: str, timestamp: int, body: bytes) -> str:
    signed = f"{event_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def headers(secret: str, event_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": event_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(secret, event_id, timestamp, body),
    }


def verify(secret: str, sent: dict[str, str], body: bytes) -> bool:
    """Whether any ``v1`` signature of the header matches (several are sent while rotating)."""
    expected = signature(secret, sent["webhook-id"], int(sent["webhook-timestamp"]), body)
    return any(hmac.compare_digest(expected, given) for given in sent["webhook-signature"].split())
