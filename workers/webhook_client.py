"""One POST of a webhook, with the standard library (``http.client``): a timeout on connecting
and reading, TLS verified against the system's trust store, no redirects followed (a 3xx is a
failed attempt: a receiver must answer where it was configured), at most 64 KB of the answer
read (only its status matters)."""

from __future__ import annotations

import http.client
import ssl
from dataclasses import dataclass
from urllib.parse import urlsplit

from models.dealer_config import is_loopback

USER_AGENT = "lms-webhooks/1"


@dataclass(frozen=True)
class Response:
    status: int | None  # None: no HTTP answer at all (refused, timed out, TLS failed)
    error: str | None = None  # None: delivered (2xx)


def post(url: str, body: bytes, headers: dict[str, str], *, timeout: float) -> Response:
    parts = urlsplit(url)
    host = parts.hostname or ""
    if parts.scheme == "https":
        conn: http.client.HTTPConnection = http.client.HTTPSConnection(
            host, parts.port, timeout=timeout, context=ssl.create_default_context()
        )
    elif parts.scheme == "http" and is_loopback(host):
        conn = http.client.HTTPConnection(host, parts.port, timeout=timeout)
    else:
        return Response(None, f"refused to post to {url!r}: https required (http only on loopback)")
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request("POST", path, body=body, headers={**headers, "User-Agent": USER_AGENT})
        answer = conn.getresponse()
        answer.read(65536)
        status = answer.status
    except (OSError, http.client.HTTPException) as exc:
        return Response(None, f"{type(exc).__name__}: {exc}"[:1000])
    finally:
        conn.close()
    if 200 <= status < 300:
        return Response(status)
    return Response(status, f"the receiver answered HTTP {status}")
