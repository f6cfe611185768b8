"""Mail addresses as senders write them, and which of them can be written to. (Pure.)

Reading is lenient (a display name with an unquoted comma is one person, an address without a
domain such as ``MAILER-DAEMON`` is kept as written); being a contact is strict: only an
address with one ``@``, a plausible local part and a domain of at least two labels can be
answered. ``<<<@@@>>>`` or ``a@b@c@d`` are kept for the record but never become a contact.
"""

from __future__ import annotations

import re
from email.utils import getaddresses

from intake.parsing.charsets import decode_header_value, decode_unlabelled, has_raw_bytes

_LOCAL = re.compile(r"^(?:[^\s@<>()\[\]\\,;:\"]+|\"[^\"\r\n]+\")$")
_LABEL = re.compile(r"^(?!-)[^\s@<>()\[\]\\,;:\"'.!#$%&*+/=?^`{|}~_]{1,63}(?<!-)$")
_IP_LITERAL = re.compile(r"^\[\d{1,3}(?:\.\d{1,3}){3}\]$")
_FALLBACK = re.compile(r"<?([^\s<>\"(),;:]+@[^\s<>\"(),;:]+)>?")


def is_valid_address(address: str) -> bool:
    """Can a mail be written to this address? (RFC 5321 §4.1.2 shape, RFC 6531 letters.)"""
    if not address or len(address) > 254 or address.count("@") != 1:
        return False
    local, _, domain = address.rpartition("@")
    if not local or len(local) > 64 or not _LOCAL.match(local):
        return False
    if local.startswith(".") or local.endswith(".") or ".." in local:
        return False
    if _IP_LITERAL.match(domain):
        return True
    labels = domain.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        return False
    return not labels[-1].isdigit()


def parse_address(raw_value: str, hint: str | None = None) -> tuple[str, str]:
    """(display name, address) of the first address in a header as compat32 gives it.

    The address is read from the raw value, before encoded words are decoded, so a comma
    inside an encoded display name cannot split one sender into two; a display name with an
    unquoted comma (``Müller, Hans <hans@example.org>``) is one person, too.
    """
    unfolded = re.sub(r"\r?\n", "", raw_value)
    if has_raw_bytes(unfolded):
        unfolded = decode_unlabelled(unfolded.encode("ascii", "surrogateescape"), hint)
    try:
        pairs = [(n, a) for n, a in getaddresses([unfolded]) if n or a]
    except Exception:  # the standard library refuses some hostile forms: read them ourselves
        pairs = []
    with_at = [i for i, (_, a) in enumerate(pairs) if "@" in a]
    if with_at:
        index = with_at[0]
        name, addr = pairs[index]
        # Fragments before the address without an "@" are a display name split at a comma.
        fragments = [a or n for n, a in pairs[:index] if "@" not in a]
        if fragments:
            name = ", ".join([*fragments, name] if name else fragments)
    elif pairs:
        name, addr = pairs[0]
    else:
        name, addr = "", ""
    if not is_valid_address(addr) and "@" in unfolded:
        match = _FALLBACK.search(unfolded)  # getaddresses gave up on a broken form
        if match:
            addr = match.group(1)
    addr = addr.strip().rstrip(".")  # "user@example.com." is the same mailbox
    # A display name is one line of text, whatever an encoded word smuggled into it.
    name = " ".join(decode_header_value(name, hint).replace('"', " ").split())
    if name.lower() == addr.lower():
        name = ""
    return name, addr.lower() if "@" in addr else addr
