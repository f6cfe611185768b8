"""DKIM signatures verified by us, for mail our own SMTP intake received (RFC 6376).

DNS goes through a resolver the caller passes (dkimpy's ``dnsfunc``), so tests answer with
the key they generated and nothing here reaches the network by itself.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from intake.parsing.authenticity import DkimResult

log = logging.getLogger(__name__)

# name (b"selector._domainkey.example.org.") -> TXT record bytes, or None
TxtResolver = Callable[[bytes], bytes | None]
_MAX_SIGNATURES = 5


def verify_dkim(
    raw: bytes, resolver: TxtResolver | None = None, *, timeout: float = 5.0
) -> tuple[DkimResult, ...]:
    """One result per DKIM-Signature header (at most five), each with its signing domain."""
    import dkim

    def dnsfunc(name: bytes, timeout: float = timeout) -> bytes | None:
        if resolver is not None:
            return resolver(name)
        return dkim.get_txt(name, timeout=timeout)

    try:
        checker = dkim.DKIM(raw, minkey=1024, timeout=int(timeout))
        signatures = [v for k, v in checker.headers if k.lower() == b"dkim-signature"]
    except Exception as exc:
        return (DkimResult("", False, f"DKIM: message not readable ({type(exc).__name__})"),)
    results = []
    for index, value in enumerate(signatures[:_MAX_SIGNATURES]):
        try:
            tags = dkim.util.parse_tag_value(b"".join(value.split()))
            domain = tags.get(b"d", b"").decode("ascii", "replace").lower()
        except Exception:
            domain = ""
        try:
            ok = bool(checker.verify(idx=index, dnsfunc=dnsfunc))
            detail = f"DKIM signature of {domain} " + ("valid" if ok else "invalid (body or headers changed)")
        except dkim.DKIMException as exc:  # body hash mismatch, no key in DNS, broken tags
            why = str(exc).split(" (")[0]  # without the hashes dkimpy appends
            ok, detail = False, f"DKIM signature of {domain or '?'} invalid: {why}"
        except Exception as exc:  # DNS timeout and the like
            ok, detail = False, f"DKIM signature of {domain or '?'} not verifiable: {type(exc).__name__}"
        results.append(DkimResult(domain, ok, detail[:300]))
    return tuple(results)
