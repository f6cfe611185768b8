"""Phone numbers written in a customer's text ("erreichbar unter 0171 2223334"). (Pure.)

``phonenumbers.PhoneNumberMatcher`` with the dealer's country as region finds them; a
cheap pattern goes first, because most mails hold no number at all and the matcher is the
most expensive step of reading a mail.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

import phonenumbers

from models.contacts import normalise_phone

# At least seven digits with the separators people write between them.
_CANDIDATE = re.compile(r"(?:\+|\b00|\(0|\b0)?\d[\d \t/().-]{5,}\d")
_URL = re.compile(r"https?://\S+|www\.\S+|\S+@\S+", re.I)
_TEXT_LIMIT = 6000
_MAX_NUMBERS = 5


@dataclass(frozen=True)
class FoundPhone:
    raw: str  # as written
    e164: str  # "+491712223334"; "" when it could not be placed (no region known)


def phones_in_text(text: str, region: str = "", exclude: Collection[str] = ()) -> list[FoundPhone]:
    """Numbers in ``text``, in order, without duplicates and without ``exclude`` (E.164:
    the dealer's own numbers). Without a region only international numbers (+…, 00…) count."""
    text = text[:_TEXT_LIMIT]
    if not _CANDIDATE.search(text):
        return []
    text = _URL.sub(" ", text)  # ids in links and addresses are no phone numbers
    found: list[FoundPhone] = []
    seen = set(exclude)
    try:
        matcher = phonenumbers.PhoneNumberMatcher(text.replace("(0)", ""), region.upper() or "ZZ")
        for match in matcher:
            e164 = phonenumbers.format_number(match.number, phonenumbers.PhoneNumberFormat.E164)
            if e164 in seen:
                continue
            seen.add(e164)
            found.append(FoundPhone(match.raw_string.strip(), e164))
            if len(found) >= _MAX_NUMBERS:
                break
    except Exception:  # phonenumbers is robust, but a text must never fail the mail
        return found
    return found


def e164(number: str, region: str) -> str:
    """One number as written → E.164, or "" (the report shows both): the rule ingest stores
    contacts by (:func:`models.contacts.normalise_phone`)."""
    return normalise_phone(number, region) or ""
