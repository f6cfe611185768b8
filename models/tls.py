"""The TLS client context of every connection we open to a mail server (IMAP, the relay)."""

from __future__ import annotations

import ssl


def client_tls_context(ca_file: str | None) -> ssl.SSLContext:
    """Chain and host name verified (the default context's), TLS 1.2 at least. A ``ca_file``
    replaces the system store rather than adding to it: a private mail server is trusted for
    its own CA only."""
    context = ssl.create_default_context(cafile=ca_file) if ca_file else ssl.create_default_context()
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
