"""Our own mail's identity, written and read in one place. (Pure.)

Everything we send carries our ``X-LMS-Origin`` header (the dealer id), a Message-ID of the
form ``<lms.KIND.LEAD.RANDOM@domain>``, and, where a customer may answer, a Reply-To with a
token in the sub-address (RFC 5233): ``mailbox+r-TOKEN@domain``. A mail that comes back with
any of them is ours (an echo, never a lead), or a customer's answer to a lead.
"""

from __future__ import annotations

import re
import secrets

OUR_HEADER = "X-LMS-Origin"

REPLY_TOKEN = re.compile(r"\+r-([a-z0-9]{8,32})@", re.I)
OUR_MESSAGE_ID = re.compile(r"<lms\.[a-z]+\.\d+\.[0-9a-f]+@[^>]+>", re.I)
_OUR_MESSAGE_ID_PARTS = re.compile(r"<lms\.([a-z]+)\.(\d+)\.[0-9a-f]+@[^>]+>", re.I)


def new_message_id(kind: str, lead_id: int | None, sender_address: str) -> str:
    """A Message-ID that names what the mail was and for which lead (0: none)."""
    domain = sender_address.partition("@")[2] or "lms.invalid"
    return f"<lms.{kind}.{lead_id or 0}.{secrets.token_hex(6)}@{domain}>"


def new_reply_token() -> str:
    return secrets.token_hex(8)


def reply_address(mailbox: str, token: str) -> str:
    """The dealer mailbox with the lead's reply token as sub-address."""
    local, _, domain = mailbox.partition("@")
    return f"{local}+r-{token}@{domain}"


def reply_token_in(address: str) -> str:
    match = REPLY_TOKEN.search(address)
    return match.group(1).lower() if match else ""


def our_message_ids(text: str) -> list[str]:
    """Our Message-IDs named in a header value (In-Reply-To, References, a bounce's report)."""
    return OUR_MESSAGE_ID.findall(text)


def lead_of_message_id(message_id: str) -> int | None:
    match = _OUR_MESSAGE_ID_PARTS.fullmatch(message_id.strip())
    return int(match.group(2)) or None if match else None
