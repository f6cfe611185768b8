"""The marks our own mail carries, read in one place: the Message-ID format, the reply token
in our Reply-To, the ``[Lead #N]`` subject token, and the subject as a thread key. (Pure.)"""

from __future__ import annotations

import re
from collections.abc import Iterable

from intake.parsing.our_mail import LEAD_SUBJECT_TOKEN, OUR_MESSAGE_ID, REPLY_TOKEN

# Reply and forward prefixes of the mail clients our dealers' customers use, in their
# languages (Outlook writes "AW:", "WG:", "RE:", "TR:", "RV:", "SV:", "VS:", "Antw:", …),
# with Outlook's counters ("RE[2]:") and Lotus' "Re^2:".
_PREFIX = re.compile(
    r"^\s*(?:(?:re|aw|wg|fw|fwd|tr|rv|sv|vs|antw|antwort|doorst|ris|r|i|enc|res|ynt|odp|vl)"
    r"(?:\s*\[\d+\]|\^\d+)?\s*:\s*|\[lead #\d+\]\s*)+",
    re.I,
)
_FORWARD_PREFIX = re.compile(r"^\s*(?:fw|fwd|wg|tr|rv|i|doorst|enc|vs|vl)\s*:", re.I)


def our_message_ids(values: Iterable[str]) -> list[str]:
    found: list[str] = []
    for value in values:
        for match in OUR_MESSAGE_ID.finditer(value):
            if match.group(0) not in found:
                found.append(match.group(0))
    return found


def lead_ids_in_message_ids(message_ids: Iterable[str]) -> list[int]:
    """The lead ids our Message-IDs carry (``lms.ar.42.…`` → 42); 0 means no lead."""
    ids = []
    for message_id in message_ids:
        match = OUR_MESSAGE_ID.fullmatch(message_id.strip())
        if match and int(match.group(2)) and int(match.group(2)) not in ids:
            ids.append(int(match.group(2)))
    return ids


def is_our_message_id(message_id: str) -> bool:
    return bool(OUR_MESSAGE_ID.fullmatch(message_id.strip()))


def reply_token_in(values: Iterable[str]) -> str:
    for value in values:
        match = REPLY_TOKEN.search(value)
        if match:
            return match.group(1).lower()
    return ""


def lead_id_in_subject(subject: str) -> int | None:
    match = LEAD_SUBJECT_TOKEN.search(subject)
    return int(match.group(1)) if match else None


def normalised_subject(subject: str) -> str:
    """The subject as a thread key: no reply/forward prefixes, no lead token, case and
    spacing folded ("AW: WG: Ihre Anfrage  bei X" and "Ihre Anfrage bei x" are one thread)."""
    return " ".join(_PREFIX.sub("", subject).split()).casefold()


def is_forward_subject(subject: str) -> bool:
    return bool(_FORWARD_PREFIX.match(subject))
