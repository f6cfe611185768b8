"""Normalised contact keys, so the same customer is recognised however they write. (Pure.)"""

from __future__ import annotations

import phonenumbers


def normalise_email(address: str) -> str:
    return address.strip().strip("<>").strip().rstrip(".").lower()


def normalise_phone(number: str, region: str) -> str | None:
    """E.164 (``+4917612345678``) from any notation; the dealer's country is the default
    region for numbers written without one. ``None`` when it is no possible number."""
    cleaned = number.strip()
    if cleaned.startswith("00"):
        cleaned = "+" + cleaned[2:]
    try:
        parsed = phonenumbers.parse(cleaned, region.upper() or None)
    except phonenumbers.NumberParseException:
        return None
    national = phonenumbers.national_significant_number(parsed)
    # Placeholders ("(000) 000-0000") and fragments are no way to reach anyone.
    if not phonenumbers.is_possible_number(parsed) or len(national) < 6 or not national.strip("0"):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
