"""Our own mail's identity, written and read in one place. (Pure.)

Everything we send carries our ``X-LMS-Origin`` header (the dealer id), a Message-ID of the
form ``<lms.KIND.LEAD.RANDOM@domain>``, and, where a customer may answer, a Reply-To with a
token in the sub-address (RFC 5233): ``mailbox+r-TOKEN@domain``. A mail that comes back with
any of them is ours (an echo, never a lead), or a customer's answer to a lead; reading them
is :mod:`intake.parsing.thread_markers`' job.
"""

from __future__ import annotations

import re
import secrets

OUR_HEADER = "X-LMS-Origin"

# "<lms.KIND.LEAD.RANDOM@domain>", with the kind and the lead id as groups.
OUR_MESSAGE_ID = re.compile(r"<lms\.([a-z]+)\.(\d+)\.[0-9a-f]+@[^>\s]+>", re.I)
# "<mailbox local part>+r-<token>@<domain>".
REPLY_TOKEN = re.compile(r"\+r-([a-z0-9]{8,32})@", re.I)
# Our forwards and notifications: "[Lead #123] …".
LEAD_SUBJECT_TOKEN = re.compile(r"\[Lead #(\d{1,12})\]", re.I)


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
