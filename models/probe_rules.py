"""The end-to-end probe's rules (Pure): what its mail looks like, how its token is read back,
and when a periodic probe is due or a waiting run is stale. The I/O is in ``workers/probe.py``.

The mail is built to be harmless should it ever be taken as an ordinary mail (its run timed out
before it arrived, or somebody replays it): ``Auto-Submitted`` makes ingest store it as
``ignored`` and the autoresponder never answers it. Only a token that matches a *waiting* run of
the receiving dealer makes it a probe (``workers.probe.take``).
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime

PROBE_HEADER = "X-LMS-Probe"
PROBE_FORMAT = "probe"  # Lead.format of a probe lead (reports and KPIs leave them out)
# A run nobody is waiting for any more (its prober died) is called a timeout after this long.
STALE_AFTER = timedelta(minutes=15)

_TOKEN = re.compile(r"^[0-9a-f]{32}$")


def probe_message_id(token: str) -> str:
    return f"<lms-probe-{token}@lms.invalid>"


def external_id(token: str) -> str:
    """What the probe lead carries in ``Lead.external_id``: the prober finds it by this."""
    return f"probe:{token}"


def token_in(header_value: str) -> str | None:
    """The token of a probe header, or ``None`` when the value is no token at all."""
    value = header_value.strip().lower()
    return value if _TOKEN.match(value) else None


def probe_mail(*, token: str, dealer_id: str, to: str, sender: str, now: datetime) -> bytes:
    """The marked test enquiry: addressed to the dealer's mailbox, from the dealer itself."""
    message = EmailMessage()
    message["From"] = f"LMS probe <{sender}>"
    message["To"] = to
    message["Subject"] = f"LMS end-to-end probe {dealer_id}"
    message["Date"] = format_datetime(now)
    message["Message-ID"] = probe_message_id(token)
    message["Auto-Submitted"] = "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    message[PROBE_HEADER] = token
    message.set_content(
        "This is an end-to-end test of the lead intake (lms ops probe).\n"
        "It becomes a probe lead that is removed at once; nobody answers it.\n"
    )
    return bytes(message)


def due(every: timedelta | None, last_started: datetime | None, now: datetime) -> bool:
    """A periodic probe is due when it is configured and the last one started ``every`` ago."""
    if every is None:
        return False
    return last_started is None or now - last_started >= every


def expired(started: datetime, timeout: timedelta, now: datetime) -> bool:
    return now - started >= timeout
